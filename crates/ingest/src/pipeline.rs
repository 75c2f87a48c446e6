//! The pipeline task: takes messages from the subscriber in chunks (as many as arrived
//! together, up to [`CHUNK`]), checks them on the blocking pool ([`crate::check`]), then, in
//! order, deduplicates, validates and queues authentic batches for the group commit, hands
//! health reports to their writer and rejections to quarantine.
//!
//! ```text
//! inbound ─► chunk ─► check (topic, envelope, key cache, batch verification, decode)
//!                        │ key not cached: one store lookup per key id, check again
//!                        ▼
//!            batch ─► tracker: new ─► time window ─► commit queue
//!                              pending same/different ─► duplicate / replay
//!                              settled ─► stored signature? same ─► duplicate, re-ack
//!                                                          other ─► replay
//!                                                          none  ─► as new (gap seq)
//!            health ─► health writer        rejected ─► quarantine
//! ```
//! The hot path makes no store round trip: keys come from the cache, seqs from the tracker
//! (loaded once per gateway). Store failures here (key or seq-state lookups) drop the message
//! unacknowledged — the gateway sends it again — and are logged at most every 10 s.

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};

use beffroi_protocol::{KeyId, Timestamp, Topic};
use beffroi_store::{QuarantineReason, Store};
use beffroi_telemetry::Metrics;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::acks::Acks;
use crate::check::{check_chunk, runs_inline, Checked, VerifiedBatch, VerifiedHealth};
use crate::committer::CommitQueue;
use crate::quarantine::{Quarantine, Rejection};
use crate::sequence::{GatewayKey, SeqCheck, Trackers};
use crate::subscriber::Inbound;
use crate::validate::TimeWindow;
use crate::verify::KeyCache;

/// Most messages checked together.
pub(crate) const CHUNK: usize = 512;
/// Smallest share of a chunk checked on its own blocking thread: one full verification group.
const PARALLEL_MIN: usize = crate::verify::VERIFY_GROUP;
/// Shortest time between two log lines about store lookups failing.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Everything the pipeline hands work to.
pub(crate) struct Pipeline {
    /// The store (key and seq-state lookups only).
    pub store: Arc<dyn Store>,
    /// Gateway keys.
    pub keys: Arc<KeyCache>,
    /// Sequence trackers.
    pub trackers: Arc<Trackers>,
    /// Rejections.
    pub quarantine: Quarantine,
    /// The group commit.
    pub commits: CommitQueue,
    /// The health writer.
    pub health: mpsc::Sender<Box<VerifiedHealth>>,
    /// Ack scheduling (re-acks of duplicates).
    pub acks: Arc<Acks>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Oldest accepted reading age.
    pub max_age: Duration,
    /// Largest accepted clock skew into the future.
    pub max_future_skew: Duration,
    /// Rate limit of failure logs.
    pub failures: FailureLog,
    /// Blocking threads a chunk may be split across.
    pub parallelism: usize,
}

impl Pipeline {
    /// Processes messages until `shutdown` fires or the subscriber goes away.
    pub(crate) async fn run_until(
        &mut self,
        inbound: &mut mpsc::Receiver<Inbound>,
        shutdown: &CancellationToken,
    ) {
        let mut chunk = Vec::with_capacity(CHUNK);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                // `recv_many` is cancellation safe.
                received = inbound.recv_many(&mut chunk, CHUNK) => {
                    if received == 0 {
                        return;
                    }
                }
            }
            self.metrics
                .ingest_inbound
                .set(i64::try_from(inbound.len()).unwrap_or(i64::MAX));
            self.process(std::mem::take(&mut chunk)).await;
        }
    }

    /// Processes what has already arrived, without waiting for more.
    pub(crate) async fn drain(&mut self, mut inbound: mpsc::Receiver<Inbound>) {
        loop {
            let mut chunk = Vec::with_capacity(CHUNK);
            while chunk.len() < CHUNK {
                match inbound.try_recv() {
                    Ok(message) => chunk.push(message),
                    Err(_) => break,
                }
            }
            if chunk.is_empty() {
                return;
            }
            self.process(chunk).await;
        }
    }

    async fn process(&mut self, chunk: Vec<Inbound>) {
        let window = TimeWindow::around(Timestamp::now(), self.max_age, self.max_future_skew);
        let checked = self.check(chunk, window).await;
        let mut missing = Vec::new();
        self.dispatch(checked, &mut missing).await;
        if missing.is_empty() {
            return;
        }
        let kids: HashSet<KeyId> = missing.iter().map(|(_, kid)| kid.clone()).collect();
        for kid in kids {
            if let Err(error) = self.keys.fetch(&*self.store, &kid).await {
                self.failures.report("key lookup", &error);
            }
        }
        let retry = missing.into_iter().map(|(inbound, _)| inbound).collect();
        let checked = self.check(retry, window).await;
        let mut still_missing = Vec::new();
        self.dispatch(checked, &mut still_missing).await;
        // Only when the store failed the lookup: dropped unacknowledged, sent again later.
        drop(still_missing);
    }

    /// Runs the CPU stage, on the blocking pool unless the chunk is tiny; a large chunk is
    /// split across the cores (verification is the bulk of the CPU at one reading per
    /// message).
    async fn check(&mut self, mut chunk: Vec<Inbound>, window: TimeWindow) -> Vec<Checked> {
        if runs_inline(&chunk) {
            return check_chunk(chunk, &self.keys, window);
        }
        let parts = (chunk.len() / PARALLEL_MIN).clamp(1, self.parallelism);
        let per_part = chunk.len().div_ceil(parts);
        let mut pieces = Vec::with_capacity(parts);
        while chunk.len() > per_part {
            pieces.push(chunk.split_off(chunk.len() - per_part));
        }
        pieces.push(chunk);
        pieces.reverse();
        let handles: Vec<_> = pieces
            .into_iter()
            .map(|piece| {
                let keys = self.keys.clone();
                tokio::task::spawn_blocking(move || check_chunk(piece, &keys, window))
            })
            .collect();
        let mut checked = Vec::new();
        for handle in handles {
            match handle.await {
                Ok(part) => checked.extend(part),
                // A panic in a decoder would be a bug; that part of the chunk is dropped
                // unacknowledged (gateways send it again).
                Err(error) => tracing::error!(%error, "message check failed"),
            }
        }
        checked
    }

    async fn dispatch(&mut self, checked: Vec<Checked>, missing: &mut Vec<(Inbound, KeyId)>) {
        for item in checked {
            match item {
                Checked::Batch(batch) => self.accept_batch(*batch).await,
                Checked::Health(report) => self.accept_health(report).await,
                Checked::NeedsKey(needs) => missing.push(*needs),
                Checked::Rejected(rejection) => self.quarantine.reject(*rejection),
            }
        }
    }

    /// Deduplicates an authentic batch and queues it for commit.
    async fn accept_batch(&mut self, batch: VerifiedBatch) {
        if !self.ensure_tracker(&batch.gateway).await {
            return;
        }
        let (seq, signature) = (batch.commit.seq, batch.commit.signature);
        let check = self
            .trackers
            .with(&batch.gateway, |t| t.check(seq, &signature))
            .unwrap_or(SeqCheck::New);
        match check {
            SeqCheck::New => self.admit(batch).await,
            SeqCheck::Pending { same: true } => self.metrics.ingest_duplicates.incr(),
            SeqCheck::Pending { same: false } => self.replay(&batch, "waiting for commit"),
            SeqCheck::Settled => {
                let stored = self
                    .store
                    .batch_signature(&batch.gateway.0, &batch.gateway.1, seq)
                    .await;
                match stored {
                    Ok(Some(stored)) if stored == signature => {
                        self.metrics.ingest_duplicates.incr();
                        self.acks.schedule(batch.gateway);
                    }
                    Ok(Some(_)) => self.replay(&batch, "committed"),
                    // Inside a reported gap, or acknowledged in quarantine: not stored.
                    Ok(None) => self.admit(batch).await,
                    Err(error) => self.failures.report("batch signature lookup", &error),
                }
            }
        }
    }

    /// A new seq: quarantined (and acknowledged) when outside the time window, else queued.
    async fn admit(&mut self, batch: VerifiedBatch) {
        let seq = batch.commit.seq;
        match batch.window {
            Ok(()) => {
                let signature = batch.commit.signature;
                self.trackers
                    .with(&batch.gateway, |t| t.begin(seq, signature));
                self.commits.push(batch.commit, batch.inbound.arrived).await;
            }
            Err((reason, detail)) => {
                let topic = Topic::batch(&batch.gateway.0, &batch.gateway.1);
                self.quarantine.reject(
                    Rejection::of(&batch.inbound, Some(&topic), Some(seq), reason, detail).acked(),
                );
            }
        }
    }

    fn replay(&self, batch: &VerifiedBatch, state: &str) {
        let topic = Topic::batch(&batch.gateway.0, &batch.gateway.1);
        let detail = format!(
            "another batch with seq {} is already {state}",
            batch.commit.seq
        );
        self.quarantine.reject(Rejection::of(
            &batch.inbound,
            Some(&topic),
            Some(batch.commit.seq),
            QuarantineReason::Replay,
            detail,
        ));
    }

    async fn accept_health(&mut self, report: Box<VerifiedHealth>) {
        if !self.ensure_tracker(&report.gateway).await {
            return;
        }
        // Closed only when the writer is gone (shutdown deadline).
        let _ = self.health.send(report).await;
    }

    /// Loads the gateway's tracker on first sight; false when the store cannot say.
    async fn ensure_tracker(&mut self, gateway: &GatewayKey) -> bool {
        if self.trackers.contains(gateway) {
            return true;
        }
        match self.store.seq_state(&gateway.0, &gateway.1).await {
            Ok(state) => {
                self.trackers.install(gateway.clone(), state);
                true
            }
            Err(error) => {
                self.failures.report("seq state lookup", &error);
                false
            }
        }
    }
}

/// Logs store failures at most every [`LOG_EVERY`], with the count of those not logged.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl FailureLog {
    fn report(&mut self, what: &str, error: &dyn Display) {
        if self.last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(%error, suppressed = self.suppressed, "{what} failed; message dropped unacknowledged");
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}
