//! Embargo: nothing younger than `now − embargo` is served; aggregates in whole buckets.

use beffroi_policy::{decide, AccessRequest, DenyReason, ReadingFacts, TimeRange};

use crate::support::{
    aggregate_agreement, aggregate_request, at, denied, metric, permitted, raw_agreement,
    raw_request, sensor, DAY,
};

#[test]
fn the_embargo_clamps_the_range() {
    let mut agreement = raw_agreement("raw");
    agreement.embargo_s = 6 * 3600;
    let permit = permitted(decide(&raw_request(), &[agreement], at(0)));
    assert_eq!(
        permit.transforms.range,
        TimeRange::new(at(-DAY), at(-6 * 3600))
    );
}

#[test]
fn a_range_entirely_under_embargo_is_denied() {
    let mut agreement = raw_agreement("raw");
    agreement.embargo_s = 2 * DAY as u64;
    let decision = decide(&raw_request(), &[agreement], at(0));
    assert_eq!(denied(&decision), DenyReason::Embargo);
}

#[test]
fn aggregates_are_served_in_whole_buckets_before_the_cut() {
    let mut agreement = aggregate_agreement("air");
    agreement.embargo_s = 90 * 60;
    let request = AccessRequest {
        range: TimeRange::new(at(-DAY + 600), at(-60)),
        ..aggregate_request()
    };
    let permit = permitted(decide(&request, &[agreement], at(0)));
    // from rounded down to its hour, to cut at the hour before now − 90 min.
    assert_eq!(
        permit.transforms.range,
        TimeRange::new(at(-DAY), at(-2 * 3600))
    );

    let current = AccessRequest {
        range: TimeRange::new(at(0), at(600)),
        ..aggregate_request()
    };
    let decision = decide(&current, &[aggregate_agreement("air")], at(1200));
    assert_eq!(
        denied(&decision),
        DenyReason::Embargo,
        "the current hour is not whole"
    );
}

#[test]
fn the_live_predicate_moves_the_cut_with_now() {
    let mut agreement = raw_agreement("raw");
    agreement.embargo_s = 3600;
    let request = AccessRequest {
        range: TimeRange::new(at(-DAY), at(10 * DAY)),
        ..raw_request()
    };
    let permit = permitted(decide(&request, &[agreement], at(0)));
    let (m, s) = (metric("air.pm25"), sensor("s1"));
    let reading = |t| ReadingFacts {
        metric: &m,
        sensor: &s,
        zone: None,
        tags: &[],
        territories: &[],
        time: at(t),
    };
    let transforms = &permit.transforms;
    assert!(transforms.admits(&reading(-3601), at(0)));
    assert!(!transforms.admits(&reading(-3600), at(0)));
    assert!(!transforms.admits(&reading(0), at(0)));
    // An hour later the same value is old enough: the live view shows it then.
    assert!(transforms.admits(&reading(0), at(3601)));
    assert!(!transforms.admits(&reading(-DAY - 1), at(3601)));
}
