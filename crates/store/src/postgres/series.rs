//! PostgreSQL: resolving a commit's new series (see `crate::series`).
//!
//! Outside the commit's transaction, in autocommitted statements: a series row, once written,
//! is valid whatever happens to the batches that brought it, so the ids read back can be
//! remembered at once. Rows are inserted in sorted order, so two nodes inserting the same new
//! series take their locks in the same order. A series whose tenant does not exist is not
//! created; the commit then fails with [`crate::Error::NotFound`].

use super::PostgresStore;
use crate::series::{SeriesIds, SeriesMap};
use crate::Result;

impl PostgresStore {
    /// Gives every series of `map` its ids, creating the missing series and registering their
    /// sensors (kind `unknown`, with the unit of one of their first readings).
    pub(super) async fn resolve_series(&self, map: &mut SeriesMap<'_>) -> Result<()> {
        let missing = map.missing();
        if missing.is_empty() {
            return Ok(());
        }
        let mut columns: [Vec<&str>; 4] = Default::default();
        for (t, s, m, u) in &missing {
            for (column, value) in columns.iter_mut().zip([t, s, m, u]) {
                column.push(value);
            }
        }
        let [tenants, sensors, metrics, units] = &columns;
        sqlx::query(
            "WITH x AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) \
             AS x(t, s, m, u) WHERE EXISTS (SELECT 1 FROM tenants WHERE id = x.t)), \
             new_sensors AS (INSERT INTO sensors (tenant, id, kind, unit) \
             SELECT DISTINCT ON (t, s) t, s, 'unknown', NULLIF(u, '') FROM x ORDER BY t, s \
             ON CONFLICT DO NOTHING) \
             INSERT INTO series (tenant, sensor, metric, unit) SELECT t, s, m, u FROM x \
             ORDER BY t, s, m, u ON CONFLICT DO NOTHING",
        )
        .bind(tenants)
        .bind(sensors)
        .bind(metrics)
        .bind(units)
        .execute(&self.pool)
        .await?;
        let rows: Vec<(i32, i32, String, String, String, String)> = sqlx::query_as(
            "SELECT s.id, t.key, s.tenant, s.sensor, s.metric, s.unit FROM series s \
             JOIN tenants t ON t.id = s.tenant \
             JOIN UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS x(t, s, m, u) \
             ON (s.tenant, s.sensor, s.metric, s.unit) = (x.t, x.s, x.m, x.u)",
        )
        .bind(tenants)
        .bind(sensors)
        .bind(metrics)
        .bind(units)
        .fetch_all(&self.pool)
        .await?;
        let found = rows
            .iter()
            .map(|(series, tenant, t, s, m, u)| {
                let ids = SeriesIds {
                    series: *series,
                    tenant: *tenant,
                };
                ((t.as_str(), s.as_str(), m.as_str(), u.as_str()), ids)
            })
            .collect();
        map.fill(found, &self.series);
        Ok(())
    }
}
