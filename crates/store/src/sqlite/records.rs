//! SQLite: quarantine, security events and API tokens.

use beffroi_protocol::{GatewayId, TenantId};

use super::ingest::settle_seq;
use super::SqliteStore;
use crate::decode::{capped_payload, count_to_db, scope_columns, seq_to_db};
use crate::outcome::token_inserted;
use crate::rows::{page_from, quarantine_from, security_event_from, token_from};
use crate::seq::{settled_gap, SETTLED_PREFIX};
use crate::{EventScope, Page, QuarantineRecord, Result, SecurityEvent, TokenRecord};

impl SqliteStore {
    pub(super) async fn insert_quarantine(&self, record: &QuarantineRecord) -> Result<()> {
        let seq = record.seq.map(seq_to_db).transpose()?;
        let settled = settled_gap(record)?;
        let _w = self.write.lock().await;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO quarantine (tenant, gateway, topic, seq, reason, detail, received_at, \
             payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
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
            "SELECT tenant, gateway, topic, seq, reason, detail, received_at, payload, \
             EXISTS (SELECT 1 FROM gaps g WHERE g.tenant = q.tenant AND g.gateway = q.gateway \
             AND g.first_seq = q.seq AND g.last_seq = q.seq \
             AND g.reason = '{SETTLED_PREFIX}' || q.reason) AS settles_seq \
             FROM quarantine q WHERE tenant = ? ORDER BY received_at DESC, id DESC \
             LIMIT ? OFFSET ?"
        ))
        .bind(tenant.as_str())
        .bind(i64::from(limit) + 1)
        .bind(count_to_db(offset))
        .fetch_all(&self.pool)
        .await?;
        page_from(&rows, offset, limit, quarantine_from)
    }

    pub(super) async fn insert_security_event(&self, event: &SecurityEvent) -> Result<()> {
        let _w = self.write.lock().await;
        sqlx::query(
            "INSERT INTO security_events (time, tenant, gateway, address, kind, detail) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
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
        scope: &EventScope,
        limit: u32,
        offset: u64,
    ) -> Result<Page<SecurityEvent>> {
        // `IS`: equal, NULL included (the platform's events have no tenant); uses the index.
        let tenant = match scope {
            EventScope::Tenant(tenant) => Some(tenant.as_str()),
            EventScope::Platform => None,
        };
        let rows = sqlx::query(
            "SELECT time, tenant, gateway, address, kind, detail FROM security_events \
             WHERE tenant IS ? ORDER BY time DESC, id DESC LIMIT ? OFFSET ?",
        )
        .bind(tenant)
        .bind(i64::from(limit) + 1)
        .bind(count_to_db(offset))
        .fetch_all(&self.pool)
        .await?;
        page_from(&rows, offset, limit, security_event_from)
    }

    pub(super) async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        let (tenant, partner, role) = scope_columns(&token.scope);
        let _w = self.write.lock().await;
        let done = sqlx::query(
            "INSERT INTO api_tokens (id, tenant, partner, role, name, secret_sha256, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.id)
        .bind(tenant)
        .bind(partner)
        .bind(role)
        .bind(&token.name)
        .bind(&token.secret_sha256[..])
        .bind(token.created_at.unix_micros())
        .execute(&self.pool)
        .await;
        token_inserted(done, token)
    }

    pub(super) async fn select_token(
        &self,
        secret_sha256: &[u8; 32],
    ) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT id, tenant, partner, role, name, secret_sha256, created_at FROM api_tokens \
             WHERE secret_sha256 = ?",
        )
        .bind(&secret_sha256[..])
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from).transpose()
    }
}
