//! Terms written by a newer version: kept when read, refused by `validate`, never used by
//! `decide` — and an agreement in force that carries one blocks its pair.

use beffroi_policy::{decide, Agreement, DenyReason, Problem, State};
use serde_json::{json, Value};

use crate::support::{aggregate_agreement, aggregate_request, at, denied, permitted};

/// A change made to an agreement's JSON.
type Edit = fn(&mut Value);

fn json_of(agreement: &Agreement) -> Value {
    serde_json::to_value(agreement).unwrap()
}

fn read(value: Value) -> Agreement {
    serde_json::from_value(value).unwrap()
}

#[test]
fn unknown_keys_at_every_level_are_kept_refused_and_denied() {
    let base = json_of(&aggregate_agreement("air"));
    let cases: [(&str, Edit); 4] = [
        ("geofence", |v| v["geofence"] = json!({"polygon": []})),
        ("target.max_altitude", |v| {
            v["target"]["max_altitude"] = json!(30)
        }),
        ("prohibitions[0].channels", |v| {
            v["prohibitions"] = json!([{
                "action": "read_raw",
                "target": {"metrics": ["noise.*"]},
                "channels": ["export"],
            }]);
        }),
        ("prohibitions[0].target.hours", |v| {
            v["prohibitions"] = json!([{
                "action": "read_raw",
                "target": {"metrics": ["noise.*"], "hours": [22, 23]},
            }]);
        }),
    ];
    for (path, edit) in cases {
        let mut value = base.clone();
        edit(&mut value);
        let agreement = read(value.clone());
        assert!(agreement.has_unknown_terms(), "{path}");
        assert_eq!(json_of(&agreement), value, "{path}: kept verbatim");

        let err = agreement.validate().unwrap_err();
        assert!(
            err.term_errors()
                .iter()
                .any(|e| e.path == path && e.problem == Problem::UnknownTerm),
            "{path}: {err}"
        );
        let decision = decide(&aggregate_request(), &[agreement], at(0));
        assert_eq!(denied(&decision), DenyReason::UnknownTerm, "{path}");
    }
}

#[test]
fn unknown_words_in_term_lists_are_kept_refused_and_denied() {
    for (key, word, kind) in [
        ("purposes", "tourism", "purpose"),
        ("functions", "median", "function"),
    ] {
        let mut value = json_of(&aggregate_agreement("air"));
        value[key].as_array_mut().unwrap().push(json!(word));
        let agreement = read(value);
        let err = agreement.validate().unwrap_err();
        assert!(
            err.term_errors().iter().any(|e| e.path == key
                && e.problem
                    == Problem::UnknownValue {
                        kind,
                        value: word.into()
                    }),
            "{err}"
        );
        assert_eq!(
            denied(&decide(&aggregate_request(), &[agreement], at(0))),
            DenyReason::UnknownTerm
        );
    }
}

#[test]
fn an_agreement_in_force_with_unknown_terms_blocks_other_agreements_of_the_pair() {
    let good = aggregate_agreement("air");
    let mut newer = aggregate_agreement("zz-newer");
    newer
        .unknown_terms
        .insert("prohibited_hours".into(), json!([22, 23]));
    let decision = decide(&aggregate_request(), &[good.clone(), newer.clone()], at(0));
    assert_eq!(denied(&decision), DenyReason::UnknownTerm);

    // A draft or revoked one is not in force: it neither permits nor blocks.
    for state in [State::Draft, State::Revoked] {
        newer.state = state;
        permitted(decide(
            &aggregate_request(),
            &[good.clone(), newer.clone()],
            at(0),
        ));
    }
}

#[test]
fn single_word_terms_and_malformed_values_do_not_parse() {
    let base = json_of(&aggregate_agreement("air"));
    for (key, bad) in [
        ("action", json!("read_derived")),
        ("state", json!("paused")),
        ("spatial_level", json!("district")),
        ("grantee", json!("city:lyon")),
        ("k", json!(-1)),
        ("not_after", json!("tomorrow")),
    ] {
        let mut value = base.clone();
        value[key] = bad;
        assert!(
            serde_json::from_value::<Agreement>(value).is_err(),
            "{key} accepted"
        );
    }
    let mut value = base;
    value["target"]["metrics"] = json!(["Air.PM25"]);
    assert!(serde_json::from_value::<Agreement>(value).is_err());
}
