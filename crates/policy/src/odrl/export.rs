//! Native agreement → ODRL 2.2 JSON-LD (see the mapping in [`crate::odrl`]).

use std::collections::BTreeSet;

use beffroi_protocol::{TenantId, Timestamp};
use serde_json::{json, Map, Value};

use super::{
    action_word, agreement_uid, context, party_iri, readings_iri, Operand, Operator,
    BEFFROI_PROFILE, SECOND,
};
use crate::agreement::Agreement;
use crate::grantee::Grantee;
use crate::target::Target;
use crate::validate::Problem;

/// The agreement as an ODRL 2.2 `Agreement` in JSON-LD.
pub fn to_odrl(agreement: &Agreement) -> Value {
    let mut policy = Map::new();
    policy.insert("@context".into(), context());
    policy.insert("@type".into(), json!("Agreement"));
    policy.insert("uid".into(), json!(agreement_uid(&agreement.id)));
    policy.insert("profile".into(), json!(BEFFROI_PROFILE));
    policy.insert("beffroi:version".into(), json!(agreement.version));
    policy.insert("beffroi:state".into(), json!(agreement.state.as_str()));
    if agreement.pooling {
        policy.insert("beffroi:pooling".into(), json!(true));
    }
    policy.insert(
        "assigner".into(),
        json!(party_iri(&Grantee::Tenant(agreement.grantor.clone()))),
    );
    policy.insert("assignee".into(), json!(party_iri(&agreement.grantee)));
    policy.insert(
        "permission".into(),
        json!([{
            "target": asset(&agreement.grantor, &agreement.target),
            "action": action_word(agreement.action),
            "constraint": constraints(agreement),
        }]),
    );
    if !agreement.prohibitions.is_empty() {
        let rules: Vec<Value> = agreement
            .prohibitions
            .iter()
            .map(|p| {
                json!({
                    "target": asset(&agreement.grantor, &p.target),
                    "action": action_word(p.action),
                })
            })
            .collect();
        policy.insert("prohibition".into(), Value::Array(rules));
    }
    if agreement.has_unknown_terms() {
        let unknown: Vec<String> = agreement
            .validate()
            .err()
            .iter()
            .flat_map(|err| err.term_errors())
            .filter(|e| {
                matches!(
                    e.problem,
                    Problem::UnknownTerm | Problem::UnknownValue { .. }
                )
            })
            .map(ToString::to_string)
            .collect();
        policy.insert("beffroi:unknownTerms".into(), json!(unknown));
    }
    Value::Object(policy)
}

/// `{leftOperand, operator, rightOperand}`.
fn constraint(operand: Operand, operator: Operator, right: Value) -> Value {
    json!({
        "leftOperand": operand.as_str(),
        "operator": operator.as_str(),
        "rightOperand": right,
    })
}

/// A constraint on a duration in seconds.
fn seconds(operand: Operand, value: u64) -> Value {
    let mut c = constraint(operand, Operator::Gteq, json!(value));
    c["unit"] = json!(SECOND);
    c
}

fn date_time(at: Timestamp) -> Value {
    json!({ "@value": at.to_string(), "@type": "xsd:dateTime" })
}

fn texts<T: ToString>(items: &BTreeSet<T>) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// The target as an `AssetCollection` refined by metric, zone, tag, sensor and territory.
fn asset(grantor: &TenantId, target: &Target) -> Value {
    let mut refinement = vec![constraint(
        Operand::Metric,
        Operator::IsAnyOf,
        json!(texts(&target.metrics)),
    )];
    for (operand, items) in [
        (Operand::Zone, texts(&target.zones)),
        (Operand::SensorTag, texts(&target.tags)),
        (Operand::Sensor, texts(&target.sensors)),
        (Operand::Territory, texts(&target.territories)),
    ] {
        if !items.is_empty() {
            refinement.push(constraint(operand, Operator::IsAnyOf, json!(items)));
        }
    }
    json!({
        "@type": "AssetCollection",
        "source": readings_iri(grantor),
        "refinement": refinement,
    })
}

/// The permission's constraints, in a fixed order.
fn constraints(a: &Agreement) -> Vec<Value> {
    let mut out = vec![
        constraint(Operand::DateTime, Operator::Gteq, date_time(a.not_before)),
        constraint(Operand::DateTime, Operator::Lt, date_time(a.not_after)),
    ];
    let purposes: Vec<Value> = a
        .purposes
        .iter()
        .map(|p| {
            constraint(
                Operand::Purpose,
                Operator::IsA,
                json!({ "@id": p.dpv_iri() }),
            )
        })
        .collect();
    match purposes.len() {
        0 => {}
        1 => out.extend(purposes),
        _ => out.push(json!({ "or": purposes })),
    }
    if let Some(min_bucket) = a.min_bucket_s {
        out.push(seconds(Operand::MinBucket, u64::from(min_bucket)));
    }
    out.push(constraint(Operand::K, Operator::Gteq, json!(a.k)));
    out.push(seconds(Operand::Embargo, a.embargo_s));
    out.push(constraint(
        Operand::SpatialLevel,
        Operator::Eq,
        json!(a.spatial_level.as_str()),
    ));
    out.push(constraint(
        Operand::Pseudonymise,
        Operator::Eq,
        json!(a.pseudonymise),
    ));
    out.push(constraint(
        Operand::Function,
        Operator::IsAnyOf,
        json!(a.functions.words().collect::<Vec<_>>()),
    ));
    if !a.fields.is_empty() {
        out.push(constraint(
            Operand::Field,
            Operator::IsAnyOf,
            json!(a.fields.words().collect::<Vec<_>>()),
        ));
    }
    out
}
