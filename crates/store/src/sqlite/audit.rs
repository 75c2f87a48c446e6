//! SQLite: the audit log. An append is one write transaction that starts by upserting the
//! tenant's head row (so it holds the write lock before reading the head; see
//! `crate::audit`).

use beffroi_audit::{AuditEntry, AuditHead, Checkpoint, NewAuditEntry};
use beffroi_protocol::TenantId;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::SqliteStore;
use crate::audit::{
    by_tenant, checkpoint_from, entry_from, head_from, in_input_order, page_limit, seal,
    text_columns, AuditFilter,
};
use crate::decode::{id, seq_to_db};
use crate::outcome::tenant_referenced;
use crate::Result;

/// The columns [`entry_from`] reads.
const ENTRY_COLUMNS: &str = "tenant, seq, time, actor, kind, detail, prev_hash, hash";

impl SqliteStore {
    pub(super) async fn insert_audit(&self, entries: &[NewAuditEntry]) -> Result<Vec<AuditEntry>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let _w = self.write.lock().await;
        let mut tx = self.begin_write().await?;
        let sealed = append_in(&mut tx, entries).await?;
        tx.commit().await?;
        Ok(sealed)
    }

    pub(super) async fn select_audit_entries(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {ENTRY_COLUMNS} FROM audit_entries WHERE tenant = "
        ));
        q.push_bind(tenant.as_str())
            .push(" AND seq > ")
            .push_bind(seq_to_db(after_seq)?);
        if !filter.kinds.is_empty() {
            q.push(" AND kind IN (");
            let mut list = q.separated(", ");
            for kind in &filter.kinds {
                list.push_bind(kind.as_str());
            }
            q.push(")");
        }
        for (op, time) in [(">=", filter.from), ("<", filter.to)] {
            if let Some(time) = time {
                q.push(format_args!(" AND time {op} "))
                    .push_bind(time.unix_micros());
            }
        }
        q.push(" ORDER BY seq LIMIT ").push_bind(page_limit(limit));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(entry_from).collect()
    }

    pub(super) async fn select_audit_head(&self, tenant: &TenantId) -> Result<Option<AuditHead>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_heads WHERE tenant = ?")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(head_from).transpose()
    }

    pub(super) async fn insert_checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool> {
        let _w = self.write.lock().await;
        let done = sqlx::query(
            "INSERT INTO audit_checkpoints (tenant, seq, head, time, key_id, signature) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, seq) DO NOTHING",
        )
        .bind(checkpoint.tenant.as_str())
        .bind(seq_to_db(checkpoint.seq)?)
        .bind(&checkpoint.head.as_bytes()[..])
        .bind(checkpoint.time.unix_micros())
        .bind(checkpoint.key_id.as_str())
        .bind(&checkpoint.signature[..])
        .execute(&self.pool)
        .await;
        Ok(tenant_referenced(done, &checkpoint.tenant)?.rows_affected() == 1)
    }

    pub(super) async fn select_checkpoints(&self, tenant: &TenantId) -> Result<Vec<Checkpoint>> {
        let rows = sqlx::query(
            "SELECT tenant, seq, head, time, key_id, signature FROM audit_checkpoints \
             WHERE tenant = ? ORDER BY seq",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(checkpoint_from).collect()
    }

    pub(super) async fn select_audit_tenants(&self) -> Result<Vec<TenantId>> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT tenant FROM audit_heads ORDER BY tenant")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|t| id("audit_heads", &t, TenantId::new))
            .collect()
    }
}

/// Appends `entries` to their tenants' chains within the caller's transaction (which holds
/// the store's writer lock): the one way entries are written, also used by writers that must
/// audit in the same transaction as their change (retention purges). Returns them as
/// sealed, in input order; durable only once the caller commits.
pub(super) async fn append_in(
    conn: &mut SqliteConnection,
    entries: &[NewAuditEntry],
) -> Result<Vec<AuditEntry>> {
    let mut sealed = Vec::with_capacity(entries.len());
    for (tenant, positions) in by_tenant(entries) {
        let head = lock_head(conn, tenant).await?;
        let chained = seal(tenant, head, entries, &positions)?;
        for (_, entry) in &chained {
            insert_entry(conn, entry).await?;
        }
        if let Some((_, last)) = chained.last() {
            let head = AuditHead {
                seq: last.seq,
                hash: last.hash,
            };
            set_head(conn, tenant, head).await?;
        }
        sealed.extend(chained);
    }
    Ok(in_input_order(sealed))
}

/// Creates the tenant's head row if it has none, and returns it. Being a write, it takes the
/// database's write lock for the rest of the transaction.
pub(super) async fn lock_head(conn: &mut SqliteConnection, tenant: &TenantId) -> Result<AuditHead> {
    let genesis = AuditHead::GENESIS;
    let row = sqlx::query(
        "INSERT INTO audit_heads (tenant, seq, hash) VALUES (?, ?, ?) \
         ON CONFLICT (tenant) DO UPDATE SET seq = audit_heads.seq RETURNING seq, hash",
    )
    .bind(tenant.as_str())
    .bind(seq_to_db(genesis.seq)?)
    .bind(&genesis.hash.as_bytes()[..])
    .fetch_one(&mut *conn)
    .await;
    head_from(&tenant_referenced(row, tenant)?)
}

/// Moves the tenant's head (its row exists: [`lock_head`] made it).
pub(super) async fn set_head(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    head: AuditHead,
) -> Result<()> {
    sqlx::query("UPDATE audit_heads SET seq = ?, hash = ? WHERE tenant = ?")
        .bind(seq_to_db(head.seq)?)
        .bind(&head.hash.as_bytes()[..])
        .bind(tenant.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts one sealed entry as it is.
pub(super) async fn insert_entry(conn: &mut SqliteConnection, entry: &AuditEntry) -> Result<()> {
    let (actor, kind, detail) = text_columns(entry);
    sqlx::query(
        "INSERT INTO audit_entries (tenant, seq, time, actor, kind, detail, prev_hash, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(entry.tenant.as_str())
    .bind(seq_to_db(entry.seq)?)
    .bind(entry.time.unix_micros())
    .bind(actor)
    .bind(kind)
    .bind(detail)
    .bind(&entry.prev_hash.as_bytes()[..])
    .bind(&entry.hash.as_bytes()[..])
    .execute(&mut *conn)
    .await?;
    Ok(())
}
