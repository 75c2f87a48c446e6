//! SQLite: resolving a commit's new series (see `crate::series`).
//!
//! In a transaction of its own, before the commit's (the caller holds the write lock): a
//! series row, once written, is valid whatever happens to the batches that brought it, so the
//! ids read back can be remembered at once. A series whose tenant does not exist is not
//! created; the commit then fails with [`crate::Error::NotFound`].

use super::SqliteStore;
use crate::series::{SeriesIds, SeriesMap};
use crate::Result;

impl SqliteStore {
    /// Gives every series of `map` its ids, creating the missing series and registering their
    /// sensors (kind `unknown`, with the unit of one of their first readings). The caller holds
    /// the write lock.
    pub(super) async fn resolve_series(&self, map: &mut SeriesMap<'_>) -> Result<()> {
        let missing = map.missing();
        if missing.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let mut found = Vec::with_capacity(missing.len());
        for key in missing {
            let (tenant, sensor, metric, unit) = key;
            sqlx::query(
                "INSERT INTO sensors (tenant, id, kind, unit) SELECT ?1, ?2, 'unknown', \
                 NULLIF(?3, '') WHERE EXISTS (SELECT 1 FROM tenants WHERE id = ?1) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(sensor)
            .bind(unit)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO series (tenant, sensor, metric, unit) SELECT ?1, ?2, ?3, ?4 \
                 WHERE EXISTS (SELECT 1 FROM tenants WHERE id = ?1) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(sensor)
            .bind(metric)
            .bind(unit)
            .execute(&mut *tx)
            .await?;
            let ids: Option<(i32, i32)> = sqlx::query_as(
                "SELECT s.id, t.key FROM series s JOIN tenants t ON t.id = s.tenant \
                 WHERE s.tenant = ? AND s.sensor = ? AND s.metric = ? AND s.unit = ?",
            )
            .bind(tenant)
            .bind(sensor)
            .bind(metric)
            .bind(unit)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((series, tenant)) = ids {
                found.push((key, SeriesIds { series, tenant }));
            }
        }
        tx.commit().await?;
        map.fill(found, &self.series);
        Ok(())
    }
}
