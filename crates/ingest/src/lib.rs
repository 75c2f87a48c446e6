//! Verified ingest: the platform's MQTT consumer of gateway batches and health reports.
//!
//! This crate owns the path from the broker to the store and back to the gateway: decode,
//! verify, deduplicate, validate, group-commit, commit ack. It must not accept connections
//! (that is the gate's job), decide data governance, or hold SQL (that is the store's).
//!
//! ```text
//! broker ──$share/{group}-{kind}/beffroi/v1/+/+/{kind}──► subscriber (rumqttc v5, own task;
//!    ▲          kind: batch, health, a group each)                  │ bounded channel
//!    │                                                              ▼
//!    │      pipeline: topic ─► envelope ─► key cache ─► batch verification (blocking pool)
//!    │                ─► seq tracker (dedupe/replay) ─► time window ─► commit queue
//!    │                                  │ rejections                      │ health
//!    │                                  ▼                                 ▼
//!    │                         quarantine writer                  health writer (gaps)
//!    │                                                                    │
//!    │      committers (commit_lanes, gateways hashed to lanes): one transaction per round
//!    │                (≤ commit_interval, ≤ commit_max_readings)
//!    │                ─► trackers ─► after-commit events (broadcast) ─► gateways due an ack
//!    └──────────────── ack publisher: beffroi/v1/{t}/{g}/ack, QoS 1, one per gateway per round
//! ```
//!
//! Which rejections are acknowledged is stated in the `quarantine` module: authentic batches
//! outside the time window (`stale`, `future`) are acknowledged once durably quarantined;
//! messages whose sender is not authenticated (`bad_signature`, `unknown_key`, `revoked`,
//! `retired_key`) and undecodable ones (`malformed`) never are; a `replay` does not change
//! the ack.
//!
//! Shutdown ([`Ingest::run`] once its token fires): unsubscribe, process what already
//! arrived, commit everything queued, publish the acks, disconnect — within
//! `shutdown_timeout`. Messages the broker delivers after that are not acknowledged by a
//! commit ack, so their gateways send them again (to another node of the share group).

mod acks;
mod check;
mod committer;
mod config;
mod error;
mod health;
mod pipeline;
mod quarantine;
mod sequence;
mod subscriber;
mod validate;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use beffroi_store::Store;
use beffroi_telemetry::{Metrics, SecurityEvents};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{IngestConfig, DEFAULT_SHARE_GROUP};
pub use error::{IngestError, Result};
pub use quarantine::MAX_QUARANTINED_PAYLOAD;
pub use verify::KeyCacheHandle;

use crate::acks::Acks;
use crate::committer::{Committer, CommitterParts};
use crate::pipeline::{FailureLog, Pipeline};
use crate::quarantine::Quarantine;
use crate::sequence::Trackers;
use crate::subscriber::Subscriber;
use crate::verify::KeyCache;

/// A batch as committed (its readings in batch order, its signature and key id), published
/// after its transaction committed. Duplicates are never published.
pub type CommittedBatch = beffroi_store::CommitBatch;

/// What ingest publishes once it is durable, for live views and alerts.
#[derive(Debug, Clone)]
pub enum IngestEvent {
    /// A batch was committed.
    Committed(Arc<CommittedBatch>),
    /// A health report was recorded.
    Health(Arc<beffroi_protocol::Health>),
}

/// How long shutdown waits for the DISCONNECT to be written.
const DISCONNECT_WAIT: Duration = Duration::from_millis(500);

/// Ingest, configured; [`Ingest::run`] runs it.
pub struct Ingest {
    config: IngestConfig,
    store: Arc<dyn Store>,
    events: SecurityEvents,
    metrics: Arc<Metrics>,
    after_commit: Option<broadcast::Sender<IngestEvent>>,
    keys: Arc<KeyCache>,
}

impl Ingest {
    /// Ingest into `store`, reporting to `events` and `metrics`.
    pub fn new(
        config: IngestConfig,
        store: Arc<dyn Store>,
        events: SecurityEvents,
        metrics: Arc<Metrics>,
    ) -> Self {
        let keys = Arc::new(KeyCache::new(config.key_cache_ttl));
        Self {
            config,
            store,
            events,
            metrics,
            after_commit: None,
            keys,
        }
    }

    /// A handle on this ingest's key cache, valid while it runs: the platform calls
    /// [`KeyCacheHandle::forget_gateway`] when it revokes a gateway or rotates its key.
    pub fn key_cache(&self) -> KeyCacheHandle {
        KeyCacheHandle(self.keys.clone())
    }

    /// Publishes on `events` every newly committed batch and every recorded health report
    /// (for live views and alerts), once durable. Sending never waits: a receiver that lags
    /// loses the oldest events (`RecvError::Lagged`), ingest does not slow down.
    pub fn with_events(mut self, events: broadcast::Sender<IngestEvent>) -> Self {
        self.after_commit = Some(events);
        self
    }

    /// Runs until `shutdown` fires, then commits what is pending and publishes its acks
    /// within `shutdown_timeout`. Fails only on an invalid configuration or when shutdown
    /// overruns its deadline; broker and store failures are retried, bad messages quarantined.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        self.config.validate()?;
        let Self {
            config,
            store,
            events,
            metrics,
            after_commit,
            keys,
        } = self;
        let trackers = Arc::new(Trackers::default());
        let acks = Arc::new(Acks::default());
        let (quarantine, quarantine_writer) =
            Quarantine::new(events, metrics.clone(), acks.clone());
        let (commits, committers) = Committer::new(CommitterParts {
            store: store.clone(),
            trackers: trackers.clone(),
            acks: acks.clone(),
            quarantine: quarantine.clone(),
            metrics: metrics.clone(),
            after_commit: after_commit.clone(),
            interval: config.commit_interval,
            max_readings: config.commit_max_readings,
            lanes: config.commit_lanes,
        });
        let (health_tx, health_rx) = mpsc::channel(health::QUEUE);
        let (subscriber, mut inbound) = Subscriber::start(&config, metrics.clone());
        let mut ack_task = tokio::spawn(acks.clone().run(
            subscriber.client(),
            trackers.clone(),
            metrics.clone(),
        ));
        let mut tasks: Vec<JoinHandle<()>> = committers
            .into_iter()
            .map(|committer| tokio::spawn(committer.run()))
            .collect();
        tasks.extend([
            tokio::spawn(quarantine_writer.run(store.clone(), trackers.clone())),
            tokio::spawn(health::write_reports(
                health_rx,
                health::Writer {
                    store: store.clone(),
                    trackers: trackers.clone(),
                    acks: acks.clone(),
                    metrics: metrics.clone(),
                    after_commit,
                },
            )),
        ]);
        let mut pipeline = Pipeline {
            store,
            keys,
            trackers,
            quarantine,
            commits,
            health: health_tx,
            acks: acks.clone(),
            metrics,
            max_age: config.max_age,
            max_future_skew: config.max_future_skew,
            failures: FailureLog::default(),
            parallelism: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
        };
        tracing::info!(
            broker = %format_args!("{}:{}", config.broker_host, config.broker_port),
            group = %config.share_group,
            "ingest started"
        );
        pipeline.run_until(&mut inbound, &shutdown).await;

        // Ordered shutdown: stop intake, drain, commit, ack, disconnect.
        subscriber.unsubscribe();
        let deadline = tokio::time::Instant::now() + config.shutdown_timeout;
        let finished = tokio::time::timeout_at(deadline, async {
            pipeline.drain(inbound).await;
            // Dropping the pipeline closes the commit, health and quarantine queues; each
            // task ends once its queue is empty.
            drop(pipeline);
            let mut failed = None;
            for task in &mut tasks {
                if let Err(error) = task.await {
                    failed = Some(error.to_string());
                }
            }
            acks.close();
            if let Err(error) = (&mut ack_task).await {
                failed = Some(error.to_string());
            }
            failed
        })
        .await;
        for task in &tasks {
            task.abort();
        }
        ack_task.abort();
        subscriber.disconnect(DISCONNECT_WAIT).await;
        match finished {
            Ok(None) => {
                tracing::info!("ingest stopped");
                Ok(())
            }
            Ok(Some(error)) => Err(IngestError::Task(error)),
            Err(_) => Err(IngestError::ShutdownTimeout(config.shutdown_timeout)),
        }
    }
}

/// Runs ingest until `shutdown` fires: [`Ingest::new`] then [`Ingest::run`].
pub async fn run(
    config: IngestConfig,
    store: Arc<dyn Store>,
    events: SecurityEvents,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<()> {
    Ingest::new(config, store, events, metrics)
        .run(shutdown)
        .await
}
