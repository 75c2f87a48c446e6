//! ODRL 2.2: the exported shape, the native → ODRL → native round trip (and native JSON
//! round trip) over generated agreements, and the refusal of anything unknown on import.

use beffroi_policy::{
    from_odrl, to_odrl, Action, Agreement, Error, Prohibition, Purpose, TermSet, UnknownTerms,
};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::strategies::agreement;
use crate::support::{aggregate_agreement, pattern, raw_agreement, zone};

fn sample() -> Agreement {
    let mut a = aggregate_agreement("air-open");
    a.purposes = TermSet::from([Purpose::Research, Purpose::OpenData]);
    a.target.zones = [zone("centre")].into();
    a.prohibitions = vec![Prohibition {
        action: Action::ReadRaw,
        target: beffroi_policy::Target::of_metrics([pattern("air.pm25")]),
        unknown_terms: UnknownTerms::new(),
    }];
    a
}

fn constraint<'a>(odrl: &'a Value, operand: &str) -> &'a Value {
    odrl["permission"][0]["constraint"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["leftOperand"] == operand)
        .unwrap_or_else(|| panic!("no {operand} constraint"))
}

#[test]
fn the_export_is_an_odrl_agreement() {
    let odrl = to_odrl(&sample());
    assert_eq!(odrl["@context"][0], "http://www.w3.org/ns/odrl.jsonld");
    assert!(odrl["@context"][1]["beffroi"].is_string());
    assert_eq!(odrl["@type"], "Agreement");
    assert_eq!(odrl["uid"], "urn:beffroi:agreement:air-open");
    assert_eq!(odrl["assigner"], "urn:beffroi:tenant:lyon");
    assert_eq!(odrl["assignee"], "urn:beffroi:partner:acme");
    let permission = &odrl["permission"][0];
    assert_eq!(permission["action"], "aggregate");
    assert_eq!(permission["target"]["@type"], "AssetCollection");
    assert_eq!(
        permission["target"]["refinement"][0],
        json!({"leftOperand": "beffroi:metric", "operator": "isAnyOf", "rightOperand": ["air.*"]})
    );
    let dates: Vec<&Value> = permission["constraint"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["leftOperand"] == "dateTime")
        .collect();
    assert_eq!(dates[0]["operator"], "gteq");
    assert_eq!(dates[1]["operator"], "lt");
    assert_eq!(dates[1]["rightOperand"]["@type"], "xsd:dateTime");
    let purposes = permission["constraint"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|c| c.get("or"))
        .unwrap();
    assert_eq!(purposes[0]["operator"], "isA");
    assert_eq!(
        purposes[0]["rightOperand"]["@id"],
        "https://w3id.org/dpv#ResearchAndDevelopment"
    );
    assert_eq!(constraint(&odrl, "beffroi:k")["rightOperand"], 3);
    assert_eq!(constraint(&odrl, "beffroi:minBucket")["rightOperand"], 3600);
    assert_eq!(
        constraint(&odrl, "beffroi:minBucket")["unit"],
        "http://qudt.org/vocab/unit/SEC"
    );
    assert_eq!(
        constraint(&odrl, "beffroi:spatialLevel")["rightOperand"],
        "zone"
    );
    assert_eq!(odrl["prohibition"][0]["action"], "read");

    let single = to_odrl(&raw_agreement("raw"));
    assert_eq!(single["permission"][0]["action"], "read");
    assert_eq!(constraint(&single, "purpose")["operator"], "isA");
    assert_eq!(
        constraint(&single, "beffroi:field")["rightOperand"],
        json!(["time", "value", "metric", "sensor"])
    );
}

/// A change made to an exported document.
type Edit = fn(&mut Value);

/// The import error for `odrl` after `edit`: its path and reason.
fn import_error(edit: Edit) -> (String, String) {
    let mut odrl = to_odrl(&sample());
    edit(&mut odrl);
    match from_odrl(&odrl) {
        Err(Error::Odrl { path, reason }) => (path, reason),
        other => panic!("imported: {other:?}"),
    }
}

fn constraints(odrl: &mut Value) -> &mut Vec<Value> {
    odrl["permission"][0]["constraint"].as_array_mut().unwrap()
}

#[test]
fn anything_unknown_is_refused_with_its_path() {
    let cases: Vec<(&str, &str, Edit)> = vec![
        ("beffroi:geofence", "unknown property", |o| {
            o["beffroi:geofence"] = json!(1)
        }),
        ("permission[0].duty", "unknown property", |o| {
            o["permission"][0]["duty"] = json!([])
        }),
        ("permission[0].target.assigner", "unknown property", |o| {
            o["permission"][0]["target"]["assigner"] = json!("x")
        }),
        ("permission[0].action", "unknown action", |o| {
            o["permission"][0]["action"] = json!("distribute")
        }),
        (
            "permission[0].constraint[2].leftOperand",
            "unknown left operand",
            |o| {
                constraints(o)[2] =
                    json!({"leftOperand": "spatial", "operator": "eq", "rightOperand": 1})
            },
        ),
        (
            "permission[0].constraint[0].operator",
            "unknown operator",
            |o| constraints(o)[0]["operator"] = json!("after"),
        ),
        ("permission[0].constraint[0]", "not supported", |o| {
            constraints(o)[0]["operator"] = json!("eq")
        }),
        ("permission[0].constraint[3].unit", "missing", |o| {
            constraints(o)[3].as_object_mut().unwrap().remove("unit");
        }),
        (
            "permission[0].constraint[2].or[0].rightOperand.@id",
            "unknown purpose IRI",
            |o| {
                constraints(o)[2]["or"][0]["rightOperand"]["@id"] =
                    json!("https://w3id.org/dpv#Marketing")
            },
        ),
        (
            "permission[0].constraint[8].rightOperand[0]",
            "unknown function",
            |o| constraints(o)[8]["rightOperand"][0] = json!("median"),
        ),
        ("permission[0].constraint", "missing the beffroi:k", |o| {
            constraints(o).remove(4);
        }),
        ("permission[0].constraint[9]", "twice", |o| {
            let k = constraints(o)[4].clone();
            constraints(o).push(k);
        }),
        ("permission", "exactly one permission", |o| {
            let p = o["permission"][0].clone();
            o["permission"].as_array_mut().unwrap().push(p);
        }),
        ("@context", "expected the Beffroi ODRL context", |o| {
            o["@context"] = json!("http://www.w3.org/ns/odrl.jsonld")
        }),
        ("profile", "expected", |o| {
            o["profile"] = json!("https://example.org/other")
        }),
        ("assigner", "must be a tenant", |o| {
            o["assigner"] = json!("urn:beffroi:public")
        }),
        ("permission[0].target.source", "expected", |o| {
            o["permission"][0]["target"]["source"] = json!("urn:beffroi:tenant:grenoble:readings")
        }),
        (
            "prohibition[0].target.refinement[0].operator",
            "unknown operator",
            |o| o["prohibition"][0]["target"]["refinement"][0]["operator"] = json!("matches"),
        ),
    ];
    for (path, reason, edit) in cases {
        let (got_path, got_reason) = import_error(edit);
        assert_eq!(got_path, path, "{reason}: {got_reason}");
        assert!(got_reason.contains(reason), "{path}: {got_reason}");
    }
}

#[test]
fn unknown_terms_are_exported_visibly_and_refused_on_import() {
    let mut agreement = sample();
    agreement.unknown_terms.insert("geofence".into(), json!({}));
    let odrl = to_odrl(&agreement);
    assert_eq!(
        odrl["beffroi:unknownTerms"],
        json!(["geofence: unknown term"])
    );
    assert!(from_odrl(&odrl).is_err());
}

#[test]
fn the_sample_round_trips() {
    let agreement = sample();
    assert_eq!(from_odrl(&to_odrl(&agreement)).unwrap(), agreement);
}

#[test]
fn the_profile_is_a_beffroi_urn_and_first_exports_still_import() {
    let odrl = to_odrl(&sample());
    assert_eq!(odrl["profile"], "urn:beffroi:odrl:profile");
    assert_eq!(odrl["@context"][1]["beffroi"], "urn:beffroi:odrl:");
    assert!(!odrl.to_string().contains("example.invalid"), "{odrl}");

    // A document exported before the URNs, with the placeholder IRIs, imports the same.
    let mut first = odrl.clone();
    first["@context"][1]["beffroi"] = json!("https://example.invalid/beffroi/ns/policy#");
    first["profile"] = json!("https://example.invalid/beffroi/ns/policy");
    assert_eq!(from_odrl(&first).unwrap(), sample());
    // Half of each is no document Beffroi wrote.
    let mut mixed = first.clone();
    mixed["profile"] = odrl["profile"].clone();
    let error = from_odrl(&mixed).unwrap_err().to_string();
    assert!(error.contains("profile"), "{error}");
    let mut mixed = odrl;
    mixed["profile"] = first["profile"].clone();
    assert!(from_odrl(&mixed).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn native_to_odrl_to_native_is_identity(agreement in agreement()) {
        let odrl = to_odrl(&agreement);
        prop_assert_eq!(from_odrl(&odrl).unwrap(), agreement.clone());
        // Through text too, as an export file would travel.
        let text = serde_json::to_string(&odrl).unwrap();
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(from_odrl(&reparsed).unwrap(), agreement);
    }

    #[test]
    fn native_json_round_trips(agreement in agreement()) {
        let text = serde_json::to_string(&agreement).unwrap();
        prop_assert_eq!(serde_json::from_str::<Agreement>(&text).unwrap(), agreement);
    }
}
