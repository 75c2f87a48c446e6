//! SQLite: restoring an exported tenant (see `crate::restore`): its registry, rules,
//! agreements and retention in one write transaction, its audit entries verbatim, and the
//! listings an export walks.

use beffroi_audit::{AuditEntry, AuditHead};
use beffroi_protocol::{GatewayId, SensorId, TenantId, Timestamp, Unit};
use sqlx::SqliteConnection;

use super::audit::{insert_entry, lock_head, set_head};
use super::SqliteStore;
use crate::decode::{id, is_unique_violation, json_text, seq_to_db, unsigned};
use crate::governance::{agreement_columns, agreement_inserted};
use crate::restore::{check_continuation, BatchKey, RestoredAgreement, TenantRestore};
use crate::{Error, Result};

impl SqliteStore {
    pub(super) async fn write_restore(&self, restore: &TenantRestore) -> Result<()> {
        restore.check()?;
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let tenant = &restore.tenant;
        let done = sqlx::query(
            "INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.id.as_str())
        .bind(&tenant.name)
        .bind(tenant.created_at.unix_micros())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::AlreadyExists {
                what: "tenant",
                id: tenant.id.to_string(),
            });
        }
        for gateway in &restore.gateways {
            let inserted = sqlx::query(
                "INSERT INTO gateways (tenant, id, key_id, public_key, cert_fingerprint, \
                 cert_not_after, revoked, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(tenant.id.as_str())
            .bind(gateway.id.as_str())
            .bind(gateway.key_id.as_str())
            .bind(&gateway.public_key_bytes()?[..])
            .bind(gateway.cert_fingerprint.as_deref())
            .bind(gateway.cert_not_after.map(Timestamp::unix_micros))
            .bind(gateway.revoked)
            .bind(gateway.created_at.unix_micros())
            .execute(&mut *tx)
            .await;
            if let Err(e) = inserted {
                return Err(if is_unique_violation(&e) {
                    Error::AlreadyExists {
                        what: "gateway key id",
                        id: gateway.key_id.to_string(),
                    }
                } else {
                    e.into()
                });
            }
        }
        for sensor in &restore.sensors {
            sqlx::query(
                "INSERT INTO sensors (tenant, id, kind, unit, lat, lon, zone, tags) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(sensor.tenant.as_str())
            .bind(sensor.id.as_str())
            .bind(&sensor.kind)
            .bind(sensor.unit.as_ref().map(Unit::as_str))
            .bind(sensor.lat)
            .bind(sensor.lon)
            .bind(sensor.zone.as_ref().map(SensorId::as_str))
            .bind(json_text("sensor tags", &sensor.tags)?)
            .execute(&mut *tx)
            .await?;
        }
        for zone in &restore.zones {
            sqlx::query("INSERT INTO zones (tenant, id, name, geometry) VALUES (?, ?, ?, ?)")
                .bind(zone.tenant.as_str())
                .bind(zone.id.as_str())
                .bind(&zone.name)
                .bind(json_text("zone geometry", &zone.geometry)?)
                .execute(&mut *tx)
                .await?;
        }
        for rule in &restore.alarm_rules {
            sqlx::query(
                "INSERT INTO alarm_rules (tenant, id, name, severity, enabled, condition, \
                 created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(rule.tenant.as_str())
            .bind(rule.id.as_str())
            .bind(&rule.name)
            .bind(rule.severity.as_str())
            .bind(rule.enabled)
            .bind(json_text("alarm rule condition", &rule.condition)?)
            .bind(rule.created_at.unix_micros())
            .bind(rule.updated_at.unix_micros())
            .execute(&mut *tx)
            .await?;
        }
        for agreement in &restore.agreements {
            insert_agreement(&mut tx, agreement, restore.restored_at).await?;
        }
        for policy in &restore.retention {
            policy.validate()?;
            sqlx::query(
                "INSERT INTO retention_policies (tenant, class, raw_days, aggregate_days, \
                 updated_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(policy.tenant.as_str())
            .bind(policy.class.to_string())
            .bind(policy.raw_days)
            .bind(policy.aggregate_days)
            .bind(policy.updated_at.unix_micros())
            .execute(&mut *tx)
            .await?;
        }
        Ok(tx.commit().await?)
    }

    pub(super) async fn write_imported_audit(
        &self,
        tenant: &TenantId,
        entries: &[AuditEntry],
    ) -> Result<AuditHead> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let head = lock_head(&mut tx, tenant).await?;
        let new_head = check_continuation(tenant, head, entries)?;
        for entry in entries {
            insert_entry(&mut tx, entry).await?;
        }
        set_head(&mut tx, tenant, new_head).await?;
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
            "SELECT gateway, seq FROM batches WHERE tenant = ?1 AND \
             (?2 IS NULL OR gateway > ?2 OR (gateway = ?2 AND seq > ?3)) \
             ORDER BY gateway, seq LIMIT ?4",
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
            "SELECT count(*) FROM readings WHERE tenant = (SELECT key FROM tenants WHERE id = ?)",
        )
        .bind(tenant.as_str())
        .fetch_one(&self.pool)
        .await?;
        unsigned("readings", count)
    }
}

/// Inserts an agreement at its own version and times, with its new pseudonym key.
async fn insert_agreement(
    conn: &mut SqliteConnection,
    restored: &RestoredAgreement,
    at: Timestamp,
) -> Result<()> {
    let agreement = &restored.agreement;
    let columns = agreement_columns(agreement, agreement.version)?;
    let done = sqlx::query(
        "INSERT INTO agreements (grantor, id, version, state, grantee, document, created_at, \
         updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(agreement.grantor.as_str())
    .bind(agreement.id.as_str())
    .bind(columns.version)
    .bind(columns.state)
    .bind(&columns.grantee)
    .bind(&columns.document)
    .bind(restored.created_at.unix_micros())
    .bind(restored.updated_at.unix_micros())
    .execute(&mut *conn)
    .await;
    agreement_inserted(done, agreement)?;
    if let Some(key) = &restored.pseudonym_key {
        sqlx::query(
            "INSERT INTO pseudonym_keys (grantor, agreement, epoch, key, created_at) \
             VALUES (?, ?, 1, ?, ?)",
        )
        .bind(agreement.grantor.as_str())
        .bind(agreement.id.as_str())
        .bind(&key[..])
        .bind(at.unix_micros())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
