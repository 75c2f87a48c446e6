//! The records the store keeps and returns.

use beffroi_policy::{PartnerId, SensorTag};
use beffroi_protocol::{
    Gap, GatewayId, KeyId, MetricName, Reading, SensorId, TenantId, Timestamp, Unit, Value,
};
use serde::{Deserialize, Serialize};

/// A zone id (`[a-z0-9][a-z0-9-]{0,62}`), unique within its tenant; reuses the slug grammar.
pub type ZoneId = SensorId;

/// A tenant: one collectivity or partner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Display name ("Métropole de Lyon").
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A gateway to register: its signing key and, once issued, its certificate fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGateway {
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// Its id.
    pub id: GatewayId,
    /// Key id of its Ed25519 signing key (`kid` in every envelope).
    pub key_id: KeyId,
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
    /// SHA-256 of its client certificate (DER), lowercase hex, if one was issued.
    pub cert_fingerprint: Option<String>,
    /// When that certificate expires.
    pub cert_not_after: Option<Timestamp>,
}

/// What the platform last heard from a gateway's health reports and commits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayState {
    /// Last health report or committed batch.
    pub last_seen: Option<Timestamp>,
    /// Batches waiting in the gateway's spool.
    pub spool_batches: u64,
    /// Bytes in the gateway's spool.
    pub spool_bytes: u64,
    /// Age of the oldest unacknowledged batch on the gateway.
    pub oldest_unacked_age_s: Option<u64>,
    /// Batches the gateway dropped (spool full), cumulative.
    pub batches_dropped: u64,
    /// Readings in those batches.
    pub readings_dropped: u64,
    /// Gaps the gateway reported and has not seen acknowledged.
    pub gaps: Vec<Gap>,
    /// Agent version.
    pub agent_version: Option<String>,
    /// Agent resident memory.
    pub rss_bytes: u64,
    /// Highest seq committed from this gateway.
    pub last_committed_seq: Option<u64>,
}

/// A registered gateway and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayRecord {
    /// The tenant.
    pub tenant: TenantId,
    /// The gateway.
    pub id: GatewayId,
    /// Its signing key id.
    pub key_id: KeyId,
    /// Its public key, hex.
    pub public_key_hex: String,
    /// Its certificate fingerprint, if issued.
    pub cert_fingerprint: Option<String>,
    /// When its certificate expires, if issued.
    pub cert_not_after: Option<Timestamp>,
    /// Messages from it that were quarantined (bad signature, replay, stale…), all time.
    pub rejected_batches: u64,
    /// Revoked gateways are refused at the gate and their signatures rejected.
    pub revoked: bool,
    /// When it was revoked (its first revocation); `None` while it is not.
    pub revoked_at: Option<Timestamp>,
    /// Every signing key it ever had, newest first: the current one (`key_id`, no
    /// `retired_at`) and the retired ones.
    pub keys: Vec<GatewayKeyRecord>,
    /// The expiry of an unused, unexpired enrollment token for it, if there is one (a
    /// re-enrollment being prepared).
    pub pending_enrollment: Option<Timestamp>,
    /// When it was registered.
    pub created_at: Timestamp,
    /// What it last reported.
    pub state: GatewayState,
}

/// A signing key of a gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayKeyRecord {
    /// Its key id (`kid` in the envelopes it signs).
    pub key_id: KeyId,
    /// The Ed25519 public key, lowercase hex (64 characters).
    pub public_key_hex: String,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it stopped being the gateway's current key (rotation or re-enrollment); `None`
    /// for the current key.
    pub retired_at: Option<Timestamp>,
}

/// A one-time enrollment token as stored (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentToken {
    /// SHA-256 of the secret, lowercase hex.
    pub token_hash: String,
    /// The tenant it enrolls into.
    pub tenant: TenantId,
    /// The gateway it enrolls (which may not exist yet).
    pub gateway: GatewayId,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
    /// Who created it (the actor of the audit entry).
    pub created_by: String,
    /// When it was redeemed; `None` while unused.
    pub used_at: Option<Timestamp>,
}

/// What redeeming a token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The token was valid and is now spent: it enrolls this gateway.
    Bound {
        /// The tenant it is bound to.
        tenant: TenantId,
        /// The gateway it is bound to.
        gateway: GatewayId,
    },
    /// No token has this hash.
    Unknown,
    /// The token was redeemed already.
    Used {
        /// When.
        used_at: Timestamp,
    },
    /// The token expired unused.
    Expired {
        /// When.
        expires_at: Timestamp,
    },
}

/// A revoked gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedGateway {
    /// Its tenant.
    pub tenant: TenantId,
    /// The gateway.
    pub gateway: GatewayId,
    /// The fingerprint of the last certificate issued to it, if any.
    pub cert_fingerprint: Option<String>,
    /// When it was revoked.
    pub revoked_at: Timestamp,
}

/// The verifying key registered under a key id.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayKey {
    /// The tenant.
    pub tenant: TenantId,
    /// The gateway owning the key.
    pub gateway: GatewayId,
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
    /// When the gateway was revoked; `None` while it is not.
    pub revoked_at: Option<Timestamp>,
    /// When this key stopped being the gateway's current key; `None` for the current key.
    pub retired_at: Option<Timestamp>,
}

/// A sensor in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    /// The tenant.
    pub tenant: TenantId,
    /// The sensor.
    pub id: SensorId,
    /// What it is (`air`, `noise`, `traffic`, `parking`, … or `unknown` when auto-registered).
    pub kind: String,
    /// Its usual unit, if known.
    pub unit: Option<Unit>,
    /// Latitude (WGS 84).
    pub lat: Option<f64>,
    /// Longitude (WGS 84).
    pub lon: Option<f64>,
    /// The zone it belongs to.
    pub zone: Option<ZoneId>,
    /// Tags set by its tenant (`air-quality`, `school-street`): sharing agreements may target
    /// sensors by tag.
    #[serde(default)]
    pub tags: Vec<SensorTag>,
    /// Since when it stands at `lat`/`lon` (its last [`crate::Placement`]). On a write that
    /// moves it: when it was moved (default: the write's instant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_at: Option<Timestamp>,
}

/// A zone: a GeoJSON polygon with a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    /// The tenant.
    pub tenant: TenantId,
    /// The zone.
    pub id: ZoneId,
    /// Display name.
    pub name: String,
    /// GeoJSON `Polygon` or `MultiPolygon` geometry.
    pub geometry: serde_json::Value,
}

/// A verified batch ready to be committed.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitBatch {
    /// The tenant.
    pub tenant: TenantId,
    /// The gateway.
    pub gateway: GatewayId,
    /// The gateway's seq.
    pub seq: u64,
    /// The signing key id.
    pub key_id: KeyId,
    /// The Ed25519 signature over the batch (stored once per batch, not per reading): with the
    /// deterministic encoding, the batch can be re-encoded from its rows and re-verified.
    pub signature: [u8; 64],
    /// When the platform received it.
    pub received_at: Timestamp,
    /// The readings, in batch order.
    pub readings: Vec<Reading>,
}

/// What happened to one batch of a group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Stored now.
    Stored,
    /// `(gateway, seq)` was already stored: nothing written (the batch is acked again).
    Duplicate,
}

/// A stored reading with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReading {
    /// The gateway that sent it.
    pub gateway: GatewayId,
    /// The batch seq.
    pub seq: u64,
    /// The sensor.
    pub sensor: SensorId,
    /// The metric.
    pub metric: MetricName,
    /// The unit.
    pub unit: Unit,
    /// When it was measured.
    pub time: Timestamp,
    /// The value.
    pub value: Value,
}

/// A committed batch as stored: what is needed to re-encode it and verify its signature again.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBatch {
    /// The tenant.
    pub tenant: TenantId,
    /// The gateway.
    pub gateway: GatewayId,
    /// The gateway's seq.
    pub seq: u64,
    /// The signing key id.
    pub key_id: KeyId,
    /// The Ed25519 signature, as received.
    pub signature: [u8; 64],
    /// When the platform received it.
    pub received_at: Timestamp,
    /// Its readings in batch order (readings removed by retention are missing).
    pub readings: Vec<Reading>,
}

/// Which readings a query selects; empty lists mean "all".
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingFilter {
    /// The tenant whose data is read (always required: tenants never see each other's data).
    pub tenant: TenantId,
    /// Only these sensors.
    pub sensors: Vec<SensorId>,
    /// Only these metrics.
    pub metrics: Vec<MetricName>,
    /// Only sensors registered in this zone.
    pub zone: Option<ZoneId>,
    /// From this time, inclusive.
    pub from: Timestamp,
    /// To this time, exclusive.
    pub to: Timestamp,
}

/// Position after the last row of a page of raw readings (opaque to API clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadingCursor {
    /// Time of the last row.
    pub time_us: i64,
    /// Row id of the last row (a total order within one time).
    pub id: i64,
}

/// A page of raw readings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingPage {
    /// The readings, ordered by time then id.
    pub readings: Vec<StoredReading>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<ReadingCursor>,
}

/// Aggregates of numeric readings over one time bucket, per sensor and metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the bucket (buckets are aligned on the Unix epoch).
    pub start: Timestamp,
    /// The sensor.
    pub sensor: SensorId,
    /// The metric.
    pub metric: MetricName,
    /// Mean of the numeric values.
    pub avg: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Number of numeric values.
    pub count: u64,
}

/// Why a message was quarantined instead of stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuarantineReason {
    /// The signature does not verify.
    BadSignature,
    /// No key is registered under the envelope's key id, or it is another gateway's.
    UnknownKey,
    /// The key's gateway is revoked and the envelope was signed at or after its revocation
    /// (or carries no signed time).
    Revoked,
    /// The key was retired (rotation, re-enrollment) and the envelope was signed after that
    /// (or carries no signed time).
    RetiredKey,
    /// A different batch was already committed under this `(gateway, seq)`.
    Replay,
    /// Readings older than the accepted window.
    Stale,
    /// Readings too far in the future.
    Future,
    /// Undecodable, invalid or oversize.
    Malformed,
    /// Published where the gateway may not publish.
    Acl,
}

impl QuarantineReason {
    /// The stable label (metrics, API).
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineReason::BadSignature => "bad_signature",
            QuarantineReason::UnknownKey => "unknown_key",
            QuarantineReason::Revoked => "revoked",
            QuarantineReason::RetiredKey => "retired_key",
            QuarantineReason::Replay => "replay",
            QuarantineReason::Stale => "stale",
            QuarantineReason::Future => "future",
            QuarantineReason::Malformed => "malformed",
            QuarantineReason::Acl => "acl",
        }
    }

    /// Parses [`QuarantineReason::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::BadSignature,
            Self::UnknownKey,
            Self::Revoked,
            Self::RetiredKey,
            Self::Replay,
            Self::Stale,
            Self::Future,
            Self::Malformed,
            Self::Acl,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

/// A rejected message, kept for investigation (payload capped in size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    /// Tenant from the topic, when the topic parsed.
    pub tenant: Option<TenantId>,
    /// Gateway from the topic, when the topic parsed.
    pub gateway: Option<GatewayId>,
    /// The MQTT topic.
    pub topic: String,
    /// The seq, when the batch decoded.
    pub seq: Option<u64>,
    /// Why.
    pub reason: QuarantineReason,
    /// Human-readable detail.
    pub detail: String,
    /// When it arrived.
    pub received_at: Timestamp,
    /// The raw message (first 64 KiB).
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// The batch is authentic and the platform acknowledges its seq although it is not
    /// stored (ingest: `stale` and `future` batches), so that the gateway stops resending
    /// it. [`Store::quarantine`](crate::Store::quarantine) then records the seq as settled
    /// in the same transaction as the record: [`Store::seq_state`](crate::Store::seq_state)
    /// counts it like a committed batch, across restarts. Requires `tenant`, `gateway` and
    /// `seq`. Read back: whether a record of this reason settled the seq.
    #[serde(default)]
    pub settles_seq: bool,
}

/// What kind of security event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventKind {
    /// A quarantined message (the record says why).
    Quarantined,
    /// A client without a valid certificate, or a failed TLS handshake.
    TlsRejected,
    /// A revoked certificate tried to connect, or a live connection was cut by revocation.
    RevokedCertificate,
    /// CONNECT with a client id other than the certificate's gateway.
    ClientIdMismatch,
    /// PUBLISH or SUBSCRIBE outside the gateway's own topics.
    AclViolation,
    /// Too many connections from one address or tenant.
    ConnectionLimit,
    /// A malformed or oversize MQTT packet.
    ProtocolViolation,
    /// A tenant's audit log was found damaged (edited, removed, reordered entries or a forged
    /// checkpoint) by the checkpointer.
    AuditTampered,
    /// An enrollment token was refused (unknown, already used, expired, or bound to another
    /// tenant or gateway).
    EnrollmentRefused,
}

impl SecurityEventKind {
    /// The stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityEventKind::Quarantined => "quarantined",
            SecurityEventKind::TlsRejected => "tls_rejected",
            SecurityEventKind::RevokedCertificate => "revoked_certificate",
            SecurityEventKind::ClientIdMismatch => "client_id_mismatch",
            SecurityEventKind::AclViolation => "acl_violation",
            SecurityEventKind::ConnectionLimit => "connection_limit",
            SecurityEventKind::ProtocolViolation => "protocol_violation",
            SecurityEventKind::AuditTampered => "audit_tampered",
            SecurityEventKind::EnrollmentRefused => "enrollment_refused",
        }
    }

    /// Parses [`SecurityEventKind::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Quarantined,
            Self::TlsRejected,
            Self::RevokedCertificate,
            Self::ClientIdMismatch,
            Self::AclViolation,
            Self::ConnectionLimit,
            Self::ProtocolViolation,
            Self::AuditTampered,
            Self::EnrollmentRefused,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// A security-relevant event: who, from where, what was attempted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// When.
    pub time: Timestamp,
    /// The tenant, when known (from the certificate or topic).
    pub tenant: Option<TenantId>,
    /// The gateway, when known.
    pub gateway: Option<GatewayId>,
    /// The peer address, when known.
    pub address: Option<String>,
    /// What kind of event.
    pub kind: SecurityEventKind,
    /// What was attempted.
    pub detail: String,
}

/// An API token's role within its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads data and state.
    Viewer,
    /// Viewer, plus operational actions (acknowledge alarms).
    Operator,
    /// Operator, plus configuration (gateways, sensors, zones, tokens).
    Admin,
}

impl Role {
    /// The stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [Role::Viewer, Role::Operator, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// What a token grants access to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum TokenScope {
    /// One tenant's data, with a role within it.
    Tenant {
        /// The tenant.
        tenant: TenantId,
        /// What the token may do there.
        role: Role,
    },
    /// The instance itself (platform operators): security events that belong to no tenant
    /// (clients without a certificate, unknown CAs, flooding sources). It reads no tenant's
    /// data.
    Platform,
    /// A partner (not a tenant of this platform): reads only what sharing agreements grant it
    /// (`/api/v1/shared/…`), nothing else.
    Partner {
        /// The partner.
        partner: PartnerId,
    },
}

/// A stored API token (only its hash is kept).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// Token id (public, for listing and revocation).
    pub id: String,
    /// What it grants access to.
    pub scope: TokenScope,
    /// A label ("dashboard wall screen").
    pub name: String,
    /// SHA-256 of the secret.
    pub secret_sha256: [u8; 32],
    /// When it was created.
    pub created_at: Timestamp,
}

/// Whose security events a listing returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventScope {
    /// One tenant's.
    Tenant(TenantId),
    /// Those that belong to no tenant (platform operators).
    Platform,
}

/// Which of a gateway's seqs are committed: what the commit ack reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqState {
    /// Every seq ≤ this is committed, inside a gap the gateway reported, or settled by a
    /// quarantine record ([`QuarantineRecord::settles_seq`]).
    pub contiguous: u64,
    /// Committed seqs above `contiguous`, increasing.
    pub above: Vec<u64>,
}

/// One page of a listing (quarantine, security events) and the offset of the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Offset of the next page; `None` on the last page.
    pub next_offset: Option<u64>,
}
