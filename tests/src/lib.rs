//! Test harness for end-to-end scenarios; the scenarios live in `tests/tests/`.
//!
//! A [`Sandbox`] starts real processes in a private temporary directory: a Mosquitto broker
//! with mutual TLS ([`broker`]) using certificates made for the test ([`pki`]), the platform's
//! stand-in that verifies, records and commit-acks what it receives ([`consumer`]), and any
//! number of `beffroi-agent` processes ([`agent`]); [`input`] makes known readings to feed them
//! and [`record`] holds what the consumer saw. The platform's scenarios run the real `beffroi`
//! binary instead of the stand-in ([`platform`]), enroll gateways with its CLI, read its API
//! with [`http`], follow its live views with [`live`] and play hostile gateways with
//! [`gate_client`]; the chaos scenarios inject faults with a private PostgreSQL ([`postgres`]),
//! a network namespace ([`netns`]) and a small tmpfs ([`tmpfs`]). Every wait is bounded
//! ([`wait`]) and fails with what it waited for and the state it saw; every process is killed
//! when its handle is dropped, and a failing test prints the logs of the processes it started
//! and keeps its directory.

pub mod agent;
pub mod broker;
pub mod consumer;
pub mod enroll;
pub mod gate_client;
pub mod http;
pub mod input;
pub mod live;
pub mod netns;
pub mod pki;
pub mod platform;
pub mod postgres;
pub mod process;
pub mod record;
pub mod sandbox;
pub mod tmpfs;
pub mod wait;

pub use agent::{AgentProcess, AgentSpec, MqttMapping, SourceSpec};
pub use broker::Broker;
pub use consumer::{Consumer, GatewayRecord, Snapshot};
pub use platform::{Enrollment, Platform, PlatformSpec};
pub use sandbox::Sandbox;
pub use wait::DEFAULT_TIMEOUT;
