//! Scope: request ∩ target, one agreement at a time, chosen deterministically.

use beffroi_policy::{
    decide, AccessRequest, DenyReason, Function, ReadingFacts, Selection, Shape, Target, TermSet,
};

use crate::support::{
    aggregate_agreement, aggregate_request, agreement_id, at, denied, metric, partner, pattern,
    patterns, permitted, raw_agreement, raw_request, sensor, tag, zone,
};

#[test]
fn the_effective_scope_is_the_intersection() {
    let mut agreement = aggregate_agreement("air");
    agreement.target.zones = [zone("centre"), zone("nord")].into();
    let request = AccessRequest {
        metrics: patterns(&["*"]),
        zones: [zone("nord"), zone("sud")].into(),
        ..aggregate_request()
    };
    let permit = permitted(decide(&request, &[agreement.clone()], at(0)));
    assert_eq!(permit.transforms.scope.metrics, patterns(&["air.*"]));
    assert_eq!(
        permit.transforms.scope.zones,
        Selection::Only([zone("nord")].into())
    );
    assert_eq!(permit.transforms.scope.sensors, Selection::All);

    // k > 1: cells are computed over the agreement's own zones, published for `nord` only.
    let Shape::Aggregate(aggregation) = permit.transforms.shape else {
        panic!("not an aggregate")
    };
    assert_eq!(
        aggregation.grid.zones,
        Selection::Only([zone("centre"), zone("nord")].into())
    );

    let outside = AccessRequest {
        zones: [zone("sud")].into(),
        ..aggregate_request()
    };
    assert_eq!(
        denied(&decide(&outside, &[agreement.clone()], at(0))),
        DenyReason::Scope
    );
    let noise = AccessRequest {
        metrics: patterns(&["noise.laeq"]),
        ..aggregate_request()
    };
    assert_eq!(
        denied(&decide(&noise, &[agreement], at(0))),
        DenyReason::Scope
    );
}

#[test]
fn aggregates_with_k_above_one_refuse_sensor_and_tag_filters() {
    let agreement = aggregate_agreement("air");
    for request in [
        AccessRequest {
            sensors: [sensor("s1")].into(),
            ..aggregate_request()
        },
        AccessRequest {
            tags: [tag("school")].into(),
            ..aggregate_request()
        },
    ] {
        assert_eq!(
            denied(&decide(&request, std::slice::from_ref(&agreement), at(0))),
            DenyReason::Scope
        );
    }
}

#[test]
fn terms_never_mix_across_agreements() {
    // A: raw rows, but of noise only. B: air, but aggregates only.
    let mut raw_noise = raw_agreement("a-raw-noise");
    raw_noise.target = Target::of_metrics([pattern("noise.*")]);
    let air_aggregates = aggregate_agreement("b-air-aggregates");
    let agreements = [raw_noise, air_aggregates];

    // Raw air needs the action of A and the scope of B: denied.
    let decision = decide(&raw_request(), &agreements, at(0));
    assert_eq!(denied(&decision), DenyReason::Scope);
    // Each alone is fine within its own terms.
    let raw_noise_request = AccessRequest {
        metrics: patterns(&["noise.laeq"]),
        ..raw_request()
    };
    let permit = permitted(decide(&raw_noise_request, &agreements, at(0)));
    assert_eq!(permit.agreement.id.as_str(), "a-raw-noise");
    let permit = permitted(decide(&aggregate_request(), &agreements, at(0)));
    assert_eq!(permit.agreement.id.as_str(), "b-air-aggregates");
}

#[test]
fn several_permitting_agreements_pick_the_named_one_else_the_lowest_id() {
    let agreements = [aggregate_agreement("zeta"), aggregate_agreement("alpha")];
    let permit = permitted(decide(&aggregate_request(), &agreements, at(0)));
    assert_eq!(permit.agreement.id.as_str(), "alpha");

    let named = AccessRequest {
        agreement: Some(agreement_id("zeta")),
        ..aggregate_request()
    };
    let permit = permitted(decide(&named, &agreements, at(0)));
    assert_eq!(permit.agreement.id.as_str(), "zeta");

    let missing = AccessRequest {
        agreement: Some(agreement_id("nope")),
        ..aggregate_request()
    };
    assert_eq!(
        denied(&decide(&missing, &agreements, at(0))),
        DenyReason::NoAgreement
    );
}

#[test]
fn a_named_agreement_that_fails_is_not_replaced_by_another() {
    let mut wrong_purpose = aggregate_agreement("named");
    wrong_purpose.purposes = TermSet::from([beffroi_policy::Purpose::Billing]);
    let agreements = [aggregate_agreement("other"), wrong_purpose];
    let named = AccessRequest {
        agreement: Some(agreement_id("named")),
        ..aggregate_request()
    };
    assert_eq!(
        denied(&decide(&named, &agreements, at(0))),
        DenyReason::WrongPurpose
    );
}

#[test]
fn the_reported_denial_is_the_candidate_that_got_furthest() {
    let mut draft = aggregate_agreement("a-draft");
    draft.state = beffroi_policy::State::Draft;
    let mut functions = aggregate_agreement("b-functions");
    functions.functions = TermSet::from([Function::Max]);
    let decision = decide(&aggregate_request(), &[draft, functions], at(0));
    assert_eq!(denied(&decision), DenyReason::FunctionNotAllowed);
}

#[test]
fn the_reading_predicate_is_the_scope_and_the_time() {
    let mut agreement = raw_agreement("raw");
    agreement.target.tags = [tag("school")].into();
    agreement.target.zones = [zone("centre")].into();
    let permit = permitted(decide(&raw_request(), &[agreement], at(0)));
    let (pm25, noise, s1) = (metric("air.pm25"), metric("noise.laeq"), sensor("s1"));
    let centre = zone("centre");
    let school = [tag("school")];
    let reading = |metric, zone, tags, time| ReadingFacts {
        metric,
        sensor: &s1,
        zone,
        tags,
        territories: &[],
        time: at(time),
    };
    let t = &permit.transforms;
    assert!(t.admits(&reading(&pm25, Some(&centre), &school, -60), at(0)));
    assert!(!t.admits(&reading(&noise, Some(&centre), &school, -60), at(0)));
    assert!(!t.admits(&reading(&pm25, None, &school, -60), at(0)));
    assert!(!t.admits(&reading(&pm25, Some(&centre), &[], -60), at(0)));
    assert!(!t.admits(&reading(&pm25, Some(&centre), &school, 60), at(0)));
    assert!(!t.admits(&reading(&pm25, Some(&centre), &school, -2 * 86_400), at(0)));
}

#[test]
fn a_partner_request_cannot_borrow_a_tenant_grant() {
    let mut tenant_grant = raw_agreement("raw");
    tenant_grant.grantee = beffroi_policy::Grantee::Tenant(crate::support::tenant("acme"));
    let request = AccessRequest {
        requester: partner("acme"),
        ..raw_request()
    };
    assert_eq!(
        denied(&decide(&request, &[tenant_grant], at(0))),
        DenyReason::NoAgreement
    );
}
