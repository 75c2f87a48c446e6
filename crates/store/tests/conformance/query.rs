//! Query cases: tenant isolation, keyset pages, filters, bucket aggregates, retention.

use std::collections::BTreeMap;
use std::sync::Arc;

use beffroi_protocol::{MetricName, SensorId, Timestamp, Value};
use beffroi_store::{
    Bucket, EventScope, QuarantineReason, QuarantineRecord, ReadingFilter, SecurityEvent,
    SecurityEventKind, Sensor, Store,
};

use crate::fixtures::*;

const DAY: i64 = 86_400 * SEC;

pub async fn tenant_isolation(store: Arc<dyn Store>) {
    // Same gateway and sensor ids in both tenants.
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    tenant_with_gateway(&store, "brest", "gw-1").await;
    store
        .commit(&[batch(
            "lyon",
            "gw-1",
            1,
            vec![num("s1", "air.pm25", T0, 5.0)],
        )])
        .await
        .expect("commit");
    store
        .quarantine(&QuarantineRecord {
            tenant: Some(tenant("lyon")),
            gateway: Some(gw("gw-1")),
            topic: "beffroi/v1/lyon/gw-1/batch".into(),
            seq: Some(9),
            reason: QuarantineReason::BadSignature,
            detail: "bad".into(),
            received_at: at(T0),
            payload: vec![1, 2, 3],
            settles_seq: false,
        })
        .await
        .expect("quarantine");
    store
        .security_event(&SecurityEvent {
            time: at(T0),
            tenant: Some(tenant("lyon")),
            gateway: Some(gw("gw-1")),
            address: Some("192.0.2.1:5000".into()),
            kind: SecurityEventKind::AclViolation,
            detail: "publish elsewhere".into(),
        })
        .await
        .expect("event");
    let lyon = all_of("lyon", T0 - DAY, T0 + DAY);
    let brest = all_of("brest", T0 - DAY, T0 + DAY);
    assert_eq!(read_all(&store, &lyon, 10).await.len(), 1);
    assert!(read_all(&store, &brest, 10).await.is_empty());
    let brest_sensor = ReadingFilter {
        sensors: vec![sensor("s1")],
        ..brest.clone()
    };
    assert!(read_all(&store, &brest_sensor, 10).await.is_empty());
    assert_eq!(
        store.buckets(&lyon, 60 * SEC).await.expect("buckets").len(),
        1
    );
    assert!(store
        .buckets(&brest, 60 * SEC)
        .await
        .expect("buckets")
        .is_empty());
    assert_eq!(
        store
            .list_sensors(&tenant("lyon"))
            .await
            .expect("sensors")
            .len(),
        1
    );
    assert!(store
        .list_sensors(&tenant("brest"))
        .await
        .expect("sensors")
        .is_empty());
    assert_eq!(
        store
            .list_quarantine(&tenant("lyon"), 10, 0)
            .await
            .expect("q")
            .items
            .len(),
        1
    );
    assert!(store
        .list_quarantine(&tenant("brest"), 10, 0)
        .await
        .expect("q")
        .items
        .is_empty());
    assert_eq!(
        store
            .list_security_events(&EventScope::Tenant(tenant("lyon")), 10, 0)
            .await
            .expect("e")
            .items
            .len(),
        1
    );
    assert!(store
        .list_security_events(&EventScope::Tenant(tenant("brest")), 10, 0)
        .await
        .expect("e")
        .items
        .is_empty());
    // Brest's gateway gw-1 has its own seqs.
    assert_eq!(
        store
            .seq_state(&tenant("brest"), &gw("gw-1"))
            .await
            .expect("seq")
            .contiguous,
        0
    );
    let brest_gw = store
        .gateway(&tenant("brest"), &gw("gw-1"))
        .await
        .expect("gw")
        .expect("gw");
    assert_eq!(brest_gw.state.last_committed_seq, None);
    // Brest committing the same (gateway, seq) is not a duplicate of Lyon's.
    let out = store
        .commit(&[batch(
            "brest",
            "gw-1",
            1,
            vec![num("s1", "air.pm25", T0, 7.0)],
        )])
        .await
        .expect("commit");
    assert_eq!(out, [beffroi_store::CommitOutcome::Stored]);
    let got = read_all(&store, &brest, 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value, Value::Number(7.0));
    // A zone filter of one tenant never selects another tenant's sensors.
    store
        .upsert_sensor(&Sensor {
            tenant: tenant("brest"),
            id: sensor("s1"),
            kind: "air".into(),
            unit: None,
            lat: None,
            lon: None,
            zone: Some(sensor("port")),
            tags: Vec::new(),
            placed_at: None,
        })
        .await
        .expect("sensor");
    let lyon_port = ReadingFilter {
        zone: Some(sensor("port")),
        ..lyon
    };
    assert!(read_all(&store, &lyon_port, 10).await.is_empty());
}

pub async fn raw_pagination(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    // 300 readings over 10 batches; many share a time.
    let mut expected = Vec::new();
    let mut batches = Vec::new();
    for seq in 1..=10u64 {
        let readings: Vec<_> = (0..30)
            .map(|i| {
                let time = T0 + ((seq as i64 * 7 + i) % 13) * SEC;
                num(
                    &format!("s{}", i % 4),
                    "air.pm25",
                    time,
                    (seq * 100 + i as u64) as f64,
                )
            })
            .collect();
        for r in &readings {
            expected.push((r.time, seq, r.value.clone()));
        }
        batches.push(batch("lyon", "gw-1", seq, readings));
    }
    // Committed in two calls, the second in reverse order.
    store.commit(&batches[..5]).await.expect("commit");
    let mut rest = batches[5..].to_vec();
    rest.reverse();
    store.commit(&rest).await.expect("commit");

    let filter = all_of("lyon", T0, T0 + DAY);
    let whole = read_all(&store, &filter, 1000).await;
    assert_eq!(whole.len(), 300);
    assert!(whole.windows(2).all(|w| w[0].time <= w[1].time));
    for page in [1, 7, 30, 299, 300] {
        let paged = read_all(&store, &filter, page).await;
        assert_eq!(paged, whole, "page size {page}");
    }
    let mut got: Vec<_> = whole
        .iter()
        .map(|r| (r.time, r.seq, r.value.clone()))
        .collect();
    let key = |x: &(beffroi_protocol::Timestamp, u64, Value)| match x.2 {
        Value::Number(n) => (x.0, x.1, n as i64),
        _ => (x.0, x.1, -1),
    };
    got.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(got, expected);
    // The last page says there is nothing after it.
    let page = store.readings(&filter, 300, None).await.expect("page");
    assert_eq!(page.readings.len(), 300);
    assert_eq!(page.next, None);
}

pub async fn reading_filters(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    for (id, zone) in [("a", Some("north")), ("b", Some("south")), ("c", None)] {
        store
            .upsert_sensor(&Sensor {
                tenant: tenant("lyon"),
                id: sensor(id),
                kind: "air".into(),
                unit: None,
                lat: None,
                lon: None,
                zone: zone.map(sensor),
                tags: Vec::new(),
                placed_at: None,
            })
            .await
            .expect("sensor");
    }
    let mut readings = Vec::new();
    for (i, s) in ["a", "b", "c"].into_iter().enumerate() {
        for m in ["air.pm25", "air.no2"] {
            for k in 0..4i64 {
                readings.push(num(s, m, T0 + k * 60 * SEC, (i as i64 * 10 + k) as f64));
            }
        }
    }
    store
        .commit(&[batch("lyon", "gw-1", 1, readings)])
        .await
        .expect("commit");
    let count = |filter: ReadingFilter| {
        let store = store.clone();
        async move { read_all(&store, &filter, 5).await.len() }
    };
    let all = all_of("lyon", T0, T0 + DAY);
    assert_eq!(count(all.clone()).await, 24);
    assert_eq!(
        count(ReadingFilter {
            sensors: vec![sensor("a"), sensor("c")],
            ..all.clone()
        })
        .await,
        16
    );
    assert_eq!(
        count(ReadingFilter {
            metrics: vec![metric("air.no2")],
            ..all.clone()
        })
        .await,
        12
    );
    assert_eq!(
        count(ReadingFilter {
            zone: Some(sensor("north")),
            metrics: vec![metric("air.pm25")],
            ..all.clone()
        })
        .await,
        4
    );
    assert_eq!(
        count(ReadingFilter {
            zone: Some(sensor("south")),
            sensors: vec![sensor("a")],
            ..all.clone()
        })
        .await,
        0
    );
    // `from` inclusive, `to` exclusive.
    assert_eq!(
        count(ReadingFilter {
            from: at(T0 + 60 * SEC),
            to: at(T0 + 180 * SEC),
            ..all.clone()
        })
        .await,
        12
    );
}

/// Pages of every kind of series filter, followed across cursors, hold exactly the filter's
/// readings in the unfiltered order. The tenant has 80 series (40 sensors × 2 metrics), so
/// the stores read some of these filters by walking the tenant's readings (a metric, three
/// sensors, a large zone's metric) and others by merging a few series (a sensor, a small
/// zone); every reading of a minute shares its time, so ties are broken by id across series.
pub async fn raw_pages_by_filter(store: Arc<dyn Store>) {
    const MINUTES: i64 = 30;
    const METRICS: [&str; 2] = ["air.no2", "air.pm25"];
    let sensor_id = |n: usize| format!("s{n:02}");
    let zone_of = |n: usize| match n {
        0 | 1 => Some("small"),
        20.. => Some("big"),
        _ => None,
    };
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    tenant_with_gateway(&store, "brest", "gw-1").await;
    for n in 0..40 {
        store
            .upsert_sensor(&Sensor {
                tenant: tenant("lyon"),
                id: sensor(&sensor_id(n)),
                kind: "air".into(),
                unit: None,
                lat: None,
                lon: None,
                zone: zone_of(n).map(sensor),
                tags: Vec::new(),
                placed_at: None,
            })
            .await
            .expect("sensor");
    }
    // Minute-major, as gateways send them; batches of 100 readings, committed in an order
    // that is not the time order.
    let mut readings = Vec::new();
    for minute in 0..MINUTES {
        for n in 0..40 {
            for m in METRICS {
                let value = (readings.len() + 1) as f64;
                readings.push(num(&sensor_id(n), m, T0 + minute * 60 * SEC, value));
            }
        }
    }
    let mut batches: Vec<_> = readings
        .chunks(100)
        .zip(1u64..)
        .map(|(chunk, seq)| batch("lyon", "gw-1", seq, chunk.to_vec()))
        .collect();
    batches.swap(0, 5);
    batches.reverse();
    for chunk in batches.chunks(4) {
        store.commit(chunk).await.expect("commit");
    }
    // Another tenant with the same sensor and metric names.
    let brest: Vec<_> = (0..MINUTES)
        .flat_map(|minute| {
            (0..10).map(move |n| num(&format!("s{n:02}"), "air.no2", T0 + minute * 60 * SEC, -1.0))
        })
        .collect();
    store
        .commit(&[batch("brest", "gw-1", 1, brest)])
        .await
        .expect("commit");

    let all = all_of("lyon", T0, T0 + DAY);
    let reference = read_all(&store, &all, 10_000).await;
    assert_eq!(reference.len(), readings.len());
    assert!(reference.windows(2).all(|w| w[0].time <= w[1].time));
    let zone_sensors = |zone: &str| -> Vec<String> {
        (0..40)
            .filter(|&n| zone_of(n) == Some(zone))
            .map(sensor_id)
            .collect()
    };
    let cases: Vec<(&str, ReadingFilter)> = vec![
        ("no filter", all.clone()),
        (
            "a metric",
            ReadingFilter {
                metrics: vec![metric("air.no2")],
                ..all.clone()
            },
        ),
        (
            "a sensor",
            ReadingFilter {
                sensors: vec![sensor("s05")],
                ..all.clone()
            },
        ),
        (
            "three sensors",
            ReadingFilter {
                sensors: vec![sensor("s05"), sensor("s06"), sensor("s07")],
                ..all.clone()
            },
        ),
        (
            "a small zone",
            ReadingFilter {
                zone: Some(sensor("small")),
                ..all.clone()
            },
        ),
        (
            "a large zone's metric",
            ReadingFilter {
                zone: Some(sensor("big")),
                metrics: vec![metric("air.pm25")],
                ..all.clone()
            },
        ),
        (
            "a sensor's metric in a zone",
            ReadingFilter {
                zone: Some(sensor("small")),
                sensors: vec![sensor("s01")],
                metrics: vec![metric("air.no2")],
                ..all.clone()
            },
        ),
        (
            "a sensor over part of the range",
            ReadingFilter {
                sensors: vec![sensor("s05")],
                from: at(T0 + 10 * 60 * SEC),
                to: at(T0 + 20 * 60 * SEC),
                ..all.clone()
            },
        ),
        (
            "part of the range",
            ReadingFilter {
                from: at(T0 + 10 * 60 * SEC),
                to: at(T0 + 20 * 60 * SEC),
                ..all.clone()
            },
        ),
    ];
    for (name, filter) in cases {
        let zone = filter.zone.as_ref().map(|z| zone_sensors(z.as_str()));
        let selects = |s: &SensorId, m: &MetricName, t: Timestamp| {
            (filter.sensors.is_empty() || filter.sensors.contains(s))
                && (filter.metrics.is_empty() || filter.metrics.contains(m))
                && zone
                    .as_ref()
                    .is_none_or(|z| z.iter().any(|id| id == s.as_str()))
                && filter.from <= t
                && t < filter.to
        };
        let expected: Vec<_> = reference
            .iter()
            .filter(|r| selects(&r.sensor, &r.metric, r.time))
            .cloned()
            .collect();
        let in_input = readings
            .iter()
            .filter(|r| selects(&r.sensor, &r.metric, r.time))
            .count();
        assert!(in_input > 0, "{name}: selects readings");
        assert_eq!(
            expected.len(),
            in_input,
            "{name}: the reference holds them all"
        );
        for page in [1, 7, 64, 10_000] {
            assert_eq!(
                read_all(&store, &filter, page).await,
                expected,
                "{name}, pages of {page}"
            );
        }
    }
    // Nothing selected: an empty last page, also after a cursor.
    let nothing = ReadingFilter {
        sensors: vec![sensor("nope")],
        ..all.clone()
    };
    let first = store.readings(&all, 3, None).await.expect("page");
    for after in [None, first.next] {
        let page = store.readings(&nothing, 10, after).await.expect("page");
        assert!(page.readings.is_empty());
        assert_eq!(page.next, None);
    }
}

/// The fixed data set: values are multiples of 1/4, so every sum is exact in any order.
fn bucket_data() -> Vec<beffroi_protocol::Reading> {
    let mut readings = Vec::new();
    for i in 0..240i64 {
        let time = T0 - 90 * SEC + i * 17 * SEC + (i % 3) * 250_000;
        let sensor_id = ["a", "b", "c-d", "cd"][(i % 4) as usize];
        let metric_name = if i % 5 == 0 { "air.no2" } else { "air.pm25" };
        readings.push(num(
            sensor_id,
            metric_name,
            time,
            ((i * 37) % 101) as f64 / 4.0 - 7.5,
        ));
    }
    // Non-numeric readings are not aggregated.
    readings.push(reading("a", "door.open", T0, Value::Bool(true)));
    readings.push(reading(
        "a",
        "air.pm25",
        T0 + SEC,
        Value::Text("n/a".into()),
    ));
    // Before the epoch: the bucket floors, it does not truncate toward zero.
    readings.push(num("a", "air.pm25", -90 * SEC, 2.0));
    readings
}

fn expected_buckets(readings: &[beffroi_protocol::Reading], width: i64) -> Vec<Bucket> {
    let mut groups: BTreeMap<(i64, String, String), Vec<f64>> = BTreeMap::new();
    for r in readings {
        if let Value::Number(v) = r.value {
            let t = r.time.unix_micros();
            let start = t - t.rem_euclid(width);
            groups
                .entry((start, r.sensor.to_string(), r.metric.to_string()))
                .or_default()
                .push(v);
        }
    }
    groups
        .into_iter()
        .map(|((start, s, m), values)| Bucket {
            start: at(start),
            sensor: sensor(&s),
            metric: metric(&m),
            avg: values.iter().sum::<f64>() / values.len() as f64,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            count: values.len() as u64,
        })
        .collect()
}

pub async fn bucket_aggregates(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    let data = bucket_data();
    for (seq, chunk) in data.chunks(50).enumerate() {
        store
            .commit(&[batch("lyon", "gw-1", seq as u64 + 1, chunk.to_vec())])
            .await
            .expect("commit");
    }
    let from = -DAY;
    let to = T0 + DAY;
    for width in [60 * SEC, 300 * SEC, 3600 * SEC, DAY, 7 * SEC + 3] {
        let got = store
            .buckets(&all_of("lyon", from, to), width)
            .await
            .expect("buckets");
        assert_eq!(got, expected_buckets(&data, width), "width {width}");
    }
    // Filters apply to buckets as to raw readings.
    let filter = ReadingFilter {
        sensors: vec![sensor("a")],
        metrics: vec![metric("air.pm25")],
        ..all_of("lyon", T0, to)
    };
    let subset: Vec<_> = data
        .iter()
        .filter(|r| r.sensor.as_str() == "a" && r.metric.as_str() == "air.pm25")
        .filter(|r| r.time.unix_micros() >= T0)
        .cloned()
        .collect();
    assert_eq!(
        store.buckets(&filter, 60 * SEC).await.expect("buckets"),
        expected_buckets(&subset, 60 * SEC)
    );
    store
        .refresh_aggregates(at(from), at(to))
        .await
        .expect("refresh");
    assert_eq!(
        store
            .buckets(&all_of("lyon", from, to), 60 * SEC)
            .await
            .expect("buckets"),
        expected_buckets(&data, 60 * SEC)
    );
}

pub async fn retention(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    let old: Vec<_> = (0..10)
        .map(|i| num("s1", "air.pm25", T0 - 40 * DAY + i * SEC, 1.0))
        .collect();
    let recent: Vec<_> = (0..10)
        .map(|i| num("s1", "air.pm25", T0 + i * SEC, 2.0))
        .collect();
    let mixed: Vec<_> = vec![
        num("s2", "air.pm25", T0 - 2 * SEC, 3.0),
        num("s2", "air.pm25", T0 + 2 * SEC, 4.0),
    ];
    store
        .commit(&[
            batch("lyon", "gw-1", 1, old),
            batch("lyon", "gw-1", 2, recent),
            batch("lyon", "gw-1", 3, mixed),
        ])
        .await
        .expect("commit");
    let removed = store.apply_retention(at(T0)).await.expect("retention");
    assert!(removed > 0);
    let left = read_all(&store, &all_of("lyon", T0 - 100 * DAY, T0 + DAY), 100).await;
    assert_eq!(left.len(), 11);
    assert!(left.iter().all(|r| r.time.unix_micros() >= T0));
    assert_eq!(store.apply_retention(at(T0)).await.expect("retention"), 0);
    // Acks are unaffected: batches are kept.
    assert_eq!(
        store
            .seq_state(&tenant("lyon"), &gw("gw-1"))
            .await
            .expect("seq")
            .contiguous,
        3
    );
}

/// One reading per series: the latest at or after `since` (ties on time: the highest id, i.e.
/// the later batch position), whatever order the batches were committed in; other tenants'
/// series and series quiet since `since` are left out.
pub async fn latest_readings(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    tenant_with_gateway(&store, "lyon", "gw-2").await;
    tenant_with_gateway(&store, "brest", "gw-1").await;
    let since = T0 + 10 * SEC;
    assert!(store
        .latest_readings(&tenant("lyon"), at(since))
        .await
        .expect("latest")
        .is_empty());
    store
        .commit(&[
            batch(
                "lyon",
                "gw-1",
                1,
                vec![
                    num("s1", "air.pm25", T0 + 20 * SEC, 1.0),
                    num("s1", "air.pm25", T0 + 30 * SEC, 2.0),
                    // A tie on time: the later position wins.
                    num("s1", "air.pm25", T0 + 30 * SEC, 3.0),
                    num("s1", "air.pm10", T0 + 15 * SEC, 4.0),
                    // Only before `since`: no latest reading.
                    num("s3", "air.pm25", T0 + 5 * SEC, 5.0),
                ],
            ),
            // A later batch with an older time does not win.
            batch(
                "lyon",
                "gw-1",
                2,
                vec![num("s1", "air.pm25", T0 + 25 * SEC, 6.0)],
            ),
            batch(
                "lyon",
                "gw-2",
                1,
                vec![
                    num("s2", "air.pm25", since, 7.0),
                    reading("s4", "door.open", T0 + 40 * SEC, Value::Bool(true)),
                    reading("s4", "door.open", T0 + 41 * SEC, Value::Bool(false)),
                ],
            ),
            batch(
                "brest",
                "gw-1",
                1,
                vec![num("s1", "air.pm25", T0 + 50 * SEC, 8.0)],
            ),
        ])
        .await
        .expect("commit");
    // Many quiet series: each is looked up, none is returned.
    let quiet: Vec<_> = (0..50)
        .map(|i| num(&format!("q{i}"), "air.pm25", T0, 0.0))
        .collect();
    store
        .commit(&[batch("lyon", "gw-2", 2, quiet)])
        .await
        .expect("commit");

    let mut got = store
        .latest_readings(&tenant("lyon"), at(since))
        .await
        .expect("latest");
    got.sort_by(|a, b| (&a.sensor, &a.metric).cmp(&(&b.sensor, &b.metric)));
    let summary: Vec<_> = got
        .iter()
        .map(|r| {
            (
                r.sensor.as_str(),
                r.metric.as_str(),
                r.time.unix_micros() - T0,
                r.value.clone(),
                r.gateway.as_str(),
                r.seq,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("s1", "air.pm10", 15 * SEC, Value::Number(4.0), "gw-1", 1),
            ("s1", "air.pm25", 30 * SEC, Value::Number(3.0), "gw-1", 1),
            ("s2", "air.pm25", 10 * SEC, Value::Number(7.0), "gw-2", 1),
            ("s4", "door.open", 41 * SEC, Value::Bool(false), "gw-2", 1),
        ]
    );
    assert_eq!(got[1].unit.as_str(), "ug/m3");

    // `since` is inclusive, and later than every reading leaves nothing.
    let later = store
        .latest_readings(&tenant("lyon"), at(T0 + 30 * SEC))
        .await
        .expect("latest");
    let mut sensors: Vec<_> = later
        .iter()
        .map(|r| (r.sensor.as_str(), r.metric.as_str()))
        .collect();
    sensors.sort_unstable();
    assert_eq!(sensors, [("s1", "air.pm25"), ("s4", "door.open")]);
    assert!(store
        .latest_readings(&tenant("lyon"), at(T0 + 42 * SEC))
        .await
        .expect("latest")
        .is_empty());
    let brest = store
        .latest_readings(&tenant("brest"), at(T0))
        .await
        .expect("latest");
    assert_eq!(brest.len(), 1);
    assert_eq!(brest[0].value, Value::Number(8.0));
    assert!(store
        .latest_readings(&tenant("nantes"), at(T0))
        .await
        .expect("unknown tenant: nothing")
        .is_empty());
}
