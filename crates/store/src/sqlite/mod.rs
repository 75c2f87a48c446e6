//! The embedded SQLite backend: one file under the data directory, no server.
//!
//! Schema: `migrations/sqlite/0001_init.sql`; times are INTEGER microseconds since the epoch.
//!
//! Durability: WAL journal with `synchronous = FULL`. WAL with `NORMAL` already survives a
//! process kill -9 (committed pages are in the WAL file, the OS keeps them), but can lose the
//! last commits on power loss; `FULL` syncs the WAL at every commit so an acknowledged batch
//! survives power loss too. Ingest group-commits, so the cost is one fsync per group commit,
//! not per batch: measured here (2 shared cores, group commits of 20 batches × 100 readings)
//! about 22 ms per commit with `NORMAL` and 30 ms with `FULL` — kept, since an acknowledged
//! batch is deleted from the gateway's spool and could not be sent again.
//!
//! Concurrency: readers run in parallel on the pool (WAL); writers take one async lock, so
//! transactions never fight over SQLite's single writer lock (no `SQLITE_BUSY` at upgrade).

mod ingest;
mod query;
mod records;
mod registry;

use std::str::FromStr;
use std::time::Duration;

use beffroi_protocol::{GatewayId, Health, KeyId, TenantId, Timestamp};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::gateway_state::KnownSensors;
use crate::{
    Backend, Bucket, CommitBatch, CommitOutcome, GatewayKey, GatewayRecord, NewGateway,
    OpenOptions, Page, QuarantineRecord, ReadingCursor, ReadingFilter, ReadingPage, Result,
    SecurityEvent, Sensor, SeqState, Store, StoredBatch, Tenant, TokenRecord, Zone,
};

/// A store in an SQLite database.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    write: tokio::sync::Mutex<()>,
    known: KnownSensors,
}

impl SqliteStore {
    /// Opens (creating it when the URL says `mode=rwc`) and migrates the database at `url`.
    pub async fn open(url: &str, options: &OpenOptions) -> Result<Self> {
        options.validate()?;
        let connect = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            // Each connection to `:memory:` would be its own database: keep exactly one.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(connect)
                .await?
        } else {
            SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .connect_with(connect)
                .await?
        };
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self {
            pool,
            write: tokio::sync::Mutex::new(()),
            known: KnownSensors::default(),
        })
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn create_tenant(&self, id: &TenantId, name: &str) -> Result<Tenant> {
        self.insert_tenant(id, name).await
    }
    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.select_tenants(None).await
    }
    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        Ok(self.select_tenants(Some(id)).await?.pop())
    }
    async fn register_gateway(&self, gateway: &NewGateway) -> Result<()> {
        self.insert_gateway(gateway).await
    }
    async fn set_gateway_certificate(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        fingerprint: &str,
    ) -> Result<()> {
        self.update_certificate(tenant, gateway, fingerprint).await
    }
    async fn revoke_gateway(&self, tenant: &TenantId, gateway: &GatewayId) -> Result<()> {
        self.update_revoked(tenant, gateway).await
    }
    async fn revoked_fingerprints(&self) -> Result<Vec<String>> {
        self.select_revoked_fingerprints().await
    }
    async fn list_gateways(&self, tenant: &TenantId) -> Result<Vec<GatewayRecord>> {
        self.select_gateways(tenant, None).await
    }
    async fn gateway(&self, tenant: &TenantId, id: &GatewayId) -> Result<Option<GatewayRecord>> {
        Ok(self.select_gateways(tenant, Some(id)).await?.pop())
    }
    async fn gateway_key(&self, key_id: &KeyId) -> Result<Option<GatewayKey>> {
        self.select_gateway_key(key_id).await
    }
    async fn upsert_sensor(&self, sensor: &Sensor) -> Result<()> {
        self.write_sensor(sensor).await
    }
    async fn list_sensors(&self, tenant: &TenantId) -> Result<Vec<Sensor>> {
        self.select_sensors(tenant).await
    }
    async fn upsert_zone(&self, zone: &Zone) -> Result<()> {
        self.write_zone(zone).await
    }
    async fn list_zones(&self, tenant: &TenantId) -> Result<Vec<Zone>> {
        self.select_zones(tenant).await
    }

    async fn commit(&self, batches: &[CommitBatch]) -> Result<Vec<CommitOutcome>> {
        self.commit_batches(batches).await
    }
    async fn batch_signature(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        seq: u64,
    ) -> Result<Option<[u8; 64]>> {
        Ok(self
            .select_batch(tenant, gateway, seq, false)
            .await?
            .map(|b| b.signature))
    }
    async fn seq_state(&self, tenant: &TenantId, gateway: &GatewayId) -> Result<SeqState> {
        self.select_seq_state(tenant, gateway).await
    }
    async fn record_health(&self, health: &Health, received_at: Timestamp) -> Result<()> {
        self.write_health(health, received_at).await
    }
    async fn quarantine(&self, record: &QuarantineRecord) -> Result<()> {
        self.insert_quarantine(record).await
    }
    async fn security_event(&self, event: &SecurityEvent) -> Result<()> {
        self.insert_security_event(event).await
    }

    async fn readings(
        &self,
        filter: &ReadingFilter,
        limit: u32,
        after: Option<ReadingCursor>,
    ) -> Result<ReadingPage> {
        self.select_readings(filter, limit, after).await
    }
    async fn buckets(&self, filter: &ReadingFilter, bucket_us: i64) -> Result<Vec<Bucket>> {
        self.select_buckets(filter, bucket_us).await
    }
    async fn list_quarantine(
        &self,
        tenant: &TenantId,
        limit: u32,
        offset: u64,
    ) -> Result<Page<QuarantineRecord>> {
        self.select_quarantine(tenant, limit, offset).await
    }
    async fn list_security_events(
        &self,
        tenant: &TenantId,
        limit: u32,
        offset: u64,
    ) -> Result<Page<SecurityEvent>> {
        self.select_security_events(tenant, limit, offset).await
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        self.insert_token(token).await
    }
    async fn token_by_hash(&self, secret_sha256: &[u8; 32]) -> Result<Option<TokenRecord>> {
        self.select_token(secret_sha256).await
    }

    async fn apply_retention(&self, older_than: Timestamp) -> Result<u64> {
        self.delete_older(older_than).await
    }
    async fn refresh_aggregates(&self, _from: Timestamp, _to: Timestamp) -> Result<()> {
        Ok(())
    }

    async fn batch(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        seq: u64,
    ) -> Result<Option<StoredBatch>> {
        self.select_batch(tenant, gateway, seq, true).await
    }
    async fn bulk_load_baseline(&self, batches: &[CommitBatch]) -> Result<u64> {
        self.load_readings_only(batches).await
    }
    async fn close(&self) {
        self.pool.close().await;
    }
}
