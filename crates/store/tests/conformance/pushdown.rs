//! TimescaleDB: aggregate queries pushed down to the continuous aggregates. The bucket and
//! cell queries give what the raw readings give (computed here from the readings committed),
//! on aligned and unaligned ranges; after a per-tenant purge of the raw readings they still
//! give the stored aggregates; a late reading (older than its batch's receipt) is recorded in
//! `aggregate_backlog`, missing from the materialized aggregate until the next query over its
//! range refreshes it in. On the other backends the case prints a notice and checks nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use beffroi_protocol::{Reading, Timestamp, Value};
use beffroi_store::{Bucket, CellQuery, CellRow, CellUnit, CommitBatch, Store};

use crate::fixtures::*;
use crate::harness::Database;
use crate::timescale::{count, day_of, on_timescale, purge, view_buckets, DAY, HOUR, MINUTE};

/// Numeric values of `readings` in `[from, to)`, per bucket of `width`, sensor and metric.
fn values(
    readings: &[Reading],
    width: i64,
    from: i64,
    to: i64,
) -> BTreeMap<(i64, String, String), Vec<f64>> {
    let mut cells: BTreeMap<_, Vec<f64>> = BTreeMap::new();
    for r in readings {
        let time = r.time.unix_micros();
        if let (Value::Number(v), true) = (&r.value, (from..to).contains(&time)) {
            let key = (
                time.div_euclid(width) * width,
                r.sensor.to_string(),
                r.metric.to_string(),
            );
            cells.entry(key).or_default().push(*v);
        }
    }
    cells
}

/// The buckets the raw readings give.
fn expected_buckets(readings: &[Reading], width: i64, from: i64, to: i64) -> Vec<Bucket> {
    values(readings, width, from, to)
        .into_iter()
        .map(|((start, s, m), v)| Bucket {
            start: at(start),
            sensor: sensor(&s),
            metric: metric(&m),
            avg: v.iter().sum::<f64>() / v.len() as f64,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            count: v.len() as u64,
        })
        .collect()
}

/// The per-sensor cells of `metric_name` the raw readings give.
fn expected_cells(readings: &[Reading], metric_name: &str, width: i64, to: i64) -> Vec<CellRow> {
    values(readings, width, i64::MIN, to)
        .into_iter()
        .filter(|((_, _, m), _)| m == metric_name)
        .map(|((start, s, m), v)| CellRow {
            bucket: at(start),
            metric: metric(&m),
            unit: sensor(&s),
            sensors: 1,
            count: v.len() as u64,
            sum: v.iter().sum(),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
        .collect()
}

/// A batch received one second after its newest reading (nothing late), or at `received`.
fn batch_received(seq: u64, readings: Vec<Reading>, received: Option<i64>) -> CommitBatch {
    let newest = readings.iter().map(|r| r.time.unix_micros()).max();
    let mut b = batch("lyon", "gw-1", seq, readings);
    b.received_at = at(received.or(newest.map(|t| t + SEC)).expect("a reading"));
    b
}

async fn backlog(db: &Database) -> i64 {
    count(
        &db.pg_rows("SELECT count(*) AS n FROM aggregate_backlog")
            .await,
    )
}

async fn check_buckets(store: &Arc<dyn Store>, readings: &[Reading], ranges: &[(i64, i64, i64)]) {
    for &(width, from, to) in ranges {
        let buckets = store
            .buckets(&all_of("lyon", from, to), width)
            .await
            .expect("buckets");
        assert!(!buckets.is_empty(), "buckets of {width} µs from {from}");
        assert_eq!(
            buckets,
            expected_buckets(readings, width, from, to),
            "buckets of {width} µs over [{from}, {to})"
        );
    }
}

pub async fn aggregates_come_from_the_continuous_aggregates(store: Arc<dyn Store>, db: Database) {
    if !on_timescale(&store, "aggregates_come_from_the_continuous_aggregates") {
        return;
    }
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    let now = Timestamp::now().unix_micros();
    let start = day_of(now) - 3 * DAY;
    // One batch per step, received as it is made.
    let mut readings = Vec::new();
    let mut batches = Vec::new();
    let (mut step, mut time) = (0, start);
    while time <= now - MINUTE {
        let v = (step % 17) as f64 * 0.25;
        let mut made = vec![
            num("a", "air.no2", time, v),
            num("b", "air.no2", time + 13 * SEC, v + 1.0),
        ];
        if step % 3 == 0 {
            made.push(num("a", "air.pm25", time + 19 * SEC, -v));
            made.push(reading("a", "door.open", time, Value::Bool(step % 2 == 0)));
        }
        readings.extend(made.iter().cloned());
        batches.push(batch_received(step + 1, made, None));
        step += 1;
        time += 7 * MINUTE + 11 * SEC;
    }
    store.commit(&batches).await.expect("commit");
    assert_eq!(backlog(&db).await, 0, "nothing was late");
    store
        .refresh_aggregates(at(start), at(now - 2 * HOUR))
        .await
        .expect("refresh");

    // Materialized and real-time buckets, whole and cut ranges, every aggregate width.
    let end = day_of(now) + DAY;
    let ranges = [
        (DAY, start, end),
        (HOUR, start, end),
        (HOUR, start + 17 * MINUTE + 3 * SEC, now - 41 * MINUTE),
        (15 * MINUTE, start + 7 * MINUTE, now),
        (MINUTE, now - 3 * HOUR - 5 * SEC, now),
        (90 * SEC, start, end),
    ];
    check_buckets(&store, &readings, &ranges).await;
    let cells = |from: i64, to: i64| CellQuery {
        tenant: tenant("lyon"),
        metrics: vec![metric("air.no2")],
        sensors: None,
        from: at(from),
        to: at(to),
        bucket_us: HOUR,
        offset_us: 0,
        unit: CellUnit::Sensor,
    };
    let got = store
        .governed_cells(&cells(start, end))
        .await
        .expect("cells");
    assert!(got.len() > 100, "{} cells", got.len());
    assert_eq!(got, expected_cells(&readings, "air.no2", HOUR, end));

    // The raw air readings of the first two days purged: their hourly and daily aggregates
    // are still served, the cells too.
    let purged = start + 2 * DAY;
    let receipt = store
        .purge(&purge("air.*", purged, 1000))
        .await
        .expect("purge");
    assert!(receipt.rows > 500, "{} rows purged", receipt.rows);
    let left = read_all(&store, &all_of("lyon", start, purged), 1000).await;
    assert!(left.iter().all(|r| r.metric.as_str() == "door.open"));
    check_buckets(
        &store,
        &readings,
        &[(DAY, start, purged), (HOUR, start, purged)],
    )
    .await;
    let got = store
        .governed_cells(&cells(start, purged))
        .await
        .expect("cells after the purge");
    assert_eq!(got, expected_cells(&readings, "air.no2", HOUR, purged));

    // A late reading (delivered now, six hours after its time) in a materialized bucket of
    // the days kept: the aggregate does not have it until the next query over it.
    let late_time = now - 6 * HOUR + 7 * SEC;
    let late = num("c", "air.no2", late_time, 42.5);
    store
        .commit(&[batch_received(10_000, vec![late.clone()], Some(now))])
        .await
        .expect("commit the late reading");
    assert_eq!(backlog(&db).await, 1, "the late reading is recorded");
    let hour = late_time.div_euclid(HOUR) * HOUR;
    let stale = view_buckets(&db, "readings_1h", "lyon", hour, hour + HOUR).await;
    let sensors: BTreeSet<_> = stale.iter().map(|b| b.sensor.to_string()).collect();
    assert!(!sensors.contains("c"), "materialized before the refresh");
    readings.push(late);
    check_buckets(&store, &readings, &[(HOUR, purged, end)]).await;
    assert_eq!(backlog(&db).await, 0, "the backlog is drained");
    let fresh = view_buckets(&db, "readings_1h", "lyon", hour, hour + HOUR).await;
    assert_eq!(fresh, expected_buckets(&readings, HOUR, hour, hour + HOUR));
}
