//! The audit log in the store, shared by both backends: listing filters, sealing new entries
//! onto each tenant's stored head with `beffroi_audit`, and decoding rows.
//!
//! Tables (`0003_audit.sql`): `audit_heads` (per tenant, the seq and hash of its last entry),
//! `audit_entries` (primary key `(tenant, seq)`; `detail` is the canonical JSON text, byte for
//! byte what was hashed) and `audit_checkpoints` (primary key `(tenant, seq)`).
//!
//! Appends to one tenant serialize, across connections and platform nodes. The first
//! statement of an append transaction is an upsert of the tenant's head row that returns it
//! (`INSERT … ON CONFLICT (tenant) DO UPDATE … RETURNING seq, hash`):
//! - on PostgreSQL it takes the row's lock, so a concurrent append to the same tenant waits
//!   until the first one commits and then reads the new head (READ COMMITTED re-reads the
//!   locked row); appends to other tenants do not wait. Tenants are locked in id order, so
//!   two appends covering several tenants cannot deadlock;
//! - on SQLite it is a write, so the transaction holds the database's write lock from its
//!   first statement and cannot read a head that another process is about to move; within
//!   one process the store's writer lock already orders writers.
//!
//! The seqs and hashes are computed in the transaction from the locked head, the rows
//! inserted, the head moved, then the transaction commits: an append returns only once its
//! entries are durable. The primary key `(tenant, seq)` backs the lock up: two entries can
//! never share a seq.

use std::collections::BTreeMap;

use beffroi_audit::{
    AuditEntry, AuditHead, AuditKind, Chain, Checkpoint, Detail, Digest, NewAuditEntry,
};
use beffroi_protocol::{KeyId, TenantId, Timestamp};

use crate::decode::{bytes32, bytes64, corrupt, id, seq_to_db, unsigned};
use crate::rows::Columns;
use crate::{Error, Result};

/// Which of a tenant's audit entries a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only these kinds; empty: every kind.
    pub kinds: Vec<AuditKind>,
    /// Only entries at or after this time.
    pub from: Option<Timestamp>,
    /// Only entries before this time.
    pub to: Option<Timestamp>,
}

/// The positions of `entries`, grouped by tenant, in tenant order (the order heads are
/// locked in).
pub(crate) fn by_tenant(entries: &[NewAuditEntry]) -> BTreeMap<&TenantId, Vec<usize>> {
    let mut groups: BTreeMap<&TenantId, Vec<usize>> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        groups.entry(&entry.tenant).or_default().push(i);
    }
    groups
}

/// Seals the entries at `positions` onto `tenant`'s stored `head`, in order; each with its
/// position.
pub(crate) fn seal(
    tenant: &TenantId,
    head: AuditHead,
    entries: &[NewAuditEntry],
    positions: &[usize],
) -> Result<Vec<(usize, AuditEntry)>> {
    let mut chain = Chain::resume(tenant.clone(), head);
    let sealed = positions
        .iter()
        .map(|&i| {
            let entry = chain.append(&entries[i]).map_err(|e| Error::Invalid {
                what: "audit entry",
                reason: e.to_string(),
            })?;
            seq_to_db(entry.seq)?;
            Ok((i, entry))
        })
        .collect::<Result<_>>()?;
    Ok(sealed)
}

/// The sealed entries of every tenant, back in input order.
pub(crate) fn in_input_order(mut sealed: Vec<(usize, AuditEntry)>) -> Vec<AuditEntry> {
    sealed.sort_unstable_by_key(|(i, _)| *i);
    sealed.into_iter().map(|(_, entry)| entry).collect()
}

/// The text columns of an entry: `actor`, `kind` and the canonical `detail`.
pub(crate) fn text_columns(entry: &AuditEntry) -> (String, &'static str, String) {
    (
        entry.actor.to_string(),
        entry.kind.as_str(),
        beffroi_audit::canonical_detail(&entry.detail),
    )
}

/// `audit_heads`: `seq, hash`.
pub(crate) fn head_from(r: &impl Columns) -> Result<AuditHead> {
    Ok(AuditHead {
        seq: unsigned("audit_heads", r.int("seq")?)?,
        hash: Digest::new(bytes32("audit_heads", r.bytes("hash")?)?),
    })
}

/// `audit_entries`: `tenant, seq, time, actor, kind, detail, prev_hash, hash` (time in
/// microseconds).
pub(crate) fn entry_from(r: &impl Columns) -> Result<AuditEntry> {
    const TABLE: &str = "audit_entries";
    let seq = unsigned(TABLE, r.int("seq")?)?;
    let bad =
        |what: &str, e: &dyn std::fmt::Display| corrupt(TABLE, format!("seq {seq}: {what}: {e}"));
    let detail: Detail = serde_json::from_str(r.text("detail")?).map_err(|e| bad("detail", &e))?;
    Ok(AuditEntry {
        tenant: id(TABLE, r.text("tenant")?, TenantId::new)?,
        seq,
        time: r.time("time")?,
        actor: r.text("actor")?.parse().map_err(|e| bad("actor", &e))?,
        kind: r.text("kind")?.parse().map_err(|e| bad("kind", &e))?,
        detail,
        prev_hash: Digest::new(bytes32(TABLE, r.bytes("prev_hash")?)?),
        hash: Digest::new(bytes32(TABLE, r.bytes("hash")?)?),
    })
}

/// `audit_checkpoints`: `tenant, seq, head, time, key_id, signature` (time in microseconds).
pub(crate) fn checkpoint_from(r: &impl Columns) -> Result<Checkpoint> {
    const TABLE: &str = "audit_checkpoints";
    Ok(Checkpoint {
        tenant: id(TABLE, r.text("tenant")?, TenantId::new)?,
        seq: unsigned(TABLE, r.int("seq")?)?,
        head: Digest::new(bytes32(TABLE, r.bytes("head")?)?),
        time: r.time("time")?,
        key_id: id(TABLE, r.text("key_id")?, KeyId::new)?,
        signature: bytes64(TABLE, r.bytes("signature")?)?,
    })
}

/// The rows a listing asks for: `limit`, at least 1.
pub(crate) fn page_limit(limit: u32) -> i64 {
    i64::from(limit.max(1))
}
