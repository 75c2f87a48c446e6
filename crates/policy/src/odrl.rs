//! ODRL 2.2 (<https://www.w3.org/TR/odrl-model/>) export and import of agreements, as
//! JSON-LD compacted with the ODRL context plus a `beffroi` prefix for our left operands.
//!
//! # Mapping
//! | native | ODRL |
//! |---|---|
//! | the agreement | `@type: Agreement`, `uid: urn:beffroi:agreement:{id}`, `profile` = [`BEFFROI_PROFILE`] |
//! | `version`, `state` | `beffroi:version`, `beffroi:state` (policy metadata, not constraints) |
//! | `pooling` | `beffroi:pooling: true` (policy metadata; absent: false) |
//! | `grantor` | `assigner: urn:beffroi:tenant:{id}` |
//! | `grantee` | `assignee: urn:beffroi:public`, `urn:beffroi:tenant:{id}` or `urn:beffroi:partner:{id}` |
//! | `action` | the one permission's `action`: `read_raw` → `read`, `read_aggregate` → `aggregate` (ODRL common vocabulary; our reading: `aggregate` serves only per-bucket statistics, `read` also the rows) |
//! | `target` | `AssetCollection` with `source: urn:beffroi:tenant:{grantor}:readings` and `refinement`s `beffroi:metric`, `beffroi:zone`, `beffroi:sensorTag`, `beffroi:sensor`, `beffroi:territory` (zones of the assignee) `isAnyOf` a list of ids (absent: any; metric always present, `*` and `air.*` patterns as text) |
//! | `not_before`, `not_after` | `dateTime` `gteq` / `lt` an `xsd:dateTime` |
//! | `purposes` | `purpose` `isA` the DPV IRI ([`crate::Purpose`]); several: an `or` of such constraints |
//! | `min_bucket_s` | `beffroi:minBucket` `gteq` n, `unit` QUDT second (requested buckets are also whole multiples of it, aligned on the epoch) |
//! | `k` | `beffroi:k` `gteq` n (distinct sensors per published cell) |
//! | `embargo_s` | `beffroi:embargo` `gteq` n, `unit` QUDT second (age of the data served) |
//! | `spatial_level` | `beffroi:spatialLevel` `eq` `sensor`/`zone` (the finest unit served) |
//! | `pseudonymise` | `beffroi:pseudonymise` `eq` true/false |
//! | `functions`, `fields` | `beffroi:function`, `beffroi:field` `isAnyOf` a list of words (`field` absent when empty) |
//! | `prohibitions` | `prohibition` rules with their own `target` and `action` |
//! | unknown terms | listed under `beffroi:unknownTerms`, which no import accepts |
//!
//! Import ([`from_odrl`]) reads exactly this shape — it is not a general JSON-LD processor —
//! and refuses any other property, left operand, operator, action, unit, context or profile
//! with the path of the offending value. It does not validate the agreement's coherence:
//! call [`crate::Agreement::validate`] before storing it, as for native JSON.
//!
//! The `beffroi` namespace and profile IRIs are constants of this module, URNs the project owns
//! without a domain name (a URN is an IRI: JSON-LD expands `beffroi:k` to
//! `urn:beffroi:odrl:k`). Exported documents cite them, so they do not change. Documents
//! exported before they were set cite placeholder IRIs ([`LEGACY_BEFFROI_NS`],
//! [`LEGACY_BEFFROI_PROFILE`]) for the same terms: import accepts those too, export never
//! writes them.

mod export;
mod import;
mod reader;

pub use export::to_odrl;
pub use import::from_odrl;

use serde_json::{json, Value};

use crate::grantee::Grantee;
use crate::purpose::DPV_NS;
use crate::terms::Action;
use crate::vocabulary::vocabulary;

/// The ODRL 2.2 JSON-LD context.
pub const ODRL_CONTEXT: &str = "http://www.w3.org/ns/odrl.jsonld";
/// The namespace of Beffroi's left operands and properties (prefix `beffroi:`).
pub const BEFFROI_NS: &str = "urn:beffroi:odrl:";
/// The ODRL profile every exported agreement declares.
pub const BEFFROI_PROFILE: &str = "urn:beffroi:odrl:profile";
/// The placeholder namespace of the first exports, with the same terms: accepted on import.
pub const LEGACY_BEFFROI_NS: &str = "https://example.invalid/beffroi/ns/policy#";
/// The placeholder profile of the first exports: accepted on import.
pub const LEGACY_BEFFROI_PROFILE: &str = "https://example.invalid/beffroi/ns/policy";

const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema#";
/// QUDT unit of the durations.
const SECOND: &str = "http://qudt.org/vocab/unit/SEC";
/// Prefix of every Beffroi IRI.
const URN: &str = "urn:beffroi:";

vocabulary!(
    /// The left operands Beffroi exports and imports.
    Operand, "left operand" {
        /// ODRL `dateTime`.
        DateTime => "dateTime",
        /// ODRL `purpose`.
        Purpose => "purpose",
        /// Minimum bucket.
        MinBucket => "beffroi:minBucket",
        /// Minimum distinct sensors per cell.
        K => "beffroi:k",
        /// Embargo.
        Embargo => "beffroi:embargo",
        /// Finest spatial level.
        SpatialLevel => "beffroi:spatialLevel",
        /// Pseudonymisation.
        Pseudonymise => "beffroi:pseudonymise",
        /// Allowed functions.
        Function => "beffroi:function",
        /// Allowed raw fields.
        Field => "beffroi:field",
        /// Target refinement: metric patterns.
        Metric => "beffroi:metric",
        /// Target refinement: zones.
        Zone => "beffroi:zone",
        /// Target refinement: sensor tags.
        SensorTag => "beffroi:sensorTag",
        /// Target refinement: sensors.
        Sensor => "beffroi:sensor",
        /// Target refinement: territories (zones of the assignee).
        Territory => "beffroi:territory",
    }
);

vocabulary!(
    /// The ODRL operators Beffroi uses.
    Operator, "operator" {
        /// Equal.
        Eq => "eq",
        /// Greater than or equal.
        Gteq => "gteq",
        /// Less than.
        Lt => "lt",
        /// Is an instance or subclass of.
        IsA => "isA",
        /// Is one of.
        IsAnyOf => "isAnyOf",
    }
);

/// The `@context` of every exported agreement.
fn context() -> Value {
    context_with(BEFFROI_NS)
}

/// The `@context` with the `beffroi` prefix bound to `namespace`.
fn context_with(namespace: &str) -> Value {
    json!([ODRL_CONTEXT, { "beffroi": namespace, "dpv": DPV_NS, "xsd": XSD_NS }])
}

/// The ODRL action of a native action.
fn action_word(action: Action) -> &'static str {
    match action {
        Action::ReadRaw => "read",
        Action::ReadAggregate => "aggregate",
    }
}

/// The IRI of a party.
fn party_iri(party: &Grantee) -> String {
    format!("{URN}{party}")
}

/// The IRI of a tenant's readings (the target's `source`).
fn readings_iri(grantor: &beffroi_protocol::TenantId) -> String {
    format!("{URN}tenant:{grantor}:readings")
}

/// Prefix of an agreement's `uid`.
const AGREEMENT_URN: &str = "urn:beffroi:agreement:";

/// The `uid` of an agreement.
fn agreement_uid(id: &crate::AgreementId) -> String {
    format!("{AGREEMENT_URN}{id}")
}
