//! The one fan-out after commit: what ingest made durable (committed batches, recorded health
//! reports) and every recorded security event go to the live views and to the alert engine.
//!
//! ```text
//! ingest ──broadcast──┐
//!                     ├─► fan-out task ─► hub (live views: synchronous, never waits on a client)
//! security events ────┘                └► alerts (handed over without waiting)
//! ```
//! Ingest events that queued up while the task was busy are handed to the hub together (one
//! lock, each view updated once): at one reading per message the fan-out then costs per
//! round, not per message.
//! Both sources are broadcast channels: ingest never waits for this task. If the task falls
//! behind, the oldest events are skipped for live views and alerts (they are stored) and
//! counted in `beffroi_live_fanout_lagged_total`.

use std::sync::Arc;

use beffroi_alerts::Alerts;
use beffroi_ingest::IngestEvent;
use beffroi_live::Hub;
use beffroi_store::SecurityEvent;
use beffroi_telemetry::Metrics;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// Events ingest may publish ahead of the fan-out before the oldest are skipped.
pub const INGEST_EVENTS: usize = 8192;
/// Security events published ahead of the fan-out before the oldest are skipped.
pub const SECURITY_EVENTS: usize = 1024;
/// Most ingest events fanned out together: what queued while the last ones were handled.
const DRAIN: usize = 512;

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
                Ok(first) => {
                    let mut events = vec![first];
                    ingest_open = drain(&mut ingest, &mut events, &metrics);
                    fan_out(events, &hub, &alerts);
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

/// Takes what else ingest has published already, up to [`DRAIN`] events in all; false once
/// ingest is closed.
fn drain(
    ingest: &mut broadcast::Receiver<IngestEvent>,
    events: &mut Vec<IngestEvent>,
    metrics: &Metrics,
) -> bool {
    while events.len() < DRAIN {
        match ingest.try_recv() {
            Ok(event) => events.push(event),
            Err(TryRecvError::Lagged(missed)) => lagged(metrics, missed),
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Closed) => return false,
        }
    }
    true
}

/// Live views take the committed batches together (one hub lock, one update per view); the
/// alert engine takes every event in order.
fn fan_out(events: Vec<IngestEvent>, hub: &Hub, alerts: &Alerts) {
    hub.batches_committed(events.iter().filter_map(|event| match event {
        IngestEvent::Committed(batch) => Some(&**batch),
        IngestEvent::Health(_) => None,
    }));
    for event in events {
        match event {
            IngestEvent::Committed(batch) => alerts.batch_committed(batch),
            IngestEvent::Health(health) => {
                hub.health_recorded(&health.tenant, &health.gateway);
                alerts.health_recorded(health);
            }
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
