//! The one fan-out after commit: what ingest made durable (committed batches, recorded health
//! reports) and every recorded security event go to the live views and to the alert engine.
//!
//! ```text
//! ingest ──broadcast──┐
//!                     ├─► fan-out task ─► hub (live views: synchronous, never waits on a client)
//! security events ────┘                └► alerts (handed over without waiting)
//! ```
//! Both sources are broadcast channels: ingest never waits for this task. If the task falls
//! behind, the oldest events are skipped for live views and alerts (they are stored) and
//! counted in `beffroi_live_fanout_lagged_total`.

use std::sync::Arc;

use beffroi_alerts::Alerts;
use beffroi_ingest::IngestEvent;
use beffroi_live::Hub;
use beffroi_store::SecurityEvent;
use beffroi_telemetry::Metrics;
use tokio::sync::broadcast::{self, error::RecvError};

/// Events ingest may publish ahead of the fan-out before the oldest are skipped.
pub const INGEST_EVENTS: usize = 8192;
/// Security events published ahead of the fan-out before the oldest are skipped.
pub const SECURITY_EVENTS: usize = 1024;

/// Runs until both sources are closed (ingest and the security-event writer stopped).
pub async fn run(
    mut ingest: broadcast::Receiver<IngestEvent>,
    mut security: broadcast::Receiver<Arc<SecurityEvent>>,
    hub: Hub,
    alerts: Alerts,
    metrics: Arc<Metrics>,
) {
    let (mut ingest_open, mut security_open) = (true, true);
    while ingest_open || security_open {
        tokio::select! {
            event = ingest.recv(), if ingest_open => match event {
                Ok(IngestEvent::Committed(batch)) => {
                    hub.batch_committed(&batch);
                    alerts.batch_committed(batch);
                }
                Ok(IngestEvent::Health(health)) => {
                    hub.health_recorded(&health.tenant, &health.gateway);
                    alerts.health_recorded(health);
                }
                Err(RecvError::Lagged(missed)) => lagged(&metrics, missed),
                Err(RecvError::Closed) => ingest_open = false,
            },
            event = security.recv(), if security_open => match event {
                Ok(event) => {
                    hub.security_event(&event);
                    alerts.security_event(event);
                }
                Err(RecvError::Lagged(missed)) => lagged(&metrics, missed),
                Err(RecvError::Closed) => security_open = false,
            },
        }
    }
}

fn lagged(metrics: &Metrics, missed: u64) {
    metrics.live_fanout_lagged.add(missed);
    tracing::warn!(
        missed,
        "live fan-out fell behind: live views and alerts skipped events (they are stored)"
    );
}
