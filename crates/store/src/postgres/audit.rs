//! PostgreSQL: the audit log. An append locks each tenant's head row first (an upsert that
//! returns it), in tenant order, then inserts the tenant's entries in one `UNNEST` statement
//! (see `crate::audit`).

use beffroi_audit::{AuditEntry, AuditHead, Checkpoint, NewAuditEntry};
use beffroi_protocol::TenantId;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::{ts, us, PostgresStore};
use crate::audit::{
    by_tenant, checkpoint_from, entry_from, head_from, in_input_order, page_limit, seal,
    text_columns, AuditFilter,
};
use crate::decode::{id, seq_to_db};
use crate::outcome::tenant_referenced;
use crate::Result;

impl PostgresStore {
    pub(super) async fn insert_audit(&self, entries: &[NewAuditEntry]) -> Result<Vec<AuditEntry>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        // A head row held by a stuck transaction must fail the append (and the governed read
        // it guards, which then answers 503) instead of hanging it: as long as SQLite's busy
        // timeout.
        sqlx::query("SET LOCAL lock_timeout = '10s'")
            .execute(&mut *tx)
            .await?;
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
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT tenant, seq, {} AS time, actor, kind, detail, prev_hash, hash \
             FROM audit_entries WHERE tenant = ",
            us("time")
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
                // `ts()` around a bound parameter.
                q.push(format_args!(" AND time {op} (timestamptz 'epoch' + ("))
                    .push_bind(time.unix_micros())
                    .push(")::int8 * interval '1 microsecond')");
            }
        }
        q.push(" ORDER BY seq LIMIT ").push_bind(page_limit(limit));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(entry_from).collect()
    }

    pub(super) async fn select_audit_head(&self, tenant: &TenantId) -> Result<Option<AuditHead>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_heads WHERE tenant = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(head_from).transpose()
    }

    pub(super) async fn insert_checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool> {
        let done = sqlx::query(&format!(
            "INSERT INTO audit_checkpoints (tenant, seq, head, time, key_id, signature) \
             VALUES ($1, $2, $3, {}, $5, $6) ON CONFLICT (tenant, seq) DO NOTHING",
            ts("$4")
        ))
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
        let rows = sqlx::query(&format!(
            "SELECT tenant, seq, head, {} AS time, key_id, signature FROM audit_checkpoints \
             WHERE tenant = $1 ORDER BY seq",
            us("time")
        ))
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

/// Appends `entries` to their tenants' chains within the caller's transaction: the one way
/// entries are written, also used by writers that must audit in the same transaction as
/// their change (retention purges). Returns them as sealed, in input order; durable only
/// once the caller commits.
pub(super) async fn append_in(
    conn: &mut PgConnection,
    entries: &[NewAuditEntry],
) -> Result<Vec<AuditEntry>> {
    let mut sealed = Vec::with_capacity(entries.len());
    for (tenant, positions) in by_tenant(entries) {
        let head = lock_head(conn, tenant).await?;
        let chained = seal(tenant, head, entries, &positions)?;
        let entries: Vec<&AuditEntry> = chained.iter().map(|(_, e)| e).collect();
        insert_entries(conn, tenant, &entries).await?;
        if let Some(last) = entries.last() {
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

/// Creates the tenant's head row if it has none, and returns it locked until the end of the
/// transaction (a concurrent append waits here, then reads the head this one leaves).
pub(super) async fn lock_head(conn: &mut PgConnection, tenant: &TenantId) -> Result<AuditHead> {
    let genesis = AuditHead::GENESIS;
    let row = sqlx::query(
        "INSERT INTO audit_heads (tenant, seq, hash) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant) DO UPDATE SET seq = audit_heads.seq RETURNING seq, hash",
    )
    .bind(tenant.as_str())
    .bind(seq_to_db(genesis.seq)?)
    .bind(&genesis.hash.as_bytes()[..])
    .fetch_one(&mut *conn)
    .await;
    head_from(&tenant_referenced(row, tenant)?)
}

/// Moves the tenant's head (its row exists and is locked: [`lock_head`]).
pub(super) async fn set_head(
    conn: &mut PgConnection,
    tenant: &TenantId,
    head: AuditHead,
) -> Result<()> {
    sqlx::query("UPDATE audit_heads SET seq = $2, hash = $3 WHERE tenant = $1")
        .bind(tenant.as_str())
        .bind(seq_to_db(head.seq)?)
        .bind(&head.hash.as_bytes()[..])
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts one tenant's sealed entries in one statement.
pub(super) async fn insert_entries(
    conn: &mut PgConnection,
    tenant: &TenantId,
    entries: &[&AuditEntry],
) -> Result<()> {
    let mut seqs = Vec::with_capacity(entries.len());
    let mut times = Vec::with_capacity(entries.len());
    let mut actors = Vec::with_capacity(entries.len());
    let mut kinds = Vec::with_capacity(entries.len());
    let mut details = Vec::with_capacity(entries.len());
    let mut prev_hashes = Vec::with_capacity(entries.len());
    let mut hashes = Vec::with_capacity(entries.len());
    for entry in entries {
        let (actor, kind, detail) = text_columns(entry);
        seqs.push(seq_to_db(entry.seq)?);
        times.push(entry.time.unix_micros());
        actors.push(actor);
        kinds.push(kind);
        details.push(detail);
        prev_hashes.push(&entry.prev_hash.as_bytes()[..]);
        hashes.push(&entry.hash.as_bytes()[..]);
    }
    sqlx::query(&format!(
        "INSERT INTO audit_entries (tenant, seq, time, actor, kind, detail, prev_hash, hash) \
         SELECT $1, u.seq, {}, u.actor, u.kind, u.detail, u.prev_hash, u.hash \
         FROM UNNEST($2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], \
         $7::bytea[], $8::bytea[]) AS u (seq, time, actor, kind, detail, prev_hash, hash)",
        ts("u.time")
    ))
    .bind(tenant.as_str())
    .bind(seqs)
    .bind(times)
    .bind(actors)
    .bind(kinds)
    .bind(details)
    .bind(prev_hashes)
    .bind(hashes)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
