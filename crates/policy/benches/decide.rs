//! Policy decision cost per query (µs) with 1, 10 and 100 agreements on the platform (one of
//! them permits, the others are of other grantees, other grantors, or deny on a term), the
//! per-reading predicate the live hub calls for every value, and the cost of suppressing a
//! 24 × 50 cell table (a day of hourly buckets over 50 zones). Plain std timing:
//! `cargo bench -p beffroi-policy`.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use beffroi_policy::{
    decide, suppress, AccessRequest, Action, Agreement, AgreementId, BucketSpec, Cell, CellStats,
    Channel, Function, Grantee, MetricPattern, Prohibition, Purpose, Read, ReadingFacts, Shape,
    SpatialLevel, State, Target, TermSet, TimeRange, UnknownTerms,
};
use beffroi_protocol::{MetricName, SensorId, TenantId, Timestamp};

const HOUR: i64 = 3600;
const NOW: i64 = 1_800_000_000;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros((NOW + seconds) * 1_000_000)
}

fn pattern(text: &str) -> MetricPattern {
    text.parse().expect("valid pattern")
}

fn partner(name: &str) -> Grantee {
    format!("partner:{name}").parse().expect("valid partner")
}

/// Agreement `i`: the first permits the request; the rest vary grantor, grantee and terms.
fn agreement(i: usize) -> Agreement {
    let grantor = if i % 3 == 2 { "grenoble" } else { "lyon" };
    let grantee = match i % 4 {
        0 => partner("acme"),
        1 => partner(&format!("p{i}")),
        2 => Grantee::Public,
        _ => Grantee::Tenant(TenantId::new(format!("t{i}")).expect("valid tenant")),
    };
    let mut purposes = TermSet::from([Purpose::Research]);
    if i % 5 == 1 {
        purposes = TermSet::from([Purpose::Billing]);
    }
    Agreement {
        id: AgreementId::new(format!("a{i:03}")).expect("valid id"),
        version: 1,
        grantor: TenantId::new(grantor).expect("valid tenant"),
        grantee,
        state: if i % 7 == 3 {
            State::Suspended
        } else {
            State::Active
        },
        not_before: at(-30 * 86_400),
        not_after: at(30 * 86_400),
        purposes,
        action: Action::ReadAggregate,
        target: Target {
            zones: (0..5)
                .map(|z| SensorId::new(format!("z{}", (i + z) % 50)).expect("valid zone"))
                .collect(),
            ..Target::of_metrics([pattern(if i.is_multiple_of(2) {
                "air.*"
            } else {
                "noise.*"
            })])
        },
        min_bucket_s: Some(3600),
        functions: TermSet::from([Function::Avg, Function::Max]),
        k: 3,
        spatial_level: SpatialLevel::Zone,
        pseudonymise: false,
        fields: TermSet::new(),
        embargo_s: 3600,
        prohibitions: if i % 10 == 9 {
            vec![Prohibition {
                action: Action::ReadRaw,
                target: Target::of_metrics([pattern("air.pm25")]),
                unknown_terms: UnknownTerms::new(),
            }]
        } else {
            Vec::new()
        },
        unknown_terms: UnknownTerms::new(),
        pooling: false,
    }
}

fn request() -> AccessRequest {
    AccessRequest {
        requester: partner("acme"),
        grantor: TenantId::new("lyon").expect("valid tenant"),
        channel: Channel::Rest,
        purpose: Purpose::Research,
        agreement: None,
        metrics: [pattern("air.pm25")].into(),
        zones: BTreeSet::new(),
        sensors: BTreeSet::new(),
        tags: BTreeSet::new(),
        range: TimeRange::new(at(-86_400), at(0)),
        read: Read::Aggregate {
            bucket: BucketSpec::epoch_aligned(3600),
            functions: [Function::Avg].into(),
            spatial_level: SpatialLevel::Zone,
        },
    }
}

fn per_call(what: &str, calls: u32, elapsed: Duration) {
    println!(
        "{what:>40}: {:>8.2} µs",
        elapsed.as_secs_f64() * 1e6 / f64::from(calls)
    );
}

fn main() {
    let request = request();
    for count in [1usize, 10, 100] {
        let agreements: Vec<Agreement> = (0..count).map(agreement).collect();
        assert!(decide(&request, &agreements, at(0)).permit().is_some());
        let calls = 20_000;
        let start = Instant::now();
        for _ in 0..calls {
            black_box(decide(black_box(&request), black_box(&agreements), at(0)));
        }
        per_call(
            &format!("decide, {count} agreement(s)"),
            calls,
            start.elapsed(),
        );
    }

    let agreements: Vec<Agreement> = (0..10).map(agreement).collect();
    let permit = decide(&request, &agreements, at(0))
        .permit()
        .cloned()
        .expect("permitted");
    let (metric, sensor, zone) = (
        MetricName::new("air.pm25").expect("valid metric"),
        SensorId::new("s1").expect("valid sensor"),
        SensorId::new("z3").expect("valid zone"),
    );
    let reading = ReadingFacts {
        metric: &metric,
        sensor: &sensor,
        zone: Some(&zone),
        tags: &[],
        time: at(-2 * HOUR),
        territories: &[],
    };
    let calls = 1_000_000;
    let start = Instant::now();
    let mut admitted = 0u32;
    for _ in 0..calls {
        admitted += u32::from(permit.transforms.admits(black_box(&reading), at(0)));
    }
    per_call("admits (per reading, live path)", calls, start.elapsed());
    assert_eq!(admitted, calls);

    let Shape::Aggregate(aggregation) = &permit.transforms.shape else {
        panic!("an aggregate permit")
    };
    let cells: Vec<Cell<SensorId>> = (0..24i64)
        .flat_map(|hour| {
            (0..50u32).map(move |z| Cell {
                bucket: at((hour - 24) * HOUR),
                unit: SensorId::new(format!("z{z:02}")).expect("valid zone"),
                stats: CellStats {
                    distinct_sensors: (z * 7 + hour as u32) % 9,
                    count: 60,
                    sum: f64::from(z) * 3.5,
                    min: 1.0,
                    max: 9.0,
                },
            })
        })
        .collect();
    let calls = 500;
    let start = Instant::now();
    let mut suppressed = 0;
    for _ in 0..calls {
        let out = suppress(black_box(&cells), aggregation).expect("canonical table");
        suppressed = out.suppressed_cells;
        black_box(out);
    }
    per_call("suppress 24 x 50 cells (k = 3)", calls, start.elapsed());
    println!(
        "{:>40}: {suppressed} of {}",
        "cells suppressed",
        cells.len()
    );
}
