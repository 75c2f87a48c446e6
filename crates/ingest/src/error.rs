//! The crate's error type: what can stop [`crate::run`] from starting or finishing.
//!
//! Bad messages are not errors of ingest: they are quarantined and counted, and ingest goes on.
//! Broker and store failures while running are retried with backoff, never returned.

/// Result alias for this crate.
pub type Result<T, E = IngestError> = std::result::Result<T, E>;

/// Why ingest could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A configuration field is invalid.
    #[error("invalid ingest setting {field}: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Shutdown did not finish committing within its deadline; what was not committed was not
    /// acknowledged either, so gateways will send it again.
    #[error("ingest shutdown exceeded {0:?}; uncommitted batches will be re-sent by gateways")]
    ShutdownTimeout(std::time::Duration),
    /// A pipeline task panicked (a bug).
    #[error("ingest task failed: {0}")]
    Task(String),
}
