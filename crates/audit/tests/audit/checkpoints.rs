//! Checkpoints: signing, forged and foreign ones, heads that do not match.

use beffroi_audit::{
    sign_checkpoint, verify_checkpoint, AuditHead, Checkpoint, Digest, Error, Problem, SeqRange,
};
use beffroi_protocol::{key_id_for, Timestamp};

use crate::fixtures::*;

#[test]
fn a_checkpoint_verifies_with_its_key_only() {
    let entries = log("lyon", 3);
    let checkpoint = checkpoint_at(&entries, 3);
    assert_eq!(
        checkpoint.key_id,
        key_id_for(&platform_key().verifying_key())
    );
    assert!(verify_checkpoint(&checkpoint, &platform_key().verifying_key()).is_ok());
    let err = verify_checkpoint(&checkpoint, &other_key().verifying_key()).unwrap_err();
    assert!(matches!(err, Error::CheckpointKey { .. }), "{err}");

    let edits: [fn(&mut Checkpoint); 5] = [
        |c| c.seq += 1,
        |c| c.head = Digest::of(b"x"),
        |c| c.time = Timestamp::from_unix_micros(c.time.unix_micros() + 1),
        |c| c.tenant = tenant("metz"),
        |c| c.signature[10] ^= 1,
    ];
    for edit in edits {
        let mut forged = checkpoint.clone();
        edit(&mut forged);
        let err = verify_checkpoint(&forged, &platform_key().verifying_key()).unwrap_err();
        assert!(matches!(err, Error::CheckpointSignature { .. }), "{err}");
    }
}

#[test]
fn a_checkpoint_signed_with_another_key_is_forged_and_ignored() {
    let entries = log("lyon", 10);
    let forged = sign_checkpoint(
        &other_key(),
        &tenant("lyon"),
        AuditHead {
            seq: 10,
            hash: entries[9].hash,
        },
        Timestamp::from_unix_micros(T0),
    );
    let report = check("lyon", &entries, &[checkpoint_at(&entries, 4), forged]);
    assert_eq!(report.first_bad_seq, Some(10), "{report}");
    assert!(report.problems.iter().any(|p| matches!(
        p,
        Problem::CheckpointForged { seq: 10, key_id } if *key_id == key_id_for(&other_key().verifying_key())
    )));
    assert_eq!(report.checkpoints_matched, 1);
    assert_eq!(
        report.not_checkpointed,
        Some(SeqRange { first: 5, last: 10 })
    );
}

#[test]
fn a_checkpoint_claiming_the_platform_key_without_its_signature_is_forged() {
    let entries = log("lyon", 10);
    let mut forged = sign_checkpoint(
        &other_key(),
        &tenant("lyon"),
        AuditHead {
            seq: 7,
            hash: entries[6].hash,
        },
        Timestamp::from_unix_micros(T0),
    );
    forged.key_id = key_id_for(&platform_key().verifying_key());
    let report = check("lyon", &entries, &[forged]);
    assert_eq!(report.first_bad_seq, Some(7), "{report}");
    assert!(matches!(
        report.problems[..],
        [Problem::CheckpointForged { seq: 7, .. }]
    ));
}

#[test]
fn a_signed_head_the_log_does_not_lead_to_is_a_mismatch() {
    let entries = log("lyon", 10);
    let wrong = sign_checkpoint(
        &platform_key(),
        &tenant("lyon"),
        AuditHead {
            seq: 8,
            hash: Digest::of(b"another history"),
        },
        Timestamp::from_unix_micros(T0),
    );
    let report = check("lyon", &entries, &[checkpoint_at(&entries, 3), wrong]);
    assert_eq!(
        report.problems,
        vec![Problem::CheckpointMismatch { seq: 8, since: 3 }]
    );
    assert_eq!(report.last_checkpoint, Some(3));
}

#[test]
fn a_checkpoint_of_another_tenant_is_reported_and_ignored() {
    let lyon = log("lyon", 5);
    let metz = log("metz", 5);
    let report = check("lyon", &lyon, &[checkpoint_at(&metz, 5)]);
    assert_eq!(report.first_bad_seq, Some(5));
    assert!(matches!(
        report.problems[..],
        [Problem::CheckpointForeign { seq: 5, .. }]
    ));
}

#[test]
fn a_checkpoint_of_the_empty_chain_matches_genesis() {
    let entries = log("lyon", 2);
    let genesis = sign_checkpoint(
        &platform_key(),
        &tenant("lyon"),
        AuditHead::GENESIS,
        Timestamp::from_unix_micros(T0),
    );
    let report = check("lyon", &entries, &[genesis]);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.last_checkpoint, Some(0));
    let report = check("lyon", &[], &[checkpoint_at(&entries, 2)]);
    assert_eq!(
        report.problems,
        vec![Problem::Truncated {
            last: 0,
            checkpoint: 2
        }]
    );
}

#[test]
fn past_platform_keys_remain_trusted() {
    let entries = log("lyon", 6);
    let old = sign_checkpoint(
        &other_key(),
        &tenant("lyon"),
        AuditHead {
            seq: 3,
            hash: entries[2].hash,
        },
        Timestamp::from_unix_micros(T0),
    );
    let keys = [platform_key().verifying_key(), other_key().verifying_key()];
    let report = beffroi_audit::verify(
        &tenant("lyon"),
        entries.iter().cloned(),
        &[old, checkpoint_at(&entries, 6)],
        &keys,
    );
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.checkpoints_matched, 2);
}
