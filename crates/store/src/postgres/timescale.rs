//! TimescaleDB: detection, and the objects created in code after the migrations.
//!
//! All of it is idempotent (run at every start): `readings` becomes a hypertable (1-day
//! chunks, no default time index: the migration's indexes serve every query), compressed after
//! [`OpenOptions::compress_after`] (segmented by series, ordered by time), with continuous
//! aggregates `readings_1m`, `readings_1h` and `readings_1d` (per tenant and series: avg, min,
//! max, count and sum of numeric values,
//! real-time so they include what is not materialized yet) and their refresh policies, and a
//! retention policy when [`OpenOptions::retention`] is set (instance-wide: chunks span every
//! tenant, so per-tenant retention deletes rows instead, see `retention`). Each job first runs one schedule
//! interval after the store is opened: nothing is due at start, and a store opened and
//! dropped at once (tests) never races its own jobs — dropping a continuous aggregate while
//! its refresh job runs crashed TimescaleDB 2.28.3's background worker (signal 11) here.
//!
//! Retention keeps the aggregates of the readings it deletes: purges refresh the range first
//! and delete without invalidating it ([`keep_aggregates`]), and the refresh windows never
//! reach the chunks the retention policy drops ([`policy_start`]).
//!
//! Bucket and governed cell queries read the continuous aggregates where their grid allows
//! and the raw readings elsewhere (`rollup`), with `time_bucket` from the Unix epoch, which
//! gives the same rows as plain PostgreSQL's `date_bin` and SQLite's integer arithmetic; they
//! also serve the aggregates of readings retention purged.

use std::time::Duration;

use beffroi_protocol::Timestamp;
use sqlx::{PgConnection, PgPool};

use crate::{Error, OpenOptions, Result, TimescaleMode};

/// The bucketing function on TimescaleDB (called with an epoch origin).
pub(super) const BUCKET_FUNCTION: &str = "time_bucket";

/// A continuous aggregate and its refresh policy. Retention purges its materialized rows per
/// tenant (see `retention`).
pub(super) struct Aggregate {
    /// The view.
    pub(super) view: &'static str,
    /// Its bucket width (text of an interval literal).
    width: &'static str,
    /// The same, in seconds.
    pub(super) width_s: u64,
    /// The refresh window's start offset (late readings up to this age are taken in), in
    /// seconds, before [`policy_start`] caps it.
    start_s: u64,
    /// How often the policy runs, in seconds (its window ends one bucket ago).
    schedule_s: u64,
}

/// The continuous aggregates.
pub(super) const AGGREGATES: [Aggregate; 3] = [
    Aggregate {
        view: "readings_1m",
        width: "1 minute",
        width_s: 60,
        start_s: 86_400,
        schedule_s: 60,
    },
    Aggregate {
        view: "readings_1h",
        width: "1 hour",
        width_s: 3_600,
        start_s: 7 * 86_400,
        schedule_s: 1_800,
    },
    Aggregate {
        view: "readings_1d",
        width: "1 day",
        width_s: 86_400,
        start_s: 60 * 86_400,
        schedule_s: 3_600,
    },
];

/// The start offset of `aggregate`'s refresh window: never older than the instance-wide
/// `retention`, whose `drop_chunks` TimescaleDB records as a change, so that a refresh
/// covering dropped chunks would delete the aggregates of their readings; but at least the
/// two buckets before the window's end that TimescaleDB requires.
fn policy_start(aggregate: &Aggregate, retention: Option<Duration>) -> u64 {
    let start = retention.map_or(aggregate.start_s, |r| aggregate.start_s.min(r.as_secs()));
    start.max(3 * aggregate.width_s)
}

/// Advisory lock key serializing `CREATE EXTENSION` among stores opening at once.
const EXTENSION_LOCK: i64 = 0x6265_6666_726f_6931;
/// Advisory lock key serializing the TimescaleDB DDL of stores opening at once (also taken by
/// the conformance suite around `DROP SCHEMA`).
const SETUP_LOCK: i64 = 0x6265_6666_726f_6932;

/// Whether to run on TimescaleDB: creates the extension (in schema `public`, which must be on
/// the `search_path`) when the server has it.
pub(super) async fn detect(pool: &PgPool, mode: TimescaleMode) -> Result<bool> {
    if mode == TimescaleMode::Off {
        return Ok(false);
    }
    let available: Option<Option<String>> = sqlx::query_scalar(
        "SELECT installed_version FROM pg_available_extensions WHERE name = 'timescaledb'",
    )
    .fetch_optional(pool)
    .await?;
    let failure = match available {
        None => "the timescaledb extension is not installed on this server".to_owned(),
        Some(_) => match create_extension(pool).await {
            Ok(()) => return Ok(true),
            Err(e) => format!("CREATE EXTENSION timescaledb failed: {e}"),
        },
    };
    if mode == TimescaleMode::Required {
        return Err(Error::Unsupported(format!(
            "TimescaleDB required: {failure}"
        )));
    }
    tracing::warn!(
        reason = %failure,
        "TimescaleDB is not available: the platform runs on plain PostgreSQL, without \
         compression or continuous aggregates (query results are the same)"
    );
    Ok(false)
}

async fn create_extension(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(EXTENSION_LOCK)
        .execute(&mut *tx)
        .await?;
    // In `public`, never in the store's own schema (dropping that schema would drop the
    // extension for every other store of the database).
    sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS timescaledb WITH SCHEMA public")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Creates the hypertable, compression, aggregates and policies if missing. Stores opening at
/// once (platform nodes starting together) take turns: TimescaleDB's catalog does not like
/// concurrent DDL.
pub(super) async fn setup(pool: &PgPool, options: &OpenOptions) -> Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(SETUP_LOCK)
        .execute(&mut *conn)
        .await?;
    let done = create_objects(&mut conn, options).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(SETUP_LOCK)
        .execute(&mut *conn)
        .await;
    if unlocked.is_err() {
        // Never hand a connection holding the lock back to the pool.
        conn.detach();
    }
    done
}

async fn create_objects(conn: &mut PgConnection, options: &OpenOptions) -> Result<()> {
    sqlx::raw_sql(
        "SELECT create_hypertable('readings', 'time', chunk_time_interval => interval '1 day', \
         create_default_indexes => false, if_not_exists => true, migrate_data => true)",
    )
    .execute(&mut *conn)
    .await?;
    let compressed: Option<bool> = sqlx::query_scalar(
        "SELECT compression_enabled FROM timescaledb_information.hypertables \
         WHERE hypertable_schema = current_schema() AND hypertable_name = 'readings'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if compressed != Some(true) {
        sqlx::raw_sql(
            "ALTER TABLE readings SET (timescaledb.compress, \
             timescaledb.compress_segmentby = 'series', \
             timescaledb.compress_orderby = 'time, id')",
        )
        .execute(&mut *conn)
        .await?;
    }
    sqlx::raw_sql(&format!(
        "SELECT add_compression_policy('readings', compress_after => {}, if_not_exists => true, \
         initial_start => now() + interval '1 hour')",
        interval(options.compress_after)
    ))
    .execute(&mut *conn)
    .await?;
    for aggregate in &AGGREGATES {
        let Aggregate {
            view,
            width,
            width_s,
            schedule_s,
            ..
        } = aggregate;
        sqlx::raw_sql(&format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {view} \
             WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS \
             SELECT tenant, series, time_bucket(interval '{width}', time) AS bucket, \
             avg(value_num) AS avg, min(value_num) AS min, max(value_num) AS max, \
             count(value_num) AS count, sum(value_num) AS sum \
             FROM readings WHERE value_num IS NOT NULL \
             GROUP BY tenant, series, bucket WITH NO DATA"
        ))
        .execute(&mut *conn)
        .await?;
        // The window depends on the configured retention: an existing policy gets the
        // current one (its job altered, never deleted: it may be running).
        let start = interval(Duration::from_secs(policy_start(
            aggregate,
            options.retention,
        )));
        sqlx::raw_sql(&format!(
            "SELECT alter_job(job_id, \
             config => jsonb_set(config, '{{start_offset}}', to_jsonb({start}))) \
             FROM timescaledb_information.jobs \
             WHERE proc_name = 'policy_refresh_continuous_aggregate' \
             AND hypertable_schema = current_schema() AND hypertable_name = '{view}' \
             AND (config->>'start_offset')::interval <> {start}; \
             SELECT add_continuous_aggregate_policy('{view}', \
             start_offset => {start}, end_offset => interval '{width_s} seconds', \
             schedule_interval => interval '{schedule_s} seconds', if_not_exists => true, \
             initial_start => now() + interval '{schedule_s} seconds')"
        ))
        .execute(&mut *conn)
        .await?;
    }
    sqlx::raw_sql("SELECT remove_retention_policy('readings', if_exists => true)")
        .execute(&mut *conn)
        .await?;
    if let Some(retention) = options.retention {
        sqlx::raw_sql(&format!(
            "SELECT add_retention_policy('readings', drop_after => {}, \
             initial_start => now() + interval '1 hour')",
            interval(retention)
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Refreshes every continuous aggregate over `[from, to)`, widened to whole buckets.
pub(super) async fn refresh(pool: &PgPool, from: Timestamp, to: Timestamp) -> Result<()> {
    for Aggregate { view, width_s, .. } in &AGGREGATES {
        let width = i64::try_from(*width_s).unwrap_or(i64::MAX) * 1_000_000;
        let start = from.unix_micros().div_euclid(width) * width;
        let end = to.unix_micros().div_euclid(width).saturating_add(1) * width;
        // `CALL` must run outside a transaction block: the simple protocol, literal times
        // (RFC 3339 text: digits, '-', ':', '.', 'T', 'Z' only).
        sqlx::raw_sql(&format!(
            "CALL refresh_continuous_aggregate('{view}', '{}', '{}')",
            Timestamp::from_unix_micros(start),
            Timestamp::from_unix_micros(end)
        ))
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Brings the continuous aggregates up to date over the readings older than `older_than`
/// (of `tenant`'s `series` only, when given) before a purge deletes them.
pub(super) async fn refresh_before_purge(
    pool: &PgPool,
    older_than: Timestamp,
    scope: Option<(i32, &[i64])>,
) -> Result<()> {
    let oldest: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT min({}) FROM readings WHERE time < {} \
         AND ($2::int4 IS NULL OR tenant = $2) AND ($3::int8[] IS NULL OR series = ANY($3))",
        super::us("time"),
        super::ts("$1")
    ))
    .bind(older_than.unix_micros())
    .bind(scope.map(|(tenant, _)| tenant))
    .bind(scope.map(|(_, series)| series))
    .fetch_one(pool)
    .await?;
    match oldest {
        Some(oldest) => refresh(pool, Timestamp::from_unix_micros(oldest), older_than).await,
        None => Ok(()),
    }
}

/// Drops the chunks holding only readings older than `older_than`, in `conn`'s transaction;
/// returns chunks dropped.
pub(super) async fn drop_chunks(conn: &mut PgConnection, older_than: Timestamp) -> Result<u64> {
    let dropped: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM drop_chunks('readings', older_than => {})",
        super::ts("$1")
    ))
    .bind(older_than.unix_micros())
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(dropped).unwrap_or(0))
}

/// Makes the rest of `conn`'s transaction leave the continuous aggregates as they are: raw
/// readings deleted (or chunks dropped) by retention keep their stored aggregates. Without it
/// TimescaleDB records the purged range as changed, and the next refresh policy run covering
/// it recomputes those buckets from the remaining (no) readings, silently deleting aggregates
/// that retention meant to keep. The caller refreshes the range first ([`refresh`]), so that
/// nothing purged is missing from the aggregates. Needs TimescaleDB ≥ 2.28
/// (`timescaledb.skip_cagg_invalidation`); older servers get a warning.
pub(super) async fn keep_aggregates(conn: &mut PgConnection) -> Result<()> {
    let set: Option<String> = sqlx::query_scalar(
        "SELECT set_config(name, 'on', true) FROM pg_settings \
         WHERE name = 'timescaledb.skip_cagg_invalidation'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if set.is_none() {
        tracing::warn!(
            "this TimescaleDB cannot purge raw readings without invalidating the continuous \
             aggregates (timescaledb.skip_cagg_invalidation needs 2.28): the next refresh \
             covering the purged range drops their aggregates too"
        );
    }
    Ok(())
}

/// A PostgreSQL interval literal for `duration` (whole seconds).
fn interval(duration: Duration) -> String {
    format!("interval '{} seconds'", duration.as_secs().max(1))
}
