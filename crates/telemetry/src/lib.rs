//! Platform telemetry shared by the gate, ingest and the API.
//!
//! [`Metrics`] holds every platform metric, named in one place, and renders the Prometheus
//! text format for `/metrics`. [`SecurityEvents`] is the non-blocking channel through which
//! the gate and ingest report security events to the store: a full channel drops the event and
//! counts the drop, it never slows a connection or ingest. The rendering ends with the
//! process's own figures (`process_…`: memory, CPU, descriptors), read from `/proc`.
//!
//! This crate owns no IO besides the event writer task and those `/proc` reads; it must not
//! depend on HTTP or MQTT.

mod allocator;
mod events;
mod metrics;
mod process;

pub use events::SecurityEvents;
pub use metrics::{Counter, Gauge, Histogram, Labeled, LabeledPair, Metrics};
