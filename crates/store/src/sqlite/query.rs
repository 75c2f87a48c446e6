//! SQLite: latest readings, bucket aggregates, stored batches, and the reading columns shared
//! with the pages of raw readings (`pages`).

use beffroi_protocol::{GatewayId, TenantId, Timestamp};
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use crate::decode::{check_bucket, reading_id, seq_to_db};
use crate::paging::{push_selected_series, selects_series};
use crate::rows::{batch_from, bucket_from, reading_from, Columns};
use crate::{Bucket, ReadingFilter, Result, StoredBatch, StoredReading};

impl SqliteStore {
    pub(super) async fn select_latest(
        &self,
        tenant: &TenantId,
        since: Timestamp,
    ) -> Result<Vec<StoredReading>> {
        // Per series, one step down the (series, time) index from its end (the index ends
        // with the rowid, so ties on time go to the highest id).
        let rows = sqlx::query(&format!(
            "{} WHERE r.id IN (SELECT (SELECT x.id FROM readings x \
             WHERE x.series = t.id AND x.time >= ?2 ORDER BY x.time DESC, x.id DESC LIMIT 1) \
             FROM series t WHERE t.tenant = ?1)",
            reading_select()
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
        // Floor division: the bucket of a time before the epoch starts before it too.
        let mut q = QueryBuilder::<Sqlite>::new("SELECT r.time - (((r.time % ");
        q.push_bind(bucket_us)
            .push(") + ")
            .push_bind(bucket_us)
            .push(") % ")
            .push_bind(bucket_us)
            .push(
                ") AS bucket, s.sensor, s.metric, sum(r.value_num) AS total, \
                 min(r.value_num) AS lo, max(r.value_num) AS hi, count(r.value_num) AS n \
                 FROM readings r JOIN series s ON s.id = r.series",
            );
        push_filter(&mut q, filter);
        q.push(
            " AND r.value_num IS NOT NULL GROUP BY bucket, s.sensor, s.metric \
             ORDER BY bucket, s.sensor, s.metric",
        );
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
        let row = sqlx::query(
            "SELECT id, key_id, signature, received_at FROM batches \
             WHERE tenant = ? AND gateway = ? AND seq = ?",
        )
        .bind(tenant.as_str())
        .bind(gateway.as_str())
        .bind(seq_db)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut readings = Vec::new();
        if with_readings {
            // The batch's id range: its readings' rowids.
            let first_id = reading_id(row.int("id")?, 0)?;
            let mut q = QueryBuilder::<Sqlite>::new(reading_select());
            q.push(" WHERE r.id >= ")
                .push_bind(first_id)
                .push(" AND r.id <= ")
                .push_bind(first_id | 0xffff)
                .push(" ORDER BY r.id");
            readings = q.build().fetch_all(&self.pool).await?;
        }
        batch_from(&row, tenant, gateway, seq, &readings).map(Some)
    }
}

/// `SELECT` of the columns [`crate::rows::reading_from`] reads, up to `FROM`: a source of
/// readings columns named `r` follows (`readings`, or a subquery of a page), then
/// [`READING_JOINS`].
pub(super) const READING_COLUMNS: &str = "SELECT r.id, r.time AS time_us, b.gateway, b.seq, \
     s.sensor, s.metric, s.unit, r.value_num, r.value_bool, r.value_text FROM ";

/// Names the source of [`READING_COLUMNS`] `r` and joins its series and batch.
pub(super) const READING_JOINS: &str =
    " r JOIN series s ON s.id = r.series JOIN batches b ON b.id = r.id >> 16";

/// The columns [`crate::rows::reading_from`] reads, from `readings r` joined to its series and
/// batch; a `WHERE` clause follows.
fn reading_select() -> String {
    format!("{READING_COLUMNS}readings{READING_JOINS}")
}

/// `WHERE` clause of a reading filter over `readings r` (always tenant-scoped).
fn push_filter(q: &mut QueryBuilder<'_, Sqlite>, filter: &ReadingFilter) {
    q.push(" WHERE r.tenant = (SELECT key FROM tenants WHERE id = ")
        .push_bind(filter.tenant.as_str().to_owned())
        .push(") AND r.time >= ")
        .push_bind(filter.from.unix_micros())
        .push(" AND r.time < ")
        .push_bind(filter.to.unix_micros());
    if selects_series(filter) {
        q.push(" AND r.series IN (");
        push_selected_series(q, filter);
        q.push(")");
    }
}
