//! PostgreSQL: latest readings, bucket aggregates, stored batches, and the reading columns
//! shared with the pages of raw readings (`pages`).

use beffroi_protocol::{GatewayId, TenantId, Timestamp};
use sqlx::{Postgres, QueryBuilder};

use super::rollup::{Grid, Selection};
use super::{ts, us, PostgresStore};
use crate::decode::{check_bucket, reading_id, seq_to_db};
use crate::rows::{batch_from, bucket_from, reading_from, Columns};
use crate::{Bucket, ReadingFilter, Result, StoredBatch, StoredReading};

impl PostgresStore {
    pub(super) async fn select_latest(
        &self,
        tenant: &TenantId,
        since: Timestamp,
    ) -> Result<Vec<StoredReading>> {
        // Per series, one step down the (series, time) index from its end (on TimescaleDB,
        // in the newest chunk that has the series, older chunks excluded by `since`).
        let rows = sqlx::query(&format!(
            "SELECT r.id, {} AS time_us, b.gateway, b.seq, s.sensor, s.metric, s.unit, \
             r.value_num, r.value_bool, r.value_text FROM series s \
             CROSS JOIN LATERAL (SELECT x.id, x.time, x.value_num, x.value_bool, x.value_text \
             FROM readings x WHERE x.series = s.id AND x.time >= {} \
             ORDER BY x.time DESC, x.id DESC LIMIT 1) r \
             JOIN batches b ON b.id = r.id >> 16 WHERE s.tenant = $1",
            us("r.time"),
            ts("$2")
        ))
        .bind(tenant.as_str())
        .bind(since.unix_micros())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(reading_from).collect()
    }

    pub(super) async fn select_buckets(
        &self,
        filter: &ReadingFilter,
        bucket_us: i64,
    ) -> Result<Vec<Bucket>> {
        check_bucket(bucket_us)?;
        let owned = |ids: Vec<String>| (!ids.is_empty()).then_some(ids);
        let selection = Selection {
            tenant: &filter.tenant,
            metrics: owned(
                filter
                    .metrics
                    .iter()
                    .map(|m| m.as_str().to_owned())
                    .collect(),
            ),
            sensors: owned(
                filter
                    .sensors
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect(),
            ),
            zone: filter.zone.as_ref().map(|z| z.as_str().to_owned()),
        };
        let grid = Grid {
            width_us: bucket_us,
            offset_us: 0,
        };
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT p.bucket, s.sensor, s.metric, sum(p.total) AS total, min(p.lo) AS lo, \
             max(p.hi) AS hi, sum(p.n)::int8 AS n FROM ",
        );
        if !self
            .push_partials(&mut q, &selection, grid, (filter.from, filter.to))
            .await?
        {
            return Ok(Vec::new());
        }
        q.push(" JOIN series s ON s.id = p.series GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(bucket_from).collect()
    }

    pub(super) async fn select_batch(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        seq: u64,
        with_readings: bool,
    ) -> Result<Option<StoredBatch>> {
        let seq_db = seq_to_db(seq)?;
        let row = sqlx::query(&format!(
            "SELECT id, key_id, signature, {} AS received_at, {} AS first_time, \
             {} AS last_time FROM batches WHERE tenant = $1 AND gateway = $2 AND seq = $3",
            us("received_at"),
            us("first_time"),
            us("last_time")
        ))
        .bind(tenant.as_str())
        .bind(gateway.as_str())
        .bind(seq_db)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (first, last) = (row.opt_int("first_time")?, row.opt_int("last_time")?);
        let mut readings = Vec::new();
        if let (true, Some(first), Some(last)) = (with_readings, first, last) {
            // The time range and the id range lead the (tenant, time, id) index to the
            // batch's readings.
            let first_id = reading_id(row.int("id")?, 0)?;
            let mut q = QueryBuilder::<Postgres>::new(reading_select());
            q.push(" WHERE r.tenant = (SELECT key FROM tenants WHERE id = ")
                .push_bind(tenant.as_str())
                .push(") AND r.time >= ");
            push_ts(&mut q, first);
            q.push(" AND r.time <= ");
            push_ts(&mut q, last);
            q.push(" AND r.id >= ")
                .push_bind(first_id)
                .push(" AND r.id <= ")
                .push_bind(first_id | 0xffff)
                .push(" ORDER BY r.id");
            readings = q.build().fetch_all(&self.pool).await?;
        }
        batch_from(&row, tenant, gateway, seq, &readings).map(Some)
    }
}

/// Binds `micros` as a `timestamptz` (see [`super::ts`]).
pub(super) fn push_ts(q: &mut QueryBuilder<'_, Postgres>, micros: i64) {
    q.push("(timestamptz 'epoch' + ")
        .push_bind(micros)
        .push("::int8 * interval '1 microsecond')");
}

/// `SELECT` of the columns [`crate::rows::reading_from`] reads, up to `FROM`: a source of
/// readings columns named `r` follows (`readings`, or a subquery of a page), then
/// [`READING_JOINS`].
pub(super) fn reading_columns() -> String {
    format!(
        "SELECT r.id, {} AS time_us, b.gateway, b.seq, s.sensor, s.metric, s.unit, r.value_num, \
         r.value_bool, r.value_text FROM ",
        us("r.time")
    )
}

/// Names the source of [`reading_columns`] `r` and joins its series and batch.
pub(super) const READING_JOINS: &str =
    " r JOIN series s ON s.id = r.series JOIN batches b ON b.id = r.id >> 16";

/// The columns [`crate::rows::reading_from`] reads, from `readings r` joined to its series and
/// batch; a `WHERE` clause follows.
fn reading_select() -> String {
    format!("{}readings{READING_JOINS}", reading_columns())
}
