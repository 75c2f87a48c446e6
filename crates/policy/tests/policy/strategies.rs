//! Proptest strategies over a small universe (2 grantors, 3 requesters, 3 metrics, 3 zones,
//! 4 sensors, 2 tags) so that random agreements and requests meet often, and the finite set
//! of readings of that universe, used to compare scopes by enumeration.

use std::collections::BTreeSet;

use beffroi_policy::{
    AccessRequest, Action, Agreement, AgreementId, BucketSpec, Channel, Field, Function, Grantee,
    MetricPattern, Prohibition, Purpose, Read, SensorTag, SpatialLevel, State, Target, Term,
    TermSet, TimeRange, UnknownTerms, ZoneId,
};
use beffroi_protocol::{MetricName, SensorId};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use crate::support::{at, metric, partner, pattern, sensor, tag, tenant, zone, DAY, HOUR};

pub const GRANTORS: [&str; 2] = ["lyon", "grenoble"];
pub const METRICS: [&str; 3] = ["air.pm25", "air.no2", "noise.laeq"];
pub const PATTERNS: [&str; 6] = ["*", "air.*", "air.pm25", "air.no2", "noise.*", "noise.laeq"];
pub const ZONES: [&str; 3] = ["centre", "nord", "sud"];
pub const SENSORS: [&str; 4] = ["s1", "s2", "s3", "s4"];
pub const TAGS: [&str; 2] = ["school", "traffic"];

fn requesters() -> Vec<Grantee> {
    vec![
        Grantee::Tenant(tenant("villeurbanne")),
        partner("acme"),
        Grantee::Public,
    ]
}

fn grantees() -> Vec<Grantee> {
    let mut all = requesters();
    all.push(partner("other"));
    all
}

fn set_of<T: Ord + Clone + std::fmt::Debug + 'static>(
    items: Vec<T>,
    min: usize,
) -> impl Strategy<Value = BTreeSet<T>> {
    let max = items.len();
    subsequence(items, min..=max).prop_map(|v| v.into_iter().collect())
}

fn terms<T: Term>(min: usize) -> impl Strategy<Value = TermSet<T>> {
    set_of(T::ALL.to_vec(), min).prop_map(|s| s.into_iter().collect())
}

fn vocabulary<T: Term>() -> impl Strategy<Value = T> {
    select(T::ALL.to_vec())
}

fn zones(min: usize) -> impl Strategy<Value = BTreeSet<ZoneId>> {
    set_of(ZONES.iter().map(|z| zone(z)).collect(), min)
}

fn sensors(min: usize) -> impl Strategy<Value = BTreeSet<SensorId>> {
    set_of(SENSORS.iter().map(|s| sensor(s)).collect(), min)
}

fn tags(min: usize) -> impl Strategy<Value = BTreeSet<SensorTag>> {
    set_of(TAGS.iter().map(|t| tag(t)).collect(), min)
}

fn metric_patterns(min: usize, max: usize) -> impl Strategy<Value = BTreeSet<MetricPattern>> {
    subsequence(PATTERNS.to_vec(), min..=max).prop_map(|v| v.into_iter().map(pattern).collect())
}

/// A target; sparse restrictions so scopes often overlap.
fn target(with_tags: bool) -> impl Strategy<Value = Target> {
    (
        metric_patterns(1, 2),
        prop_oneof![3 => Just(BTreeSet::new()), 1 => zones(1)],
        prop_oneof![3 => Just(BTreeSet::new()), 1 => sensors(1)],
        prop_oneof![3 => Just(BTreeSet::new()), 1 => tags(1)],
    )
        .prop_map(move |(metrics, zones, sensors, tags)| Target {
            metrics,
            zones,
            sensors,
            tags: if with_tags { tags } else { BTreeSet::new() },
            territories: BTreeSet::new(),
            unknown_terms: UnknownTerms::new(),
        })
}

fn prohibition() -> impl Strategy<Value = Prohibition> {
    (vocabulary::<Action>(), target(false)).prop_map(|(action, target)| Prohibition {
        action,
        target,
        unknown_terms: UnknownTerms::new(),
    })
}

/// Any agreement of the universe: coherent or not, in any state, with a validity window
/// around `NOW`. About one in five is shaped to pass validation often.
pub fn agreement() -> impl Strategy<Value = Agreement> {
    (
        (
            select(vec!["a1", "a2", "a3", "b1", "b2"]),
            1u32..4,
            select(GRANTORS.to_vec()),
            select(grantees()),
            prop_oneof![1 => Just(State::Draft), 6 => Just(State::Active), 1 => Just(State::Suspended), 1 => Just(State::Revoked)],
            (-2i64..=0, prop_oneof![1 => Just(0i64), 8 => 1i64..5]),
            terms::<Purpose>(1),
        ),
        (
            vocabulary::<Action>(),
            target(true),
            prop_oneof![Just(None), Just(Some(600)), Just(Some(HOUR))],
            terms::<Function>(1),
            prop_oneof![3 => Just(1u32), 1 => 2u32..5],
            vocabulary::<SpatialLevel>(),
            any::<bool>(),
            terms::<Field>(0),
            prop_oneof![Just(0u64), Just(u64::from(HOUR)), Just(86_400u64)],
            prop::collection::vec(prohibition(), 0..2),
        ),
    )
        .prop_map(
            |(
                (id, version, grantor, grantee, state, (start, length), purposes),
                (action, target, min_bucket_s, functions, k, spatial_level, pseudonymise, fields, embargo_s, prohibitions),
            )| {
                let mut agreement = Agreement {
                    id: AgreementId::new(id).unwrap(),
                    version,
                    grantor: tenant(grantor),
                    grantee,
                    state,
                    not_before: at(start * DAY),
                    not_after: at((start + length) * DAY),
                    purposes,
                    action,
                    target,
                    min_bucket_s,
                    functions,
                    k,
                    spatial_level,
                    pseudonymise,
                    fields,
                    embargo_s,
                    prohibitions,
                    pooling: false,
                    unknown_terms: UnknownTerms::new(),
                };
                // Nudge towards coherence so that permits are frequent.
                match agreement.action {
                    Action::ReadRaw => {
                        agreement.k = 1;
                        agreement.spatial_level = SpatialLevel::Sensor;
                        agreement.fields.insert(Field::Time);
                    }
                    Action::ReadAggregate => {
                        agreement.fields = TermSet::new();
                        agreement.min_bucket_s.get_or_insert(HOUR);
                        if agreement.spatial_level == SpatialLevel::Sensor {
                            agreement.k = 1;
                        }
                    }
                }
                if agreement.fields.contains(Field::Gateway) && agreement.pseudonymise {
                    agreement.pseudonymise = false;
                }
                agreement
            },
        )
}

/// Agreements with distinct ids per grantor (the store's invariant).
pub fn agreements(max: usize) -> impl Strategy<Value = Vec<Agreement>> {
    prop::collection::vec(agreement(), 1..=max).prop_map(|mut all| {
        let mut seen = BTreeSet::new();
        all.retain(|a| seen.insert((a.grantor.clone(), a.id.clone())));
        all
    })
}

fn read() -> impl Strategy<Value = Read> {
    let raw = set_of(<Field as Term>::ALL.to_vec(), 0).prop_map(|fields| Read::Raw { fields });
    let aggregate = (
        select(vec![600u32, 1800, HOUR, 5400, 2 * HOUR]),
        select(vec![0u32, 600, 1800, HOUR]),
        set_of(<Function as Term>::ALL.to_vec(), 1),
        vocabulary::<SpatialLevel>(),
    )
        .prop_map(
            |(width_s, offset_s, functions, spatial_level)| Read::Aggregate {
                bucket: BucketSpec {
                    width_s,
                    offset_s: offset_s % width_s,
                },
                functions,
                spatial_level,
            },
        );
    prop_oneof![raw, aggregate]
}

/// Any request of the universe, for a range around `NOW`.
pub fn request() -> impl Strategy<Value = AccessRequest> {
    (
        select(requesters()),
        select(GRANTORS.to_vec()),
        vocabulary::<Channel>(),
        vocabulary::<Purpose>(),
        prop_oneof![3 => Just(None), 1 => select(vec!["a1", "a2", "b1"]).prop_map(Some)],
        metric_patterns(1, 2),
        prop_oneof![2 => Just(BTreeSet::new()), 1 => zones(1)],
        prop_oneof![3 => Just(BTreeSet::new()), 1 => sensors(1)],
        prop_oneof![3 => Just(BTreeSet::new()), 1 => tags(1)],
        (-3 * DAY..0, 1i64..2 * DAY),
        read(),
    )
        .prop_map(
            |(
                requester,
                grantor,
                channel,
                purpose,
                named,
                metrics,
                zones,
                sensors,
                tags,
                (from, length),
                read,
            )| {
                AccessRequest {
                    requester,
                    grantor: tenant(grantor),
                    channel,
                    purpose,
                    agreement: named.map(|id| AgreementId::new(id).unwrap()),
                    metrics,
                    zones,
                    sensors,
                    tags,
                    range: TimeRange::new(at(from), at(from + length)),
                    read,
                }
            },
        )
}

/// One reading of the universe: metric, sensor, zone (or none), tags.
#[derive(Debug, Clone)]
pub struct UniverseReading {
    pub metric: MetricName,
    pub sensor: SensorId,
    pub zone: Option<ZoneId>,
    pub tags: Vec<SensorTag>,
}

/// Every combination of metric, sensor, zone (or none) and tag set.
pub fn universe() -> Vec<UniverseReading> {
    let zones: Vec<Option<ZoneId>> = std::iter::once(None)
        .chain(ZONES.iter().map(|z| Some(zone(z))))
        .collect();
    let tag_sets = [
        vec![],
        vec![tag(TAGS[0])],
        vec![tag(TAGS[1])],
        vec![tag(TAGS[0]), tag(TAGS[1])],
    ];
    let mut out = Vec::new();
    for m in METRICS {
        for s in SENSORS {
            for z in &zones {
                for t in &tag_sets {
                    out.push(UniverseReading {
                        metric: metric(m),
                        sensor: sensor(s),
                        zone: z.clone(),
                        tags: t.clone(),
                    });
                }
            }
        }
    }
    out
}

/// Agreements and a request that, most of the time, aims at one of them: same parties,
/// one of its purposes, its metrics, a read of its kind on its grid — so that permits are
/// frequent — while the other agreements, prohibitions and perturbations stay random.
pub fn case() -> impl Strategy<Value = (Vec<Agreement>, AccessRequest)> {
    (
        agreements(6),
        request(),
        any::<prop::sample::Index>(),
        prop::array::uniform4(prop::bool::weighted(0.8)),
    )
        .prop_map(
            |(all, mut request, pick, [parties, purpose, read, metrics])| {
                let aim = &all[pick.index(all.len())];
                if parties {
                    request.grantor = aim.grantor.clone();
                    if aim.grantee != Grantee::Public {
                        request.requester = aim.grantee.clone();
                    }
                }
                if let (true, Some(first)) = (purpose, aim.purposes.iter().next()) {
                    request.purpose = first;
                }
                if let (true, Some(function)) = (read, aim.functions.iter().last()) {
                    request.read = match aim.action {
                        Action::ReadRaw => Read::Raw {
                            fields: aim.fields.known().iter().take(2).copied().collect(),
                        },
                        Action::ReadAggregate => Read::Aggregate {
                            bucket: BucketSpec::epoch_aligned(aim.min_bucket_s.unwrap_or(HOUR) * 2),
                            functions: [function].into(),
                            spatial_level: aim.spatial_level,
                        },
                    };
                }
                if metrics {
                    request.metrics = aim.target.metrics.clone();
                }
                (all, request)
            },
        )
}
