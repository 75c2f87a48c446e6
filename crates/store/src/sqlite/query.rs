//! SQLite: raw readings (keyset pages), latest readings, bucket aggregates, stored batches.

use beffroi_protocol::{GatewayId, TenantId, Timestamp};
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use crate::decode::{check_bucket, reading_id, seq_to_db};
use crate::rows::{batch_from, bucket_from, reading_from, reading_page_from, Columns};
use crate::{
    Bucket, ReadingCursor, ReadingFilter, ReadingPage, Result, StoredBatch, StoredReading,
};

impl SqliteStore {
    pub(super) async fn select_readings(
        &self,
        filter: &ReadingFilter,
        limit: u32,
        after: Option<ReadingCursor>,
    ) -> Result<ReadingPage> {
        let limit = limit.max(1);
        let mut q = QueryBuilder::<Sqlite>::new(READING_SELECT);
        push_filter(&mut q, filter);
        if let Some(cursor) = after {
            q.push(" AND (r.time, r.id) > (")
                .push_bind(cursor.time_us)
                .push(", ")
                .push_bind(cursor.id)
                .push(")");
        }
        q.push(" ORDER BY r.time, r.id LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = q.build().fetch_all(&self.pool).await?;
        reading_page_from(&rows, limit)
    }

    pub(super) async fn select_latest(
        &self,
        tenant: &TenantId,
        since: Timestamp,
    ) -> Result<Vec<StoredReading>> {
        // Per series, one step down the (series, time) index from its end (the index ends
        // with the rowid, so ties on time go to the highest id).
        let rows = sqlx::query(&format!(
            "{READING_SELECT} WHERE r.id IN (SELECT (SELECT x.id FROM readings x \
             WHERE x.series = t.id AND x.time >= ?2 ORDER BY x.time DESC, x.id DESC LIMIT 1) \
             FROM series t WHERE t.tenant = ?1)"
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
            let mut q = QueryBuilder::<Sqlite>::new(READING_SELECT);
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

/// The columns [`crate::rows::reading_from`] reads, from `readings r` joined to its series and
/// batch; a `WHERE` clause follows.
const READING_SELECT: &str = "SELECT r.id, r.time AS time_us, b.gateway, b.seq, s.sensor, \
     s.metric, s.unit, r.value_num, r.value_bool, r.value_text FROM readings r \
     JOIN series s ON s.id = r.series JOIN batches b ON b.id = r.id >> 16";

/// `WHERE` clause of a reading filter over `readings r` (always tenant-scoped).
fn push_filter(q: &mut QueryBuilder<'_, Sqlite>, filter: &ReadingFilter) {
    let tenant = filter.tenant.as_str().to_owned();
    q.push(" WHERE r.tenant = (SELECT key FROM tenants WHERE id = ")
        .push_bind(tenant.clone())
        .push(") AND r.time >= ")
        .push_bind(filter.from.unix_micros())
        .push(" AND r.time < ")
        .push_bind(filter.to.unix_micros());
    if filter.sensors.is_empty() && filter.metrics.is_empty() && filter.zone.is_none() {
        return;
    }
    q.push(" AND r.series IN (SELECT id FROM series WHERE tenant = ")
        .push_bind(tenant.clone());
    if !filter.sensors.is_empty() {
        q.push(" AND sensor IN (");
        let mut list = q.separated(", ");
        for sensor in &filter.sensors {
            list.push_bind(sensor.as_str().to_owned());
        }
        q.push(")");
    }
    if !filter.metrics.is_empty() {
        q.push(" AND metric IN (");
        let mut list = q.separated(", ");
        for metric in &filter.metrics {
            list.push_bind(metric.as_str().to_owned());
        }
        q.push(")");
    }
    if let Some(zone) = &filter.zone {
        q.push(" AND sensor IN (SELECT id FROM sensors WHERE tenant = ")
            .push_bind(tenant)
            .push(" AND zone = ")
            .push_bind(zone.as_str().to_owned())
            .push(")");
    }
    q.push(")");
}
