//! Batcher and sealer: readings → batches → COSE_Sign1 envelopes → spool.
//!
//! A batch is cut when it reaches `max_readings`, when the next reading would push its
//! encoding past the payload limit, or when its oldest reading has waited `max_linger`.
//! Sealing allocates the batch's seq from the spool (durably reserved, never reused), signs
//! the deterministic CBOR with the gateway key bound to the batch topic, and appends the
//! envelope to the spool; then it wakes the uplink. When every source has stopped, the
//! channel closes and the batcher seals what it holds before returning. Sealing holds while
//! a signing-key rotation is in flight (see [`crate::signer_slot`]).

use std::sync::{Arc, Mutex};

use beffroi_protocol::{Batch, GatewayId, Reading, TenantId, MAX_PAYLOAD_BYTES};
use beffroi_spool::Spool;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::config::BatchConfig;
use crate::signer_slot::SignerSlot;
use crate::telemetry::{Counter, Telemetry};

/// Room kept under the payload limit for the batch header.
const HEADER_ROOM: usize = 256;

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
        let count = readings.len();
        let seq = self.spool().allocate_seq()?;
        let batch = Batch::new(self.tenant.clone(), self.gateway.clone(), seq, readings)?;
        let (_, envelope) = self.signer.current().seal_batch(&batch)?;
        self.spool().append(seq, count as u32, &envelope)?;
        self.telemetry.incr(Counter::BatchesSealed);
        self.telemetry.add(Counter::ReadingsSealed, count as u64);
        self.sealed.notify_one();
        Ok(seq)
    }
}

/// Collects readings into batches and hands them to the [`Sealer`].
pub struct Batcher {
    config: BatchConfig,
    sealer: Sealer,
    pending: Vec<Reading>,
    pending_bytes: usize,
    deadline: Option<Instant>,
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
        }
    }

    /// Runs until `readings` closes (every source stopped), then seals what is left.
    /// While sealing is paused (a signing-key rotation in flight) it takes no reading and
    /// cuts nothing; when the pause ends it cuts what waited.
    pub async fn run(mut self, mut readings: mpsc::Receiver<Reading>) {
        let mut paused = self.sealer.signer.watch_pause();
        let mut pause_open = true;
        loop {
            let deadline = self.deadline;
            let hold = *paused.borrow_and_update();
            tokio::select! {
                biased;
                changed = paused.changed(), if pause_open => {
                    pause_open = changed.is_ok();
                    if !*paused.borrow() {
                        self.flush();
                    }
                }
                next = readings.recv(), if !hold => match next {
                    Some(reading) => self.push(reading),
                    None => break,
                },
                () = sleep_until(deadline), if !hold => self.flush(),
            }
        }
        self.flush();
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
        self.deadline = None;
        self.pending_bytes = 0;
        if self.pending.is_empty() {
            return;
        }
        let readings = std::mem::replace(
            &mut self.pending,
            Vec::with_capacity(self.config.max_readings.min(1024)),
        );
        let count = readings.len();
        if let Err(error) = self.sealer.seal(readings) {
            self.sealer.telemetry.incr(Counter::SealErrors);
            tracing::error!(%error, readings = count, "could not seal a batch; its readings are lost");
        }
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
        let batcher = tokio::spawn(Batcher::new(config, sealer).run(rx));
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
