//! `beffroi`, the platform server.
//!
//! It wires the parts that live in their own crates — the gate (`beffroi-gate`), the ingest
//! (`beffroi-ingest`), the store (`beffroi-store`), live views (`beffroi-live`), alerts
//! (`beffroi-alerts`), the HTTP API (`beffroi-api`) — around the embedded broker and the
//! platform CA, and runs them with an ordered shutdown: stop accepting at the gate → drain and
//! commit the ingest → close live views → stop HTTP.

pub mod admin;
pub mod audit;
pub mod backup;
pub mod bench;
pub mod broker;
pub mod broker_logs;
pub mod cluster;
pub mod config;
pub mod config_reference;
pub mod cutoff;
pub mod demo;
pub mod enroll;
pub mod export;
pub mod fanout;
pub mod kek;
pub mod node_pki;
pub mod pki;
pub mod pki_init;
pub mod retention;
pub mod rollover;
pub mod server;
pub mod watch;
pub mod webapp;
