//! The files of an export directory and the JSON shapes of the small ones (see
//! `docs/export.md` for every column and field).

use beffroi_policy::Agreement;
use beffroi_protocol::Timestamp;
use serde::{Deserialize, Serialize};

/// The signed manifest.
pub const MANIFEST: &str = "manifest.json";
/// Committed batches: gateway, seq, signing key id, signature, reception time, readings.
pub const BATCHES: &str = "batches.csv";
/// Readings, RFC 4180 CSV: what import reads.
pub const READINGS_CSV: &str = "readings.csv";
/// The same readings as a SenML (RFC 8428) JSON pack: for other tools; import checks its
/// hash only.
pub const READINGS_SENML: &str = "readings.senml.json";
/// Gateways (identity, keys, certificate, revocation).
pub const GATEWAYS: &str = "gateways.json";
/// Sensors.
pub const SENSORS: &str = "sensors.json";
/// Every move of the sensors (absent from exports made before moves were kept).
pub const PLACEMENTS: &str = "sensor_placements.json";
/// Zones, as a GeoJSON FeatureCollection.
pub const ZONES: &str = "zones.geojson";
/// Alarm rules.
pub const ALARM_RULES: &str = "alarm_rules.json";
/// Retention policies.
pub const RETENTION: &str = "retention.json";
/// Sharing agreements granted by the tenant, native.
pub const AGREEMENTS: &str = "agreements.json";
/// The same agreements as ODRL 2.2 JSON-LD: for other tools; import checks its hash only.
pub const AGREEMENTS_ODRL: &str = "agreements.odrl.jsonld";
/// The partners the agreements name as grantees (only when there are some).
pub const PARTNERS: &str = "partners.json";
/// The audit log, one entry per line, up to the head the manifest names.
pub const AUDIT: &str = "audit.jsonl";
/// The audit log's signed checkpoints up to that head.
pub const AUDIT_CHECKPOINTS: &str = "audit-checkpoints.json";
/// The public keys that signed those checkpoints (SubjectPublicKeyInfo PEM).
pub const AUDIT_KEYS: &str = "audit-keys.pem";

/// Every data file, in the manifest's order; the [`OPTIONAL`] ones may be absent.
pub const DATA_FILES: [&str; 15] = [
    BATCHES,
    READINGS_CSV,
    READINGS_SENML,
    GATEWAYS,
    SENSORS,
    PLACEMENTS,
    ZONES,
    ALARM_RULES,
    RETENTION,
    AGREEMENTS,
    AGREEMENTS_ODRL,
    PARTNERS,
    AUDIT,
    AUDIT_CHECKPOINTS,
    AUDIT_KEYS,
];

/// The data files an export may lack: partners when no agreement names one, placements in
/// exports made before moves were kept.
pub const OPTIONAL: [&str; 2] = [PARTNERS, PLACEMENTS];

/// An agreement in `agreements.json`: the native agreement at its version, its times, and
/// whether it had a pseudonym key (the key itself is a secret and is not exported: import
/// makes a new one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedAgreement {
    /// The agreement.
    pub agreement: Agreement,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Whether it had a pseudonym key.
    pub pseudonym_key: bool,
}
