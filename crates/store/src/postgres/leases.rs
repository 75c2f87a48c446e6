//! PostgreSQL: leases, one upsert that takes a free or expired lease or renews the holder's
//! own (the row lock makes two nodes' attempts take turns).

use beffroi_protocol::Timestamp;

use super::PostgresStore;
use crate::Result;

impl PostgresStore {
    pub(super) async fn upsert_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let held = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $3 \
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
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
