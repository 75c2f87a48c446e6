//! The PostgreSQL backend, with TimescaleDB when the server has it.
//!
//! Schema: `migrations/postgres/` (`0001_init.sql`, then forward-only changes); the TimescaleDB objects (hypertable,
//! compression, continuous aggregates, retention policy) are created in code after the
//! migrations, idempotently, only when the extension is present (see `timescale`).
//!
//! Times are `timestamptz`. They cross the wire as integer microseconds, converted in SQL
//! ([`ts`], [`us`]) so that no precision is lost and no time zone setting matters. Readings
//! are written with binary `COPY` (see `copy`). Every commit locks the rows of its gateways
//! first, in a fixed order, so that concurrent group commits never deadlock.

mod alarm_rules;
mod alarms;
mod audit;
mod copy;
mod governance;
mod identity;
mod ingest;
mod leases;
mod pages;
mod pseudonym_keys;
mod query;
mod records;
mod registry;
mod restore;
mod retention;
mod rollup;
mod series;
mod timescale;

use std::str::FromStr;
use std::time::Duration;

use beffroi_protocol::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::series::SeriesCache;
use crate::{Backend, KeyEncryptionKey, OpenOptions, Result};

/// A store in a PostgreSQL database (with or without TimescaleDB).
#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    backend: Backend,
    series: SeriesCache,
    /// Seals the pseudonym keys ([`OpenOptions::kek`]).
    kek: Option<KeyEncryptionKey>,
    /// The instance-wide raw retention ([`OpenOptions::retention`]).
    retention: Option<Duration>,
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
        if let Some(kek) = &options.kek {
            let sealed = pseudonym_keys::seal_at_open(&pool, kek).await?;
            if sealed > 0 {
                tracing::info!(sealed, kek_id = kek.id(), "pseudonym keys sealed at rest");
            }
        }
        Ok(Self {
            pool,
            backend,
            series: SeriesCache::default(),
            kek: options.kek.clone(),
            retention: options.retention,
        })
    }

    /// The connection pool (for tests and maintenance commands).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn backend_kind(&self) -> Backend {
        self.backend
    }

    /// Refreshes the continuous aggregates over `[from, to)` (TimescaleDB only).
    async fn refresh(&self, from: Timestamp, to: Timestamp) -> Result<()> {
        if self.backend == Backend::Timescale {
            timescale::refresh(&self.pool, from, to).await?;
        }
        Ok(())
    }
}

crate::forward::forward_store!(PostgresStore);
