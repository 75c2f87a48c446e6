//! The database under the harness's store, and reached beside it (raw SQL to tamper with rows
//! or to break the audit log): SQLite in a temporary file, or PostgreSQL in a fresh database
//! created next to `TEST_DATABASE_URL` and dropped (with its connections) when the test ends,
//! whether it passed or not.
//!
//! Without `TEST_DATABASE_URL` the PostgreSQL runs are skipped with a notice, except when `CI`
//! is set: then they fail, because a missing database in CI is a failure, not a pass. The
//! TimescaleDB runs are skipped with a notice when the server lacks the extension (CI's does:
//! that is expected).

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, Result};
use beffroi_store::{KeyEncryptionKey, OpenOptions, TimescaleMode};
use sqlx::Connection as _;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// PostgreSQL with the TimescaleDB extension (required).
    Timescale,
}

/// A test's database.
pub enum TestDatabase {
    Sqlite {
        url: String,
        _dir: tempfile::TempDir,
    },
    Postgres {
        /// The run's database.
        url: String,
        /// `TEST_DATABASE_URL`, to drop it.
        admin_url: String,
        name: String,
        /// Whether the store must run on TimescaleDB (else it must not).
        timescale: bool,
    },
}

/// The message of the broken audit log's trigger (it must never reach a client).
pub const AUDIT_DOWN: &str = "audit storage down";

impl TestDatabase {
    /// A fresh database of `backend`; `None` (with a notice) when PostgreSQL is not
    /// configured outside CI.
    pub async fn create(backend: Backend) -> Result<Option<Self>> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("api.db").display());
                Ok(Some(Self::Sqlite { url, _dir: dir }))
            }
            Backend::Postgres | Backend::Timescale => {
                let Some(admin_url) = database_url()? else {
                    return Ok(None);
                };
                let name = fresh_name();
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .context("connect to TEST_DATABASE_URL")?;
                let timescale = backend == Backend::Timescale;
                if timescale && !timescale_available(&mut conn).await? {
                    eprintln!(
                        "notice: TimescaleDB is not installed on the test server; \
                         TimescaleDB run skipped"
                    );
                    conn.close().await?;
                    return Ok(None);
                }
                // `name` is a fixed prefix and digits: safe to splice.
                sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                Ok(Some(Self::Postgres {
                    url: with_database(&admin_url, &name)?,
                    admin_url,
                    name,
                    timescale,
                }))
            }
        }
    }

    /// The URL the store opens.
    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }

    /// How the store is opened on it: with a key-encryption key for the pseudonym keys; on
    /// PostgreSQL, TimescaleDB required or off.
    pub fn options(&self) -> OpenOptions {
        let sealed = OpenOptions {
            kek: Some(KeyEncryptionKey::from_bytes([0x4b; 32])),
            ..OpenOptions::default()
        };
        match self {
            Self::Sqlite { .. } => sealed,
            Self::Postgres { timescale, .. } => OpenOptions {
                max_connections: 4,
                timescale: if *timescale {
                    TimescaleMode::Required
                } else {
                    TimescaleMode::Off
                },
                ..sealed
            },
        }
    }

    /// Runs `sql` (one or more statements) on a connection of its own.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        match self {
            Self::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await?;
            }
            Self::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await?;
            }
        }
        Ok(())
    }

    /// Makes every insert into the audit log fail with [`AUDIT_DOWN`] (a trigger).
    pub async fn break_audit_log(&self) -> Result<()> {
        let sql = match self {
            Self::Sqlite { .. } => format!(
                "CREATE TRIGGER audit_down BEFORE INSERT ON audit_entries \
                 BEGIN SELECT RAISE(ABORT, '{AUDIT_DOWN}'); END;"
            ),
            Self::Postgres { .. } => format!(
                "CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION '{AUDIT_DOWN}'; END $$; \
                 CREATE TRIGGER audit_down BEFORE INSERT ON audit_entries \
                 FOR EACH ROW EXECUTE FUNCTION audit_down();"
            ),
        };
        self.execute(&sql).await
    }

    /// Undoes [`TestDatabase::break_audit_log`].
    pub async fn repair_audit_log(&self) -> Result<()> {
        self.execute(match self {
            Self::Sqlite { .. } => "DROP TRIGGER audit_down",
            Self::Postgres { .. } => "DROP TRIGGER audit_down ON audit_entries",
        })
        .await
    }
}

impl Drop for TestDatabase {
    /// Drops a PostgreSQL database (the store's pool may still be open: `WITH (FORCE)`), on
    /// a thread and runtime of its own, since the test's runtime may be single-threaded.
    fn drop(&mut self) {
        let Self::Postgres {
            admin_url, name, ..
        } = self
        else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        let dropped = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop the test database {}", self.url());
        }
    }
}

/// `TEST_DATABASE_URL`; without it, `None` with a notice, or an error under CI.
fn database_url() -> Result<Option<String>> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Ok(Some(url)),
        _ if std::env::var_os("CI").is_some() => anyhow::bail!(
            "TEST_DATABASE_URL is not set, and CI is: the API's governance and audit tests must \
             run on PostgreSQL in CI (e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test)"
        ),
        _ => {
            eprintln!("notice: TEST_DATABASE_URL is not set; PostgreSQL runs skipped");
            Ok(None)
        }
    }
}

/// Whether the server can create the `timescaledb` extension (as the store detects it).
async fn timescale_available(conn: &mut sqlx::PgConnection) -> Result<bool> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// `api_test_<pid>_<n>_<nanos>`: unique across the tests of a run and across runs.
fn fresh_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "api_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// `url` with its database replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .context("TEST_DATABASE_URL is not a URL")?;
    let (authority, query) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path.split_once('?').map(|(_, q)| q)),
        None => match rest.split_once('?') {
            Some((authority, query)) => (authority, Some(query)),
            None => (rest, None),
        },
    };
    Ok(match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    })
}
