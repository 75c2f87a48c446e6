//! Where readings come from. Each source is a module behind the [`Source`] trait:
//! [`simulator`] (synthetic city sensors), [`jsonl`] (JSON lines on stdin or a file) and
//! [`mqtt`] (a subscription to the gateway's local broker with mapping rules, including
//! ChirpStack v4 LoRaWAN uplinks).
//!
//! Sources push readings into a [`ReadingSink`]; a malformed input is counted and logged at
//! most once per interval through [`ReadingSink::malformed`], never fatal. A source stops when
//! its cancellation token fires or its input ends.

pub mod jsonl;
pub mod mqtt;
pub mod simulator;
mod spec;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beffroi_protocol::Reading;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::telemetry::{Counter, Telemetry};

pub use spec::{RawSource, SourceSpec};

/// Why a source stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Opening or reading the input failed.
    #[error("source {source_name}: {what}: {error}")]
    Io {
        /// The source's name.
        source_name: String,
        /// What it was doing.
        what: String,
        /// The IO error.
        error: std::io::Error,
    },
    /// The source could not be set up from its configuration.
    #[error("source {source_name}: {reason}")]
    Setup {
        /// The source's name.
        source_name: String,
        /// Why.
        reason: String,
    },
}

/// A boxed future a source runs as.
pub type SourceFuture = Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send>>;

/// A producer of readings.
pub trait Source: Send {
    /// The source's name, for logs.
    fn name(&self) -> &str;

    /// Produces readings into `sink` until `stop` is cancelled or the input ends.
    fn run(self: Box<Self>, sink: ReadingSink, stop: CancellationToken) -> SourceFuture;
}

/// How often a source logs that it dropped malformed input.
const MALFORMED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The sending end sources push readings into; cloneable, one per source.
#[derive(Clone)]
pub struct ReadingSink {
    tx: mpsc::Sender<Reading>,
    telemetry: Arc<Telemetry>,
    source: Arc<str>,
    malformed_log: Arc<Mutex<MalformedLog>>,
}

struct MalformedLog {
    last_logged: Option<Instant>,
    since_last: u64,
}

/// The batcher has stopped; the source should stop too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the batcher is gone")]
pub struct SinkClosed;

impl ReadingSink {
    /// A sink for source `source` feeding `tx`.
    pub fn new(tx: mpsc::Sender<Reading>, telemetry: Arc<Telemetry>, source: &str) -> Self {
        Self {
            tx,
            telemetry,
            source: source.into(),
            malformed_log: Arc::new(Mutex::new(MalformedLog {
                last_logged: None,
                since_last: 0,
            })),
        }
    }

    /// Sends a reading, waiting while the batcher is busy (backpressure).
    pub async fn send(&self, reading: Reading) -> Result<(), SinkClosed> {
        self.tx.send(reading).await.map_err(|_| SinkClosed)?;
        self.telemetry.incr(Counter::ReadingsCollected);
        Ok(())
    }

    /// Counts a malformed input and logs it, at most once per interval per source.
    pub fn malformed(&self, reason: impl std::fmt::Display) {
        self.telemetry.incr(Counter::InputMalformed);
        let mut log = self
            .malformed_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.since_last += 1;
        let now = Instant::now();
        if log
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= MALFORMED_LOG_INTERVAL)
        {
            tracing::warn!(
                source = %self.source,
                dropped = log.since_last,
                last_reason = %reason,
                "dropped malformed input"
            );
            log.last_logged = Some(now);
            log.since_last = 0;
        }
    }

    /// Counts a source failure that the source survives (lost subscription, retry).
    pub fn error(&self, reason: impl std::fmt::Display) {
        self.telemetry.incr(Counter::SourceErrors);
        tracing::warn!(source = %self.source, %reason, "source error");
    }
}
