//! Property tests of the engine over random agreements (several grantors and grantees,
//! mixed and sometimes incoherent terms, all states) and random requests.
//!
//! For every permit: it names exactly one agreement, which is active, valid, inside its
//! window, of this grantor, for this requester and purpose, and whose every term — action,
//! scope, spatial level, bucket, functions, fields, embargo — the permit respects; no
//! prohibition of a binding agreement touches what it serves; and the same agreement
//! permits alone. Scopes are compared by enumerating every reading of the small universe.

use beffroi_policy::{
    decide, AccessRequest, Agreement, Decision, Permit, Read, ReadingFacts, Scope, Shape, State,
};
use beffroi_protocol::Timestamp;
use proptest::prelude::*;

use crate::strategies::{case, universe, UniverseReading};
use crate::support::at;

fn facts(r: &UniverseReading) -> ReadingFacts<'_> {
    ReadingFacts {
        metric: &r.metric,
        sensor: &r.sensor,
        zone: r.zone.as_ref(),
        tags: &r.tags,
        territories: &[],
        time: at(0),
    }
}

/// Whether every reading of the universe in `inner` is in `outer`.
fn within(inner: &Scope, outer: &Scope) -> bool {
    universe()
        .iter()
        .all(|r| !inner.admits(&facts(r)) || outer.admits(&facts(r)))
}

/// Whether some reading of the universe is in both.
fn meet(a: &Scope, b: &Scope) -> bool {
    universe()
        .iter()
        .any(|r| a.admits(&facts(r)) && b.admits(&facts(r)))
}

fn concerns(a: &Agreement, request: &AccessRequest) -> bool {
    a.grantor == request.grantor && a.grantee.covers(&request.requester)
}

/// Every check of a permit against the agreements it was decided from.
fn check_permit(
    permit: &Permit,
    request: &AccessRequest,
    all: &[Agreement],
    now: Timestamp,
) -> Result<(), TestCaseError> {
    let justifying: Vec<&Agreement> = all
        .iter()
        .filter(|a| concerns(a, request) && a.reference() == permit.agreement)
        .collect();
    prop_assert_eq!(justifying.len(), 1, "exactly one agreement is named");
    let a = justifying[0];
    prop_assert_eq!(a.state, State::Active);
    prop_assert!(a.validate().is_ok());
    prop_assert!(a.is_valid_at(now));
    prop_assert_eq!(&permit.grantee, &a.grantee);
    prop_assert!(a.purposes.contains(request.purpose));
    prop_assert!(a.action.includes(request.read.action()));
    if let Some(named) = &request.agreement {
        prop_assert_eq!(named, &a.id);
    }

    let t = &permit.transforms;
    let target = Scope::of_target(&a.target);
    prop_assert!(
        within(&t.scope, &target),
        "served scope outside the agreement's target"
    );
    prop_assert!(
        within(&t.scope, &request.scope()),
        "served scope outside the request"
    );
    prop_assert!(
        within(t.population(), &target),
        "cells computed outside the target"
    );
    prop_assert_eq!(t.valid_until, a.not_after);
    prop_assert_eq!(t.pseudonymise, a.pseudonymise);
    prop_assert_eq!(t.window.embargo_s, a.embargo_s);
    let cut = now.saturating_sub(std::time::Duration::from_secs(a.embargo_s));
    prop_assert!(t.range.to <= cut, "served past the embargo");
    prop_assert!(!t.range.is_empty());

    match (&request.read, &t.shape) {
        (Read::Raw { fields }, Shape::Raw { fields: served }) => {
            prop_assert!(served.iter().all(|f| a.fields.contains(*f)));
            prop_assert!(fields.is_empty() || served == fields);
            prop_assert!(request.range.from <= t.range.from && t.range.to <= request.range.to);
        }
        (
            Read::Aggregate {
                bucket,
                functions,
                spatial_level,
            },
            Shape::Aggregate(aggregation),
        ) => {
            prop_assert!(a.spatial_level.allows(*spatial_level));
            prop_assert_eq!(aggregation.spatial_level, *spatial_level);
            prop_assert_eq!(&aggregation.functions, functions);
            prop_assert!(functions.iter().all(|f| a.functions.contains(*f)));
            prop_assert_eq!(aggregation.k, a.k);
            prop_assert_eq!(aggregation.bucket, *bucket);
            if let Some(min) = a.min_bucket_s {
                prop_assert_eq!(bucket.width_s % min, 0);
                prop_assert_eq!(bucket.offset_s % min, 0);
            }
            prop_assert!(bucket.floor(t.range.from) == t.range.from);
            prop_assert!(
                bucket.floor(t.range.to) == t.range.to,
                "a partial bucket is served"
            );
            if a.k > 1 {
                prop_assert!(request.sensors.is_empty() && request.tags.is_empty());
            }
        }
        _ => prop_assert!(false, "shape does not match the request"),
    }

    for binding in all
        .iter()
        .filter(|b| concerns(b, request) && matches!(b.state, State::Active | State::Suspended))
    {
        prop_assert!(!binding.has_unknown_terms());
        for p in &binding.prohibitions {
            let forbidden = Scope::of_target(&p.target);
            prop_assert!(
                !(request.read.action().includes(p.action) && meet(&forbidden, &t.scope)),
                "a prohibition of {} matches",
                binding.id
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn every_permit_is_justified_by_one_agreement_and_all_its_terms(
        (all, request) in case(),
        now in -1i64..1,
    ) {
        let now = at(now * 86_400 + 1_234);
        let decision = decide(&request, &all, now);
        if let Decision::Permit(permit) = &decision {
            check_permit(permit, &request, &all, now)?;

            // Naming the chosen agreement gives the same permit.
            let named = AccessRequest { agreement: Some(permit.agreement.id.clone()), ..request.clone() };
            prop_assert_eq!(&decide(&named, &all, now), &decision);

            // It permits alone, with the agreements that only forbid: nothing else lent a term.
            let alone: Vec<Agreement> = all
                .iter()
                .filter(|a| a.reference() == permit.agreement || !concerns(a, &request) || !a.prohibitions.is_empty())
                .cloned()
                .collect();
            let again = decide(&request, &alone, now);
            prop_assert_eq!(again.permit().map(|p| &p.agreement), Some(&permit.agreement));

            // No lower agreement would have permitted on its own.
            for lower in all.iter().filter(|a| concerns(a, &request) && a.id < permit.agreement.id) {
                if request.agreement.is_none() {
                    let only = AccessRequest { agreement: Some(lower.id.clone()), ..request.clone() };
                    prop_assert!(decide(&only, &all, now).permit().is_none(), "{} would permit and sorts first", lower.id);
                }
            }
        }
    }

    #[test]
    fn decisions_are_deterministic_and_independent_of_order((all, request) in case()) {
        let now = at(0);
        let first = decide(&request, &all, now);
        let mut reversed = all.clone();
        reversed.reverse();
        prop_assert_eq!(decide(&request, &reversed, now), first);
    }

    #[test]
    fn agreements_of_other_parties_change_nothing((all, request) in case()) {
        let now = at(0);
        let mine: Vec<Agreement> = all.iter().filter(|a| concerns(a, &request)).cloned().collect();
        prop_assert_eq!(decide(&request, &mine, now), decide(&request, &all, now));
    }
}
