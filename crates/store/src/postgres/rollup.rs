//! PostgreSQL: aggregates of numeric readings over a bucket grid, for the bucket query
//! (`select_buckets`, per sensor) and the governed cell query (`select_cells`, per sensor or
//! zone), both built on one subquery of *partials*: per bucket of the grid and series, the
//! count, sum, min and max of its values.
//!
//! On plain PostgreSQL the partials come from the raw readings. On TimescaleDB the aggregation
//! is pushed down to the continuous aggregates ([`Plan`]): the whole buckets of the widest
//! aggregate whose width divides the grid's width and offset are read from it, and only the
//! edges of the range, shorter than one of its buckets, from the raw readings. A continuous
//! aggregate bucket lies inside one bucket of such a grid, so the result is the same, and it
//! still holds what per-tenant retention purged from the raw readings (the *stored
//! aggregates* kept for `aggregate_days`).
//!
//! The materialized part of a continuous aggregate misses readings committed below its
//! watermark until a refresh covers them. The policies only refresh recent windows, so a
//! gateway's spool delivered after an outage would stay missing. Ingest therefore records the
//! range of such *late* readings per gateway in `aggregate_backlog` (in the commit's
//! transaction, see [`record_late`]); a pushed-down query whose range meets the tenant's
//! backlog refreshes it first ([`drain`]) and, should that fail, reads the raw readings.
//! Results are exact either way.

use beffroi_protocol::{TenantId, Timestamp};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::query::push_ts;
use super::timescale::{self, AGGREGATES};
use super::{ts, PostgresStore};
use crate::{Backend, Result};

/// A reading is *late* when it is older than its batch's receipt by more than this: a
/// continuous aggregate's watermark never passes `now − 1 min` (the 1-minute aggregate's
/// refresh ends one bucket back), and this leaves a commit 30 s to land.
pub(super) const LATE_AFTER_US: i64 = 30_000_000;

/// A bucket grid: width and offset from the Unix epoch, in microseconds (offset in
/// `0..width`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Grid {
    pub(super) width_us: i64,
    pub(super) offset_us: i64,
}

/// The series whose numeric readings are aggregated: a tenant's, narrowed by metric, sensor
/// and zone (`None`: no condition).
pub(super) struct Selection<'a> {
    pub(super) tenant: &'a TenantId,
    pub(super) metrics: Option<Vec<String>>,
    pub(super) sensors: Option<Vec<String>>,
    pub(super) zone: Option<String>,
}

/// Where the partials of `[from, to)` come from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    /// Ranges read from the raw readings.
    raw: Vec<(i64, i64)>,
    /// The continuous aggregate and the range of whole buckets read from it.
    stored: Option<(&'static str, i64, i64)>,
}

impl Plan {
    fn raw(from: i64, to: i64) -> Self {
        Self {
            raw: vec![(from, to)],
            stored: None,
        }
    }

    /// The widest continuous aggregate compatible with `grid` that has a whole bucket in
    /// `[from, to)`, and the raw edges around its buckets.
    fn pushed_down(grid: Grid, from: i64, to: i64) -> Self {
        for aggregate in AGGREGATES.iter().rev() {
            let width = i64::try_from(aggregate.width_s).unwrap_or(i64::MAX) * 1_000_000;
            if grid.width_us % width != 0 || grid.offset_us % width != 0 {
                continue;
            }
            let start = from.div_euclid(width) * width;
            let start = if start < from { start + width } else { start };
            let end = to.div_euclid(width) * width;
            if start < end {
                let edges = [(from, start), (end, to)];
                return Self {
                    raw: edges.into_iter().filter(|(a, b)| a < b).collect(),
                    stored: Some((aggregate.view, start, end)),
                };
            }
        }
        Self::raw(from, to)
    }
}

impl PostgresStore {
    /// Pushes `(partials) p` for `selection`'s series over `[from, to)` on `grid`: columns
    /// `bucket` (integer microseconds), `series`, `n`, `total`, `lo`, `hi`; false (and
    /// nothing pushed) when no series is selected.
    pub(super) async fn push_partials(
        &self,
        q: &mut QueryBuilder<'_, Postgres>,
        selection: &Selection<'_>,
        grid: Grid,
        (from, to): (Timestamp, Timestamp),
    ) -> Result<bool> {
        let ids = self.series_ids(selection).await?;
        if ids.is_empty() {
            return Ok(false);
        }
        let (from, to) = (from.unix_micros(), to.unix_micros());
        let plan = match self.backend {
            Backend::Timescale => {
                let plan = Plan::pushed_down(grid, from, to);
                match plan.stored {
                    Some((_, start, end)) if !self.drain(selection.tenant, start, end).await => {
                        Plan::raw(from, to)
                    }
                    _ => plan,
                }
            }
            _ => Plan::raw(from, to),
        };
        let function = match self.backend {
            Backend::Timescale => timescale::BUCKET_FUNCTION,
            _ => "date_bin",
        };
        let bucket = |q: &mut QueryBuilder<'_, Postgres>, time: &str| {
            q.push(format!("(extract(epoch from {function}("))
                .push_bind(grid.width_us)
                .push(format!("::int8 * interval '1 microsecond', {time}, "));
            push_ts(q, grid.offset_us);
            q.push(")) * 1000000)::int8");
        };
        let tenant = |q: &mut QueryBuilder<'_, Postgres>, column: &str| {
            q.push(format!(
                " WHERE {column} = (SELECT key FROM tenants WHERE id = "
            ))
            .push_bind(selection.tenant.as_str().to_owned())
            .push(")");
        };
        q.push("(");
        let mut first = true;
        for (start, end) in &plan.raw {
            if !std::mem::take(&mut first) {
                q.push(" UNION ALL ");
            }
            q.push("SELECT ");
            bucket(q, "r.time");
            q.push(
                " AS bucket, r.series, count(r.value_num) AS n, sum(r.value_num) AS total, \
                 min(r.value_num) AS lo, max(r.value_num) AS hi FROM readings r",
            );
            tenant(q, "r.tenant");
            q.push(" AND r.time >= ");
            push_ts(q, *start);
            q.push(" AND r.time < ");
            push_ts(q, *end);
            q.push(" AND r.value_num IS NOT NULL AND r.series = ANY(")
                .push_bind(ids.clone())
                .push("::int4[]) GROUP BY 1, 2");
        }
        if let Some((view, start, end)) = plan.stored {
            if !first {
                q.push(" UNION ALL ");
            }
            q.push("SELECT ");
            bucket(q, "c.bucket");
            q.push(format!(
                " AS bucket, c.series, sum(c.count)::int8 AS n, sum(c.sum) AS total, \
                 min(c.min) AS lo, max(c.max) AS hi FROM {view} c"
            ));
            tenant(q, "c.tenant");
            q.push(" AND c.bucket >= ");
            push_ts(q, start);
            q.push(" AND c.bucket < ");
            push_ts(q, end);
            q.push(" AND c.series = ANY(")
                .push_bind(ids)
                .push("::int4[]) GROUP BY 1, 2");
        }
        q.push(") p");
        Ok(true)
    }

    /// The ids of the selected series.
    async fn series_ids(&self, selection: &Selection<'_>) -> Result<Vec<i32>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM series WHERE tenant = $1 \
             AND ($2::text[] IS NULL OR metric = ANY($2)) \
             AND ($3::text[] IS NULL OR sensor = ANY($3)) \
             AND ($4::text IS NULL OR sensor IN \
             (SELECT id FROM sensors WHERE tenant = $1 AND zone = $4))",
        )
        .bind(selection.tenant.as_str())
        .bind(&selection.metrics)
        .bind(&selection.sensors)
        .bind(&selection.zone)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Brings the continuous aggregates up to date over `tenant`'s late readings that meet
    /// `[from, to)`; whether they are (false: read the raw readings instead).
    async fn drain(&self, tenant: &TenantId, from: i64, to: i64) -> bool {
        match self.try_drain(tenant, from, to).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    tenant = %tenant,
                    error = %e,
                    "cannot refresh the continuous aggregates over late readings: this \
                     query reads the raw readings"
                );
                false
            }
        }
    }

    async fn try_drain(&self, tenant: &TenantId, from: i64, to: i64) -> Result<()> {
        let late: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
            "SELECT gateway, {}, {} FROM aggregate_backlog WHERE tenant = $1 \
             AND first_time < {} AND last_time >= {}",
            super::us("first_time"),
            super::us("last_time"),
            ts("$3"),
            ts("$2")
        ))
        .bind(tenant.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let (Some(first), Some(last)) = (
            late.iter().map(|l| l.1).min(),
            late.iter().map(|l| l.2).max(),
        ) else {
            return Ok(());
        };
        // Never below the instance-wide retention: a refresh over chunks it dropped would
        // delete their aggregates (see `timescale`).
        let floor = self.retention.map_or(i64::MIN, |r| {
            Timestamp::now().unix_micros() - i64::try_from(r.as_micros()).unwrap_or(i64::MAX)
        });
        if last >= floor {
            timescale::refresh(
                &self.pool,
                Timestamp::from_unix_micros(first.max(floor)),
                Timestamp::from_unix_micros(last.saturating_add(1)),
            )
            .await?;
        }
        // A row a commit widened meanwhile stays for the next query.
        let (gateways, firsts, lasts): (Vec<_>, Vec<_>, Vec<_>) = late.into_iter().fold(
            (Vec::new(), Vec::new(), Vec::new()),
            |(mut g, mut f, mut l), (gateway, first, last)| {
                g.push(gateway);
                f.push(first);
                l.push(last);
                (g, f, l)
            },
        );
        sqlx::query(&format!(
            "DELETE FROM aggregate_backlog b USING UNNEST($2::text[], $3::int8[], $4::int8[]) \
             AS u(g, f, l) WHERE b.tenant = $1 AND b.gateway = u.g \
             AND b.first_time = {} AND b.last_time = {}",
            ts("u.f"),
            ts("u.l")
        ))
        .bind(tenant.as_str())
        .bind(gateways)
        .bind(firsts)
        .bind(lasts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// One gateway's late readings in a commit: `(tenant, gateway, first, last)` times in
/// microseconds.
pub(super) type LateRange<'a> = (&'a str, &'a str, i64, i64);

/// Records `late` in `aggregate_backlog`, widening each gateway's range, in the commit's
/// transaction (which already holds its gateways' rows: no new lock order).
pub(super) async fn record_late(conn: &mut PgConnection, late: &[LateRange<'_>]) -> Result<()> {
    if late.is_empty() {
        return Ok(());
    }
    let mut columns: (Vec<&str>, Vec<&str>, Vec<i64>, Vec<i64>) = Default::default();
    for &(tenant, gateway, first, last) in late {
        columns.0.push(tenant);
        columns.1.push(gateway);
        columns.2.push(first);
        columns.3.push(last);
    }
    sqlx::query(&format!(
        "INSERT INTO aggregate_backlog (tenant, gateway, first_time, last_time) \
         SELECT t, g, min({}), max({}) FROM UNNEST($1::text[], $2::text[], $3::int8[], \
         $4::int8[]) AS u(t, g, f, l) GROUP BY t, g \
         ON CONFLICT (tenant, gateway) DO UPDATE SET \
         first_time = LEAST(aggregate_backlog.first_time, excluded.first_time), \
         last_time = GREATEST(aggregate_backlog.last_time, excluded.last_time)",
        ts("u.f"),
        ts("u.l")
    ))
    .bind(columns.0)
    .bind(columns.1)
    .bind(columns.2)
    .bind(columns.3)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;

    fn grid(width_us: i64, offset_us: i64) -> Grid {
        Grid {
            width_us,
            offset_us,
        }
    }

    #[test]
    fn the_widest_aggregate_dividing_the_grid_takes_the_whole_buckets() {
        let plan = Plan::pushed_down(grid(DAY, 0), 10 * DAY + 5 * MIN, 13 * DAY + HOUR);
        assert_eq!(plan.stored, Some(("readings_1d", 11 * DAY, 13 * DAY)));
        assert_eq!(
            plan.raw,
            vec![(10 * DAY + 5 * MIN, 11 * DAY), (13 * DAY, 13 * DAY + HOUR)]
        );
        // Aligned ranges have no raw edge.
        let plan = Plan::pushed_down(grid(2 * HOUR, HOUR), 4 * HOUR, 9 * HOUR);
        assert_eq!(plan.stored, Some(("readings_1h", 4 * HOUR, 9 * HOUR)));
        assert!(plan.raw.is_empty());
    }

    #[test]
    fn a_narrower_aggregate_serves_a_range_without_a_whole_wide_bucket() {
        let plan = Plan::pushed_down(grid(DAY, 0), DAY + 30 * MIN, DAY + 3 * HOUR);
        assert_eq!(
            plan.stored,
            Some(("readings_1h", DAY + HOUR, DAY + 3 * HOUR))
        );
        assert_eq!(plan.raw, vec![(DAY + 30 * MIN, DAY + HOUR)]);
    }

    #[test]
    fn grids_no_aggregate_divides_and_short_ranges_read_the_raw_readings() {
        // 90 s: no aggregate width divides it.
        let odd = grid(90_000_000, 0);
        assert_eq!(Plan::pushed_down(odd, 0, DAY), Plan::raw(0, DAY));
        // An hourly grid offset by 30 s.
        let offset = grid(HOUR, 30_000_000);
        assert_eq!(Plan::pushed_down(offset, 0, DAY), Plan::raw(0, DAY));
        // Less than a minute.
        let short = (5 * MIN + 1, 6 * MIN - 1);
        assert_eq!(
            Plan::pushed_down(grid(MIN, 0), short.0, short.1),
            Plan::raw(short.0, short.1)
        );
    }

    #[test]
    fn ranges_before_the_epoch_floor_like_the_grid() {
        let plan = Plan::pushed_down(grid(HOUR, 0), -3 * HOUR - MIN, -HOUR + MIN);
        assert_eq!(plan.stored, Some(("readings_1h", -3 * HOUR, -HOUR)));
        assert_eq!(
            plan.raw,
            vec![(-3 * HOUR - MIN, -3 * HOUR), (-HOUR, -HOUR + MIN)]
        );
    }
}
