//! Authentic health reports: recorded in the store (gateway state, spool, gaps), then their
//! gaps are fed to the gateway's sequence tracker, so that the contiguous mark can pass seqs
//! the gateway will never send; when it moves, an updated ack is published. Each recorded
//! report is then published for live views and alerts.
//!
//! Reports are written by their own task from a bounded queue (the pipeline waits when it is
//! full), so the hot path never waits for a health write. A report the store refuses three
//! times is dropped and logged: the next report carries the same state and gaps.

use std::sync::Arc;
use std::time::Duration;

use beffroi_store::Store;
use beffroi_telemetry::Metrics;
use tokio::sync::{broadcast, mpsc};

use crate::acks::Acks;
use crate::check::VerifiedHealth;
use crate::sequence::Trackers;
use crate::IngestEvent;

/// Reports waiting to be written.
pub(crate) const QUEUE: usize = 1024;
const ATTEMPTS: u32 = 3;

/// What the health writer works with.
pub(crate) struct Writer {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) trackers: Arc<Trackers>,
    pub(crate) acks: Arc<Acks>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) after_commit: Option<broadcast::Sender<IngestEvent>>,
}

/// Writes health reports until the queue closes.
pub(crate) async fn write_reports(mut rx: mpsc::Receiver<Box<VerifiedHealth>>, writer: Writer) {
    let Writer {
        store,
        trackers,
        acks,
        metrics,
        after_commit,
    } = writer;
    while let Some(report) = rx.recv().await {
        let mut attempt = 0;
        let recorded = loop {
            attempt += 1;
            match store
                .record_health(&report.health, report.received_at)
                .await
            {
                Ok(()) => break true,
                Err(error) if attempt >= ATTEMPTS => {
                    tracing::warn!(%error, gateway = %report.gateway.1, "cannot record a health report; dropped");
                    break false;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20 << attempt)).await,
            }
        };
        if !recorded {
            continue;
        }
        metrics.ingest_health.incr();
        let moved = trackers
            .with(&report.gateway, |t| t.add_gaps(&report.health.gaps))
            .unwrap_or(false);
        if moved {
            acks.schedule(report.gateway.clone());
        }
        if let Some(events) = &after_commit {
            // A lagging receiver is counted on its side; ingest never waits.
            let _ = events.send(IngestEvent::Health(Arc::new(report.health)));
        }
    }
}
