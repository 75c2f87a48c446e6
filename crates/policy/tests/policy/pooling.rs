//! Pooling agreements: an operator's sensors used by a beneficiary tenant. Only readings
//! measured inside the agreement's window are pooled, territories select by where the sensor
//! stood, and the terms that make no sense outside pooling are refused.

use beffroi_policy::{
    decide, from_odrl, to_odrl, Agreement, DenyReason, Grantee, ReadingFacts, TimeRange,
};

use crate::support::{
    at, denied, metric, permitted, raw_agreement, raw_request, sensor, tenant, zone, DAY,
};

/// `metro` pools its `air.*` sensors standing in `villeurbanne`'s zone `commune` to
/// `villeurbanne`, for readings measured from 10 days ago until 10 days ahead.
fn pooling() -> Agreement {
    let mut agreement = raw_agreement("pool-villeurbanne");
    agreement.grantor = tenant("metro");
    agreement.grantee = Grantee::Tenant(tenant("villeurbanne"));
    agreement.pooling = true;
    agreement.pseudonymise = false;
    agreement.not_before = at(-10 * DAY);
    agreement.not_after = at(10 * DAY);
    agreement.target.territories = [zone("commune")].into();
    agreement
}

fn request() -> beffroi_policy::AccessRequest {
    let mut request = raw_request();
    request.grantor = tenant("metro");
    request.requester = Grantee::Tenant(tenant("villeurbanne"));
    request.range = TimeRange::new(at(-30 * DAY), at(0));
    request
}

#[test]
fn only_readings_measured_in_the_window_and_inside_a_territory_are_pooled() {
    let permit = permitted(decide(&request(), &[pooling()], at(0)));
    let t = &permit.transforms;
    assert_eq!(t.period, Some(TimeRange::new(at(-10 * DAY), at(10 * DAY))));
    assert_eq!(
        t.range.from,
        at(-10 * DAY),
        "the store is asked for the period only"
    );
    let (pm25, s1, commune, other) = (
        metric("air.pm25"),
        sensor("s1"),
        [zone("commune")],
        [zone("other")],
    );
    let reading = |territories, days| ReadingFacts {
        metric: &pm25,
        sensor: &s1,
        zone: None,
        tags: &[],
        territories,
        time: at(days * DAY),
    };
    assert!(t.admits(&reading(&commune, -1), at(0)));
    assert!(
        !t.admits(&reading(&commune, -11), at(0)),
        "before the period"
    );
    assert!(!t.admits(&reading(&other, -1), at(0)), "in another zone");
    assert!(!t.admits(&reading(&[], -1), at(0)), "position unknown");
}

#[test]
fn a_request_entirely_outside_the_period_is_denied() {
    let mut request = request();
    request.range = TimeRange::new(at(-30 * DAY), at(-20 * DAY));
    let decision = decide(&request, &[pooling()], at(0));
    assert_eq!(denied(&decision), DenyReason::OutsideValidity);
    // A sharing agreement with the same window serves that history.
    let mut sharing = pooling();
    sharing.pooling = false;
    sharing.target.territories.clear();
    permitted(decide(&request, &[sharing], at(0)));
}

#[test]
fn an_ended_pooling_serves_nothing_more() {
    let mut ended = pooling();
    ended.not_after = at(-DAY);
    assert_eq!(
        denied(&decide(&request(), &[ended], at(0))),
        DenyReason::OutsideValidity
    );
}

#[test]
fn pooling_terms_are_validated() {
    let problems = |a: &Agreement| match a.validate() {
        Ok(()) => Vec::new(),
        Err(err) => err
            .term_errors()
            .iter()
            .map(|e| e.path.clone())
            .collect::<Vec<_>>(),
    };
    assert!(problems(&pooling()).is_empty());
    for grantee in [
        Grantee::Public,
        "partner:acme".parse().unwrap(),
        Grantee::Tenant(tenant("metro")),
    ] {
        let mut a = pooling();
        a.grantee = grantee;
        assert_eq!(problems(&a), ["grantee"], "{}", a.grantee);
    }
    let mut sharing = pooling();
    sharing.pooling = false;
    assert_eq!(problems(&sharing), ["target.territories"]);
    let mut prohibited = pooling();
    let mut forbidden = prohibited.target.clone();
    forbidden.metrics = [("air.no2").parse().unwrap()].into();
    prohibited.prohibitions.push(beffroi_policy::Prohibition {
        action: prohibited.action,
        target: forbidden,
        unknown_terms: Default::default(),
    });
    assert_eq!(
        problems(&prohibited),
        ["prohibitions[0].target.territories"]
    );
}

#[test]
fn pooling_and_territories_round_trip_through_odrl() {
    let agreement = pooling();
    let document = to_odrl(&agreement);
    assert_eq!(document["beffroi:pooling"], true);
    assert_eq!(from_odrl(&document).unwrap(), agreement);
    let mut sharing = raw_agreement("plain");
    sharing.pseudonymise = false;
    let document = to_odrl(&sharing);
    assert!(document.get("beffroi:pooling").is_none());
    assert_eq!(from_odrl(&document).unwrap(), sharing);
}

#[test]
fn territories_pool_raw_rows_and_sensor_aggregates_only() {
    let mut aggregate = pooling();
    aggregate.action = beffroi_policy::Action::ReadAggregate;
    aggregate.fields = Default::default();
    aggregate.min_bucket_s = Some(3600);
    aggregate.spatial_level = beffroi_policy::SpatialLevel::Sensor;
    aggregate.validate().unwrap();
    aggregate.spatial_level = beffroi_policy::SpatialLevel::Zone;
    let errors = aggregate.validate().unwrap_err();
    let paths: Vec<_> = errors
        .term_errors()
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(paths, ["target.territories"]);
    aggregate.target.territories.clear();
    aggregate.target.tags = [crate::support::tag("air-quality")].into();
    aggregate.validate().unwrap();
}
