//! Group commit: every verified batch since the last commit goes to the store in one
//! transaction, at most `commit_interval` after the first of them was queued or as soon as
//! `commit_max_readings` are waiting. The default interval is zero: a round takes what is
//! queued when its lane is free, so at low rates a batch is committed at once and under load
//! batches gather while the previous commit runs (rounds grow by themselves, with no wait).
//! Then the trackers learn what is committed, the new
//! batches are published (live views, alerts) and every touched gateway is due one ack.
//!
//! Commits run in `commit_lanes` lanes at once, one committer task (and so one database
//! connection) each. A gateway always goes to the same lane (a hash of tenant and gateway), so
//! its batches are committed in order by one task, and two lanes never lock the same gateway
//! row: their transactions never wait for each other. On PostgreSQL, where one connection's
//! backend saturates a core, lanes spread the writes over the server's cores; SQLite has one
//! writer, so its lanes take turns.
//!
//! The queue is bounded in readings (a semaphore of `4 × commit_max_readings` permits, held
//! by a batch until its commit): when the store is slower than the broker, the pipeline
//! waits, then the MQTT event loop, then the broker. A failed commit is retried with backoff
//! (10 ms doubling to 2 s) and counted in `ingest_commit_errors`; it is never dropped. Only a
//! shutdown deadline can stop the retries, and then nothing uncommitted was acknowledged.
//!
//! A batch the store reports as already stored (another platform node committed the same
//! seq) is compared with the stored signature: the same is a duplicate, a different one a
//! replay (quarantined, not stored).

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;
use std::time::Duration;

use beffroi_store::{CommitBatch, CommitOutcome, QuarantineReason, Store};
use beffroi_telemetry::Metrics;
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::acks::Acks;
use crate::quarantine::{Quarantine, Rejection};
use crate::sequence::{GatewayKey, Trackers};
use crate::IngestEvent;

const RETRY_MIN: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// A verified batch waiting for its commit.
struct Queued {
    batch: CommitBatch,
    /// When its message arrived (commit latency).
    arrived: std::time::Instant,
    /// When it was queued (group-commit deadline).
    queued: Instant,
    _permit: Option<OwnedSemaphorePermit>,
}

/// The pipeline's end of the commit queues, one per lane.
#[derive(Clone)]
pub(crate) struct CommitQueue {
    lanes: Vec<mpsc::UnboundedSender<Queued>>,
    permits: Arc<Semaphore>,
    max_permits: u32,
    metrics: Arc<Metrics>,
}

impl CommitQueue {
    /// Queues a batch in its gateway's lane, waiting while too many readings are queued.
    pub(crate) async fn push(&self, batch: CommitBatch, arrived: std::time::Instant) {
        let wanted = u32::try_from(batch.readings.len())
            .unwrap_or(u32::MAX)
            .clamp(1, self.max_permits);
        // The semaphore is never closed, so acquiring only fails if that changes; the batch
        // is then queued without a permit rather than lost.
        let permit = self.permits.clone().acquire_many_owned(wanted).await.ok();
        self.metrics.ingest_queue.add(1);
        let queued = Queued {
            batch,
            arrived,
            queued: Instant::now(),
            _permit: permit,
        };
        let lane = lane_of(&queued.batch, self.lanes.len());
        if self.lanes[lane].send(queued).is_err() {
            // The committer is gone (shutdown deadline): not committed, so not acked either.
            self.metrics.ingest_queue.add(-1);
        }
    }
}

/// The lane of a batch's gateway, among `lanes` (at least 1): a hash with fixed keys, so a
/// gateway keeps its lane for the life of the process.
fn lane_of(batch: &CommitBatch, lanes: usize) -> usize {
    let hash = BuildHasherDefault::<DefaultHasher>::default()
        .hash_one((batch.tenant.as_str(), batch.gateway.as_str()));
    (hash % lanes.max(1) as u64) as usize
}

/// The task committing queued batches.
pub(crate) struct Committer {
    rx: mpsc::UnboundedReceiver<Queued>,
    store: Arc<dyn Store>,
    trackers: Arc<Trackers>,
    acks: Arc<Acks>,
    quarantine: Quarantine,
    metrics: Arc<Metrics>,
    after_commit: Option<broadcast::Sender<IngestEvent>>,
    interval: Duration,
    max_readings: usize,
}

/// What the committer works with.
pub(crate) struct CommitterParts {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Sequence trackers.
    pub trackers: Arc<Trackers>,
    /// Ack scheduling.
    pub acks: Arc<Acks>,
    /// Replays found at commit time.
    pub quarantine: Quarantine,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Where committed batches are published.
    pub after_commit: Option<broadcast::Sender<IngestEvent>>,
    /// Group-commit interval.
    pub interval: Duration,
    /// Group-commit size.
    pub max_readings: usize,
    /// Commits in flight at once (at least 1).
    pub lanes: usize,
}

impl Committer {
    /// The queue and one committer per lane.
    pub(crate) fn new(parts: CommitterParts) -> (CommitQueue, Vec<Self>) {
        let max_permits = u32::try_from(parts.max_readings.saturating_mul(4))
            .unwrap_or(u32::MAX)
            .min(Semaphore::MAX_PERMITS as u32);
        let (senders, committers) = (0..parts.lanes.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                let committer = Self {
                    rx,
                    store: parts.store.clone(),
                    trackers: parts.trackers.clone(),
                    acks: parts.acks.clone(),
                    quarantine: parts.quarantine.clone(),
                    metrics: parts.metrics.clone(),
                    after_commit: parts.after_commit.clone(),
                    interval: parts.interval,
                    max_readings: parts.max_readings,
                };
                (tx, committer)
            })
            .unzip();
        let queue = CommitQueue {
            lanes: senders,
            permits: Arc::new(Semaphore::new(max_permits as usize)),
            max_permits,
            metrics: parts.metrics,
        };
        (queue, committers)
    }

    /// Commits rounds until every [`CommitQueue`] is dropped and the queue is empty.
    pub(crate) async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let deadline = first.queued + self.interval;
            let mut readings = first.batch.readings.len();
            let mut round = vec![first];
            while readings < self.max_readings {
                // `timeout_at` polls the channel first: what is already queued is taken even
                // when the deadline has passed during the previous commit.
                match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                    Ok(Some(queued)) => {
                        readings += queued.batch.readings.len();
                        round.push(queued);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            self.commit(round).await;
        }
    }

    async fn commit(&self, round: Vec<Queued>) {
        let count = round.len();
        let mut batches = Vec::with_capacity(count);
        let mut held = Vec::with_capacity(count);
        for queued in round {
            batches.push(queued.batch);
            held.push((queued.arrived, queued._permit));
        }
        let outcomes = self.commit_with_retries(&batches).await;
        self.metrics.ingest_commits.incr();
        self.metrics
            .ingest_queue
            .add(-i64::try_from(count).unwrap_or(i64::MAX));
        let now = std::time::Instant::now();
        let mut touched: HashSet<GatewayKey> = HashSet::new();
        for ((batch, outcome), (arrived, _permit)) in batches.into_iter().zip(outcomes).zip(held) {
            let gateway: GatewayKey = (batch.tenant.clone(), batch.gateway.clone());
            self.trackers.with(&gateway, |t| t.settle(batch.seq));
            match outcome {
                CommitOutcome::Stored => {
                    self.metrics.ingest_batches.incr();
                    self.metrics
                        .ingest_readings
                        .add(u64::try_from(batch.readings.len()).unwrap_or(u64::MAX));
                    self.metrics
                        .ingest_commit_latency
                        .observe(now.saturating_duration_since(arrived));
                    if let Some(events) = &self.after_commit {
                        if events.receiver_count() > 0 {
                            // A lagging receiver is counted on its side; ingest never waits.
                            let _ = events.send(IngestEvent::Committed(Arc::new(batch)));
                        }
                    }
                }
                CommitOutcome::Duplicate => self.compare_with_stored(&gateway, &batch).await,
            }
            touched.insert(gateway);
        }
        for gateway in touched {
            if self.trackers.with(&gateway, |t| t.wants_refresh()) == Some(true) {
                match self.store.seq_state(&gateway.0, &gateway.1).await {
                    Ok(state) => {
                        self.trackers.with(&gateway, |t| t.merge(state));
                    }
                    Err(error) => tracing::warn!(%error, "cannot refresh a gateway's seq state"),
                }
            }
            self.acks.schedule(gateway);
        }
    }

    /// One transaction for the round, retried until it succeeds.
    async fn commit_with_retries(&self, batches: &[CommitBatch]) -> Vec<CommitOutcome> {
        let mut delay = RETRY_MIN;
        loop {
            match self.store.commit(batches).await {
                Ok(outcomes) if outcomes.len() == batches.len() => return outcomes,
                Ok(outcomes) => tracing::error!(
                    got = outcomes.len(),
                    expected = batches.len(),
                    "store returned the wrong number of commit outcomes; retrying"
                ),
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?delay, batches = batches.len(), "group commit failed; retrying");
                }
            }
            self.metrics.ingest_commit_errors.incr();
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    }

    /// A batch already stored under its seq: a duplicate or a replay.
    async fn compare_with_stored(&self, gateway: &GatewayKey, batch: &CommitBatch) {
        match self
            .store
            .batch_signature(&gateway.0, &gateway.1, batch.seq)
            .await
        {
            Ok(Some(stored)) if stored == batch.signature => self.metrics.ingest_duplicates.incr(),
            Ok(Some(_)) => self.quarantine.reject(Rejection::detached(
                gateway,
                batch.seq,
                QuarantineReason::Replay,
                "another batch was committed under this seq (found at commit; envelope not kept)"
                    .into(),
                batch.received_at,
            )),
            Ok(None) => tracing::error!(
                seq = batch.seq,
                "store reported a duplicate it does not hold"
            ),
            Err(error) => {
                tracing::warn!(%error, "cannot compare a duplicate with the stored batch")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use beffroi_protocol::{GatewayId, KeyId, TenantId, Timestamp};

    use super::*;

    fn batch(gateway: &str, seq: u64) -> CommitBatch {
        CommitBatch {
            tenant: TenantId::new("lyon").unwrap(),
            gateway: GatewayId::new(gateway).unwrap(),
            seq,
            key_id: KeyId::new("k").unwrap(),
            signature: [0; 64],
            received_at: Timestamp::from_unix_micros(0),
            readings: Vec::new(),
        }
    }

    #[test]
    fn a_gateway_keeps_its_lane_and_gateways_spread_over_lanes() {
        let mut used = [0usize; 2];
        for g in 0..20 {
            let gateway = format!("gw-{g}");
            let lane = lane_of(&batch(&gateway, 1), 2);
            assert_eq!(lane, lane_of(&batch(&gateway, 99), 2), "{gateway}");
            used[lane] += 1;
        }
        assert!(used.iter().all(|&n| n >= 5), "{used:?}");
        assert_eq!(lane_of(&batch("gw-1", 1), 1), 0);
        assert_eq!(
            lane_of(&batch("gw-1", 1), 0),
            0,
            "no lane count is treated as one"
        );
    }
}
