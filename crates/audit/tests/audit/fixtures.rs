//! Builders: keys, entries of every shape, logs and their checkpoints.

use beffroi_audit::{
    sign_checkpoint, verify, AccessDetail, AgreementRef, AuditActor, AuditEntry, AuditHead,
    AuditKind, Chain, Channel, Checkpoint, Digest, NewAuditEntry, PurgeDetail, VerifyReport,
};
use beffroi_protocol::{SigningKey, TenantId, Timestamp};

/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000_000;

pub fn tenant(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

/// The platform's key.
pub fn platform_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// Someone else's key.
pub fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// An access decision: permit unless `i % 5 == 4`, by one of three tokens for one of two
/// grantees.
pub fn access(t: &str, i: u64) -> NewAuditEntry {
    let deny = i % 5 == 4;
    let detail = AccessDetail {
        grantee: format!("partner-{}", i % 2),
        agreement: Some(AgreementRef {
            id: "air-quality".into(),
            version: 1 + i % 2,
        }),
        purpose: Some("research".into()),
        channel: if i.is_multiple_of(3) {
            Channel::Export
        } else {
            Channel::Rest
        },
        query: serde_json::json!({"metrics": ["air.pm25"], "bucket_s": 3600, "i": i}),
        rows: if deny { 0 } else { 10 * i },
        result_hash: (!deny).then(|| Digest::of(&i.to_be_bytes())),
        reason: deny.then(|| "outside the validity window".to_owned()),
    };
    NewAuditEntry::new(
        tenant(t),
        Timestamp::from_unix_micros(T0 + i as i64 * 1_000_000),
        AuditActor::Token(format!("tok-{}", i % 3)),
        if deny {
            AuditKind::AccessDeny
        } else {
            AuditKind::AccessPermit
        },
        &detail,
    )
    .unwrap()
}

/// A configuration change or a purge.
pub fn change(t: &str, i: u64) -> NewAuditEntry {
    let time = Timestamp::from_unix_micros(T0 + i as i64 * 1_000_000);
    if i.is_multiple_of(2) {
        let receipt = PurgeDetail {
            what: "raw readings".into(),
            from: None,
            to: time,
            rows: i * 1000,
        };
        NewAuditEntry::new(
            tenant(t),
            time,
            AuditActor::System("retention".into()),
            AuditKind::Purge,
            &receipt,
        )
        .unwrap()
    } else {
        let detail = serde_json::json!({
            "agreement": "air-quality",
            "change": "suspended",
            "note": "quote \" backslash \\ newline \n é",
        });
        NewAuditEntry::new(
            tenant(t),
            time,
            AuditActor::User("alice".into()),
            AuditKind::AgreementChange,
            &detail,
        )
        .unwrap()
    }
}

/// Entry `i` of a typical log: mostly accesses, some changes.
pub fn event(t: &str, i: u64) -> NewAuditEntry {
    if i % 4 == 3 {
        change(t, i)
    } else {
        access(t, i)
    }
}

/// A log of `n` entries.
pub fn log(t: &str, n: u64) -> Vec<AuditEntry> {
    let mut chain = Chain::resume(tenant(t), AuditHead::GENESIS);
    (1..=n)
        .map(|i| chain.append(&event(t, i)).unwrap())
        .collect()
}

/// The platform's checkpoint of `entries` at `seq` (which must be in the log).
pub fn checkpoint_at(entries: &[AuditEntry], seq: u64) -> Checkpoint {
    let entry = entries.iter().find(|e| e.seq == seq).unwrap();
    sign_checkpoint(
        &platform_key(),
        &entry.tenant,
        AuditHead {
            seq,
            hash: entry.hash,
        },
        Timestamp::from_unix_micros(T0 + 86_400_000_000),
    )
}

/// Verifies `entries` of tenant `t` with the platform's key.
pub fn check(t: &str, entries: &[AuditEntry], checkpoints: &[Checkpoint]) -> VerifyReport {
    verify(
        &tenant(t),
        entries.iter().cloned(),
        checkpoints,
        &[platform_key().verifying_key()],
    )
}

/// One way to edit a field of an entry in place.
pub type Edit = fn(&mut AuditEntry);

/// Edits of every field, each sure to change the entry.
pub const EDITS: [(&str, Edit); 9] = [
    ("tenant", |e| e.tenant = tenant("metz")),
    ("seq", |e| e.seq += 100),
    ("time", |e| {
        e.time = Timestamp::from_unix_micros(e.time.unix_micros() + 1)
    }),
    ("actor", |e| {
        e.actor = AuditActor::User(format!("{}-forged", e.actor.id()))
    }),
    ("kind", |e| {
        e.kind = if e.kind == AuditKind::Purge {
            AuditKind::Import
        } else {
            AuditKind::Purge
        }
    }),
    ("detail member added", |e| {
        e.detail.insert("_forged".into(), serde_json::json!(1));
    }),
    ("detail member removed", |e| {
        let first = e.detail.keys().next().cloned().unwrap();
        e.detail.remove(&first);
    }),
    ("prev_hash", |e| e.prev_hash = Digest::of(b"forged")),
    ("hash", |e| e.hash = Digest::of(b"forged")),
];
