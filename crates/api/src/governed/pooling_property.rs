//! Property tests of pooled reads: over random placement histories, pooling agreements
//! (any grantee, state, window, territory, tag and sensor terms) and decision instants, no
//! reading reaches a tenant that is not a beneficiary of it — one with a pooling agreement of
//! the operator, in force at the decision, whose period holds the reading's time and whose
//! target holds its sensor and, when it names territories, the place the sensor stood when
//! the reading was measured. And an aggregate's sensor cell is kept only when its sensor
//! stood inside the target for the whole of the cell's bucket.
//!
//! The read is the governed read path's own: [`decide`], then the [`Registry`] built as a
//! REST read builds it (placements placed in the requester's zones) and
//! `Transforms::admits` on each reading's facts. The oracle is written apart from it: the
//! agreements' terms read directly, the placement in force found by scanning the history,
//! and the communes' boundaries checked as rectangles, not with [`beffroi_policy::Area`].

use std::collections::BTreeSet;

use beffroi_policy::{
    decide, AccessRequest, Action, Agreement, AgreementId, Channel, Decision, Field, Function,
    Grantee, MetricPattern, Permit, Purpose, Read, SensorTag, SpatialLevel, State, Target, TermSet,
    TimeRange, UnknownTerms, ZoneId,
};
use beffroi_protocol::{MetricName, SensorId, TenantId, Timestamp};
use beffroi_store::{Placement, Sensor, Zone};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::json;

use super::population::{territories_in, Registry};

const HOUR: i64 = 3_600_000_000;
const OPERATOR: &str = "metro";
/// The tenants that may ask: two adjoining communes and one whose zone holds no position.
const TENANTS: [&str; 3] = ["west", "east", "north"];
const SENSORS: [&str; 4] = ["s1", "s2", "s3", "s4"];
/// Longitudes a sensor may stand at (latitude 0.5): in west, in east, in neither.
const LONGITUDES: [f64; 3] = [0.5, 1.5, 2.5];

fn at(hours: i64) -> Timestamp {
    Timestamp::from_unix_micros(hours * HOUR)
}

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).expect("tenant")
}

/// Each tenant's zone `commune`, as `(x0, x1, y0, y1)`.
fn bounds(requester: &str) -> (f64, f64, f64, f64) {
    match requester {
        "west" => (0.0, 1.0, 0.0, 1.0),
        "east" => (1.0, 2.0, 0.0, 1.0),
        _ => (0.0, 2.0, 2.0, 3.0),
    }
}

fn zone_of(requester: &str) -> Zone {
    let (x0, x1, y0, y1) = bounds(requester);
    Zone {
        tenant: tenant(requester),
        id: ZoneId::new("commune").expect("zone"),
        name: requester.to_owned(),
        geometry: json!({"type": "Polygon",
            "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}),
    }
}

/// A sensor's moves: `(hour, longitude index or None for "position removed")`.
type History = Vec<(i64, Option<usize>)>;

#[derive(Debug, Clone)]
struct Case {
    tagged: Vec<bool>,
    histories: Vec<History>,
    agreements: Vec<Agreement>,
    now: i64,
}

fn history() -> impl Strategy<Value = History> {
    prop::collection::vec((0i64..12, prop::option::weighted(0.85, 0usize..3)), 0..4).prop_map(
        |mut moves| {
            moves.sort_by_key(|(hour, _)| *hour);
            moves.dedup_by_key(|(hour, _)| *hour);
            moves
        },
    )
}

fn agreement() -> impl Strategy<Value = Agreement> {
    (
        select(vec!["a1", "a2", "a3"]),
        prop_oneof![6 => Just(OPERATOR), 1 => Just("other")],
        prop_oneof![
            8 => select(TENANTS.to_vec()).prop_map(|t| Grantee::Tenant(tenant(t))),
            1 => Just(Grantee::Public),
            1 => Just(Grantee::Tenant(tenant(OPERATOR))),
        ],
        prop_oneof![6 => Just(State::Active), 1 => Just(State::Suspended), 1 => Just(State::Revoked)],
        (0i64..10, 1i64..10),
        any::<bool>(),
        prop_oneof![2 => Just(None), 1 => Just(Some("air"))],
        prop_oneof![3 => Just(Vec::new()), 1 => prop::sample::subsequence(SENSORS.to_vec(), 1..=2)],
    )
        .prop_map(
            |(id, grantor, grantee, state, (start, length), by_territory, tag, sensors)| {
                let mut agreement = agreement_for("west");
                if !by_territory {
                    agreement.target.territories.clear();
                }
                agreement.target.tags =
                    tag.map(|t| SensorTag::new(t).expect("tag")).into_iter().collect();
                agreement.target.sensors =
                    sensors.iter().map(|s| SensorId::new(*s).expect("sensor")).collect();
                Agreement {
                    id: AgreementId::new(id).expect("agreement id"),
                    grantor: tenant(grantor),
                    grantee,
                    state,
                    not_before: at(start),
                    not_after: at(start + length),
                    ..agreement
                }
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(any::<bool>(), SENSORS.len()),
        prop::collection::vec(history(), SENSORS.len()),
        prop::collection::vec(agreement(), 1..4),
        0i64..14,
    )
        .prop_map(|(tagged, histories, mut agreements, now)| {
            let mut ids = BTreeSet::new();
            agreements.retain(|a| ids.insert((a.grantor.clone(), a.id.clone())));
            Case {
                tagged,
                histories,
                agreements,
                now,
            }
        })
}

impl Case {
    fn sensors(&self) -> Vec<Sensor> {
        SENSORS
            .iter()
            .zip(&self.tagged)
            .map(|(id, tagged)| Sensor {
                tenant: tenant(OPERATOR),
                id: SensorId::new(*id).expect("sensor"),
                kind: "air".into(),
                unit: None,
                lat: None,
                lon: None,
                zone: None,
                tags: tagged
                    .then(|| SensorTag::new("air").expect("tag"))
                    .into_iter()
                    .collect(),
                placed_at: None,
            })
            .collect()
    }

    fn placements(&self) -> Vec<Placement> {
        SENSORS
            .iter()
            .zip(&self.histories)
            .flat_map(|(id, moves)| {
                moves.iter().map(|(hour, spot)| Placement {
                    tenant: tenant(OPERATOR),
                    sensor: SensorId::new(*id).expect("sensor"),
                    since: at(*hour),
                    lat: spot.map(|_| 0.5),
                    lon: spot.map(|i| LONGITUDES[i]),
                })
            })
            .collect()
    }

    /// Oracle: where sensor `s` stood at `time` (the last move at or before it).
    fn position(&self, s: usize, time: Timestamp) -> Option<(f64, f64)> {
        let mut stood = None;
        for (since, spot) in &self.histories[s] {
            if at(*since) <= time {
                stood = spot.map(|i| (LONGITUDES[i], 0.5));
            }
        }
        stood
    }

    /// Oracle: whether `requester` is a beneficiary of sensor `s`'s reading at `time`.
    fn beneficiary(&self, requester: &str, s: usize, time: Timestamp) -> bool {
        self.agreements.iter().any(|a| {
            a.grantor.as_str() == OPERATOR
                && a.grantee == Grantee::Tenant(tenant(requester))
                && a.state == State::Active
                && a.not_before <= at(self.now)
                && at(self.now) < a.not_after
                && a.not_before <= time
                && time < a.not_after
                && self.targeted(a, requester, s, time)
        })
    }

    /// Oracle: whether `agreement`'s target holds sensor `s` at `time` for `requester`.
    fn targeted(&self, agreement: &Agreement, requester: &str, s: usize, time: Timestamp) -> bool {
        let (x0, x1, y0, y1) = bounds(requester);
        let target = &agreement.target;
        (target.sensors.is_empty() || target.sensors.iter().any(|t| t.as_str() == SENSORS[s]))
            && (target.tags.is_empty() || self.tagged[s])
            && (target.territories.is_empty()
                || self
                    .position(s, time)
                    .is_some_and(|(x, y)| x0 <= x && x < x1 && y0 <= y && y < y1))
    }

    /// Oracle: whether `agreement`'s target holds sensor `s` at every time of `range` (its
    /// start and every move inside it: positions change only there).
    fn targeted_throughout(
        &self,
        agreement: &Agreement,
        requester: &str,
        s: usize,
        range: TimeRange,
    ) -> bool {
        let moves = self.histories[s].iter().map(|(hour, _)| at(*hour));
        std::iter::once(range.from)
            .chain(moves.filter(|t| range.from < *t && *t < range.to))
            .all(|time| self.targeted(agreement, requester, s, time))
    }
}

fn request(requester: &str) -> AccessRequest {
    AccessRequest {
        requester: Grantee::Tenant(tenant(requester)),
        grantor: tenant(OPERATOR),
        channel: Channel::Rest,
        purpose: Purpose::EnvironmentalMonitoring,
        agreement: None,
        metrics: ["air.*".parse::<MetricPattern>().expect("pattern")].into(),
        zones: BTreeSet::new(),
        sensors: BTreeSet::new(),
        tags: BTreeSet::new(),
        range: TimeRange::new(at(0), at(14)),
        read: Read::Raw {
            fields: BTreeSet::new(),
        },
    }
}

/// The permit `requester` gets in `case`, and the registry its read builds.
fn permitted(case: &Case, requester: &str) -> Option<(Permit, Registry)> {
    let Decision::Permit(permit) = decide(&request(requester), &case.agreements, at(case.now))
    else {
        return None;
    };
    let territories = territories_in(vec![zone_of(requester)], permit.transforms.population());
    let registry = Registry::new(case.sensors(), &case.placements(), &territories);
    Some((permit, registry))
}

fn no2() -> MetricName {
    MetricName::new("air.no2").expect("metric")
}

/// Half-hours `from..from + width`.
fn half_hours(from: i64, width: i64) -> TimeRange {
    let half = |n: i64| Timestamp::from_unix_micros(n * HOUR / 2);
    TimeRange::new(half(from), half(from + width))
}

/// What reached `requester` in `case`: `(sensor index, time)` of every reading admitted,
/// among one per sensor every half hour (on the hour too: when sensors move and windows turn).
fn served(case: &Case, requester: &str) -> Vec<(usize, Timestamp)> {
    let now = at(case.now);
    let Some((permit, registry)) = permitted(case, requester) else {
        return Vec::new();
    };
    let metric = no2();
    let mut reached = Vec::new();
    for (s, id) in SENSORS.iter().enumerate() {
        let sensor = SensorId::new(*id).expect("sensor");
        for half_hours in 0..28 {
            let time = Timestamp::from_unix_micros(half_hours * HOUR / 2);
            if permit
                .transforms
                .admits(&registry.facts(&metric, &sensor, time), now)
            {
                reached.push((s, time));
            }
        }
    }
    reached
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_reading_reaches_a_tenant_that_is_not_its_beneficiary_then_and_there(case in case()) {
        for requester in TENANTS {
            for (s, time) in served(&case, requester) {
                prop_assert!(
                    case.beneficiary(requester, s, time),
                    "{requester} got {}'s reading of {time}", SENSORS[s]
                );
            }
        }
    }

    /// A sensor cell of a pooled aggregate (`governed::cells`) is kept only when its sensor
    /// stood inside the permit's target for the whole of the cell's bucket.
    #[test]
    fn a_cell_is_kept_only_if_its_sensor_stood_inside_all_through_its_bucket(
        case in case(),
        from in 0i64..28,
        width in 1i64..8,
    ) {
        let bucket = half_hours(from, width);
        for requester in TENANTS {
            let Some((permit, registry)) = permitted(&case, requester) else {
                continue;
            };
            let agreement = case
                .agreements
                .iter()
                .find(|a| a.grantor.as_str() == OPERATOR && a.id == permit.agreement.id)
                .expect("the permitting agreement");
            for (s, id) in SENSORS.iter().enumerate() {
                let sensor = SensorId::new(*id).expect("sensor");
                let scope = permit.transforms.population();
                if registry.admits_throughout(scope, &no2(), &sensor, bucket) {
                    prop_assert!(
                        case.targeted_throughout(agreement, requester, s, bucket),
                        "{requester} got a cell of {id} over {bucket:?}"
                    );
                }
            }
        }
    }
}

/// The property is not vacuous: a fixed case where one sensor crosses from west to east.
#[test]
fn a_sensor_crossing_the_boundary_changes_sides_at_its_move() {
    let pool = |requester: &str| {
        let mut agreement = agreement_for(requester);
        agreement.id = AgreementId::new(format!("pool-{requester}")).expect("id");
        agreement
    };
    let case = Case {
        tagged: vec![false; 4],
        histories: vec![vec![(0, Some(0)), (5, Some(1))], vec![], vec![], vec![]],
        agreements: vec![pool("west"), pool("east")],
        now: 11,
    };
    let hours = |requester| -> Vec<i64> {
        served(&case, requester)
            .into_iter()
            .filter(|(s, _)| *s == 0)
            .map(|(_, time)| time.unix_micros() / HOUR)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    assert_eq!(hours("west"), [0, 1, 2, 3, 4]);
    assert_eq!(hours("east"), [5, 6, 7, 8, 9, 10], "up to now, 11 h");
    assert!(served(&case, "north").is_empty());
    // Its cells: each commune's on its side, neither the one it crossed in.
    let s1 = SensorId::new("s1").expect("sensor");
    let kept = |requester, from, width| {
        let (permit, registry) = permitted(&case, requester).expect("permit");
        let scope = permit.transforms.population();
        registry.admits_throughout(scope, &no2(), &s1, half_hours(from, width))
    };
    assert!(kept("west", 8, 2) && !kept("east", 8, 2), "hour 4");
    assert!(!kept("west", 9, 2) && !kept("east", 9, 2), "4:30 to 5:30");
    assert!(!kept("west", 10, 2) && kept("east", 10, 2), "hour 5");
}

/// A pooling of every position in `requester`'s zone, over hours 0..12.
fn agreement_for(requester: &str) -> Agreement {
    let mut target = Target::of_metrics(["air.*".parse::<MetricPattern>().expect("pattern")]);
    target.territories = [ZoneId::new("commune").expect("zone")].into();
    Agreement {
        id: AgreementId::new("pool").expect("id"),
        version: 1,
        grantor: tenant(OPERATOR),
        grantee: Grantee::Tenant(tenant(requester)),
        state: State::Active,
        not_before: at(0),
        not_after: at(12),
        purposes: TermSet::from([Purpose::EnvironmentalMonitoring]),
        action: Action::ReadRaw,
        target,
        min_bucket_s: None,
        functions: TermSet::from([Function::Avg]),
        k: 1,
        spatial_level: SpatialLevel::Sensor,
        pseudonymise: false,
        fields: TermSet::from([Field::Time, Field::Value, Field::Sensor]),
        embargo_s: 0,
        prohibitions: Vec::new(),
        pooling: true,
        unknown_terms: UnknownTerms::new(),
    }
}
