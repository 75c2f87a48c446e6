//! Audit entries: what the platform records ([`NewAuditEntry`]) and what the chain holds
//! ([`AuditEntry`]: the same with its seq and hashes).

use beffroi_protocol::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{self, EntryContent};
use crate::chain::entry_hash;
use crate::{AuditActor, AuditKind, Digest, Error, Result};

/// The detail of an entry: a JSON object (see [`crate::AccessDetail`],
/// [`crate::PurgeDetail`]; configuration changes carry what changed).
pub type Detail = serde_json::Map<String, Value>;

/// The detail of an entry from any value that serializes to a JSON object.
pub fn detail_of<T: Serialize + ?Sized>(value: &T) -> Result<Detail> {
    match serde_json::to_value(value)? {
        Value::Object(map) => Ok(map),
        other => Err(Error::DetailNotObject {
            found: match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            },
        }),
    }
}

/// The canonical JSON text of a detail: what the store keeps, byte for byte what is hashed.
pub fn canonical_detail(detail: &Detail) -> String {
    let mut out = String::new();
    canonical::object(&mut out, detail);
    out
}

/// The canonical JSON text of any value (the rules of the crate docs): what other signed
/// documents of the platform sign, e.g. the manifest of a tenant export.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    canonical::value(&mut out, value);
    out
}

/// An event to record, before the chain gives it a seq and a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    /// The tenant whose chain records it.
    pub tenant: TenantId,
    /// When it happened (UTC, microseconds).
    pub time: Timestamp,
    /// Who caused it.
    pub actor: AuditActor,
    /// What it is.
    pub kind: AuditKind,
    /// Its detail.
    pub detail: Detail,
}

impl NewAuditEntry {
    /// An entry whose detail is `detail` serialized (it must serialize to a JSON object).
    pub fn new<T: Serialize + ?Sized>(
        tenant: TenantId,
        time: Timestamp,
        actor: AuditActor,
        kind: AuditKind,
        detail: &T,
    ) -> Result<Self> {
        Ok(Self {
            tenant,
            time,
            actor,
            kind,
            detail: detail_of(detail)?,
        })
    }

    /// Its hashed content under `seq`.
    pub(crate) fn content(&self, seq: u64) -> EntryContent<'_> {
        EntryContent {
            tenant: &self.tenant,
            seq,
            time: self.time,
            actor: &self.actor,
            kind: self.kind,
            detail: &self.detail,
        }
    }
}

/// An entry of a tenant's chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The tenant whose chain holds it.
    pub tenant: TenantId,
    /// Its position in the chain: 1, 2, 3… with no gaps.
    pub seq: u64,
    /// When it happened (UTC, microseconds).
    pub time: Timestamp,
    /// Who caused it.
    pub actor: AuditActor,
    /// What it is.
    pub kind: AuditKind,
    /// Its detail.
    pub detail: Detail,
    /// The hash of the entry before it ([`Digest::ZERO`] for seq 1).
    pub prev_hash: Digest,
    /// Its hash: SHA-256 over the domain tag, `prev_hash` and its canonical content.
    pub hash: Digest,
}

impl AuditEntry {
    /// The hash that this entry's content and `prev_hash` give: [`AuditEntry::hash`] unless
    /// the entry was altered.
    pub fn computed_hash(&self) -> Digest {
        entry_hash(&self.prev_hash, &self.content())
    }

    /// Its hashed content.
    pub(crate) fn content(&self) -> EntryContent<'_> {
        EntryContent {
            tenant: &self.tenant,
            seq: self.seq,
            time: self.time,
            actor: &self.actor,
            kind: self.kind,
            detail: &self.detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_must_be_an_object() {
        assert!(detail_of(&serde_json::json!({"rows": 3})).is_ok());
        for bad in [
            serde_json::json!(null),
            serde_json::json!([1]),
            serde_json::json!("x"),
        ] {
            assert!(matches!(
                detail_of(&bad),
                Err(Error::DetailNotObject { .. })
            ));
        }
    }
}
