//! SQLite: leases, one upsert that takes a free or expired lease or renews the holder's own.

use beffroi_protocol::Timestamp;

use super::SqliteStore;
use crate::Result;

impl SqliteStore {
    pub(super) async fn upsert_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let _w = self.write.lock().await;
        let held = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < ?3 \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now.unix_micros())
        .bind(until.unix_micros())
        .fetch_optional(&self.pool)
        .await?;
        Ok(held.is_some())
    }

    pub(super) async fn delete_lease(&self, name: &str, holder: &str) -> Result<()> {
        let _w = self.write.lock().await;
        sqlx::query("DELETE FROM leases WHERE name = ?1 AND holder = ?2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
