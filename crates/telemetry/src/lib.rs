//! Platform telemetry shared by the gate, ingest and the API.
//!
//! [`Metrics`] holds every platform metric, named in one place, and renders the Prometheus
//! text format for `/metrics`. [`SecurityEvents`] is the non-blocking channel through which
//! the gate and ingest report security events to the store: a full channel drops the event and
//! counts the drop, it never slows a connection or ingest.
//!
//! This crate owns no IO besides the event writer task; it must not depend on HTTP or MQTT.

mod events;
mod metrics;

pub use events::SecurityEvents;
pub use metrics::{Counter, Gauge, Histogram, Labeled, LabeledPair, Metrics};
