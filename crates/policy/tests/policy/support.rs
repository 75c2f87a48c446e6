//! Builders shared by the tests: ids, times around a fixed `NOW`, one typical aggregate and
//! one typical raw agreement, and matching requests.

use std::collections::BTreeSet;

use beffroi_policy::{
    AccessRequest, Action, Agreement, AgreementId, BucketSpec, Channel, Decision, DenyReason,
    Field, Function, Grantee, MetricPattern, Permit, Purpose, Read, SensorTag, SpatialLevel, State,
    Target, TermSet, TimeRange, UnknownTerms, ZoneId,
};
use beffroi_protocol::{MetricName, SensorId, TenantId, Timestamp};

/// One hour, in seconds.
pub const HOUR: u32 = 3600;
/// One day, in seconds.
pub const DAY: i64 = 86_400;
/// The decision instant of most tests, 2027-01-15T08:00:00Z (on an hour boundary).
pub const NOW: i64 = 1_800_000_000;

/// `NOW + seconds`.
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros((NOW + seconds) * 1_000_000)
}

pub fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

pub fn sensor(id: &str) -> SensorId {
    SensorId::new(id).unwrap()
}

pub fn zone(id: &str) -> ZoneId {
    ZoneId::new(id).unwrap()
}

pub fn tag(id: &str) -> SensorTag {
    SensorTag::new(id).unwrap()
}

pub fn metric(name: &str) -> MetricName {
    MetricName::new(name).unwrap()
}

pub fn pattern(text: &str) -> MetricPattern {
    text.parse().unwrap()
}

pub fn patterns(texts: &[&str]) -> BTreeSet<MetricPattern> {
    texts.iter().map(|t| pattern(t)).collect()
}

pub fn agreement_id(id: &str) -> AgreementId {
    AgreementId::new(id).unwrap()
}

pub fn partner(id: &str) -> Grantee {
    format!("partner:{id}").parse().unwrap()
}

/// `lyon` grants `partner:acme` hourly zone aggregates of `air.*` (avg, max, count; k = 3)
/// for research, valid 30 days either side of `NOW`.
pub fn aggregate_agreement(id: &str) -> Agreement {
    Agreement {
        id: agreement_id(id),
        version: 1,
        grantor: tenant("lyon"),
        grantee: partner("acme"),
        state: State::Active,
        not_before: at(-30 * DAY),
        not_after: at(30 * DAY),
        purposes: TermSet::from([Purpose::Research]),
        action: Action::ReadAggregate,
        target: Target::of_metrics([pattern("air.*")]),
        min_bucket_s: Some(HOUR),
        functions: TermSet::from([Function::Avg, Function::Max, Function::Count]),
        k: 3,
        spatial_level: SpatialLevel::Zone,
        pseudonymise: false,
        fields: TermSet::new(),
        embargo_s: 0,
        prohibitions: Vec::new(),
        pooling: false,
        unknown_terms: UnknownTerms::new(),
    }
}

/// The same parties, raw rows of `air.*` with time, value, metric and sensor, pseudonymised.
pub fn raw_agreement(id: &str) -> Agreement {
    Agreement {
        action: Action::ReadRaw,
        min_bucket_s: None,
        functions: TermSet::from([Function::Avg]),
        k: 1,
        spatial_level: SpatialLevel::Sensor,
        pseudonymise: true,
        fields: TermSet::from([Field::Time, Field::Value, Field::Metric, Field::Sensor]),
        ..aggregate_agreement(id)
    }
}

/// `partner:acme` asks `lyon` for hourly zone averages of `air.pm25` over the last day.
pub fn aggregate_request() -> AccessRequest {
    AccessRequest {
        requester: partner("acme"),
        grantor: tenant("lyon"),
        channel: Channel::Rest,
        purpose: Purpose::Research,
        agreement: None,
        metrics: patterns(&["air.pm25"]),
        zones: BTreeSet::new(),
        sensors: BTreeSet::new(),
        tags: BTreeSet::new(),
        range: TimeRange::new(at(-DAY), at(0)),
        read: Read::Aggregate {
            bucket: BucketSpec::epoch_aligned(HOUR),
            functions: [Function::Avg].into(),
            spatial_level: SpatialLevel::Zone,
        },
    }
}

/// The same for raw rows with every allowed field.
pub fn raw_request() -> AccessRequest {
    AccessRequest {
        read: Read::Raw {
            fields: BTreeSet::new(),
        },
        ..aggregate_request()
    }
}

/// The permit, or a panic naming the denial.
pub fn permitted(decision: Decision) -> Permit {
    match decision {
        Decision::Permit(permit) => permit,
        Decision::Deny(deny) => panic!("denied: {} {}", deny.reason, deny.message),
    }
}

/// The denial reason, or a panic naming the permit.
pub fn denied(decision: &Decision) -> DenyReason {
    match decision {
        Decision::Permit(permit) => panic!("permitted by {:?}", permit.agreement),
        Decision::Deny(deny) => deny.reason,
    }
}
