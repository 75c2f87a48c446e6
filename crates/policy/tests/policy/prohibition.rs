//! Prohibitions win over any permission, from any binding agreement between the parties.

use beffroi_policy::{
    decide, AccessRequest, Action, Decision, DenyReason, Prohibition, State, Target, UnknownTerms,
};

use crate::support::{
    aggregate_agreement, aggregate_request, at, denied, pattern, permitted, raw_agreement,
    raw_request, zone,
};

fn prohibition(action: Action, metric: &str, zones: &[&str]) -> Prohibition {
    Prohibition {
        action,
        target: Target {
            zones: zones.iter().map(|z| zone(z)).collect(),
            ..Target::of_metrics([pattern(metric)])
        },
        unknown_terms: UnknownTerms::new(),
    }
}

#[test]
fn a_prohibition_wins_over_a_permitting_agreement() {
    let permitting = aggregate_agreement("air");
    let mut forbidding = aggregate_agreement("no-pm25");
    forbidding.target = Target::of_metrics([pattern("noise.*")]);
    forbidding.prohibitions = vec![prohibition(Action::ReadAggregate, "air.pm25", &[])];
    permitted(decide(
        &aggregate_request(),
        std::slice::from_ref(&permitting),
        at(0),
    ));

    let decision = decide(&aggregate_request(), &[permitting, forbidding], at(0));
    assert_eq!(denied(&decision), DenyReason::Prohibited);
    let Decision::Deny(deny) = decision else {
        unreachable!()
    };
    assert_eq!(deny.agreement.unwrap().id.as_str(), "no-pm25");
}

#[test]
fn a_prohibition_inside_the_permitting_agreement_wins_too() {
    let mut agreement = aggregate_agreement("air");
    agreement.prohibitions = vec![prohibition(Action::ReadAggregate, "air.*", &["centre"])];
    let decision = decide(&aggregate_request(), &[agreement.clone()], at(0));
    assert_eq!(denied(&decision), DenyReason::Prohibited);

    // Filtering zones away from the prohibited one makes the request permissible.
    let request = AccessRequest {
        zones: [zone("nord")].into(),
        ..aggregate_request()
    };
    let permit = permitted(decide(&request, &[agreement], at(0)));
    assert!(permit.transforms.scope.zones.contains(&zone("nord")));
    assert!(!permit.transforms.scope.zones.contains(&zone("centre")));
}

#[test]
fn suspending_an_agreement_keeps_its_prohibitions_revoking_ends_them() {
    let permitting = aggregate_agreement("air");
    let mut forbidding = aggregate_agreement("zz-ban");
    forbidding.prohibitions = vec![prohibition(Action::ReadAggregate, "*", &[])];
    for (state, allowed) in [
        (State::Suspended, false),
        (State::Active, false),
        (State::Revoked, true),
        (State::Draft, true),
    ] {
        forbidding.state = state;
        let decision = decide(
            &aggregate_request(),
            &[permitting.clone(), forbidding.clone()],
            at(0),
        );
        assert_eq!(decision.permit().is_some(), allowed, "{state}");
    }
}

#[test]
fn forbidding_aggregates_forbids_raw_rows_but_not_the_reverse() {
    let mut raw = raw_agreement("raw");
    raw.prohibitions = vec![prohibition(Action::ReadAggregate, "air.*", &[])];
    assert_eq!(
        denied(&decide(&raw_request(), std::slice::from_ref(&raw), at(0))),
        DenyReason::Prohibited
    );

    raw.prohibitions = vec![prohibition(Action::ReadRaw, "air.*", &[])];
    assert_eq!(
        denied(&decide(&raw_request(), std::slice::from_ref(&raw), at(0))),
        DenyReason::Prohibited
    );
    let mut aggregate = aggregate_request();
    aggregate.read = beffroi_policy::Read::Aggregate {
        bucket: beffroi_policy::BucketSpec::epoch_aligned(3600),
        functions: [beffroi_policy::Function::Avg].into(),
        spatial_level: beffroi_policy::SpatialLevel::Zone,
    };
    permitted(decide(&aggregate, &[raw], at(0)));
}

#[test]
fn a_prohibition_elsewhere_does_not_block() {
    let mut agreement = aggregate_agreement("air");
    agreement.prohibitions = vec![prohibition(Action::ReadAggregate, "noise.*", &[])];
    permitted(decide(&aggregate_request(), &[agreement], at(0)));
}
