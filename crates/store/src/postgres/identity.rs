//! PostgreSQL: enrollment tokens, enrollment and signing-key rotation (see
//! `crate::identity`). Every write is one transaction that locks the gateway's row first
//! (`FOR UPDATE`; `FOR SHARE` for a token), so that a revocation, an enrollment and a rotation
//! of one gateway serialize.

use beffroi_protocol::{GatewayId, KeyId, TenantId, Timestamp};
use sqlx::{Postgres, Transaction};

use super::registry::{insert_gateway_key_row, insert_gateway_row};
use super::PostgresStore;
use super::{ts, us};
use crate::decode::is_unique_violation;
use crate::identity::{
    gateway_inserted, key_registered, not_redeemed, refuse_revoked, GatewayKeyRow,
};
use crate::outcome::tenant_referenced;
use crate::rows::enrollment_token_from;
use crate::{EnrollmentToken, Error, NewGateway, Redeemed, Result};

impl PostgresStore {
    pub(super) async fn insert_enrollment_token(&self, token: &EnrollmentToken) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let gateway =
            gateway_revocation(&mut tx, &token.tenant, &token.gateway, "FOR SHARE").await?;
        refuse_revoked(&token.gateway, gateway.flatten())?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO enrollment_tokens (token_hash, tenant, gateway, created_at, \
             expires_at, created_by, used_at) VALUES ($1, $2, $3, {}, {}, $6, {})",
            ts("$4"),
            ts("$5"),
            ts("$7")
        ))
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
        let bound: Option<(String, String)> = sqlx::query_as(&format!(
            "UPDATE enrollment_tokens SET used_at = {now} \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > {now} \
             RETURNING tenant, gateway",
            now = ts("$2")
        ))
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
        let row: Option<(Option<i64>, i64)> = sqlx::query_as(&format!(
            "SELECT {}, {} FROM enrollment_tokens WHERE token_hash = $1",
            us("used_at"),
            us("expires_at")
        ))
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
        let rows = sqlx::query(&format!(
            "SELECT token_hash, tenant, gateway, {} AS created_at, {} AS expires_at, \
             created_by, {} AS used_at FROM enrollment_tokens e \
             WHERE tenant = $1 AND e.used_at IS NULL AND e.expires_at > {} \
             ORDER BY gateway, e.created_at, token_hash",
            us("e.created_at"),
            us("e.expires_at"),
            us("e.used_at"),
            ts("$2")
        ))
        .bind(tenant.as_str())
        .bind(now.unix_micros())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(enrollment_token_from).collect()
    }

    pub(super) async fn write_enrollment(&self, gateway: &NewGateway, at: Timestamp) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let existing =
            gateway_revocation(&mut tx, &gateway.tenant, &gateway.id, "FOR UPDATE").await?;
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
            sqlx::query(&format!(
                "UPDATE gateways SET cert_fingerprint = $1, cert_not_after = {} \
                 WHERE tenant = $3 AND id = $4",
                ts("$2")
            ))
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
        let mut tx = self.pool.begin().await?;
        let Some(revoked_at) = gateway_revocation(&mut tx, tenant, gateway, "FOR UPDATE").await?
        else {
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

/// `None` when the gateway does not exist, else its `revoked_at`; its row is locked with
/// `lock` (`FOR UPDATE` or `FOR SHARE`) until the transaction ends.
async fn gateway_revocation(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    gateway: &GatewayId,
    lock: &str,
) -> Result<Option<Option<Timestamp>>> {
    let row: Option<(Option<i64>,)> = sqlx::query_as(&format!(
        "SELECT {} FROM gateways WHERE tenant = $1 AND id = $2 {lock}",
        us("revoked_at")
    ))
    .bind(tenant.as_str())
    .bind(gateway.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(at,)| at.map(Timestamp::from_unix_micros)))
}

/// Retires the gateway's current key at `at`.
async fn retire_current_key(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    gateway: &GatewayId,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE gateway_keys SET retired_at = {} \
         WHERE tenant = $2 AND gateway = $3 AND retired_at IS NULL",
        ts("$1")
    ))
    .bind(at.unix_micros())
    .bind(tenant.as_str())
    .bind(gateway.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Copies the (registered) current key into the gateway's row.
async fn set_current_key(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    gateway: &GatewayId,
    key_id: &KeyId,
    public_key: &[u8; 32],
) -> Result<()> {
    let updated = sqlx::query(
        "UPDATE gateways SET key_id = $1, public_key = $2 WHERE tenant = $3 AND id = $4",
    )
    .bind(key_id.as_str())
    .bind(&public_key[..])
    .bind(tenant.as_str())
    .bind(gateway.as_str())
    .execute(&mut **tx)
    .await;
    key_registered(updated, key_id)?;
    Ok(())
}
