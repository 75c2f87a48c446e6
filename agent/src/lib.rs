//! `beffroi-agent`: the gateway agent.
//!
//! It collects sensor readings from local sources, batches them, signs each batch as a
//! COSE_Sign1 envelope with the gateway's Ed25519 key, keeps it in a crash-safe disk spool and
//! delivers it over MQTT with mutual TLS until the platform's commit ack covers it.
//!
//! It enrolls itself with a one-time token, renews its certificate over its mutual-TLS
//! identity and rotates its signing key (`enroll`).
//!
//! It keeps a status file for `beffroi-agent status` (`status`): connection, last ack, spool
//! depth, certificate expiry.
//!
//! It must not open a listening port, ship default credentials or log key material. The wire
//! format lives in `beffroi-protocol`, the disk format in `beffroi-spool`; this crate wires
//! them to the network and the operating system.

mod abort_on_drop;
pub mod batcher;
pub mod config;
pub mod config_reference;
pub mod enroll;
pub mod health;
pub mod keys;
pub mod process;
pub mod run;
pub mod signer_slot;
pub mod source;
pub mod status;
pub mod telemetry;
pub mod uplink;

pub use config::Config;
pub use run::{Agent, RunError};
