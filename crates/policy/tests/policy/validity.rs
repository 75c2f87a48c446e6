//! The validity window: permitted iff `not_before <= now < not_after`.

use beffroi_policy::{decide, DenyReason};

use crate::support::{aggregate_agreement, aggregate_request, at, denied, permitted};

#[test]
fn permitted_from_not_before_until_one_second_before_not_after() {
    let mut agreement = aggregate_agreement("air");
    agreement.not_before = at(-100);
    agreement.not_after = at(100);
    let request = aggregate_request();
    let decide_at = |s| decide(&request, std::slice::from_ref(&agreement), at(s));

    permitted(decide_at(-100));
    permitted(decide_at(0));
    permitted(decide_at(99));
    assert_eq!(denied(&decide_at(100)), DenyReason::OutsideValidity);
    assert_eq!(denied(&decide_at(101)), DenyReason::OutsideValidity);
    assert_eq!(denied(&decide_at(-101)), DenyReason::OutsideValidity);
}

#[test]
fn a_permit_stops_serving_at_not_after() {
    let mut agreement = aggregate_agreement("air");
    agreement.not_after = at(10);
    let permit = permitted(decide(&aggregate_request(), &[agreement], at(0)));
    assert_eq!(permit.transforms.valid_until, at(10));
    assert!(permit.transforms.served_range(at(9)).is_some());
    assert!(permit.transforms.served_range(at(10)).is_none());
}
