//! TimescaleDB-only cases: the objects the store creates (hypertable, compression, continuous
//! aggregates, policies, none of them due at start), the continuous aggregates equal to the
//! raw bucket query (materialized, real-time and late data after a refresh), retention by
//! `drop_chunks`, per-tenant purges on compressed chunks with the receipts of plain
//! PostgreSQL, and the aggregates of purged readings kept through the refresh policies. Policies and refreshes are called directly, never left to TimescaleDB's
//! scheduler. On the other backends each case prints a notice and checks nothing (in CI
//! TimescaleDB is absent: that is expected).

use std::sync::Arc;
use std::time::Duration;

use beffroi_audit::AuditActor;
use beffroi_policy::MetricPattern;
use beffroi_protocol::{Timestamp, Value};
use beffroi_store::{open, Backend, Bucket, OpenOptions, PurgeKind, PurgeRequest, Store};
use serde_json::Value as Json;

use crate::fixtures::*;
use crate::harness::Database;

pub const MINUTE: i64 = 60 * SEC;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

/// The continuous aggregates and their bucket widths.
const VIEWS: [(&str, i64); 3] = [
    ("readings_1m", MINUTE),
    ("readings_1h", HOUR),
    ("readings_1d", DAY),
];

/// Whether `store` runs on TimescaleDB; otherwise says that `case` checked nothing.
pub fn on_timescale(store: &Arc<dyn Store>, case: &str) -> bool {
    let timescale = store.backend() == Backend::Timescale;
    if !timescale {
        eprintln!(
            "notice: {case} is a TimescaleDB case; nothing checked on {}",
            store.backend().as_str()
        );
    }
    timescale
}

/// The start of the day (UTC) holding `micros`.
pub fn day_of(micros: i64) -> i64 {
    micros.div_euclid(DAY) * DAY
}

pub fn count(rows: &[Json]) -> i64 {
    rows.first()
        .and_then(|r| r["n"].as_i64())
        .expect("a count row")
}

/// How many chunks `readings` has.
async fn chunks(db: &Database) -> i64 {
    count(
        &db.pg_rows("SELECT count(*) AS n FROM show_chunks('readings')")
            .await,
    )
}

pub async fn objects_are_created_and_not_due(store: Arc<dyn Store>, db: Database) {
    if !on_timescale(&store, "objects_are_created_and_not_due") {
        return;
    }
    let hypertables = db
        .pg_rows(
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables \
             WHERE hypertable_schema = current_schema()",
        )
        .await;
    assert_eq!(
        hypertables,
        vec![serde_json::json!({"hypertable_name": "readings", "compression_enabled": true})]
    );
    let dimension = db
        .pg_rows(
            "SELECT column_name, (extract(epoch from time_interval))::int8 AS seconds \
             FROM timescaledb_information.dimensions \
             WHERE hypertable_schema = current_schema() AND hypertable_name = 'readings'",
        )
        .await;
    assert_eq!(
        dimension,
        vec![serde_json::json!({"column_name": "time", "seconds": 86_400})]
    );
    let views = db
        .pg_rows(
            "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates \
             WHERE view_schema = current_schema() ORDER BY view_name",
        )
        .await;
    let expected: Vec<Json> = ["readings_1d", "readings_1h", "readings_1m"]
        .iter()
        .map(|v| serde_json::json!({"view_name": v, "materialized_only": false}))
        .collect();
    assert_eq!(views, expected, "real-time continuous aggregates");
    // One compression policy on readings, one refresh policy per aggregate, no retention
    // policy (no instance-wide retention configured); none due before its first interval.
    let jobs = db
        .pg_rows(
            "SELECT proc_name, hypertable_name AS target, initial_start > now() AS later \
             FROM timescaledb_information.jobs WHERE hypertable_schema = current_schema() \
             ORDER BY 1, 2",
        )
        .await;
    let expected: Vec<Json> = [
        ("policy_compression", "readings"),
        ("policy_refresh_continuous_aggregate", "readings_1d"),
        ("policy_refresh_continuous_aggregate", "readings_1h"),
        ("policy_refresh_continuous_aggregate", "readings_1m"),
    ]
    .iter()
    .map(|(p, t)| serde_json::json!({"proc_name": p, "target": t, "later": true}))
    .collect();
    assert_eq!(jobs, expected);
    assert_eq!(windows(&db).await, expected_windows(60));
    // Opening again (another node, a restart) changes nothing.
    let again = db.open_another().await;
    assert_eq!(again.backend(), Backend::Timescale);
    again.close().await;
    assert_eq!(
        db.pg_rows(
            "SELECT count(*) AS n FROM timescaledb_information.continuous_aggregates \
             WHERE view_schema = current_schema()"
        )
        .await,
        vec![serde_json::json!({"n": 3})]
    );
}

/// (view, refresh window start offset in days) of every refresh policy.
async fn windows(db: &Database) -> Vec<(String, i64)> {
    db.pg_rows(
        "SELECT hypertable_name AS v, \
         extract(epoch from (config->>'start_offset')::interval)::int8 / 86400 AS days \
         FROM timescaledb_information.jobs WHERE hypertable_schema = current_schema() \
         AND proc_name = 'policy_refresh_continuous_aggregate' ORDER BY 1",
    )
    .await
    .iter()
    .map(|r| {
        let view = r["v"].as_str().expect("view").to_owned();
        (view, r["days"].as_i64().expect("days"))
    })
    .collect()
}

/// What [`windows`] gives when the daily aggregate's window starts `daily` days back.
fn expected_windows(daily: i64) -> Vec<(String, i64)> {
    vec![
        ("readings_1d".to_owned(), daily),
        ("readings_1h".to_owned(), 7),
        ("readings_1m".to_owned(), 1),
    ]
}

/// The rows of continuous aggregate `view` for tenant `t` over `[from, to)`, as buckets.
pub async fn view_buckets(db: &Database, view: &str, t: &str, from: i64, to: i64) -> Vec<Bucket> {
    let rows = db
        .pg_rows(&format!(
            "SELECT (extract(epoch from v.bucket) * 1000000)::int8 AS start, s.sensor, s.metric, \
             v.avg, v.min, v.max, v.count::int8 AS count FROM {view} v \
             JOIN series s ON s.id = v.series \
             WHERE v.tenant = (SELECT key FROM tenants WHERE id = '{t}') \
             AND v.bucket >= timestamptz 'epoch' + {from} * interval '1 microsecond' \
             AND v.bucket < timestamptz 'epoch' + {to} * interval '1 microsecond' \
             ORDER BY 1, 2, 3"
        ))
        .await;
    rows.iter()
        .map(|r| Bucket {
            start: at(r["start"].as_i64().expect("start")),
            sensor: sensor(r["sensor"].as_str().expect("sensor")),
            metric: metric(r["metric"].as_str().expect("metric")),
            avg: r["avg"].as_f64().expect("avg"),
            min: r["min"].as_f64().expect("min"),
            max: r["max"].as_f64().expect("max"),
            count: r["count"].as_u64().expect("count"),
        })
        .collect()
}

/// Every continuous aggregate of `t` over `[from, to)` equals the store's bucket query of its
/// width (which reads the raw readings); returns how many buckets were compared.
async fn aggregates_match_raw(
    store: &Arc<dyn Store>,
    db: &Database,
    t: &str,
    from: i64,
    to: i64,
) -> usize {
    let mut compared = 0;
    for (view, width) in VIEWS {
        let raw = store
            .buckets(&all_of(t, from, to), width)
            .await
            .expect("buckets");
        let continuous = view_buckets(db, view, t, from, to).await;
        assert_eq!(continuous, raw, "{view} differs from the raw buckets");
        compared += raw.len();
    }
    compared
}

/// Rows materialized in `view` (whatever the tenant).
async fn materialized(db: &Database, view: &str) -> i64 {
    let table = db
        .pg_rows(&format!(
            "SELECT format('%I.%I', materialization_hypertable_schema, \
             materialization_hypertable_name) AS t \
             FROM timescaledb_information.continuous_aggregates \
             WHERE view_schema = current_schema() AND view_name = '{view}'"
        ))
        .await;
    let table = table[0]["t"].as_str().expect("materialization table");
    count(
        &db.pg_rows(&format!("SELECT count(*) AS n FROM {table}"))
            .await,
    )
}

pub async fn continuous_aggregates_match_raw(store: Arc<dyn Store>, db: Database) {
    if !on_timescale(&store, "continuous_aggregates_match_raw") {
        return;
    }
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    tenant_with_gateway(&store, "brest", "gw-1").await;
    // From three days before today up to now: the buckets of the last minute, hour and day
    // are still open, so they can only come from real-time aggregation.
    let now = Timestamp::now().unix_micros();
    let start = day_of(now) - 3 * DAY;
    let (from, to) = (start, day_of(now) + DAY);
    let mut lyon = Vec::new();
    let mut step = 0;
    let mut time = start;
    while time <= now {
        let v = f64::from(step % 17) * 0.25;
        lyon.push(num("a", "air.no2", time, v));
        lyon.push(num("b", "air.no2", time + 13 * SEC, v + 1.0));
        if step % 3 == 0 {
            lyon.push(num("a", "air.pm25", time + 31 * SEC, -v));
            lyon.push(reading("a", "door.open", time, Value::Bool(step % 2 == 0)));
        }
        step += 1;
        time += 7 * MINUTE + 11 * SEC;
    }
    let brest = vec![
        num("a", "air.no2", start + HOUR, 100.0),
        num("a", "air.no2", now, 200.0),
    ];
    let mut batches = Vec::new();
    for (seq, chunk) in lyon.chunks(500).enumerate() {
        batches.push(batch("lyon", "gw-1", seq as u64 + 1, chunk.to_vec()));
    }
    batches.push(batch("brest", "gw-1", 1, brest));
    store.commit(&batches).await.expect("commit");

    // Nothing materialized yet: everything comes from the raw readings, in real time.
    assert_eq!(materialized(&db, "readings_1m").await, 0);
    let compared = aggregates_match_raw(&store, &db, "lyon", from, to).await;
    assert!(compared > 1000, "{compared} buckets compared");
    aggregates_match_raw(&store, &db, "brest", from, to).await;

    // Materialized up to two hours ago, real-time after: the same rows.
    store
        .refresh_aggregates(at(start), at(now - 2 * HOUR))
        .await
        .expect("refresh");
    for (view, _) in VIEWS {
        assert!(materialized(&db, view).await > 0, "{view} materialized");
    }
    aggregates_match_raw(&store, &db, "lyon", from, to).await;
    aggregates_match_raw(&store, &db, "brest", from, to).await;

    // Late readings in materialized buckets: a refresh of their range brings them in.
    let late = vec![
        num("a", "air.no2", start + HOUR + 30 * SEC, 50.0),
        num("c", "air.no2", start + DAY + 5 * MINUTE, 7.5),
    ];
    store
        .commit(&[batch("lyon", "gw-1", 1000, late)])
        .await
        .expect("commit late readings");
    store
        .refresh_aggregates(at(start + HOUR), at(start + DAY + 6 * MINUTE))
        .await
        .expect("refresh late range");
    aggregates_match_raw(&store, &db, "lyon", from, to).await;
    // A full refresh, the open buckets included, changes nothing either.
    store
        .refresh_aggregates(at(from), at(to))
        .await
        .expect("refresh all");
    aggregates_match_raw(&store, &db, "lyon", from, to).await;
    aggregates_match_raw(&store, &db, "brest", from, to).await;
}

pub async fn retention_drops_chunks(store: Arc<dyn Store>, db: Database) {
    if !on_timescale(&store, "retention_drops_chunks") {
        return;
    }
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    let today = day_of(Timestamp::now().unix_micros());
    let bound = today - 5 * DAY + 12 * HOUR;
    // Three whole days before the bound's day (three chunks), two readings in the bound's
    // day (one on each side of the bound), one today.
    let mut readings: Vec<_> = (8..=10)
        .map(|d| num("s1", "air.pm25", today - d * DAY + HOUR, d as f64))
        .collect();
    readings.push(num("s1", "air.pm25", bound - HOUR, 1.0));
    readings.push(num("s1", "air.pm25", bound + HOUR, 2.0));
    readings.push(num("s1", "air.pm25", today + SEC, 3.0));
    store
        .commit(&[batch("lyon", "gw-1", 1, readings)])
        .await
        .expect("commit");
    assert_eq!(chunks(&db).await, 5);
    // Three chunks dropped whole, one row deleted from the chunk holding the bound.
    let removed = store.apply_retention(at(bound)).await.expect("retention");
    assert_eq!(removed, 3 + 1);
    assert_eq!(chunks(&db).await, 2);
    let left: Vec<i64> = read_all(&store, &all_of("lyon", 0, today + DAY), 100)
        .await
        .iter()
        .map(|r| r.time.unix_micros())
        .collect();
    assert_eq!(left, vec![bound + HOUR, today + SEC]);
    assert_eq!(store.apply_retention(at(bound)).await.expect("again"), 0);
}

/// A raw purge of `class` for `lyon` before `older_than`.
pub fn purge(class: &str, older_than: i64, batch_rows: u32) -> PurgeRequest {
    let class: MetricPattern = class.parse().expect("metric class");
    let mut request = PurgeRequest::new(
        tenant("lyon"),
        class,
        PurgeKind::Raw,
        at(older_than),
        AuditActor::System("retention".into()),
        at(T0),
    );
    request.batch_rows = batch_rows;
    request
}

pub async fn purge_on_compressed_chunks(store: Arc<dyn Store>, db: Database) {
    if !on_timescale(&store, "purge_on_compressed_chunks") {
        return;
    }
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    tenant_with_gateway(&store, "brest", "gw-1").await;
    // 30 readings per metric and tenant, every two hours over 60 hours before T0.
    let old = |t: &str, seq: u64| {
        let readings = ["air.no2", "noise.laeq"]
            .iter()
            .flat_map(|m| (0..30).map(move |i| num("s1", m, T0 - 60 * HOUR + i * 2 * HOUR, 1.0)))
            .collect();
        batch(t, "gw-1", seq, readings)
    };
    let recent = batch("lyon", "gw-1", 2, vec![num("s1", "air.no2", T0 + SEC, 1.0)]);
    store
        .commit(&[old("lyon", 1), old("brest", 1), recent])
        .await
        .expect("commit");
    let compressed = db
        .pg_rows(&format!(
            "SELECT count(compress_chunk(c)) AS n FROM show_chunks('readings', \
             older_than => timestamptz 'epoch' + {T0} * interval '1 microsecond') c"
        ))
        .await;
    assert_eq!(count(&compressed), 3, "the chunks before T0 are compressed");

    let receipt = store
        .purge(&purge("air.*", T0 - DAY, 7))
        .await
        .expect("purge on compressed chunks");
    // Readings before T0 - 1 day: 18 of the 30 (every two hours over 36 hours).
    assert_eq!((receipt.rows, receipt.batches), (18, 3));
    assert_eq!(receipt.from, Some(at(T0 - 60 * HOUR)));
    let left = |t: &'static str, m: &'static str| {
        let store = store.clone();
        async move {
            read_all(&store, &all_of(t, T0 - 100 * DAY, T0 + DAY), 500)
                .await
                .iter()
                .filter(|r| r.metric.as_str() == m)
                .count()
        }
    };
    assert_eq!(left("lyon", "air.no2").await, 12 + 1);
    assert_eq!(left("lyon", "noise.laeq").await, 30);
    assert_eq!(left("brest", "air.no2").await, 30);
    // Chunks stay compressed (TimescaleDB ≥ 2.11 deletes in compressed chunks).
    let still = db
        .pg_rows(
            "SELECT count(*) AS n FROM timescaledb_information.chunks \
             WHERE hypertable_schema = current_schema() AND hypertable_name = 'readings' \
             AND is_compressed",
        )
        .await;
    assert_eq!(count(&still), 3);
    // Instance-wide retention drops compressed chunks too.
    let removed = store.apply_retention(at(T0)).await.expect("retention");
    assert_eq!(removed, 3);
    assert_eq!(left("lyon", "air.no2").await, 1);
    assert_eq!(left("brest", "air.no2").await, 0);
}

/// Runs every refresh policy of the store's continuous aggregates now.
async fn run_refresh_policies(db: &Database) {
    let jobs = db
        .pg_rows(
            "SELECT job_id FROM timescaledb_information.jobs \
             WHERE hypertable_schema = current_schema() \
             AND proc_name = 'policy_refresh_continuous_aggregate'",
        )
        .await;
    assert_eq!(jobs.len(), VIEWS.len());
    for job in jobs {
        db.execute(&format!("CALL run_job({})", job["job_id"]))
            .await;
    }
}

pub async fn purges_keep_the_aggregates(store: Arc<dyn Store>, db: Database) {
    if !on_timescale(&store, "purges_keep_the_aggregates") {
        return;
    }
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    tenant_with_gateway(&store, "brest", "gw-1").await;
    let now = Timestamp::now().unix_micros();
    let today = day_of(now);
    // Readings 40 and 3 days ago (inside the refresh windows of the daily and hourly
    // aggregates), and today's.
    let readings = |shift: f64| -> Vec<_> {
        [today - 40 * DAY, today - 3 * DAY]
            .iter()
            .flat_map(|&day| {
                (0..30).map(move |i| num("s1", "air.no2", day + i * 25 * MINUTE, shift + i as f64))
            })
            .chain([num("s1", "air.no2", now, shift)])
            .collect()
    };
    store
        .commit(&[
            batch("lyon", "gw-1", 1, readings(0.0)),
            batch("brest", "gw-1", 1, readings(100.0)),
        ])
        .await
        .expect("commit");
    // Only part of it materialized: the purge materializes the rest first.
    store
        .refresh_aggregates(at(today - 41 * DAY), at(today - 39 * DAY))
        .await
        .expect("refresh");
    let (from, to) = (today - 50 * DAY, today + DAY);
    let mut before = Vec::new();
    for t in ["lyon", "brest"] {
        for (_, width) in VIEWS {
            let buckets = store
                .buckets(&all_of(t, from, to), width)
                .await
                .expect("buckets");
            before.push(buckets);
        }
    }

    // lyon's air.* purged per tenant before two days ago, then everything before 30 days
    // ago instance-wide (dropping brest's old chunk).
    let receipt = store
        .purge(&purge("air.*", today - 2 * DAY, 1000))
        .await
        .expect("purge");
    assert_eq!(receipt.rows, 60);
    assert!(
        store
            .apply_retention(at(today - 30 * DAY))
            .await
            .expect("retention")
            > 0
    );
    assert_eq!(
        read_all(&store, &all_of("lyon", from, to), 100).await.len(),
        1
    );
    assert_eq!(
        read_all(&store, &all_of("brest", from, to), 100)
            .await
            .len(),
        31
    );

    // The aggregates of the purged readings stay, also after the refresh policies ran.
    run_refresh_policies(&db).await;
    let mut after = Vec::new();
    for t in ["lyon", "brest"] {
        for (view, _) in VIEWS {
            after.push(view_buckets(&db, view, t, from, to).await);
        }
    }
    assert_eq!(after, before);
}

pub async fn retention_policy_keeps_the_aggregates(store: Arc<dyn Store>, db: Database) {
    if !on_timescale(&store, "retention_policy_keeps_the_aggregates") {
        return;
    }
    let Database::Postgres { url, options } = &db else {
        panic!("a PostgreSQL store");
    };
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    let today = day_of(Timestamp::now().unix_micros());
    let readings = (0..24)
        .map(|i| num("s1", "air.no2", today - 40 * DAY + i * HOUR, i as f64))
        .chain([num("s1", "air.no2", today + SEC, 1.0)])
        .collect();
    store
        .commit(&[batch("lyon", "gw-1", 1, readings)])
        .await
        .expect("commit");
    store
        .refresh_aggregates(at(today - 41 * DAY), at(today))
        .await
        .expect("refresh");
    let (from, to) = (today - 50 * DAY, today + DAY);
    let daily = view_buckets(&db, "readings_1d", "lyon", from, to).await;
    assert_eq!(daily.len(), 2);

    // A node configured with a 30-day retention: a retention policy, and refresh windows
    // that stop short of the chunks it drops.
    let capped = open(
        url,
        OpenOptions {
            retention: Some(Duration::from_secs(30 * 86_400)),
            ..options.clone()
        },
    )
    .await
    .expect("open with retention");
    assert_eq!(windows(&db).await, expected_windows(30));
    let retention = db
        .pg_rows(
            "SELECT job_id FROM timescaledb_information.jobs \
             WHERE hypertable_schema = current_schema() AND proc_name = 'policy_retention'",
        )
        .await;
    assert_eq!(retention.len(), 1);
    db.execute(&format!("CALL run_job({})", retention[0]["job_id"]))
        .await;
    assert_eq!(chunks(&db).await, 1, "the old chunk is dropped");
    run_refresh_policies(&db).await;
    assert_eq!(
        view_buckets(&db, "readings_1d", "lyon", from, to).await,
        daily
    );
    capped.close().await;
    // Without retention again, the default windows come back and the policy goes.
    let plain = db.open_another().await;
    plain.close().await;
    assert_eq!(windows(&db).await, expected_windows(60));
    assert!(db
        .pg_rows(
            "SELECT 1 AS one FROM timescaledb_information.jobs \
             WHERE hypertable_schema = current_schema() AND proc_name = 'policy_retention'"
        )
        .await
        .is_empty());
}
