//! PostgreSQL: pages of raw readings, read in index order (see [`crate::paging`] for the walk
//! and the merge).
//!
//! Reading in order and stopping after the page is the fast plan only if the planner takes
//! it, and its estimates on `readings` are worst exactly where pages are read: none right
//! after a bulk load (until autovacuum's first `ANALYZE`), and next to none for the newest
//! readings of a large table (past the end of the histogram until a tenth of the table has
//! changed). With a few rows estimated, sorting them looks free: measured on 1.15 M readings
//! of one tenant, a 1,000-row page then read and sorted the whole range (up to 0.9 s against a
//! few ms in order; `docs/benchmarks.md`). So a page is read in a transaction that sets:
//!
//! - `enable_sort` off: every plan that sorts the rows costs more than every plan reading them
//!   in order, whatever the estimates (the merge's final sort of its branches' first rows is
//!   in every plan of it, so it does not change the choice);
//! - `jit` off: that price would otherwise make such statements look worth compiling (~150 ms);
//! - `plan_cache_mode` to custom plans: the selected series' ids, bound as an array, are then a
//!   constant that PostgreSQL hashes once (a walk tests every row it steps over against them),
//!   and on TimescaleDB the chunks outside the page's range are excluded before planning.
//!
//! The transaction is repeatable read: the series the plan is chosen from and the page come
//! from one snapshot.

use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::query::{push_ts, reading_columns, READING_JOINS};
use super::PostgresStore;
use crate::paging::{page_start, push_selected_series, selects_series, PagePlan, SERIES_COUNTED};
use crate::rows::reading_page_from;
use crate::{ReadingCursor, ReadingFilter, ReadingPage, Result};

/// Opens the transaction of a page (see the module doc).
const BEGIN_PAGE: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
     SET LOCAL enable_sort = off; SET LOCAL jit = off; \
     SET LOCAL plan_cache_mode = force_custom_plan";

/// The columns of `readings x` a page's subquery returns.
const PAGE_SCAN: &str = "SELECT x.time, x.id, x.series, x.value_num, x.value_bool, \
     x.value_text FROM readings x";

impl PostgresStore {
    pub(super) async fn select_readings(
        &self,
        filter: &ReadingFilter,
        limit: u32,
        after: Option<ReadingCursor>,
    ) -> Result<ReadingPage> {
        let limit = limit.max(1);
        let mut tx = self.pool.begin_with(BEGIN_PAGE).await?;
        let (plan, series) = page_plan(&mut tx, filter).await?;
        let rows = match plan {
            PagePlan::Empty => Vec::new(),
            _ => {
                let mut q = QueryBuilder::new("");
                push_page(&mut q, filter, limit, after, plan, series.as_deref());
                q.build().fetch_all(&mut *tx).await?
            }
        };
        tx.commit().await?;
        reading_page_from(&rows, limit)
    }
}

/// How to read a page of `filter`, and the ids of the series it selects (ascending; `None`:
/// every series of the tenant).
async fn page_plan(
    conn: &mut PgConnection,
    filter: &ReadingFilter,
) -> Result<(PagePlan, Option<Vec<i32>>)> {
    if !selects_series(filter) {
        return Ok((PagePlan::Walk, None));
    }
    let mut q = QueryBuilder::<Postgres>::new("SELECT ARRAY(");
    push_selected_series(&mut q, filter);
    q.push(" ORDER BY id) AS selected, (SELECT count(*) FROM (SELECT FROM series WHERE tenant = ")
        .push_bind(filter.tenant.as_str().to_owned())
        .push(" LIMIT ")
        .push_bind(SERIES_COUNTED)
        .push(") t) AS counted");
    let row = q.build().fetch_one(conn).await?;
    let selected: Vec<i32> = row.try_get("selected")?;
    let plan = PagePlan::choose(selected.len(), row.try_get("counted")?);
    Ok((plan, Some(selected)))
}

/// The statement of a page read by `plan` (a walk or a merge) over `series` (see
/// [`page_plan`]): the columns [`crate::rows::reading_page_from`] reads, of at most
/// `limit + 1` readings in order.
fn push_page(
    q: &mut QueryBuilder<'_, Postgres>,
    filter: &ReadingFilter,
    limit: u32,
    after: Option<ReadingCursor>,
    plan: PagePlan,
    series: Option<&[i32]>,
) {
    let rows = i64::from(limit) + 1;
    // The page first, in a subquery of `readings` alone: the joins then run once per row of
    // the page, not of the range.
    q.push(reading_columns()).push("(");
    match (plan, series) {
        (PagePlan::Merge, Some(series)) => {
            // One ordered branch per series (each a `(series, time)` index range), merged.
            q.push("SELECT * FROM (");
            for (i, id) in series.iter().enumerate() {
                if i > 0 {
                    q.push(" UNION ALL ");
                }
                q.push("(")
                    .push(PAGE_SCAN)
                    .push(" WHERE x.series = ")
                    .push_bind(*id);
                push_range(q, filter, after);
                q.push(" ORDER BY x.time, x.id LIMIT ")
                    .push_bind(rows)
                    .push(")");
            }
            q.push(") x");
        }
        _ => {
            q.push(PAGE_SCAN)
                .push(" WHERE x.tenant = (SELECT key FROM tenants WHERE id = ")
                .push_bind(filter.tenant.as_str().to_owned())
                .push(")");
            if let Some(series) = series {
                q.push(" AND x.series = ANY(")
                    .push_bind(series.to_vec())
                    .push(")");
            }
            push_range(q, filter, after);
        }
    }
    q.push(" ORDER BY x.time, x.id LIMIT ")
        .push_bind(rows)
        .push(")")
        .push(READING_JOINS)
        .push(" ORDER BY r.time, r.id");
}

/// `AND` the readings of `x` in the page's range: from its start ([`page_start`]) to the
/// filter's end, after the cursor.
fn push_range(
    q: &mut QueryBuilder<'_, Postgres>,
    filter: &ReadingFilter,
    after: Option<ReadingCursor>,
) {
    q.push(" AND x.time >= ");
    push_ts(q, page_start(filter, after));
    q.push(" AND x.time < ");
    push_ts(q, filter.to.unix_micros());
    if let Some(cursor) = after {
        q.push(" AND (x.time, x.id) > (");
        push_ts(q, cursor.time_us);
        q.push(", ").push_bind(cursor.id).push(")");
    }
}

#[cfg(test)]
mod tests {
    //! On a real PostgreSQL (`TEST_DATABASE_URL`; skipped with a notice without it, a failure
    //! under `CI`): the statements of a page read about one page of rows from `readings`,
    //! with no statistics (right after a bulk load), with fresh ones, and with stale ones.

    use std::time::{SystemTime, UNIX_EPOCH};

    use beffroi_protocol::{
        GatewayId, KeyId, MetricName, Reading, SensorId, TenantId, Timestamp, Unit, Value,
    };
    use serde_json::Value as Json;
    use sqlx::Connection;

    use super::*;
    use crate::{CommitBatch, NewGateway, OpenOptions, Sensor, Store, TimescaleMode};

    const LIMIT: u32 = 100;
    const MINUTE: i64 = 60_000_000;
    /// 2026-01-01T00:00:00Z.
    const T0: i64 = 1_767_225_600_000_000;
    /// Minutes of readings loaded per day, for each of the 80 series.
    const MINUTES: i64 = 600;

    fn at(micros: i64) -> Timestamp {
        Timestamp::from_unix_micros(micros)
    }

    /// The signing key id of the tenant's gateway (key ids are unique across tenants).
    fn key(tenant: &TenantId) -> KeyId {
        KeyId::new(format!("gw-{tenant}-key")).expect("key")
    }

    /// Every reading of the test tenant over `minutes` from `start`: 40 sensors (`s00`..`s39`,
    /// the first two in zone `small`) × 2 metrics, one a minute, in batches of 1,000.
    fn day(tenant: &TenantId, start: i64, first_seq: u64) -> Vec<CommitBatch> {
        let mut readings = Vec::new();
        for minute in 0..MINUTES {
            for n in 0..40 {
                for metric in ["air.no2", "air.pm25"] {
                    readings.push(Reading {
                        sensor: SensorId::new(format!("s{n:02}")).expect("sensor"),
                        metric: MetricName::new(metric).expect("metric"),
                        unit: Unit::new("ug/m3").expect("unit"),
                        time: at(start + minute * MINUTE),
                        value: Value::Number(1.0),
                    });
                }
            }
        }
        readings
            .chunks(1000)
            .zip(first_seq..)
            .map(|(chunk, seq)| CommitBatch {
                tenant: tenant.clone(),
                gateway: GatewayId::new("gw").expect("gateway"),
                seq,
                key_id: key(tenant),
                signature: [1; 64],
                received_at: at(start),
                readings: chunk.to_vec(),
            })
            .collect()
    }

    /// Rows `plan` read from `readings` (returned or filtered out), and whether any node
    /// sorted its whole input.
    fn rows_read(plan: &Json) -> (f64, bool) {
        let number = |key: &str| plan.get(key).and_then(Json::as_f64).unwrap_or(0.0);
        let mut read = 0.0;
        if plan.get("Relation Name").and_then(Json::as_str) == Some("readings") {
            read = (number("Actual Rows")
                + number("Rows Removed by Filter")
                + number("Rows Removed by Index Recheck"))
                * number("Actual Loops");
        }
        let mut sorted = plan.get("Node Type").and_then(Json::as_str) == Some("Sort");
        for child in plan
            .get("Plans")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let (r, s) = rows_read(child);
            read += r;
            sorted |= s;
        }
        (read, sorted)
    }

    /// Rows read from `readings` by the page statement of `filter` after `after`, the plan
    /// it was read by, and whether it sorted a whole input.
    async fn measure(
        store: &PostgresStore,
        filter: &ReadingFilter,
        after: Option<ReadingCursor>,
    ) -> Result<(f64, PagePlan, bool)> {
        let mut tx = store.pool.begin_with(BEGIN_PAGE).await?;
        let (plan, series) = page_plan(&mut tx, filter).await?;
        let mut q = QueryBuilder::new("EXPLAIN (ANALYZE, FORMAT JSON) ");
        push_page(&mut q, filter, LIMIT, after, plan, series.as_deref());
        let explained: Json = q.build().fetch_one(&mut *tx).await?.try_get(0)?;
        tx.commit().await?;
        let (read, sorted) = rows_read(&explained[0]["Plan"]);
        Ok((read, plan, sorted))
    }

    /// The test's cases over `[from, to)`: for each filter, its plan, and the rows read by a
    /// first page and by a page after 1,000 readings, each within what its plan should read.
    async fn check(store: &PostgresStore, tenant: &TenantId, from: i64) -> Result<Vec<String>> {
        let all = ReadingFilter {
            tenant: tenant.clone(),
            sensors: vec![],
            metrics: vec![],
            zone: None,
            from: at(from),
            to: at(from + MINUTES * MINUTE),
        };
        let sensor = |s: &str| SensorId::new(s).expect("sensor");
        let cases = [
            ("no filter", all.clone(), 1),
            (
                "a metric (40 of 80 series)",
                ReadingFilter {
                    metrics: vec![MetricName::new("air.no2").expect("metric")],
                    ..all.clone()
                },
                2,
            ),
            (
                "a sensor",
                ReadingFilter {
                    sensors: vec![sensor("s07")],
                    ..all.clone()
                },
                2,
            ),
            (
                "a zone",
                ReadingFilter {
                    zone: Some(sensor("small")),
                    ..all.clone()
                },
                4,
            ),
        ];
        let page = f64::from(LIMIT + 1);
        let mut failures = Vec::new();
        for (name, filter, selected) in cases {
            let middle = store.select_readings(&filter, 1000, None).await?.next;
            for after in [None, middle] {
                let (read, plan, sorted) = measure(store, &filter, after).await?;
                // A walk steps over the other series' readings (80 / selected per row, and up
                // to a minute of them past the page's last row); a merge's branch reads ahead
                // at most what its incremental sort takes at once (32 rows) and one more.
                let bound = match plan {
                    PagePlan::Walk => page * 80.0 / f64::from(selected) + 80.0,
                    _ => page + 33.0 * f64::from(selected),
                };
                if read > bound || sorted {
                    failures.push(format!(
                        "{name} (after {after:?}): {plan:?} read {read} rows (at most {bound}), \
                         sorted a whole input: {sorted}"
                    ));
                }
            }
        }
        Ok(failures)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_page_reads_about_one_page_of_rows_whatever_the_statistics() {
        let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "TEST_DATABASE_URL is not set: CI must run the PostgreSQL page plans"
            );
            eprintln!(
                "notice: TEST_DATABASE_URL is not set; the PostgreSQL page plans are skipped"
            );
            return;
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let schema = format!("pages_plan_{}_{nanos}", std::process::id());
        let options = OpenOptions {
            schema: Some(schema.clone()),
            timescale: TimescaleMode::Off,
            ..OpenOptions::default()
        };
        let store = PostgresStore::open(&url, &options).await.expect("open");
        let outcome = scenarios(&store).await;
        store.pool.close().await;
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(&mut conn)
            .await
            .expect("drop schema");
        let failures = outcome.expect("scenarios");
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// Loads a day, checks the pages without statistics and with them, loads a second day and
    /// checks its pages with the first day's statistics.
    async fn scenarios(store: &PostgresStore) -> Result<Vec<String>> {
        let tenant = TenantId::new("plans").expect("tenant");
        // Another tenant's readings, interleaved in time.
        let other = TenantId::new("others").expect("tenant");
        for t in [&tenant, &other] {
            store.create_tenant(t, "plans").await?;
            store
                .register_gateway(&NewGateway {
                    tenant: t.clone(),
                    id: GatewayId::new("gw").expect("gateway"),
                    key_id: key(t),
                    public_key: [7; 32],
                    cert_fingerprint: None,
                    cert_not_after: None,
                })
                .await?;
        }
        let sensors: Vec<Sensor> = (0..40)
            .map(|n| Sensor {
                tenant: tenant.clone(),
                id: SensorId::new(format!("s{n:02}")).expect("sensor"),
                kind: "air".into(),
                unit: None,
                lat: None,
                lon: None,
                zone: (n < 2).then(|| SensorId::new("small").expect("zone")),
                tags: Vec::new(),
                placed_at: None,
            })
            .collect();
        store.upsert_sensors(&sensors).await?;
        // No statistics: autovacuum would analyze the table within a minute.
        sqlx::raw_sql("ALTER TABLE readings SET (autovacuum_enabled = false)")
            .execute(&store.pool)
            .await?;
        let second_day = T0 + 86_400_000_000;
        store.commit(&day(&tenant, T0, 1)).await?;
        store.commit(&day(&other, T0, 1)).await?;
        let mut failures = Vec::new();
        for f in check(store, &tenant, T0).await? {
            failures.push(format!("without statistics: {f}"));
        }
        sqlx::raw_sql("ANALYZE readings, series, batches, sensors, tenants")
            .execute(&store.pool)
            .await?;
        for f in check(store, &tenant, T0).await? {
            failures.push(format!("with statistics: {f}"));
        }
        store.commit(&day(&tenant, second_day, 100)).await?;
        for f in check(store, &tenant, second_day).await? {
            failures.push(format!("past the statistics: {f}"));
        }
        Ok(failures)
    }
}
