//! Why the hub could not take a client.

/// Result alias for this crate.
pub type Result<T, E = LiveError> = std::result::Result<T, E>;

/// A live-view failure.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The store could not load the tenant's sensors or latest values.
    #[error("store: {0}")]
    Store(#[from] beffroi_store::Error),
    /// The platform is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
}
