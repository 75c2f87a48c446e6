//! The encoding, pinned: a fixed entry's canonical detail and hash, computed independently
//! from the rules in the crate docs (SHA-256 of the tag, 32 zero bytes and the canonical
//! entry), so that a change of encoding cannot go unnoticed.

use beffroi_audit::{
    canonical_detail, AccessDetail, AuditActor, AuditHead, AuditKind, Chain, Channel, NewAuditEntry,
};
use beffroi_protocol::Timestamp;

use crate::fixtures::*;

#[test]
fn pinned_entry() {
    let detail = AccessDetail {
        grantee: "partner-1".into(),
        agreement: None,
        purpose: None,
        channel: Channel::Rest,
        query: serde_json::json!({"metrics": ["air.pm25"], "note": "a\"b\\c\n\u{1}é"}),
        rows: 3,
        result_hash: None,
        reason: None,
    };
    let new = NewAuditEntry::new(
        tenant("lyon"),
        Timestamp::from_unix_micros(T0),
        AuditActor::Token("t-42".into()),
        AuditKind::AccessPermit,
        &detail,
    )
    .unwrap();
    assert_eq!(
        canonical_detail(&new.detail),
        r#"{"channel":"rest","grantee":"partner-1","query":{"metrics":["air.pm25"],"note":"a\"b\\c\n\u0001é"},"rows":3}"#
    );
    let entry = Chain::resume(tenant("lyon"), AuditHead::GENESIS)
        .append(&new)
        .unwrap();
    assert_eq!(entry.hash.to_string(), PINNED_HASH);
}

/// `sha256(b"beffroi/audit/entry/v1\0" + bytes(32) + canonical_entry)`, computed in Python
/// with `json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.
const PINNED_HASH: &str = "bd45d0d2d06e294ef385bfd62b72a166e3ed9fc1ef722ac8f29ac8b05d4c43f4";
