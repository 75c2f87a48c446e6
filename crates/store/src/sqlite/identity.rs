//! SQLite: enrollment tokens, enrollment and signing-key rotation (see `crate::identity`).
//! Every write runs under the store's write lock, in one transaction.

use beffroi_protocol::{GatewayId, KeyId, TenantId, Timestamp};
use sqlx::{Sqlite, Transaction};

use super::registry::{insert_gateway_key_row, insert_gateway_row};
use super::SqliteStore;
use crate::decode::is_unique_violation;
use crate::identity::{
    gateway_inserted, key_registered, not_redeemed, refuse_revoked, GatewayKeyRow,
};
use crate::outcome::tenant_referenced;
use crate::rows::enrollment_token_from;
use crate::{EnrollmentToken, Error, NewGateway, Redeemed, Result};

impl SqliteStore {
    pub(super) async fn insert_enrollment_token(&self, token: &EnrollmentToken) -> Result<()> {
        let _w = self.write.lock().await;
        let mut tx = self.begin_write().await?;
        let gateway = gateway_revocation(&mut tx, &token.tenant, &token.gateway).await?;
        refuse_revoked(&token.gateway, gateway.flatten())?;
        let inserted = sqlx::query(
            "INSERT INTO enrollment_tokens (token_hash, tenant, gateway, created_at, \
             expires_at, created_by, used_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.token_hash)
        .bind(token.tenant.as_str())
        .bind(token.gateway.as_str())
        .bind(token.created_at.unix_micros())
        .bind(token.expires_at.unix_micros())
        .bind(&token.created_by)
        .bind(token.used_at.map(Timestamp::unix_micros))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::AlreadyExists {
                    what: "enrollment token",
                    id: token.token_hash.clone(),
                })
            }
            other => tenant_referenced(other, &token.tenant)?,
        };
        Ok(tx.commit().await?)
    }

    pub(super) async fn update_redeemed(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Redeemed> {
        let _w = self.write.lock().await;
        let bound: Option<(String, String)> = sqlx::query_as(
            "UPDATE enrollment_tokens SET used_at = ?2 \
             WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2 \
             RETURNING tenant, gateway",
        )
        .bind(token_hash)
        .bind(now.unix_micros())
        .fetch_optional(&self.pool)
        .await?;
        if let Some((tenant, gateway)) = bound {
            let table = "enrollment_tokens";
            return Ok(Redeemed::Bound {
                tenant: crate::decode::id(table, &tenant, TenantId::new)?,
                gateway: crate::decode::id(table, &gateway, GatewayId::new)?,
            });
        }
        let row: Option<(Option<i64>, i64)> = sqlx::query_as(
            "SELECT used_at, expires_at FROM enrollment_tokens WHERE token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let row = row.map(|(used, expires)| {
            (
                used.map(Timestamp::from_unix_micros),
                Timestamp::from_unix_micros(expires),
            )
        });
        Ok(not_redeemed(row, now))
    }

    pub(super) async fn select_pending_enrollments(
        &self,
        tenant: &TenantId,
        now: Timestamp,
    ) -> Result<Vec<EnrollmentToken>> {
        let rows = sqlx::query(
            "SELECT token_hash, tenant, gateway, created_at, expires_at, created_by, used_at \
             FROM enrollment_tokens \
             WHERE tenant = ? AND used_at IS NULL AND expires_at > ? \
             ORDER BY gateway, created_at, token_hash",
        )
        .bind(tenant.as_str())
        .bind(now.unix_micros())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(enrollment_token_from).collect()
    }

    pub(super) async fn write_enrollment(&self, gateway: &NewGateway, at: Timestamp) -> Result<()> {
        let _w = self.write.lock().await;
        let mut tx = self.begin_write().await?;
        let existing = gateway_revocation(&mut tx, &gateway.tenant, &gateway.id).await?;
        match existing {
            None => {
                let inserted = insert_gateway_row(&mut *tx, gateway, None, at).await;
                gateway_inserted(inserted, gateway)?;
            }
            Some(revoked_at) => {
                refuse_revoked(&gateway.id, revoked_at)?;
                retire_current_key(&mut tx, &gateway.tenant, &gateway.id, at).await?;
            }
        }
        let key = GatewayKeyRow {
            key_id: gateway.key_id.clone(),
            public_key: gateway.public_key,
            created_at: at,
            retired_at: None,
        };
        let inserted = insert_gateway_key_row(&mut *tx, &gateway.tenant, &gateway.id, &key).await;
        key_registered(inserted, &gateway.key_id)?;
        if existing.is_some() {
            set_current_key(
                &mut tx,
                &gateway.tenant,
                &gateway.id,
                &gateway.key_id,
                &gateway.public_key,
            )
            .await?;
            sqlx::query(
                "UPDATE gateways SET cert_fingerprint = ?, cert_not_after = ? \
                 WHERE tenant = ? AND id = ?",
            )
            .bind(gateway.cert_fingerprint.as_deref())
            .bind(gateway.cert_not_after.map(Timestamp::unix_micros))
            .bind(gateway.tenant.as_str())
            .bind(gateway.id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        Ok(tx.commit().await?)
    }

    pub(super) async fn write_key_rotation(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        key_id: &KeyId,
        public_key: &[u8; 32],
        at: Timestamp,
    ) -> Result<()> {
        let _w = self.write.lock().await;
        let mut tx = self.begin_write().await?;
        let Some(revoked_at) = gateway_revocation(&mut tx, tenant, gateway).await? else {
            return Err(Error::NotFound {
                what: "gateway",
                id: gateway.to_string(),
            });
        };
        refuse_revoked(gateway, revoked_at)?;
        retire_current_key(&mut tx, tenant, gateway, at).await?;
        let key = GatewayKeyRow {
            key_id: key_id.clone(),
            public_key: *public_key,
            created_at: at,
            retired_at: None,
        };
        let inserted = insert_gateway_key_row(&mut *tx, tenant, gateway, &key).await;
        key_registered(inserted, key_id)?;
        set_current_key(&mut tx, tenant, gateway, key_id, public_key).await?;
        Ok(tx.commit().await?)
    }
}

/// `None` when the gateway does not exist, else its `revoked_at`.
async fn gateway_revocation(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &TenantId,
    gateway: &GatewayId,
) -> Result<Option<Option<Timestamp>>> {
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT revoked_at FROM gateways WHERE tenant = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(gateway.as_str())
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|(at,)| at.map(Timestamp::from_unix_micros)))
}

/// Retires the gateway's current key at `at`.
async fn retire_current_key(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &TenantId,
    gateway: &GatewayId,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE gateway_keys SET retired_at = ? \
         WHERE tenant = ? AND gateway = ? AND retired_at IS NULL",
    )
    .bind(at.unix_micros())
    .bind(tenant.as_str())
    .bind(gateway.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Copies the (registered) current key into the gateway's row.
async fn set_current_key(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &TenantId,
    gateway: &GatewayId,
    key_id: &KeyId,
    public_key: &[u8; 32],
) -> Result<()> {
    let updated =
        sqlx::query("UPDATE gateways SET key_id = ?, public_key = ? WHERE tenant = ? AND id = ?")
            .bind(key_id.as_str())
            .bind(&public_key[..])
            .bind(tenant.as_str())
            .bind(gateway.as_str())
            .execute(&mut **tx)
            .await;
    key_registered(updated, key_id)?;
    Ok(())
}
