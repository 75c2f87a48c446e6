//! PostgreSQL and TimescaleDB: retention policies and purges (see `crate::retention`).
//!
//! A batch is one transaction: a `DELETE … USING` of at most `batch_rows` rows picked
//! through the `(series, time)` index and matched back on `(tenant, time, id)` (never by
//! `ctid`, which is not unique across a hypertable's chunks), then the batch's receipt
//! appended to the tenant's audit chain, then commit. The audit head is locked only after the
//! delete, so audited reads of the tenant wait at most for one batch's commit.
//!
//! TimescaleDB: raw purges are `DELETE`s too (chunks span every tenant), after a refresh of
//! the continuous aggregates over the purged range and without invalidating them, so that the
//! aggregates of purged readings are kept (see `timescale::keep_aggregates`); aggregate purges
//! delete from each continuous aggregate's materialization hypertable, found in
//! `timescaledb_information.continuous_aggregates` (its columns carry the view's names:
//! `tenant`, `series`, `bucket`…). A server that refuses a `DELETE` on a compressed chunk
//! (TimescaleDB < 2.11) gets the compressed chunks older than the bound decompressed, and the
//! batch is retried once.

use beffroi_policy::MetricPattern;
use beffroi_protocol::{TenantId, Timestamp};
use sqlx::{Executor, PgPool, Postgres};

use super::audit::append_in;
use super::timescale::{self, Aggregate, AGGREGATES};
use super::{ts, us, PostgresStore};
use crate::decode::time;
use crate::on_conflict::OnConflict;
use crate::outcome::tenant_referenced;
use crate::retention::{class_series, policy_from, stored_class, NO_STORED_AGGREGATES};
use crate::{Backend, Error, PurgeKind, PurgeReceipt, PurgeRequest, Result, RetentionPolicy};

/// Where a purge deletes: `readings`, or one continuous aggregate's materialized rows.
struct Target {
    /// The (quoted, qualified) table.
    table: String,
    /// Its time column.
    time: &'static str,
    /// SQL for "entirely older than the bound `$3`" on that column.
    older: String,
    /// The columns that identify a row with `tenant`.
    key: &'static str,
    /// The aggregate view, for the receipts.
    view: Option<&'static str>,
    /// Whether the continuous aggregates must not see the deletes (raw readings on
    /// TimescaleDB).
    keep_aggregates: bool,
}

impl PostgresStore {
    pub(super) async fn write_retention_policy(&self, policy: &RetentionPolicy) -> Result<()> {
        insert_policy_row(&self.pool, policy, OnConflict::Replace).await
    }

    pub(super) async fn select_retention_policies(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<RetentionPolicy>> {
        let rows = sqlx::query(&format!(
            "SELECT tenant, class, raw_days::int8 AS raw_days, \
             aggregate_days::int8 AS aggregate_days, {} AS updated_at \
             FROM retention_policies WHERE tenant = $1 ORDER BY class",
            us("updated_at")
        ))
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(policy_from).collect()
    }

    pub(super) async fn remove_retention_policy(
        &self,
        tenant: &TenantId,
        class: &MetricPattern,
    ) -> Result<()> {
        let done = sqlx::query("DELETE FROM retention_policies WHERE tenant = $1 AND class = $2")
            .bind(tenant.as_str())
            .bind(class.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound {
                what: "retention policy",
                id: format!("{tenant}/{class}"),
            });
        }
        Ok(())
    }

    pub(super) async fn purge_class(&self, request: &PurgeRequest) -> Result<PurgeReceipt> {
        let key: Option<i32> = sqlx::query_scalar("SELECT key FROM tenants WHERE id = $1")
            .bind(request.tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(key) = key else {
            return Err(Error::NotFound {
                what: "tenant",
                id: request.tenant.to_string(),
            });
        };
        let mut receipt = request.receipt();
        let targets = match (request.kind, self.backend) {
            (PurgeKind::Raw, _) => vec![Target {
                table: "readings".to_owned(),
                time: "time",
                older: format!("time < {}", ts("$3")),
                key: "time, id",
                view: None,
                keep_aggregates: self.backend == Backend::Timescale,
            }],
            (PurgeKind::Aggregate, Backend::Timescale) => aggregate_targets(&self.pool).await?,
            (PurgeKind::Aggregate, _) => {
                receipt.note = Some(NO_STORED_AGGREGATES.to_owned());
                return Ok(receipt);
            }
        };
        let series = self.class_series_ids(request).await?;
        if series.is_empty() {
            return Ok(receipt);
        }
        if targets.iter().any(|t| t.keep_aggregates) {
            timescale::refresh_before_purge(&self.pool, request.older_than, Some((key, &series)))
                .await?;
        }
        for target in &targets {
            let purged = self.purge_target(request, key, &series, target).await?;
            receipt.merge(&purged);
        }
        Ok(receipt)
    }

    /// Purges one target batch by batch.
    async fn purge_target(
        &self,
        request: &PurgeRequest,
        key: i32,
        series: &[i64],
        target: &Target,
    ) -> Result<PurgeReceipt> {
        let mut receipt = request.receipt();
        receipt.what = request.what(target.view);
        let mut retried = false;
        loop {
            let batch = match self
                .purge_batch(request, key, series, target, &receipt)
                .await
            {
                Err(Error::Database(e))
                    if !retried && self.backend == Backend::Timescale && compressed(&e) =>
                {
                    retried = true;
                    decompress_older(&self.pool, request.older_than).await?;
                    continue;
                }
                other => other?,
            };
            let Some((rows, from)) = batch else {
                return Ok(receipt);
            };
            receipt.add_batch(rows, from);
            if request.last_batch(rows) {
                return Ok(receipt);
            }
        }
    }

    /// One batch in one transaction with its receipt; `None` when nothing was left.
    async fn purge_batch(
        &self,
        request: &PurgeRequest,
        key: i32,
        series: &[i64],
        target: &Target,
        receipt: &PurgeReceipt,
    ) -> Result<Option<(u64, Option<Timestamp>)>> {
        let Target {
            table,
            time: column,
            older,
            key: columns,
            keep_aggregates,
            ..
        } = target;
        let matched = columns
            .split(", ")
            .map(|c| format!("t.{c} = d.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let mut tx = self.pool.begin().await?;
        if *keep_aggregates {
            timescale::keep_aggregates(&mut tx).await?;
        }
        let (rows, oldest): (i64, Option<i64>) = sqlx::query_as(&format!(
            "WITH doomed AS (SELECT {columns} FROM {table} \
             WHERE tenant = $1 AND series = ANY($2::int8[]) AND {older} LIMIT $4), \
             gone AS (DELETE FROM {table} t USING doomed d \
             WHERE t.tenant = $1 AND t.series = ANY($2::int8[]) AND {matched} \
             RETURNING t.{column}) \
             SELECT count(*), min({}) FROM gone",
            us(column)
        ))
        .bind(key)
        .bind(series)
        .bind(request.older_than.unix_micros())
        .bind(request.limit())
        .fetch_one(&mut *tx)
        .await?;
        let rows = u64::try_from(rows).unwrap_or(0);
        if rows == 0 {
            return Ok(None);
        }
        let from = oldest.map(time);
        append_in(
            &mut tx,
            &[request.batch_entry(receipt.what.clone(), from, rows)?],
        )
        .await?;
        tx.commit().await?;
        Ok(Some((rows, from)))
    }

    /// The ids of the tenant's series that a purge of the request's class covers.
    async fn class_series_ids(&self, request: &PurgeRequest) -> Result<Vec<i64>> {
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT class FROM retention_policies WHERE tenant = $1")
                .bind(request.tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
        let stored = stored
            .iter()
            .map(|c| stored_class(c))
            .collect::<Result<Vec<_>>>()?;
        let series: Vec<(i64, String)> =
            sqlx::query_as("SELECT id::int8, metric FROM series WHERE tenant = $1")
                .bind(request.tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
        class_series(&request.class, &stored, &series)
    }
}

/// The materialization hypertables of the continuous aggregates, as purge targets: a bucket
/// goes when it ends at or before the bound.
async fn aggregate_targets(pool: &PgPool) -> Result<Vec<Target>> {
    let mut targets = Vec::with_capacity(AGGREGATES.len());
    for &Aggregate { view, width_s, .. } in &AGGREGATES {
        let table: Option<String> = sqlx::query_scalar(
            "SELECT format('%I.%I', materialization_hypertable_schema, \
             materialization_hypertable_name) FROM timescaledb_information.continuous_aggregates \
             WHERE view_schema = current_schema() AND view_name = $1",
        )
        .bind(view)
        .fetch_optional(pool)
        .await?;
        let table =
            table.ok_or_else(|| Error::Unsupported(format!("no continuous aggregate {view}")))?;
        targets.push(Target {
            table,
            time: "bucket",
            older: format!("bucket + interval '{width_s} seconds' <= {}", ts("$3")),
            key: "series, bucket",
            view: Some(view),
            keep_aggregates: false,
        });
    }
    Ok(targets)
}

/// Whether the server refused a statement because it touches a compressed chunk.
fn compressed(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.message().contains("compressed"))
}

/// Decompresses the compressed chunks of `readings` older than `older_than`.
async fn decompress_older(pool: &PgPool, older_than: Timestamp) -> Result<()> {
    tracing::warn!(
        %older_than,
        "the server refused a DELETE on compressed chunks: decompressing them for the purge \
         (the compression policy compresses them again)"
    );
    sqlx::query(&format!(
        "SELECT count(decompress_chunk(c, if_compressed => true)) \
         FROM show_chunks('readings', older_than => {}) c",
        ts("$1")
    ))
    .bind(older_than.unix_micros())
    .execute(pool)
    .await?;
    Ok(())
}

/// Inserts `policy` once it is valid; `on_conflict` says what happens to a stored policy of
/// its class. An unknown tenant is [`Error::NotFound`].
pub(super) async fn insert_policy_row<'c>(
    db: impl Executor<'c, Database = Postgres>,
    policy: &RetentionPolicy,
    on_conflict: OnConflict,
) -> Result<()> {
    policy.validate()?;
    let done = sqlx::query(&format!(
        "INSERT INTO retention_policies (tenant, class, raw_days, aggregate_days, updated_at) \
         VALUES ($1, $2, $3, $4, {}){}",
        ts("$5"),
        on_conflict.clause(
            "tenant, class",
            &["raw_days", "aggregate_days", "updated_at"]
        )
    ))
    .bind(policy.tenant.as_str())
    .bind(policy.class.to_string())
    .bind(policy.raw_days.map(i64::from))
    .bind(policy.aggregate_days.map(i64::from))
    .bind(policy.updated_at.unix_micros())
    .execute(db)
    .await;
    tenant_referenced(done, &policy.tenant)?;
    Ok(())
}
