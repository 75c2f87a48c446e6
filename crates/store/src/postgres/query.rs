//! PostgreSQL: raw readings (keyset pages), latest readings, bucket aggregates, stored
//! batches.

use beffroi_protocol::{GatewayId, TenantId, Timestamp};
use sqlx::{Postgres, QueryBuilder};

use super::{timescale, ts, us, PostgresStore};
use crate::decode::{check_bucket, reading_id, seq_to_db};
use crate::rows::{batch_from, bucket_from, reading_from, reading_page_from, Columns};
use crate::{
    Backend, Bucket, ReadingCursor, ReadingFilter, ReadingPage, Result, StoredBatch, StoredReading,
};

impl PostgresStore {
    pub(super) async fn select_readings(
        &self,
        filter: &ReadingFilter,
        limit: u32,
        after: Option<ReadingCursor>,
    ) -> Result<ReadingPage> {
        let limit = limit.max(1);
        let mut q = QueryBuilder::<Postgres>::new(reading_select());
        push_filter(&mut q, filter);
        if let Some(cursor) = after {
            q.push(" AND (r.time, r.id) > (");
            push_ts(&mut q, cursor.time_us);
            q.push(", ").push_bind(cursor.id).push(")");
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
        // Both bin from the Unix epoch, flooring times before it as well.
        let function = match self.backend {
            Backend::Timescale => timescale::BUCKET_FUNCTION,
            _ => "date_bin",
        };
        let mut q =
            QueryBuilder::<Postgres>::new(format!("SELECT (extract(epoch from {function}("));
        q.push_bind(bucket_us).push(
            "::int8 * interval '1 microsecond', r.time, timestamptz 'epoch')) * 1000000)::int8 \
             AS bucket, s.sensor, s.metric, sum(r.value_num) AS total, min(r.value_num) AS lo, \
             max(r.value_num) AS hi, count(r.value_num) AS n \
             FROM readings r JOIN series s ON s.id = r.series",
        );
        push_filter(&mut q, filter);
        q.push(" AND r.value_num IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
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

/// The columns [`crate::rows::reading_from`] reads, from `readings r` joined to its series and
/// batch; a `WHERE` clause follows.
fn reading_select() -> String {
    format!(
        "SELECT r.id, {} AS time_us, b.gateway, b.seq, s.sensor, s.metric, s.unit, r.value_num, \
         r.value_bool, r.value_text FROM readings r JOIN series s ON s.id = r.series \
         JOIN batches b ON b.id = r.id >> 16",
        us("r.time")
    )
}

/// `WHERE` clause of a reading filter over `readings r` (always tenant-scoped).
fn push_filter(q: &mut QueryBuilder<'_, Postgres>, filter: &ReadingFilter) {
    let tenant = filter.tenant.as_str().to_owned();
    q.push(" WHERE r.tenant = (SELECT key FROM tenants WHERE id = ")
        .push_bind(tenant.clone())
        .push(") AND r.time >= ");
    push_ts(q, filter.from.unix_micros());
    q.push(" AND r.time < ");
    push_ts(q, filter.to.unix_micros());
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
