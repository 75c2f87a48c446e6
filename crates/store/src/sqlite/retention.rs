//! SQLite: retention policies and purges (see `crate::retention`). A raw purge deletes at
//! most `batch_rows` readings per write transaction, by rowid, and appends its receipt to
//! the tenant's audit chain in that transaction; the writer lock is released between
//! batches so that ingest keeps committing. SQLite stores no aggregates.

use beffroi_policy::MetricPattern;
use beffroi_protocol::TenantId;
use sqlx::{Executor, Sqlite};

use super::audit::append_in;
use super::SqliteStore;
use crate::decode::time;
use crate::on_conflict::OnConflict;
use crate::outcome::{tenant_found, tenant_referenced};
use crate::retention::{class_series, policy_from, stored_class, NO_STORED_AGGREGATES};
use crate::{Error, PurgeKind, PurgeReceipt, PurgeRequest, Result, RetentionPolicy};

/// The columns [`policy_from`] reads.
const POLICY_COLUMNS: &str = "tenant, class, raw_days, aggregate_days, updated_at";

impl SqliteStore {
    pub(super) async fn write_retention_policy(&self, policy: &RetentionPolicy) -> Result<()> {
        let _w = self.write.lock().await;
        insert_policy_row(&self.pool, policy, OnConflict::Replace).await
    }

    pub(super) async fn select_retention_policies(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<RetentionPolicy>> {
        let rows = sqlx::query(&format!(
            "SELECT {POLICY_COLUMNS} FROM retention_policies WHERE tenant = ? ORDER BY class"
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
        let _w = self.write.lock().await;
        let done = sqlx::query("DELETE FROM retention_policies WHERE tenant = ? AND class = ?")
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
        let known: Option<i64> = sqlx::query_scalar("SELECT key FROM tenants WHERE id = ?")
            .bind(request.tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        tenant_found(known, &request.tenant)?;
        let mut receipt = request.receipt();
        if request.kind == PurgeKind::Aggregate {
            receipt.note = Some(NO_STORED_AGGREGATES.to_owned());
            return Ok(receipt);
        }
        let series = self.class_series_ids(request).await?;
        if series.is_empty() {
            return Ok(receipt);
        }
        // The ids as a JSON array, expanded by `json_each`: any number of series in one bind.
        let series = serde_json::Value::from(series).to_string();
        loop {
            let _w = self.write.lock().await;
            let mut tx = self.begin_write().await?;
            let times: Vec<i64> = sqlx::query_scalar(
                "DELETE FROM readings WHERE id IN (SELECT id FROM readings \
                 WHERE series IN (SELECT value FROM json_each(?)) AND time < ? LIMIT ?) \
                 RETURNING time",
            )
            .bind(&series)
            .bind(request.older_than.unix_micros())
            .bind(request.limit())
            .fetch_all(&mut *tx)
            .await?;
            if times.is_empty() {
                return Ok(receipt);
            }
            let rows = times.len() as u64;
            let from = times.iter().copied().min().map(time);
            append_in(
                &mut tx,
                &[request.batch_entry(receipt.what.clone(), from, rows)?],
            )
            .await?;
            tx.commit().await?;
            receipt.add_batch(rows, from);
            if request.last_batch(rows) {
                return Ok(receipt);
            }
        }
    }

    /// The ids of the tenant's series that a purge of the request's class covers.
    async fn class_series_ids(&self, request: &PurgeRequest) -> Result<Vec<i64>> {
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT class FROM retention_policies WHERE tenant = ?")
                .bind(request.tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
        let stored = stored
            .iter()
            .map(|c| stored_class(c))
            .collect::<Result<Vec<_>>>()?;
        let series: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, metric FROM series WHERE tenant = ?")
                .bind(request.tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
        class_series(&request.class, &stored, &series)
    }
}

/// Inserts `policy` once it is valid; `on_conflict` says what happens to a stored policy of
/// its class. An unknown tenant is [`Error::NotFound`].
pub(super) async fn insert_policy_row<'c>(
    db: impl Executor<'c, Database = Sqlite>,
    policy: &RetentionPolicy,
    on_conflict: OnConflict,
) -> Result<()> {
    policy.validate()?;
    let done = sqlx::query(&format!(
        "INSERT INTO retention_policies (tenant, class, raw_days, aggregate_days, updated_at) \
         VALUES (?, ?, ?, ?, ?){}",
        on_conflict.clause(
            "tenant, class",
            &["raw_days", "aggregate_days", "updated_at"]
        )
    ))
    .bind(policy.tenant.as_str())
    .bind(policy.class.to_string())
    .bind(policy.raw_days)
    .bind(policy.aggregate_days)
    .bind(policy.updated_at.unix_micros())
    .execute(db)
    .await;
    tenant_referenced(done, &policy.tenant)?;
    Ok(())
}
