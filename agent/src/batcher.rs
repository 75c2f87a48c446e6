//! Batcher and sealer: readings → batches → COSE_Sign1 envelopes → spool.
//!
//! A batch is cut when it reaches `max_readings`, when the next reading would push its
//! encoding past the payload limit, or when its oldest reading has waited `max_linger`.
//! Sealing allocates the batch's seq from the spool (durably reserved, never reused), signs
//! the deterministic CBOR with the gateway key bound to the batch topic, and appends the
//! envelope to the spool; then it wakes the uplink. When every source has stopped, the
//! channel closes and the batcher seals what it holds before returning. Sealing holds while
//! a signing-key rotation is in flight (see [`crate::signer_slot`]).
//!
//! When the spool refuses a batch (disk full, I/O error), the batch is not dropped: the
//! batcher keeps it (its readings, or its envelope once signed under its seq), stops taking
//! readings, so the sources feel backpressure, and retries every [`SPOOL_RETRY`] until the
//! spool takes it; every failed attempt counts `batch.seal_errors`, the first is logged as an
//! error and the recovery as a warning. Only a shutdown while the spool still refuses, or a
//! batch that cannot be built at all, loses readings, and says so in the log.

use std::sync::{Arc, Mutex};

use beffroi_protocol::{Batch, GatewayId, Reading, TenantId, MAX_PAYLOAD_BYTES};
use beffroi_spool::Spool;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::BatchConfig;
use crate::signer_slot::SignerSlot;
use crate::telemetry::{Counter, Telemetry};

/// Room kept under the payload limit for the batch header.
const HEADER_ROOM: usize = 256;

/// How long the batcher waits before offering the spool a batch it refused again.
pub const SPOOL_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Why sealing a batch failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The batch or envelope could not be built (should not happen with validated readings).
    #[error("cannot build batch: {0}")]
    Protocol(#[from] beffroi_protocol::Error),
    /// The spool refused the batch.
    #[error("spool: {0}")]
    Spool(#[from] beffroi_spool::Error),
}

/// A batch signed under its seq, not yet in the spool.
#[derive(Debug)]
pub struct Sealed {
    seq: u64,
    readings: u32,
    envelope: Vec<u8>,
}

/// Why [`Sealer::sign`] failed; a refused seq allocation gives the readings back.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The spool could not reserve a seq; the readings are returned to try again.
    #[error("spool: {error}")]
    Spool {
        /// The spool's error.
        error: beffroi_spool::Error,
        /// The readings of the batch.
        readings: Vec<Reading>,
    },
    /// The batch or envelope could not be built (should not happen with validated readings).
    #[error("cannot build batch: {0}")]
    Protocol(#[from] beffroi_protocol::Error),
}

/// Signs batches and appends them to the spool.
pub struct Sealer {
    tenant: TenantId,
    gateway: GatewayId,
    signer: Arc<SignerSlot>,
    spool: Arc<Mutex<Spool>>,
    telemetry: Arc<Telemetry>,
    sealed: Arc<Notify>,
}

impl Sealer {
    /// A sealer for one gateway's (current) key and spool; `sealed` is notified after each append.
    pub fn new(
        tenant: TenantId,
        gateway: GatewayId,
        signer: Arc<SignerSlot>,
        spool: Arc<Mutex<Spool>>,
        telemetry: Arc<Telemetry>,
        sealed: Arc<Notify>,
    ) -> Self {
        Self {
            tenant,
            gateway,
            signer,
            spool,
            telemetry,
            sealed,
        }
    }

    fn spool(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Seals `readings` as the next batch and appends it to the spool; returns its seq.
    pub fn seal(&self, readings: Vec<Reading>) -> Result<u64, SealError> {
        let sealed = self.sign(readings).map_err(|error| match error {
            SignError::Spool { error, .. } => SealError::Spool(error),
            SignError::Protocol(error) => SealError::Protocol(error),
        })?;
        self.store(&sealed)?;
        Ok(sealed.seq)
    }

    /// Reserves the next seq and signs `readings` under it.
    pub fn sign(&self, readings: Vec<Reading>) -> Result<Sealed, SignError> {
        let count = readings.len() as u32;
        let seq = match self.spool().allocate_seq() {
            Ok(seq) => seq,
            Err(error) => return Err(SignError::Spool { error, readings }),
        };
        let batch = Batch::new(self.tenant.clone(), self.gateway.clone(), seq, readings)?;
        let (_, envelope) = self.signer.current().seal_batch(&batch)?;
        Ok(Sealed {
            seq,
            readings: count,
            envelope,
        })
    }

    /// Appends a signed batch to the spool and wakes the uplink. On error the spool holds
    /// nothing of it, and the same batch may be offered again.
    pub fn store(&self, sealed: &Sealed) -> Result<(), beffroi_spool::Error> {
        self.spool()
            .append(sealed.seq, sealed.readings, &sealed.envelope)?;
        self.telemetry.incr(Counter::BatchesSealed);
        self.telemetry
            .add(Counter::ReadingsSealed, u64::from(sealed.readings));
        self.sealed.notify_one();
        Ok(())
    }
}

/// A batch the spool refused, kept until it takes it.
enum Stalled {
    /// No seq could be reserved yet.
    Readings(Vec<Reading>),
    /// Signed under its seq; only the append is left.
    Sealed(Sealed),
}

impl Stalled {
    fn readings(&self) -> usize {
        match self {
            Stalled::Readings(readings) => readings.len(),
            Stalled::Sealed(sealed) => sealed.readings as usize,
        }
    }
}

/// Collects readings into batches and hands them to the [`Sealer`].
pub struct Batcher {
    config: BatchConfig,
    sealer: Sealer,
    pending: Vec<Reading>,
    pending_bytes: usize,
    deadline: Option<Instant>,
    /// The batch the spool refused, and when to offer it again.
    stalled: Option<(Stalled, Instant)>,
    /// Failed attempts since the spool last took a batch.
    failed_attempts: u64,
}

impl Batcher {
    /// A batcher with the given limits.
    pub fn new(config: BatchConfig, sealer: Sealer) -> Self {
        Self {
            pending: Vec::with_capacity(config.max_readings.min(1024)),
            config,
            sealer,
            pending_bytes: 0,
            deadline: None,
            stalled: None,
            failed_attempts: 0,
        }
    }

    /// Runs until `readings` closes (every source stopped), then seals what is left.
    /// While sealing is paused (a signing-key rotation in flight) it takes no reading and
    /// cuts nothing; when the pause ends it cuts what waited. While the spool refuses a batch
    /// it takes no reading either and retries that batch; after `readings` closes it keeps
    /// retrying until `stop` fires, then tries once more.
    pub async fn run(mut self, mut readings: mpsc::Receiver<Reading>, stop: CancellationToken) {
        let mut paused = self.sealer.signer.watch_pause();
        let mut pause_open = true;
        loop {
            let deadline = self.deadline;
            let hold = *paused.borrow_and_update();
            let retry_at = self.stalled.as_ref().map(|(_, at)| *at);
            tokio::select! {
                biased;
                changed = paused.changed(), if pause_open => {
                    pause_open = changed.is_ok();
                    if !*paused.borrow() {
                        self.flush();
                    }
                }
                () = sleep_until(retry_at), if !hold => self.retry(),
                next = readings.recv(), if !hold && retry_at.is_none() => match next {
                    Some(reading) => self.push(reading),
                    None => break,
                },
                () = sleep_until(deadline), if !hold && retry_at.is_none() => self.flush(),
            }
        }
        while let Some(retry_at) = self.stalled.as_ref().map(|(_, at)| *at) {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep_until(retry_at) => self.retry(),
            }
        }
        self.retry();
        self.flush();
        if let Some((stalled, _)) = self.stalled.take() {
            tracing::error!(
                readings = stalled.readings() + self.pending.len(),
                attempts = self.failed_attempts,
                "stopping while the spool still refuses a batch; its readings are lost"
            );
        }
    }

    fn push(&mut self, reading: Reading) {
        let len = reading.encoded_len();
        if self.pending_bytes + len > MAX_PAYLOAD_BYTES - HEADER_ROOM {
            self.flush();
        }
        if self.pending.is_empty() {
            self.deadline = Some(Instant::now() + self.config.max_linger);
        }
        self.pending.push(reading);
        self.pending_bytes += len;
        if self.pending.len() >= self.config.max_readings {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.stalled.is_some() {
            // Cut once the spool took the stalled batch: seqs and readings stay in order.
            return;
        }
        self.deadline = None;
        self.pending_bytes = 0;
        if self.pending.is_empty() {
            return;
        }
        let readings = std::mem::replace(
            &mut self.pending,
            Vec::with_capacity(self.config.max_readings.min(1024)),
        );
        self.offer(Stalled::Readings(readings));
    }

    /// Offers the stalled batch to the spool again, if there is one.
    fn retry(&mut self) {
        if let Some((stalled, _)) = self.stalled.take() {
            self.offer(stalled);
        }
    }

    /// Signs (when not yet signed) and appends one batch; a refusal by the spool keeps it in
    /// [`Batcher::stalled`] for [`SPOOL_RETRY`].
    fn offer(&mut self, batch: Stalled) {
        let sealed = match batch {
            Stalled::Sealed(sealed) => sealed,
            Stalled::Readings(readings) => match self.sealer.sign(readings) {
                Ok(sealed) => sealed,
                Err(SignError::Spool { error, readings }) => {
                    return self.stall(Stalled::Readings(readings), &error);
                }
                Err(SignError::Protocol(error)) => {
                    self.sealer.telemetry.incr(Counter::SealErrors);
                    tracing::error!(%error, "could not build a batch; its readings are lost");
                    return;
                }
            },
        };
        match self.sealer.store(&sealed) {
            Ok(()) if self.failed_attempts > 0 => {
                tracing::warn!(
                    failed_attempts = self.failed_attempts,
                    "the spool takes batches again"
                );
                self.failed_attempts = 0;
            }
            Ok(()) => {}
            Err(error) => self.stall(Stalled::Sealed(sealed), &error),
        }
    }

    fn stall(&mut self, batch: Stalled, error: &beffroi_spool::Error) {
        self.sealer.telemetry.incr(Counter::SealErrors);
        if self.failed_attempts == 0 {
            tracing::error!(
                %error,
                readings = batch.readings(),
                retry_ms = SPOOL_RETRY.as_millis() as u64,
                "the spool refused a batch: holding it and the sources until it is taken"
            );
        }
        self.failed_attempts += 1;
        self.stalled = Some((batch, Instant::now() + SPOOL_RETRY));
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use beffroi_protocol::{Signer, SigningKey, Timestamp};
    use beffroi_spool::SpoolConfig;

    use super::*;

    fn reading() -> Reading {
        serde_json::from_value(serde_json::json!({
            "sensor": "s-1", "metric": "air.pm25", "unit": "ug/m3",
            "time": Timestamp::now().to_string(), "value": 1.0,
        }))
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_the_spool_refuses_is_held_and_retried_with_backpressure() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        // Nothing is written before the first batch: with the directory gone, reserving a seq
        // and creating the first segment both fail.
        let (spool, _) = Spool::open(&spool_dir, SpoolConfig::default()).unwrap();
        let spool = Arc::new(Mutex::new(spool));
        let telemetry = Arc::new(Telemetry::default());
        let sealer = Sealer::new(
            TenantId::new("lyon").unwrap(),
            GatewayId::new("gw-1").unwrap(),
            Arc::new(SignerSlot::new(Signer::new(SigningKey::from_bytes(
                &[5; 32],
            )))),
            spool.clone(),
            telemetry.clone(),
            Arc::new(Notify::new()),
        );
        let config = BatchConfig {
            max_readings: 2,
            max_linger: Duration::from_millis(10),
        };
        let (tx, rx) = mpsc::channel(1);
        let stop = CancellationToken::new();
        let batcher = tokio::spawn(Batcher::new(config, sealer).run(rx, stop.clone()));
        let stats = || spool.lock().unwrap().stats();

        std::fs::remove_dir_all(&spool_dir).unwrap();
        for _ in 0..3 {
            tx.send(reading()).await.unwrap();
        }
        tokio::time::sleep(SPOOL_RETRY * 4).await;
        assert_eq!(stats().batches, 0, "appended without a directory");
        assert!(
            telemetry.get(Counter::SealErrors) >= 4,
            "every attempt counts"
        );
        // The third reading waits in the channel, which is full: the batcher takes nothing.
        assert!(
            tx.try_send(reading()).is_err(),
            "no backpressure while refused"
        );

        std::fs::create_dir(&spool_dir).unwrap();
        tokio::time::sleep(SPOOL_RETRY * 2).await;
        tx.send(reading()).await.unwrap();
        tx.send(reading()).await.unwrap();
        drop(tx);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stats = stats();
        assert_eq!(stats.readings, 5, "every reading kept: {stats:?}");
        assert_eq!(stats.batches, 3, "2 + 2 + 1 readings: {stats:?}");
        let seqs: Vec<u64> = spool.lock().unwrap().unacked().map(|r| r.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] + 1 == w[1]),
            "seq hole: {seqs:?}"
        );
        stop.cancel();
        batcher.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_sealed_while_sealing_is_paused() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
        let spool = Arc::new(Mutex::new(spool));
        let slot = Arc::new(SignerSlot::new(Signer::new(SigningKey::from_bytes(
            &[5; 32],
        ))));
        let sealer = Sealer::new(
            TenantId::new("lyon").unwrap(),
            GatewayId::new("gw-1").unwrap(),
            slot.clone(),
            spool.clone(),
            Arc::new(Telemetry::default()),
            Arc::new(Notify::new()),
        );
        let config = BatchConfig {
            max_readings: 2,
            max_linger: Duration::from_millis(10),
        };
        let (tx, rx) = mpsc::channel(8);
        let batcher = tokio::spawn(Batcher::new(config, sealer).run(rx, CancellationToken::new()));
        let batches = || spool.lock().unwrap().stats().batches;

        let paused = slot.pause();
        tokio::time::sleep(Duration::from_millis(1)).await;
        for _ in 0..5 {
            tx.send(reading()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(batches(), 0, "sealed during the pause");
        drop(paused);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(batches(), 3, "2 + 2 + 1 readings once resumed");
        drop(tx);
        batcher.await.unwrap();
    }
}
