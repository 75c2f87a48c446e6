//! The PostgreSQL backend, with TimescaleDB when the server has it.
//!
//! Schema: `migrations/postgres/0001_init.sql`; the TimescaleDB objects (hypertable,
//! compression, continuous aggregates, retention policy) are created in code after the
//! migrations, idempotently, only when the extension is present (see `timescale`).
//!
//! Times are `timestamptz`. They cross the wire as integer microseconds, converted in SQL
//! ([`ts`], [`us`]) so that no precision is lost and no time zone setting matters. Readings
//! are written with binary `COPY` (see `copy`). Every commit locks the rows of its gateways
//! first, in a fixed order, so that concurrent group commits never deadlock.

mod copy;
mod ingest;
mod query;
mod records;
mod registry;
mod timescale;

use std::str::FromStr;

use beffroi_protocol::{GatewayId, Health, KeyId, TenantId, Timestamp};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::gateway_state::KnownSensors;
use crate::{
    Backend, Bucket, CommitBatch, CommitOutcome, GatewayKey, GatewayRecord, NewGateway,
    OpenOptions, Page, QuarantineRecord, ReadingCursor, ReadingFilter, ReadingPage, Result,
    SecurityEvent, Sensor, SeqState, Store, StoredBatch, Tenant, TokenRecord, Zone,
};

/// A store in a PostgreSQL database (with or without TimescaleDB).
#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    backend: Backend,
    known: KnownSensors,
}

/// SQL for the `timestamptz` at `micros` integer microseconds after the epoch (exact up to
/// year 2255, independent of the session time zone).
pub(crate) fn ts(micros: &str) -> String {
    format!("(timestamptz 'epoch' + ({micros})::int8 * interval '1 microsecond')")
}

/// SQL for the integer microseconds since the epoch of the `timestamptz` `column` (exact).
pub(crate) fn us(column: &str) -> String {
    format!("(extract(epoch from {column}) * 1000000)::int8")
}

impl PostgresStore {
    /// Connects to `url`, creates `options.schema` if set, detects TimescaleDB, migrates.
    pub async fn open(url: &str, options: &OpenOptions) -> Result<Self> {
        options.validate()?;
        let mut connect = PgConnectOptions::from_str(url)?;
        if let Some(schema) = &options.schema {
            let mut conn = connect.connect().await?;
            sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            connect = connect.options([("search_path", format!("{schema},public"))]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .connect_with(connect)
            .await?;
        let with_timescale = timescale::detect(&pool, options.timescale).await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let backend = if with_timescale {
            timescale::setup(&pool, options).await?;
            Backend::Timescale
        } else {
            Backend::Postgres
        };
        Ok(Self {
            pool,
            backend,
            known: KnownSensors::default(),
        })
    }

    /// The connection pool (for tests and maintenance commands).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        self.backend
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
    async fn refresh_aggregates(&self, from: Timestamp, to: Timestamp) -> Result<()> {
        if self.backend == Backend::Timescale {
            timescale::refresh(&self.pool, from, to).await?;
        }
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
