//! PostgreSQL: quarantine, security events and API tokens.

use beffroi_protocol::{GatewayId, TenantId};
use sqlx::Row;

use super::ingest::settle_seq;
use super::{ts, us, PostgresStore};
use crate::decode::{
    bytes32, capped_payload, corrupt, count_to_db, id, is_foreign_key_violation,
    is_unique_violation, next_offset, opt_id, seq_to_db, time, unsigned,
};
use crate::seq::{settled_gap, SETTLED_PREFIX};
use crate::{
    Error, Page, QuarantineReason, QuarantineRecord, Result, Role, SecurityEvent,
    SecurityEventKind, TokenRecord,
};

impl PostgresStore {
    pub(super) async fn insert_quarantine(&self, record: &QuarantineRecord) -> Result<()> {
        let seq = record.seq.map(seq_to_db).transpose()?;
        let settled = settled_gap(record)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO quarantine (tenant, gateway, topic, seq, reason, detail, received_at, \
             payload) VALUES ($1, $2, $3, $4, $5, $6, {}, $8)",
            ts("$7")
        ))
        .bind(record.tenant.as_ref().map(TenantId::as_str))
        .bind(record.gateway.as_ref().map(GatewayId::as_str))
        .bind(&record.topic)
        .bind(seq)
        .bind(record.reason.as_str())
        .bind(&record.detail)
        .bind(record.received_at.unix_micros())
        .bind(capped_payload(&record.payload))
        .execute(&mut *tx)
        .await?;
        if let Some(settled) = settled {
            settle_seq(&mut tx, settled, record.received_at.unix_micros()).await?;
        }
        Ok(tx.commit().await?)
    }

    pub(super) async fn select_quarantine(
        &self,
        tenant: &TenantId,
        limit: u32,
        offset: u64,
    ) -> Result<Page<QuarantineRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT tenant, gateway, topic, seq, reason, detail, {} AS received_at, payload, \
             EXISTS (SELECT 1 FROM gaps g WHERE g.tenant = q.tenant AND g.gateway = q.gateway \
             AND g.first_seq = q.seq AND g.last_seq = q.seq \
             AND g.reason = '{SETTLED_PREFIX}' || q.reason) AS settles_seq \
             FROM quarantine q WHERE tenant = $1 ORDER BY q.received_at DESC, id DESC \
             LIMIT $2 OFFSET $3",
            us("q.received_at")
        ))
        .bind(tenant.as_str())
        .bind(i64::from(limit) + 1)
        .bind(count_to_db(offset))
        .fetch_all(&self.pool)
        .await?;
        let next_offset = next_offset(offset, limit, rows.len());
        let items = rows
            .iter()
            .take(limit as usize)
            .map(|r| {
                let reason: &str = r.try_get("reason")?;
                Ok(QuarantineRecord {
                    tenant: opt_id("quarantine", r.try_get("tenant")?, TenantId::new)?,
                    gateway: opt_id("quarantine", r.try_get("gateway")?, GatewayId::new)?,
                    topic: r.try_get("topic")?,
                    seq: r
                        .try_get::<Option<i64>, _>("seq")?
                        .map(|s| unsigned("quarantine", s))
                        .transpose()?,
                    reason: QuarantineReason::parse(reason)
                        .ok_or_else(|| corrupt("quarantine", format!("reason {reason:?}")))?,
                    detail: r.try_get("detail")?,
                    received_at: time(r.try_get("received_at")?),
                    payload: r.try_get("payload")?,
                    settles_seq: r.try_get("settles_seq")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Page { items, next_offset })
    }

    pub(super) async fn insert_security_event(&self, event: &SecurityEvent) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO security_events (time, tenant, gateway, address, kind, detail) \
             VALUES ({}, $2, $3, $4, $5, $6)",
            ts("$1")
        ))
        .bind(event.time.unix_micros())
        .bind(event.tenant.as_ref().map(TenantId::as_str))
        .bind(event.gateway.as_ref().map(GatewayId::as_str))
        .bind(event.address.as_deref())
        .bind(event.kind.as_str())
        .bind(&event.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn select_security_events(
        &self,
        tenant: &TenantId,
        limit: u32,
        offset: u64,
    ) -> Result<Page<SecurityEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {} AS time, tenant, gateway, address, kind, detail FROM security_events \
             WHERE tenant = $1 ORDER BY security_events.time DESC, id DESC LIMIT $2 OFFSET $3",
            us("time")
        ))
        .bind(tenant.as_str())
        .bind(i64::from(limit) + 1)
        .bind(count_to_db(offset))
        .fetch_all(&self.pool)
        .await?;
        let next_offset = next_offset(offset, limit, rows.len());
        let items = rows
            .iter()
            .take(limit as usize)
            .map(|r| {
                let kind: &str = r.try_get("kind")?;
                Ok(SecurityEvent {
                    time: time(r.try_get("time")?),
                    tenant: opt_id("security_events", r.try_get("tenant")?, TenantId::new)?,
                    gateway: opt_id("security_events", r.try_get("gateway")?, GatewayId::new)?,
                    address: r.try_get("address")?,
                    kind: SecurityEventKind::parse(kind)
                        .ok_or_else(|| corrupt("security_events", format!("kind {kind:?}")))?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Page { items, next_offset })
    }

    pub(super) async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        let done = sqlx::query(&format!(
            "INSERT INTO api_tokens (id, tenant, role, name, secret_sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5, {})",
            ts("$6")
        ))
        .bind(&token.id)
        .bind(token.tenant.as_str())
        .bind(token.role.as_str())
        .bind(&token.name)
        .bind(&token.secret_sha256[..])
        .bind(token.created_at.unix_micros())
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(Error::AlreadyExists {
                what: "token",
                id: token.id.clone(),
            }),
            Err(e) if is_foreign_key_violation(&e) => Err(Error::NotFound {
                what: "tenant",
                id: token.tenant.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn select_token(
        &self,
        secret_sha256: &[u8; 32],
    ) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(&format!(
            "SELECT id, tenant, role, name, secret_sha256, {} AS created_at FROM api_tokens \
             WHERE secret_sha256 = $1",
            us("created_at")
        ))
        .bind(&secret_sha256[..])
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let role: &str = r.try_get("role")?;
            Ok(TokenRecord {
                id: r.try_get("id")?,
                tenant: id("api_tokens", r.try_get("tenant")?, TenantId::new)?,
                role: Role::parse(role)
                    .ok_or_else(|| corrupt("api_tokens", format!("role {role:?}")))?,
                name: r.try_get("name")?,
                secret_sha256: bytes32("api_tokens", r.try_get("secret_sha256")?)?,
                created_at: time(r.try_get("created_at")?),
            })
        })
        .transpose()
    }
}
