//! The security-event channel: report without waiting, write in the background, then publish
//! for live views and alerts.

use std::sync::Arc;

use beffroi_store::{SecurityEvent, Store};
use tokio::sync::{broadcast, mpsc};

use crate::Metrics;

/// Events buffered before new ones are dropped (and counted).
const CAPACITY: usize = 4096;

/// A cloneable handle to report security events.
#[derive(Clone)]
pub struct SecurityEvents {
    tx: mpsc::Sender<SecurityEvent>,
    metrics: Arc<Metrics>,
}

impl SecurityEvents {
    /// A handle and the receiving end; give the receiver to [`SecurityEvents::write_to`] (or
    /// read it directly in tests).
    pub fn channel(metrics: Arc<Metrics>) -> (Self, mpsc::Receiver<SecurityEvent>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        (Self { tx, metrics }, rx)
    }

    /// Writes received events to `store` until every handle is dropped, publishing each on
    /// `published` afterwards (also when the write failed: operators must see an attack even
    /// while the database is down). Publishing never waits.
    pub async fn write_to(
        store: Arc<dyn Store>,
        mut events: mpsc::Receiver<SecurityEvent>,
        published: Option<broadcast::Sender<Arc<SecurityEvent>>>,
    ) {
        while let Some(event) = events.recv().await {
            if let Err(error) = store.security_event(&event).await {
                tracing::error!(%error, kind = event.kind.as_str(), "cannot record a security event");
            }
            if let Some(published) = &published {
                // No receiver, or a lagging one, is the receiver's business.
                let _ = published.send(Arc::new(event));
            }
        }
    }

    /// Reports an event; never waits. The event is also logged.
    pub fn record(&self, event: SecurityEvent) {
        tracing::warn!(
            kind = event.kind.as_str(),
            tenant = ?event.tenant.as_ref().map(|t| t.as_str()),
            gateway = ?event.gateway.as_ref().map(|g| g.as_str()),
            address = ?event.address,
            detail = %event.detail,
            "security event"
        );
        self.metrics.security_events.incr();
        if self.tx.try_send(event).is_err() {
            self.metrics.security_events_dropped.incr();
        }
    }
}
