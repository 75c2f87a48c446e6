//! A clean log: how the chain extends, resumes and verifies, what the report says.

use beffroi_audit::{
    AuditActor, AuditHead, AuditKind, Chain, Digest, Error, NewAuditEntry, SeqRange, Verifier,
};
use beffroi_protocol::Timestamp;

use crate::fixtures::*;

#[test]
fn extends_from_genesis() {
    let entries = log("lyon", 20);
    let mut prev = Digest::ZERO;
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry.seq, i as u64 + 1);
        assert_eq!(entry.prev_hash, prev);
        assert_eq!(entry.computed_hash(), entry.hash);
        assert_eq!(entry.tenant, tenant("lyon"));
        prev = entry.hash;
    }
    let report = check("lyon", &entries, &[checkpoint_at(&entries, 20)]);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.entries, 20);
    assert_eq!(
        report.head,
        AuditHead {
            seq: 20,
            hash: prev
        }
    );
    assert_eq!(report.checkpoints_matched, 1);
    assert_eq!(report.last_checkpoint, Some(20));
    assert_eq!(report.not_checkpointed, None);
    assert!(report.to_string().contains("result: OK"));
}

#[test]
fn resuming_from_the_head_continues_the_same_chain() {
    let whole = log("lyon", 10);
    let first = &whole[..4];
    let head = AuditHead {
        seq: 4,
        hash: first[3].hash,
    };
    let mut chain = Chain::resume(tenant("lyon"), head);
    let rest: Vec<_> = (5..=10)
        .map(|i| chain.append(&event("lyon", i)).unwrap())
        .collect();
    assert_eq!(&whole[4..], &rest[..]);
    assert_eq!(chain.head().hash, whole[9].hash);
}

#[test]
fn same_content_in_two_tenants_hashes_differently() {
    let a = log("lyon", 3);
    let b = log("metz", 3);
    assert!(a.iter().zip(&b).all(|(a, b)| a.hash != b.hash));
}

#[test]
fn refuses_an_entry_of_another_tenant() {
    let mut chain = Chain::resume(tenant("lyon"), AuditHead::GENESIS);
    let err = chain.append(&event("metz", 1)).unwrap_err();
    assert!(matches!(err, Error::ForeignTenant { .. }), "{err}");
    assert_eq!(chain.head(), AuditHead::GENESIS);
}

#[test]
fn refuses_a_detail_that_is_not_an_object() {
    let err = NewAuditEntry::new(
        tenant("lyon"),
        Timestamp::from_unix_micros(T0),
        AuditActor::System("test".into()),
        AuditKind::Export,
        &[1, 2, 3],
    )
    .unwrap_err();
    assert!(matches!(err, Error::DetailNotObject { found: "an array" }));
}

#[test]
fn entries_after_the_last_checkpoint_are_not_yet_checkpointed() {
    let entries = log("lyon", 12);
    let report = check("lyon", &entries, &[checkpoint_at(&entries, 8)]);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.last_checkpoint, Some(8));
    assert_eq!(
        report.not_checkpointed,
        Some(SeqRange { first: 9, last: 12 })
    );
    assert!(report
        .to_string()
        .contains("not yet checkpointed: seq 9..=12"));

    let report = check("lyon", &entries, &[]);
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        report.not_checkpointed,
        Some(SeqRange { first: 1, last: 12 })
    );
}

#[test]
fn an_empty_log_is_intact() {
    let report = check("lyon", &[], &[]);
    assert!(report.is_ok());
    assert_eq!(report.head, AuditHead::GENESIS);
    assert_eq!(report.not_checkpointed, None);
}

#[test]
fn every_intermediate_checkpoint_is_checked() {
    let entries = log("lyon", 30);
    let checkpoints: Vec<_> = [30, 10, 1, 20, 25]
        .into_iter()
        .map(|seq| checkpoint_at(&entries, seq))
        .collect();
    let report = check("lyon", &entries, &checkpoints);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.checkpoints_matched, 5);
}

#[test]
fn a_verification_can_start_at_a_verified_checkpoint() {
    let entries = log("lyon", 15);
    let anchor = checkpoint_at(&entries, 10);
    let keys = [platform_key().verifying_key()];
    let checkpoints = [
        checkpoint_at(&entries, 5),
        anchor.clone(),
        checkpoint_at(&entries, 15),
    ];
    let head = AuditHead {
        seq: anchor.seq,
        hash: anchor.head,
    };
    let mut verifier = Verifier::new(tenant("lyon"), head, &checkpoints, &keys);
    for entry in &entries[10..] {
        verifier.push(entry);
    }
    let report = verifier.finish();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.entries, 5);
    assert_eq!(report.checkpoints_matched, 2, "the anchor's and seq 15's");
    assert_eq!(report.head.hash, entries[14].hash);
}

#[test]
fn entries_and_checkpoints_survive_json() {
    let entries = log("lyon", 8);
    let checkpoint = checkpoint_at(&entries, 8);
    let lines: Vec<String> = entries
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    let back: Vec<_> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back, entries);
    let cp_back = serde_json::from_str(&serde_json::to_string(&checkpoint).unwrap()).unwrap();
    assert_eq!(checkpoint, cp_back);
    assert!(check("lyon", &back, &[cp_back]).is_ok());
}

#[test]
fn summarises_accesses() {
    let entries = log("lyon", 40);
    let report = check("lyon", &entries, &[]);
    let accesses = &report.accesses;
    let total: u64 = accesses.groups.values().map(|s| s.count).sum();
    let expected = entries.iter().filter(|e| e.kind.is_access()).count() as u64;
    assert_eq!(total, expected);
    assert_eq!(accesses.unreadable, 0);
    let rows: u64 = accesses.groups.values().map(|s| s.rows).sum();
    let expected_rows: u64 = (1..=40u64)
        .filter(|i| i % 4 != 3 && i % 5 != 4)
        .map(|i| 10 * i)
        .sum();
    assert_eq!(rows, expected_rows);
    let denied = accesses
        .groups
        .iter()
        .filter(|(g, _)| g.kind == AuditKind::AccessDeny)
        .all(|(_, s)| s.rows == 0);
    assert!(denied);
    for stats in accesses.groups.values() {
        assert!(stats.first <= stats.last);
    }
    let text = report.to_string();
    assert!(text.contains("partner-1  by token:tok-"), "{text}");
    assert!(text.contains("agreement air-quality v2"), "{text}");
    assert!(serde_json::to_value(&report).is_ok());
}

#[test]
fn counts_access_entries_with_an_unreadable_detail() {
    let mut chain = Chain::resume(tenant("lyon"), AuditHead::GENESIS);
    let odd = NewAuditEntry::new(
        tenant("lyon"),
        Timestamp::from_unix_micros(T0),
        AuditActor::Token("tok-0".into()),
        AuditKind::AccessPermit,
        &serde_json::json!({"who": "nobody"}),
    )
    .unwrap();
    let entries = vec![
        chain.append(&event("lyon", 1)).unwrap(),
        chain.append(&odd).unwrap(),
    ];
    let report = check("lyon", &entries, &[]);
    assert!(report.is_ok());
    assert_eq!(report.accesses.unreadable, 1);
    assert_eq!(report.accesses.first_unreadable, Some(2));
}
