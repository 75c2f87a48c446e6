//! What the stored readings cost on disk, read from PostgreSQL after a run: the readings table
//! with its indexes (TimescaleDB: the hypertable's chunks), the batch records, the whole
//! database; with TimescaleDB, the same after compressing every chunk (what
//! `compress_after` does to data older than a week), which gives the compression ratio.

use anyhow::Context as _;
use sqlx::{Connection as _, PgConnection};

/// Sizes after a run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Disk {
    /// Readings stored.
    pub readings: u64,
    /// The readings table with its indexes (TimescaleDB: the hypertable), bytes.
    pub readings_bytes: u64,
    /// The batch records (one per signed message: signature, receipt), bytes.
    pub batches_bytes: u64,
    /// The whole database, bytes.
    pub database_bytes: u64,
    /// TimescaleDB: the hypertable after every chunk is compressed, bytes.
    pub compressed_bytes: Option<u64>,
}

impl Disk {
    /// Bytes per reading of `bytes`.
    pub(crate) fn per_reading(&self, bytes: u64) -> f64 {
        bytes as f64 / self.readings.max(1) as f64
    }
}

/// Measures the database at `url` holding `readings` readings; with TimescaleDB, compresses
/// every chunk of `readings` (the run's data is thrown away afterwards).
pub(crate) async fn measure(url: &str, readings: u64) -> anyhow::Result<Disk> {
    let mut conn = PgConnection::connect(url)
        .await
        .context("cannot connect to the run's database")?;
    let timescale: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
    )
    .fetch_one(&mut conn)
    .await?;
    let hypertable = timescale
        && sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables \
             WHERE hypertable_name = 'readings')",
        )
        .fetch_one(&mut conn)
        .await?;
    let size_of_readings = if hypertable {
        "SELECT hypertable_size('readings')::bigint"
    } else {
        "SELECT pg_total_relation_size('readings')"
    };
    let readings_bytes: i64 = sqlx::query_scalar(size_of_readings)
        .fetch_one(&mut conn)
        .await?;
    let batches_bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('batches')")
        .fetch_one(&mut conn)
        .await?;
    let database_bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut conn)
        .await?;
    let compressed_bytes = if hypertable {
        sqlx::query(
            "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('readings') c",
        )
        .execute(&mut conn)
        .await
        .context("cannot compress the readings' chunks")?;
        let bytes: i64 = sqlx::query_scalar(size_of_readings)
            .fetch_one(&mut conn)
            .await?;
        Some(bytes.try_into().unwrap_or(0))
    } else {
        None
    };
    conn.close().await?;
    Ok(Disk {
        readings,
        readings_bytes: readings_bytes.try_into().unwrap_or(0),
        batches_bytes: batches_bytes.try_into().unwrap_or(0),
        database_bytes: database_bytes.try_into().unwrap_or(0),
        compressed_bytes,
    })
}
