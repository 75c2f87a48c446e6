//! Beffroi wire format, shared by the gateway agent and the platform.
//!
//! This crate owns everything that crosses the wire between a gateway and the platform:
//! validated identifiers ([`TenantId`], [`GatewayId`], [`SensorId`], [`MetricName`],
//! [`KeyId`]), readings with SenML (RFC 8428) semantics, batches and health messages in
//! deterministic CBOR, the COSE_Sign1 (RFC 9052) envelope signed with Ed25519, the commit
//! acknowledgement, and the MQTT topic grammar.
//!
//! It must not do IO, spawn tasks or depend on an async runtime: both sides call it from
//! their own runtimes, and fuzzers and property tests call it directly.
//!
//! # Message flow
//! ```text
//! agent:    Batch ──encode──► CBOR ──seal(topic)──► COSE_Sign1 ──► beffroi/v1/{t}/{g}/batch
//! platform: COSE_Sign1 ──open──► kid ──key lookup──► verify(topic) ──decode──► Batch
//! platform: CommitAck ──encode──► beffroi/v1/{t}/{g}/ack ──► agent
//! ```

mod ack;
mod batch;
mod cbor;
mod envelope;
mod error;
mod health;
mod identity;
mod ids;
mod reading;
mod time;
mod topic;

pub use ack::CommitAck;
pub use batch::{Batch, MAX_READINGS_PER_BATCH};
pub use envelope::{key_id_for, Opened, Signer, MAX_ENVELOPE_BYTES, MAX_PAYLOAD_BYTES};
pub use error::{DecodeError, Error, Result};
pub use health::{Gap, GapReason, Health};
pub use identity::{identity_uri, parse_identity_uri};
pub use ids::{GatewayId, KeyId, MetricName, SensorId, TenantId, Unit};
pub use reading::{Reading, Value, MAX_STRING_VALUE_BYTES};
pub use time::Timestamp;
pub use topic::{Topic, TopicKind, TOPIC_PREFIX};

/// Version of the wire format carried as the first element of every message.
pub const WIRE_VERSION: u64 = 1;

pub use ed25519_dalek::{SigningKey, VerifyingKey};
