//! States: only `active` permits; the lifecycle's transitions and version bumps.

use beffroi_policy::{decide, DenyReason, Error, State};

use crate::support::{aggregate_agreement, aggregate_request, at, denied, permitted};

#[test]
fn only_active_agreements_permit() {
    for (state, reason) in [
        (State::Draft, DenyReason::Draft),
        (State::Suspended, DenyReason::Suspended),
        (State::Revoked, DenyReason::Revoked),
    ] {
        let mut agreement = aggregate_agreement("air");
        agreement.state = state;
        let decision = decide(&aggregate_request(), &[agreement], at(0));
        assert_eq!(denied(&decision), reason, "{state}");
    }
    permitted(decide(
        &aggregate_request(),
        &[aggregate_agreement("air")],
        at(0),
    ));
}

#[test]
fn transitions_bump_the_version_and_revoked_is_final() {
    let mut agreement = aggregate_agreement("air");
    agreement.state = State::Draft;
    agreement.set_state(State::Active).unwrap();
    agreement.set_state(State::Suspended).unwrap();
    agreement.set_state(State::Active).unwrap();
    agreement.set_state(State::Revoked).unwrap();
    assert_eq!(agreement.version, 5);
    let err = agreement.set_state(State::Active).unwrap_err();
    assert_eq!(
        err,
        Error::Transition {
            from: State::Revoked,
            to: State::Active
        }
    );
    assert_eq!(agreement.version, 5);

    let mut draft = aggregate_agreement("air");
    draft.state = State::Draft;
    assert!(draft.set_state(State::Suspended).is_err());
}

#[test]
fn the_permit_names_the_version_it_relied_on() {
    let mut agreement = aggregate_agreement("air");
    agreement.version = 7;
    let permit = permitted(decide(&aggregate_request(), &[agreement], at(0)));
    assert_eq!(permit.agreement.id.as_str(), "air");
    assert_eq!(permit.agreement.version, 7);
}
