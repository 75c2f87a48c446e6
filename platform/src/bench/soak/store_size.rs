//! The store's size on disk, sampled with the rest: for SQLite the database file and its
//! write-ahead log (a WAL that keeps growing means checkpoints are starved: a queue on disk),
//! for PostgreSQL `pg_database_size` of the run's database (its WAL is the server's, shared).

use std::path::PathBuf;

use anyhow::Context as _;
use sqlx::{Connection as _, PgConnection};

use crate::bench::database::BenchDatabase;

/// Where to read the size from.
pub(crate) enum StoreSize {
    /// The SQLite database file (its WAL is `<file>-wal`).
    Sqlite(PathBuf),
    /// A connection to the run's PostgreSQL database.
    Postgres(Box<PgConnection>),
}

/// The store's size at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sizes {
    /// The database, bytes.
    pub database: u64,
    /// SQLite's write-ahead log, bytes (`None` on PostgreSQL).
    pub wal: Option<u64>,
}

impl StoreSize {
    /// Opens the reader for the run's database.
    pub(crate) async fn open(database: &BenchDatabase) -> anyhow::Result<Self> {
        match database {
            BenchDatabase::Sqlite { url } => {
                let rest = url
                    .strip_prefix("sqlite://")
                    .or_else(|| url.strip_prefix("sqlite:"))
                    .unwrap_or(url);
                let path = rest.split_once('?').map_or(rest, |(path, _)| path);
                Ok(Self::Sqlite(PathBuf::from(path)))
            }
            BenchDatabase::Postgres { url, .. } => Ok(Self::Postgres(Box::new(
                PgConnection::connect(url)
                    .await
                    .context("cannot connect to the run's database for its size")?,
            ))),
        }
    }

    /// The sizes now (a file not there yet counts as 0).
    pub(crate) async fn read(&mut self) -> anyhow::Result<Sizes> {
        match self {
            Self::Sqlite(path) => {
                let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
                let mut wal = path.clone().into_os_string();
                wal.push("-wal");
                Ok(Sizes {
                    database: size(path),
                    wal: Some(size(std::path::Path::new(&wal))),
                })
            }
            Self::Postgres(conn) => {
                let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(conn.as_mut())
                    .await
                    .context("reading pg_database_size")?;
                Ok(Sizes {
                    database: u64::try_from(bytes).unwrap_or(0),
                    wal: None,
                })
            }
        }
    }

    /// Closes the PostgreSQL connection (before the database is dropped).
    pub(crate) async fn close(self) {
        if let Self::Postgres(conn) = self {
            let _ = conn.close().await;
        }
    }
}
