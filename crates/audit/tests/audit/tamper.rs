//! Every kind of tampering with the entries, detected and located at its seq.

use beffroi_audit::{AuditActor, AuditEntry, AuditHead, Chain, Digest, Problem, SeqRange};

use crate::fixtures::*;

const N: u64 = 12;

/// A log of `N` entries checkpointed at 6 and at its head.
fn checkpointed() -> (Vec<AuditEntry>, Vec<beffroi_audit::Checkpoint>) {
    let entries = log("lyon", N);
    let checkpoints = vec![checkpoint_at(&entries, 6), checkpoint_at(&entries, N)];
    (entries, checkpoints)
}

#[test]
fn editing_any_field_of_any_entry_is_located() {
    let (clean, checkpoints) = checkpointed();
    for (field, edit) in EDITS {
        for seq in 1..=N {
            let mut entries = clean.clone();
            edit(&mut entries[seq as usize - 1]);
            let report = check("lyon", &entries, &checkpoints);
            assert_eq!(
                report.first_bad_seq,
                Some(seq),
                "{field} of seq {seq}: {report}"
            );
            let altered_at = if field == "seq" { seq + 100 } else { seq };
            assert!(
                report
                    .problems
                    .contains(&Problem::Altered { seq: altered_at }),
                "{field} of seq {seq}: {report}"
            );
        }
    }
}

#[test]
fn an_edited_hash_also_breaks_the_next_link() {
    let (mut entries, checkpoints) = checkpointed();
    entries[4].hash = Digest::of(b"forged");
    let report = check("lyon", &entries, &checkpoints);
    assert!(report.problems.contains(&Problem::Altered { seq: 5 }));
    assert!(report.problems.contains(&Problem::ChainBroken { seq: 6 }));
}

#[test]
fn deleting_one_entry_is_located() {
    let (clean, checkpoints) = checkpointed();
    for seq in 1..=N {
        let mut entries = clean.clone();
        entries.remove(seq as usize - 1);
        let report = check("lyon", &entries, &checkpoints);
        assert_eq!(report.first_bad_seq, Some(seq), "seq {seq}: {report}");
        let expected = if seq == N {
            Problem::Truncated {
                last: N - 1,
                checkpoint: N,
            }
        } else {
            Problem::Missing {
                first: seq,
                last: seq,
            }
        };
        assert!(report.problems.contains(&expected), "seq {seq}: {report}");
        if seq < N {
            assert!(report
                .problems
                .contains(&Problem::ChainBroken { seq: seq + 1 }));
        }
    }
}

#[test]
fn swapping_two_entries_is_located() {
    let (clean, checkpoints) = checkpointed();
    for a in 1..N {
        for b in a + 1..=N {
            let mut entries = clean.clone();
            entries.swap(a as usize - 1, b as usize - 1);
            let report = check("lyon", &entries, &checkpoints);
            assert_eq!(report.first_bad_seq, Some(a), "swap {a} {b}: {report}");
            assert!(
                report
                    .problems
                    .iter()
                    .any(|p| matches!(p, Problem::OutOfOrder { seq, .. } if *seq == a)),
                "swap {a} {b}: {report}"
            );
        }
    }
}

#[test]
fn truncating_below_a_checkpoint_is_located() {
    let (clean, checkpoints) = checkpointed();
    for keep in 0..N {
        let entries = &clean[..keep as usize];
        let report = check("lyon", entries, &checkpoints);
        assert_eq!(report.first_bad_seq, Some(keep + 1), "{keep}: {report}");
        assert!(report.problems.contains(&Problem::Truncated {
            last: keep,
            checkpoint: N
        }));
    }
}

#[test]
fn cutting_entries_not_yet_checkpointed_goes_unnoticed_but_is_reported_as_such() {
    let entries = log("lyon", N);
    let checkpoints = [checkpoint_at(&entries, 6)];
    let report = check("lyon", &entries[..9], &checkpoints);
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        report.not_checkpointed,
        Some(SeqRange { first: 7, last: 9 })
    );
}

#[test]
fn a_duplicated_entry_is_out_of_order() {
    let (mut entries, checkpoints) = checkpointed();
    entries.insert(5, entries[4].clone());
    let report = check("lyon", &entries, &checkpoints);
    assert_eq!(report.first_bad_seq, Some(5), "{report}");
    assert!(report
        .problems
        .contains(&Problem::OutOfOrder { seq: 5, after: 5 }));
}

#[test]
fn an_entry_of_another_tenant_slipped_in_is_located() {
    let (mut entries, checkpoints) = checkpointed();
    let foreign = log("metz", 5).remove(4);
    entries.insert(4, foreign);
    let report = check("lyon", &entries, &checkpoints);
    assert_eq!(report.first_bad_seq, Some(5), "{report}");
    assert!(report.problems.iter().any(|p| matches!(
        p,
        Problem::ForeignTenant { seq: 5, tenant } if tenant.as_str() == "metz"
    )));
}

#[test]
fn rewriting_an_entry_and_every_hash_after_it_is_caught_by_the_checkpoint() {
    let (clean, checkpoints) = checkpointed();
    // Seq 9 changed, and the chain rebuilt from seq 8's head so every link holds.
    let mut chain = Chain::resume(
        tenant("lyon"),
        AuditHead {
            seq: 8,
            hash: clean[7].hash,
        },
    );
    let mut entries = clean[..8].to_vec();
    for seq in 9..=N {
        let mut new = event("lyon", seq);
        if seq == 9 {
            new.actor = AuditActor::User("mallory".into());
        }
        entries.push(chain.append(&new).unwrap());
    }
    let report = check("lyon", &entries, &checkpoints);
    assert_eq!(
        report.problems,
        vec![Problem::CheckpointMismatch { seq: N, since: 6 }],
        "{report}"
    );
    assert_eq!(report.first_bad_seq, Some(N));
    assert!(report
        .to_string()
        .contains("checkpoint at seq 12: the log does not lead to the signed head (changed within seq 7..=12)"));
}
