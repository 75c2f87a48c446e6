//! PostgreSQL: restoring an exported tenant (see `crate::restore`): its registry, rules,
//! agreements and retention in one transaction, its audit entries verbatim (under the
//! tenant's locked head), and the listings an export walks.

use beffroi_audit::{AuditEntry, AuditHead};
use beffroi_protocol::{GatewayId, TenantId, Timestamp};
use sqlx::PgConnection;

use super::alarm_rules::insert_rule_row;
use super::audit::{insert_entries, lock_head, set_head};
use super::governance::insert_agreement_row;
use super::pseudonym_keys::insert_key_row;
use super::registry::{
    insert_gateway_key_row, insert_gateway_row, insert_placement_row, insert_sensor_row,
    insert_tenant_row, insert_zone_row,
};
use super::retention::insert_policy_row;
use super::PostgresStore;
use crate::decode::{id, seq_to_db, unsigned};
use crate::governance::agreement_columns;
use crate::identity::key_registered;
use crate::on_conflict::OnConflict;
use crate::restore::{
    check_continuation, gateway_restored, BatchKey, RestoredAgreement, TenantRestore,
};
use crate::sealing::KeyRow;
use crate::{KeyEncryptionKey, Result};

impl PostgresStore {
    pub(super) async fn write_restore(&self, restore: &TenantRestore) -> Result<()> {
        restore.check()?;
        let mut tx = self.pool.begin().await?;
        let tenant = &restore.tenant;
        insert_tenant_row(&mut *tx, tenant).await?;
        for gateway in &restore.gateways {
            let registration = gateway.registration(&tenant.id)?;
            let revoked_at = gateway.revocation(restore.restored_at)?;
            let inserted =
                insert_gateway_row(&mut *tx, &registration, revoked_at, gateway.created_at).await;
            gateway_restored(inserted, gateway)?;
            for key in gateway.key_rows()? {
                let inserted =
                    insert_gateway_key_row(&mut *tx, &tenant.id, &gateway.id, &key).await;
                key_registered(inserted, &key.key_id)?;
            }
        }
        for sensor in &restore.sensors {
            insert_sensor_row(&mut *tx, sensor, OnConflict::Fail).await?;
        }
        for placement in &restore.placements {
            insert_placement_row(&mut *tx, placement).await?;
        }
        for zone in &restore.zones {
            insert_zone_row(&mut *tx, zone, OnConflict::Fail).await?;
        }
        for rule in &restore.alarm_rules {
            insert_rule_row(&mut *tx, rule).await?;
        }
        for agreement in &restore.agreements {
            insert_agreement(&mut tx, self.kek.as_ref(), agreement, restore.restored_at).await?;
        }
        for policy in &restore.retention {
            insert_policy_row(&mut *tx, policy, OnConflict::Fail).await?;
        }
        Ok(tx.commit().await?)
    }

    pub(super) async fn write_imported_audit(
        &self,
        tenant: &TenantId,
        entries: &[AuditEntry],
    ) -> Result<AuditHead> {
        let mut tx = self.pool.begin().await?;
        let head = lock_head(&mut tx, tenant).await?;
        let new_head = check_continuation(tenant, head, entries)?;
        if !entries.is_empty() {
            let entries: Vec<&AuditEntry> = entries.iter().collect();
            insert_entries(&mut tx, tenant, &entries).await?;
            set_head(&mut tx, tenant, new_head).await?;
        }
        tx.commit().await?;
        Ok(new_head)
    }

    pub(super) async fn select_batch_keys(
        &self,
        tenant: &TenantId,
        after: Option<&BatchKey>,
        limit: u32,
    ) -> Result<Vec<BatchKey>> {
        let (gateway, seq) = match after {
            Some(key) => (Some(key.gateway.as_str()), seq_to_db(key.seq)?),
            None => (None, -1),
        };
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT gateway, seq FROM batches WHERE tenant = $1 AND \
             ($2::text IS NULL OR (gateway, seq) > ($2::text, $3::int8)) \
             ORDER BY gateway, seq LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(gateway)
        .bind(seq)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(gateway, seq)| {
                Ok(BatchKey {
                    gateway: id("batches", &gateway, GatewayId::new)?,
                    seq: unsigned("batches", seq)?,
                })
            })
            .collect()
    }

    pub(super) async fn select_reading_count(&self, tenant: &TenantId) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM readings WHERE tenant = (SELECT key FROM tenants WHERE id = $1)",
        )
        .bind(tenant.as_str())
        .fetch_one(&self.pool)
        .await?;
        unsigned("readings", count)
    }
}

/// Inserts an agreement at its own version and times, with its new pseudonym key sealed
/// under `kek`.
async fn insert_agreement(
    conn: &mut PgConnection,
    kek: Option<&KeyEncryptionKey>,
    restored: &RestoredAgreement,
    at: Timestamp,
) -> Result<()> {
    let agreement = &restored.agreement;
    let columns = agreement_columns(agreement, agreement.version)?;
    insert_agreement_row(
        &mut *conn,
        &columns,
        restored.created_at,
        restored.updated_at,
    )
    .await?;
    if let Some(key) = &restored.pseudonym_key {
        insert_key_row(conn, kek, &KeyRow::first_of(agreement), key, at).await?;
    }
    Ok(())
}
