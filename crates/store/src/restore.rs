//! Reversibility in the store (`beffroi export` / `beffroi import`), shared by both backends:
//! what a restore writes ([`TenantRestore`]), the order exports walk batches in
//! ([`BatchKey`]), and the checks of audit entries imported verbatim.
//!
//! A restore writes a tenant as it was exported — its creation time, its gateways with their
//! keys (current and retired), revocation and creation times, its agreements at their versions — where the
//! ordinary writers would stamp the current time or start at version 1. Readings are not part
//! of it: the importer commits them batch by batch with [`crate::Store::commit`] (whose
//! `(gateway, seq)` dedupe makes that step safe to run again), and audit entries are appended
//! verbatim with [`crate::Store::import_audit`], in pages, so that memory stays flat.

use beffroi_audit::{AuditEntry, AuditHead};
use beffroi_policy::Agreement;
use beffroi_protocol::{GatewayId, KeyId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::decode::is_unique_violation;
use crate::identity::GatewayKeyRow;
use crate::{
    AlarmRule, Error, GatewayKeyRecord, NewGateway, Placement, Result, RetentionPolicy, Sensor,
    Tenant, Zone,
};

/// A gateway as exported: its identity, not its runtime state (last seen, spool, health),
/// which its next messages rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoredGateway {
    /// The gateway.
    pub id: GatewayId,
    /// Its signing key id.
    pub key_id: KeyId,
    /// Its Ed25519 public key, lowercase hex (64 characters).
    pub public_key: String,
    /// SHA-256 of its last issued client certificate, if any.
    pub cert_fingerprint: Option<String>,
    /// When that certificate expires.
    pub cert_not_after: Option<Timestamp>,
    /// Whether it is revoked.
    pub revoked: bool,
    /// When it was revoked (absent from exports made before revocation times were kept: a
    /// revoked gateway is then restored revoked at the time of the restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
    /// When it was registered.
    pub created_at: Timestamp,
    /// Every signing key it had, newest first, the current one (`key_id`, no `retired_at`)
    /// included (absent from exports made before keys were kept: the current key alone is
    /// then restored, registered at `created_at`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<GatewayKeyRecord>,
}

impl RestoredGateway {
    /// The public key's 32 bytes; [`Error::Invalid`] unless it is 64 hex digits.
    pub fn public_key_bytes(&self) -> Result<[u8; 32]> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(&self.public_key, &mut key).map_err(|e| Error::Invalid {
            what: "gateway public key",
            reason: format!("gateway {}: {e}", self.id),
        })?;
        Ok(key)
    }

    /// The gateway as the registry writes it, in `tenant`; [`Error::Invalid`] unless its
    /// public key is 64 hex digits.
    pub(crate) fn registration(&self, tenant: &TenantId) -> Result<NewGateway> {
        Ok(NewGateway {
            tenant: tenant.clone(),
            id: self.id.clone(),
            key_id: self.key_id.clone(),
            public_key: self.public_key_bytes()?,
            cert_fingerprint: self.cert_fingerprint.clone(),
            cert_not_after: self.cert_not_after,
        })
    }
}

impl RestoredGateway {
    /// When it is restored revoked: its `revoked_at`, or `restored_at` for an older export
    /// that has only the flag. [`Error::Invalid`] for a revocation time without the flag.
    pub(crate) fn revocation(&self, restored_at: Timestamp) -> Result<Option<Timestamp>> {
        match (self.revoked, self.revoked_at) {
            (true, at) => Ok(Some(at.unwrap_or(restored_at))),
            (false, None) => Ok(None),
            (false, Some(_)) => Err(Error::Invalid {
                what: "gateway",
                reason: format!(
                    "gateway {} has a revocation time but is not revoked",
                    self.id
                ),
            }),
        }
    }

    /// The rows of its signing keys ([`RestoredGateway::keys`], or its current key alone).
    /// [`Error::Invalid`] unless exactly one of them is current and it is `key_id` with
    /// `public_key`, or a public key is not 64 hex digits.
    pub(crate) fn key_rows(&self) -> Result<Vec<GatewayKeyRow>> {
        let current = self.public_key_bytes()?;
        if self.keys.is_empty() {
            return Ok(vec![GatewayKeyRow {
                key_id: self.key_id.clone(),
                public_key: current,
                created_at: self.created_at,
                retired_at: None,
            }]);
        }
        let invalid = |reason: String| Error::Invalid {
            what: "gateway keys",
            reason: format!("gateway {}: {reason}", self.id),
        };
        let mut rows = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(&key.public_key_hex, &mut bytes)
                .map_err(|e| invalid(format!("key {}: {e}", key.key_id)))?;
            rows.push(GatewayKeyRow {
                key_id: key.key_id.clone(),
                public_key: bytes,
                created_at: key.created_at,
                retired_at: key.retired_at,
            });
        }
        let mut currents = rows.iter().filter(|row| row.retired_at.is_none());
        match (currents.next(), currents.next()) {
            (Some(row), None) if row.key_id == self.key_id && row.public_key == current => Ok(rows),
            _ => Err(invalid(format!(
                "its keys must hold exactly one current key, {}",
                self.key_id
            ))),
        }
    }
}

/// The outcome of inserting a restored `gateway`: a unique violation is
/// [`Error::AlreadyExists`] of its key id.
pub(crate) fn gateway_restored(done: sqlx::Result<()>, gateway: &RestoredGateway) -> Result<()> {
    done.map_err(|e| {
        if is_unique_violation(&e) {
            Error::AlreadyExists {
                what: "gateway key id",
                id: gateway.key_id.to_string(),
            }
        } else {
            e.into()
        }
    })
}

/// An agreement as exported, at its version, with a fresh pseudonym key when it had one.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredAgreement {
    /// The agreement; stored at its own `version`.
    pub agreement: Agreement,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Its new pseudonym key (epoch 1): keys are secrets and are never exported, so the
    /// pseudonyms a grantee sees change after an import.
    pub pseudonym_key: Option<[u8; 32]>,
}

/// Everything of a tenant but its readings and audit log, written in one transaction by
/// [`crate::Store::restore_tenant`].
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRestore {
    /// The tenant, with its original creation time.
    pub tenant: Tenant,
    /// Its gateways.
    pub gateways: Vec<RestoredGateway>,
    /// Its sensors.
    pub sensors: Vec<Sensor>,
    /// Every move of its sensors, written as exported.
    pub placements: Vec<Placement>,
    /// Its zones.
    pub zones: Vec<Zone>,
    /// Its alarm rules.
    pub alarm_rules: Vec<AlarmRule>,
    /// Its agreements (as grantor).
    pub agreements: Vec<RestoredAgreement>,
    /// Its retention policies.
    pub retention: Vec<RetentionPolicy>,
    /// When the restore happens (the pseudonym keys' creation time).
    pub restored_at: Timestamp,
}

impl TenantRestore {
    /// Refuses records of another tenant, invalid rules and agreements of another grantor,
    /// before anything is written.
    pub(crate) fn check(&self) -> Result<()> {
        let tenant = &self.tenant.id;
        let foreign = |what: &str, owner: &TenantId| Error::Invalid {
            what: "restore",
            reason: format!("a {what} of tenant {owner} in the restore of tenant {tenant}"),
        };
        if let Some(s) = self.sensors.iter().find(|s| &s.tenant != tenant) {
            return Err(foreign("sensor", &s.tenant));
        }
        if let Some(p) = self.placements.iter().find(|p| &p.tenant != tenant) {
            return Err(foreign("sensor placement", &p.tenant));
        }
        if let Some(z) = self.zones.iter().find(|z| &z.tenant != tenant) {
            return Err(foreign("zone", &z.tenant));
        }
        if let Some(r) = self.alarm_rules.iter().find(|r| &r.tenant != tenant) {
            return Err(foreign("alarm rule", &r.tenant));
        }
        if let Some(a) = self
            .agreements
            .iter()
            .find(|a| &a.agreement.grantor != tenant)
        {
            return Err(foreign("agreement", &a.agreement.grantor));
        }
        if let Some(p) = self.retention.iter().find(|p| &p.tenant != tenant) {
            return Err(foreign("retention policy", &p.tenant));
        }
        for rule in &self.alarm_rules {
            crate::decode::check_rule(rule)?;
        }
        Ok(())
    }
}

/// A committed batch's key; exports walk a tenant's batches by gateway, then seq.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchKey {
    /// The gateway.
    pub gateway: GatewayId,
    /// Its seq.
    pub seq: u64,
}

/// Checks that `entries` continue `tenant`'s chain from its stored `head` verbatim: the
/// tenant's, seqs `head.seq + 1, +2, …`, each linked to the one before and carrying the hash
/// its content gives. Returns the head they lead to.
pub(crate) fn check_continuation(
    tenant: &TenantId,
    head: AuditHead,
    entries: &[AuditEntry],
) -> Result<AuditHead> {
    let mut head = head;
    for entry in entries {
        let refuse = |reason: String| Error::Conflict {
            what: "audit entry",
            id: format!("{tenant}/{}", entry.seq),
            reason,
        };
        if &entry.tenant != tenant {
            return Err(refuse(format!("belongs to tenant {}", entry.tenant)));
        }
        if Some(entry.seq) != head.seq.checked_add(1) || entry.prev_hash != head.hash {
            return Err(refuse(format!(
                "does not follow the stored head (seq {}, hash {})",
                head.seq, head.hash
            )));
        }
        if entry.computed_hash() != entry.hash {
            return Err(refuse("its hash does not match its content".into()));
        }
        crate::decode::seq_to_db(entry.seq)?;
        head = AuditHead {
            seq: entry.seq,
            hash: entry.hash,
        };
    }
    Ok(head)
}
