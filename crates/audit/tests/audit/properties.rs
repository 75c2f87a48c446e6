//! Property tests: a random clean log always verifies; one random tampering of a random log
//! is always detected, at the seq where it happened.

use beffroi_audit::{
    AuditActor, AuditEntry, AuditHead, AuditKind, Chain, Checkpoint, Detail, NewAuditEntry,
};
use beffroi_protocol::{GatewayId, Timestamp};
use proptest::prelude::*;
use serde_json::Value;

use crate::fixtures::*;

fn actor() -> impl Strategy<Value = AuditActor> {
    prop_oneof![
        "[a-z0-9-]{1,12}".prop_map(AuditActor::Token),
        ".{0,12}".prop_map(AuditActor::User),
        "[a-z]{1,12}".prop_map(AuditActor::System),
        "[a-z0-9][a-z0-9-]{0,10}".prop_map(|g| AuditActor::Gateway(GatewayId::new(g).unwrap())),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn detail() -> impl Strategy<Value = Detail> {
    prop::collection::btree_map("[a-zA-Z\u{e9}\u{1f600}]{1,6}", json(), 1..5)
        .prop_map(|m| m.into_iter().collect())
}

fn new_entry() -> impl Strategy<Value = NewAuditEntry> {
    (
        0..4_000_000_000_000_000i64,
        actor(),
        prop::sample::select(AuditKind::ALL.to_vec()),
        detail(),
    )
        .prop_map(|(time, actor, kind, detail)| NewAuditEntry {
            tenant: tenant("lyon"),
            time: Timestamp::from_unix_micros(time),
            actor,
            kind,
            detail,
        })
}

/// A random log, checkpointed at random seqs and always at its head.
fn checkpointed_log() -> impl Strategy<Value = (Vec<AuditEntry>, Vec<Checkpoint>)> {
    prop::collection::vec(new_entry(), 1..30).prop_flat_map(|news| {
        let n = news.len();
        let mut chain = Chain::resume(tenant("lyon"), AuditHead::GENESIS);
        let entries: Vec<_> = news.iter().map(|e| chain.append(e).unwrap()).collect();
        prop::collection::vec(1..=n as u64, 0..4).prop_map(move |mut seqs| {
            seqs.push(n as u64);
            let checkpoints = seqs.iter().map(|&s| checkpoint_at(&entries, s)).collect();
            (entries.clone(), checkpoints)
        })
    })
}

/// One tampering, by position in the log (reduced modulo its length).
#[derive(Debug, Clone)]
enum Tamper {
    Edit { edit: usize, at: usize },
    Delete { at: usize },
    Swap { a: usize, b: usize },
    Truncate { keep: usize },
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (0..EDITS.len(), any::<usize>()).prop_map(|(edit, at)| Tamper::Edit { edit, at }),
        any::<usize>().prop_map(|at| Tamper::Delete { at }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Tamper::Swap { a, b }),
        any::<usize>().prop_map(|keep| Tamper::Truncate { keep }),
    ]
}

/// Applies `tamper` to `entries`; the seq it should be located at, or `None` if it changes
/// nothing (a swap of an entry with itself).
fn apply(tamper: &Tamper, entries: &mut Vec<AuditEntry>) -> Option<u64> {
    let n = entries.len();
    match *tamper {
        Tamper::Edit { edit, at } => {
            let at = at % n;
            (EDITS[edit].1)(&mut entries[at]);
            Some(at as u64 + 1)
        }
        Tamper::Delete { at } => {
            let at = at % n;
            entries.remove(at);
            Some(at as u64 + 1)
        }
        Tamper::Swap { a, b } => {
            let (a, b) = (a % n, b % n);
            entries.swap(a, b);
            (a != b).then(|| a.min(b) as u64 + 1)
        }
        Tamper::Truncate { keep } => {
            let keep = keep % n;
            entries.truncate(keep);
            Some(keep as u64 + 1)
        }
    }
}

proptest! {
    #[test]
    fn a_clean_log_verifies((entries, checkpoints) in checkpointed_log()) {
        let report = check("lyon", &entries, &checkpoints);
        prop_assert!(report.is_ok(), "{}", report);
        prop_assert_eq!(report.last_checkpoint, Some(entries.len() as u64));
        prop_assert_eq!(report.head.hash, entries[entries.len() - 1].hash);
    }

    #[test]
    fn one_tampering_is_detected_where_it_happened(
        (mut entries, checkpoints) in checkpointed_log(),
        tamper in tamper(),
    ) {
        let expected = apply(&tamper, &mut entries);
        let report = check("lyon", &entries, &checkpoints);
        prop_assert_eq!(report.first_bad_seq, expected, "{:?}: {}", tamper, report);
    }

    #[test]
    fn canonical_detail_is_stable_through_json(detail in detail()) {
        let text = beffroi_audit::canonical_detail(&detail);
        let back: Detail = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &detail);
        prop_assert_eq!(beffroi_audit::canonical_detail(&back), text);
    }
}
