//! ODRL 2.2 JSON-LD → native agreement, refusing everything outside the exported shape (see
//! [`crate::odrl`]). Every error names the path of the offending value.

use std::collections::BTreeSet;

use beffroi_protocol::{TenantId, Timestamp};
use serde_json::Value;

use super::reader::{child, odrl_error, with, At};
use super::{
    action_word, context, context_with, readings_iri, Operand, Operator, AGREEMENT_URN,
    BEFFROI_PROFILE, LEGACY_BEFFROI_NS, LEGACY_BEFFROI_PROFILE, SECOND, URN,
};
use crate::agreement::{Agreement, Prohibition, UnknownTerms};
use crate::error::{excerpt, Error, Result};
use crate::grantee::Grantee;
use crate::ids::AgreementId;
use crate::purpose::Purpose;
use crate::target::Target;
use crate::terms::{Action, Field, Function, SpatialLevel};
use crate::vocabulary::TermSet;

/// Imports an ODRL agreement exported by [`crate::to_odrl`]. Not validated: call
/// [`Agreement::validate`] before storing it.
pub fn from_odrl(document: &Value) -> Result<Agreement> {
    let root = At {
        path: "",
        value: document,
    };
    let top = root.object(&[
        "@context",
        "@type",
        "uid",
        "profile",
        "beffroi:version",
        "beffroi:state",
        "beffroi:pooling",
        "assigner",
        "assignee",
        "permission",
        "prohibition",
    ])?;
    // A document of the first exports cites the placeholder IRIs, for the same terms.
    let legacy = with(top.required("@context")?, |at| {
        if *at.value == context() {
            Ok(false)
        } else if *at.value == context_with(LEGACY_BEFFROI_NS) {
            Ok(true)
        } else {
            Err(at.err(format!("expected the Beffroi ODRL context {}", context())))
        }
    })?;
    with(top.required("@type")?, |at| at.exactly("Agreement"))?;
    with(top.required("profile")?, |at| {
        at.exactly(if legacy {
            LEGACY_BEFFROI_PROFILE
        } else {
            BEFFROI_PROFILE
        })
    })?;
    let id: AgreementId = with(top.required("uid")?, |at| at.parse_after(AGREEMENT_URN))?;
    let version = with(top.required("beffroi:version")?, |at| at.u32())?;
    let state = with(top.required("beffroi:state")?, |at| at.parse())?;
    let pooling = match top.get("beffroi:pooling") {
        Some(value) => with(value, |at| at.bool())?,
        None => false,
    };
    let grantor: TenantId = with(top.required("assigner")?, |at| {
        match at.parse_after(URN)? {
            Grantee::Tenant(tenant) => Ok(tenant),
            _ => Err(at.err("the assigner must be a tenant")),
        }
    })?;
    let grantee: Grantee = with(top.required("assignee")?, |at| at.parse_after(URN))?;

    let permissions = with(top.required("permission")?, |at| at.items())?;
    let [(path, permission)] = permissions.as_slice() else {
        return Err(odrl_error(
            &child("", "permission"),
            "expected exactly one permission",
        ));
    };
    let permission = At {
        path,
        value: permission,
    }
    .object(&["target", "action", "constraint"])?;
    let target = with(permission.required("target")?, |at| asset(at, &grantor))?;
    let action = with(permission.required("action")?, parse_action)?;
    let mut terms = Terms::default();
    for (path, value) in with(permission.required("constraint")?, |at| at.items())? {
        terms.read(At { path: &path, value })?;
    }

    let mut prohibitions = Vec::new();
    if let Some(list) = top.get("prohibition") {
        for (path, value) in with(list, |at| at.items())? {
            let rule = At { path: &path, value }.object(&["target", "action"])?;
            prohibitions.push(Prohibition {
                action: with(rule.required("action")?, parse_action)?,
                target: with(rule.required("target")?, |at| asset(at, &grantor))?,
                unknown_terms: UnknownTerms::new(),
            });
        }
    }

    let constraints = child(&permission.path, "constraint");
    let missing = |what: &str| odrl_error(&constraints, format!("missing the {what} constraint"));
    Ok(Agreement {
        id,
        version,
        grantor,
        grantee,
        state,
        not_before: terms.not_before.ok_or_else(|| missing("dateTime gteq"))?,
        not_after: terms.not_after.ok_or_else(|| missing("dateTime lt"))?,
        purposes: terms.purposes.unwrap_or_default(),
        action,
        target,
        min_bucket_s: terms.min_bucket_s,
        functions: terms.functions.ok_or_else(|| missing("beffroi:function"))?,
        k: terms.k.ok_or_else(|| missing("beffroi:k"))?,
        spatial_level: terms
            .spatial_level
            .ok_or_else(|| missing("beffroi:spatialLevel"))?,
        pseudonymise: terms
            .pseudonymise
            .ok_or_else(|| missing("beffroi:pseudonymise"))?,
        fields: terms.fields.unwrap_or_default(),
        embargo_s: terms.embargo_s.ok_or_else(|| missing("beffroi:embargo"))?,
        prohibitions,
        pooling,
        unknown_terms: UnknownTerms::new(),
    })
}

/// `read` or `aggregate`.
fn parse_action(at: At<'_, '_>) -> Result<Action> {
    let word = at.str()?;
    [Action::ReadRaw, Action::ReadAggregate]
        .into_iter()
        .find(|a| action_word(*a) == word)
        .ok_or_else(|| at.err(format!("unknown action {:?}", excerpt(word))))
}

/// An `AssetCollection` of the grantor's readings, with its refinements.
fn asset(at: At<'_, '_>, grantor: &TenantId) -> Result<Target> {
    let asset = at.object(&["@type", "source", "refinement"])?;
    with(asset.required("@type")?, |at| at.exactly("AssetCollection"))?;
    with(asset.required("source")?, |at| {
        at.exactly(&readings_iri(grantor))
    })?;
    let mut target = Target::default();
    let mut seen = BTreeSet::new();
    let Some(refinements) = asset.get("refinement") else {
        return Ok(target);
    };
    for (path, value) in with(refinements, |at| at.items())? {
        let (operand, operator, right) = simple(At { path: &path, value }, false)?;
        if !seen.insert(operand) {
            return Err(odrl_error(&path, format!("{operand} refined twice")));
        }
        if operator != Operator::IsAnyOf {
            return Err(unsupported(&path, operand, operator));
        }
        let right = At {
            path: &right.0,
            value: right.1,
        };
        match operand {
            Operand::Metric => target.metrics = right.parse_set()?,
            Operand::Zone => target.zones = right.parse_set()?,
            Operand::SensorTag => target.tags = right.parse_set()?,
            Operand::Sensor => target.sensors = right.parse_set()?,
            Operand::Territory => target.territories = right.parse_set()?,
            _ => {
                return Err(odrl_error(
                    &path,
                    format!("{operand} is a constraint of the permission, not a target refinement"),
                ))
            }
        }
    }
    Ok(target)
}

fn unsupported(path: &str, operand: Operand, operator: Operator) -> Error {
    odrl_error(
        path,
        format!("operator {operator} is not supported for {operand}"),
    )
}

/// A `{leftOperand, operator, rightOperand[, unit]}` constraint: its operand, operator,
/// right operand, after checking the unit (`seconds`: required and QUDT second; else absent).
fn simple<'v>(at: At<'_, 'v>, seconds: bool) -> Result<(Operand, Operator, (String, &'v Value))> {
    let c = at.object(&["leftOperand", "operator", "rightOperand", "unit"])?;
    let operand: Operand = with(c.required("leftOperand")?, |at| {
        let word = at.str()?;
        word.parse()
            .map_err(|_| at.err(format!("unknown left operand {:?}", excerpt(word))))
    })?;
    let operator: Operator = with(c.required("operator")?, |at| {
        let word = at.str()?;
        word.parse()
            .map_err(|_| at.err(format!("unknown operator {:?}", excerpt(word))))
    })?;
    let wants_unit = seconds && matches!(operand, Operand::MinBucket | Operand::Embargo);
    match c.get("unit") {
        Some(unit) if wants_unit => with(unit, |at| at.exactly(SECOND))?,
        Some((path, _)) => return Err(odrl_error(&path, format!("{operand} takes no unit"))),
        None if wants_unit => {
            return Err(odrl_error(
                &child(at.path, "unit"),
                format!("missing: {operand} is in seconds ({SECOND})"),
            ))
        }
        None => {}
    }
    Ok((operand, operator, c.required("rightOperand")?))
}

/// The permission's terms, each read at most once.
#[derive(Default)]
struct Terms {
    not_before: Option<Timestamp>,
    not_after: Option<Timestamp>,
    purposes: Option<TermSet<Purpose>>,
    min_bucket_s: Option<u32>,
    k: Option<u32>,
    embargo_s: Option<u64>,
    spatial_level: Option<SpatialLevel>,
    pseudonymise: Option<bool>,
    functions: Option<TermSet<Function>>,
    fields: Option<TermSet<Field>>,
}

/// Stores `value` in `slot` unless it was already set.
fn once<T>(slot: &mut Option<T>, path: &str, what: &str, value: T) -> Result<()> {
    if slot.is_some() {
        return Err(odrl_error(path, format!("{what} constrained twice")));
    }
    *slot = Some(value);
    Ok(())
}

impl Terms {
    fn read(&mut self, at: At<'_, '_>) -> Result<()> {
        if at.value.get("or").is_some() {
            let or = at.object(&["or"])?;
            let mut purposes = TermSet::new();
            for (path, value) in with(or.required("or")?, |at| at.items())? {
                if !purposes.insert(purpose(At { path: &path, value })?) {
                    return Err(odrl_error(&path, "duplicate purpose"));
                }
            }
            return once(&mut self.purposes, at.path, "purpose", purposes);
        }
        let (operand, operator, right) = simple(at, true)?;
        let right = At {
            path: &right.0,
            value: right.1,
        };
        let path = at.path;
        match (operand, operator) {
            (Operand::DateTime, Operator::Gteq) => once(
                &mut self.not_before,
                path,
                "dateTime gteq",
                date_time(right)?,
            ),
            (Operand::DateTime, Operator::Lt) => {
                once(&mut self.not_after, path, "dateTime lt", date_time(right)?)
            }
            (Operand::Purpose, Operator::IsA) => once(
                &mut self.purposes,
                path,
                "purpose",
                TermSet::from([purpose(at)?]),
            ),
            (Operand::MinBucket, Operator::Gteq) => {
                once(&mut self.min_bucket_s, path, "minBucket", right.u32()?)
            }
            (Operand::K, Operator::Gteq) => once(&mut self.k, path, "k", right.u32()?),
            (Operand::Embargo, Operator::Gteq) => {
                once(&mut self.embargo_s, path, "embargo", right.u64()?)
            }
            (Operand::SpatialLevel, Operator::Eq) => once(
                &mut self.spatial_level,
                path,
                "spatialLevel",
                right.parse()?,
            ),
            (Operand::Pseudonymise, Operator::Eq) => {
                once(&mut self.pseudonymise, path, "pseudonymise", right.bool()?)
            }
            (Operand::Function, Operator::IsAnyOf) => {
                once(&mut self.functions, path, "function", right.term_set()?)
            }
            (Operand::Field, Operator::IsAnyOf) => {
                once(&mut self.fields, path, "field", right.term_set()?)
            }
            (
                Operand::Metric
                | Operand::Zone
                | Operand::SensorTag
                | Operand::Sensor
                | Operand::Territory,
                _,
            ) => Err(odrl_error(
                path,
                format!("{operand} is a target refinement, not a constraint"),
            )),
            (operand, operator) => Err(unsupported(path, operand, operator)),
        }
    }
}

/// A `purpose isA {"@id": DPV IRI}` constraint.
fn purpose(at: At<'_, '_>) -> Result<Purpose> {
    let (operand, operator, right) = simple(at, false)?;
    if operand != Operand::Purpose || operator != Operator::IsA {
        return Err(at.err("expected a purpose isA constraint"));
    }
    let id = At {
        path: &right.0,
        value: right.1,
    }
    .object(&["@id"])?;
    with(id.required("@id")?, |at| {
        let iri = at.str()?;
        Purpose::from_dpv_iri(iri)
            .ok_or_else(|| at.err(format!("unknown purpose IRI {:?}", excerpt(iri))))
    })
}

/// `{"@value": RFC 3339, "@type": "xsd:dateTime"}`.
fn date_time(at: At<'_, '_>) -> Result<Timestamp> {
    let literal = at.object(&["@value", "@type"])?;
    with(literal.required("@type")?, |at| at.exactly("xsd:dateTime"))?;
    with(literal.required("@value")?, |at| {
        let text = at.str()?;
        Timestamp::parse_rfc3339(text)
            .ok_or_else(|| at.err(format!("invalid xsd:dateTime {:?}", excerpt(text))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odrl::party_iri;

    #[test]
    fn party_iris_read_back() {
        for text in ["public", "tenant:lyon", "partner:acme"] {
            let party: Grantee = text.parse().unwrap();
            let value = Value::String(party_iri(&party));
            let at = At {
                path: "assignee",
                value: &value,
            };
            assert_eq!(at.parse_after::<Grantee, Error>(URN).unwrap(), party);
        }
    }
}
