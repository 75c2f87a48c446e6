//! The task that keeps `status.json` current while the agent runs (see the module
//! documentation of [`crate::status`] for the format and the rule).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use beffroi_protocol::{GatewayId, TenantId, Timestamp};
use beffroi_spool::Spool;
use tokio_util::sync::CancellationToken;

use super::{SpoolDepth, StatusBoard, StatusFile, FORMAT, WRITE_INTERVAL};
use crate::enroll::{csr, files};
use crate::telemetry::{Counter, Telemetry};

/// Writes the status file of one running agent.
pub struct StatusWriter {
    /// `status.json`.
    pub path: PathBuf,
    /// Connection state and last ack, from the uplink.
    pub board: Arc<StatusBoard>,
    /// The spool whose depth is reported.
    pub spool: Arc<Mutex<Spool>>,
    /// The TLS client certificate (its expiry is reported; renewals replace the file).
    pub certificate: PathBuf,
    /// The gateway's tenant.
    pub tenant: TenantId,
    /// The gateway.
    pub gateway: GatewayId,
    /// When the agent started.
    pub started_at: Timestamp,
    /// Counts failed writes.
    pub telemetry: Arc<Telemetry>,
}

impl StatusWriter {
    /// The status now; `stopped_at` is set by the last write of a clean stop.
    pub fn snapshot(&self, stopped_at: Option<Timestamp>) -> StatusFile {
        let stats = self
            .spool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats();
        let (connection, last_ack) = self.board.snapshot();
        let certificate_not_after = std::fs::read(&self.certificate)
            .ok()
            .and_then(|pem| csr::leaf(&pem).ok())
            .map(|leaf| Timestamp::from(leaf.validity.not_after));
        StatusFile {
            format: FORMAT,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            tenant: self.tenant.to_string(),
            gateway: self.gateway.to_string(),
            started_at: self.started_at,
            updated_at: Timestamp::now(),
            stopped_at,
            connection,
            last_ack,
            spool: SpoolDepth::new(
                stats.batches,
                stats.readings,
                stats.bytes,
                stats.oldest_unacked_appended_at_ms,
            ),
            certificate_not_after,
        }
    }

    /// Writes every [`WRITE_INTERVAL`] and on each connection change until `stop` is
    /// cancelled, then once more with `stopped_at`.
    pub async fn run(self, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(WRITE_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            let stopped_at = tokio::select! {
                () = stop.cancelled() => Some(Timestamp::now()),
                _ = ticker.tick() => None,
                () = self.board.state_changed() => None,
            };
            let ok = self.write(self.snapshot(stopped_at), failing).await;
            failing = !ok;
            if stopped_at.is_some() {
                return;
            }
        }
    }

    /// Writes `status` off the async threads; logs the first failure of a run of failures.
    async fn write(&self, status: StatusFile, failing: bool) -> bool {
        let path = self.path.clone();
        let result = tokio::task::spawn_blocking(move || {
            let json = serde_json::to_vec_pretty(&status).map_err(|e| e.to_string())?;
            files::write_atomic(&path, &json, files::PRIVATE).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|written| written);
        match result {
            Ok(()) => {
                if failing {
                    tracing::info!(path = %self.path.display(), "status file written again");
                }
                true
            }
            Err(error) => {
                self.telemetry.incr(Counter::StatusWriteErrors);
                if !failing {
                    tracing::warn!(path = %self.path.display(), %error, "cannot write the status file; `beffroi-agent status` will report the agent as not running");
                }
                false
            }
        }
    }
}
