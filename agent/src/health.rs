//! Periodic health reports: spool depth and age, drops and gaps, counters, memory.
//!
//! The reporter seals a [`Health`] message every interval (and once at start, so gaps from a
//! crash are reported at once) and hands the envelope to the uplink through a watch channel:
//! only the latest report matters, an older one not yet sent is replaced.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use beffroi_protocol::{GatewayId, Health, TenantId, Timestamp};
use beffroi_spool::Spool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::process;
use crate::signer_slot::SignerSlot;
use crate::telemetry::{Counter, Telemetry};

/// Builds and seals health reports for one gateway.
pub struct HealthReporter {
    /// The gateway's tenant.
    pub tenant: TenantId,
    /// The gateway.
    pub gateway: GatewayId,
    /// Signs reports with the gateway's current key.
    pub signer: Arc<SignerSlot>,
    /// The spool whose state is reported.
    pub spool: Arc<Mutex<Spool>>,
    /// Counters included in every report.
    pub telemetry: Arc<Telemetry>,
    /// When the agent started.
    pub started: Instant,
}

impl HealthReporter {
    /// The current report.
    pub fn report(&self) -> Health {
        let (stats, gaps) = {
            let spool = self.spool.lock().unwrap_or_else(PoisonError::into_inner);
            (spool.stats(), spool.pending_gaps().to_vec())
        };
        let now = Timestamp::now();
        let oldest_unacked_age_s = stats.oldest_unacked_appended_at_ms.map(|ms| {
            let appended = Timestamp::from_unix_millis(i64::try_from(ms).unwrap_or(i64::MAX));
            u64::try_from(now.micros_since(appended) / 1_000_000).unwrap_or(0)
        });
        Health {
            tenant: self.tenant.clone(),
            gateway: self.gateway.clone(),
            time: now,
            uptime_s: self.started.elapsed().as_secs(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            spool_batches: stats.batches,
            spool_bytes: stats.bytes,
            oldest_unacked_age_s,
            batches_dropped: stats.dropped_batches,
            readings_dropped: stats.dropped_readings,
            rss_bytes: process::rss_bytes(),
            next_seq: stats.next_seq,
            gaps,
            counters: self.telemetry.snapshot(),
        }
    }

    /// Seals a report every `interval` into `out` until `stop` is cancelled.
    pub async fn run(
        self,
        interval: Duration,
        out: watch::Sender<Option<Vec<u8>>>,
        stop: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if self.signer.is_paused() {
                // A signing-key rotation is in flight: the next tick reports.
                continue;
            }
            match self.signer.current().seal_health(&self.report()) {
                Ok((_, envelope)) => {
                    out.send_replace(Some(envelope));
                }
                Err(error) => {
                    self.telemetry.incr(Counter::HealthErrors);
                    tracing::error!(%error, "cannot seal a health report");
                }
            }
        }
    }
}
