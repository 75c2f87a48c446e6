//! Opens a fresh store of each backend for one test (with [`test_kek`]) and cleans up after
//! it; cases that need it also get the [`Database`] beside the store (raw SQL, other nodes),
//! or only the database, before any store opened it.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use beffroi_store::{open, Backend, KeyEncryptionKey, OpenOptions, Store, TimescaleMode};
use sqlx::Connection;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
    Timescale,
}

/// Runs `case` on a fresh store of `kind`, or prints why it is skipped.
pub async fn run<F, Fut>(kind: Kind, case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    run_with_sql(kind, |store, _| case(store)).await;
}

/// The key-encryption key every store under test is opened with.
pub fn test_kek() -> KeyEncryptionKey {
    KeyEncryptionKey::from_bytes([0x4b; 32])
}

/// The database a store under test uses, reached beside the store: raw SQL (to tamper with
/// rows behind its back) and other stores on it (other platform nodes).
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite { url: String },
    Postgres { url: String, options: OpenOptions },
}

impl Database {
    /// Runs `sql` (one or more statements, in SQL both backends accept) on its own connection
    /// (on PostgreSQL, with the store's schema then `public`, TimescaleDB's, on the search path).
    pub async fn execute(&self, sql: &str) {
        match self {
            Database::Sqlite { url } => {
                let mut conn = sqlx::SqliteConnection::connect(url)
                    .await
                    .expect("connect to sqlite");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
                conn.close().await.expect("close");
            }
            Database::Postgres { url, options } => {
                let schema = options.schema.as_deref().expect("a test schema");
                let mut conn = sqlx::PgConnection::connect(url)
                    .await
                    .expect("connect to postgres");
                // Apart: `sql` may be a `CALL` that refuses a transaction block.
                sqlx::raw_sql(&format!("SET search_path TO \"{schema}\", public"))
                    .execute(&mut conn)
                    .await
                    .expect("search path");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
                conn.close().await.expect("close");
            }
        }
    }

    /// The rows of the PostgreSQL query `sql` (the store's schema first on the search path,
    /// then `public` for TimescaleDB's functions), each as a JSON object.
    pub async fn pg_rows(&self, sql: &str) -> Vec<serde_json::Value> {
        let mut conn = self.pg_connection().await;
        let rows: Vec<serde_json::Value> =
            sqlx::query_scalar(&format!("SELECT to_jsonb(q) FROM ({sql}) q"))
                .fetch_all(&mut conn)
                .await
                .expect(sql);
        conn.close().await.expect("close");
        rows
    }

    /// A connection to the store's PostgreSQL schema (first on the search path, then `public`).
    pub async fn pg_connection(&self) -> sqlx::PgConnection {
        let Database::Postgres { url, options } = self else {
            panic!("raw PostgreSQL queries need a PostgreSQL store");
        };
        let schema = options.schema.as_deref().expect("a test schema");
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .expect("connect to postgres");
        sqlx::raw_sql(&format!("SET search_path TO \"{schema}\", public"))
            .execute(&mut conn)
            .await
            .expect("search path");
        conn
    }

    /// Another store on the same database, as another platform node would open it.
    pub async fn open_another(&self) -> Arc<dyn Store> {
        self.open_with(Some(test_kek()))
            .await
            .expect("open another store")
    }

    /// Another store on the same database, opened with `kek` instead of [`test_kek`].
    pub async fn open_with(
        &self,
        kek: Option<KeyEncryptionKey>,
    ) -> beffroi_store::Result<Arc<dyn Store>> {
        match self {
            Database::Sqlite { url } => {
                let options = OpenOptions {
                    kek,
                    ..OpenOptions::default()
                };
                open(url, options).await
            }
            Database::Postgres { url, options } => {
                let options = OpenOptions {
                    kek,
                    ..options.clone()
                };
                open(url, options).await
            }
        }
    }

    /// Applies the migrations numbered below `first_left_out` (`"0007"`), as an older version
    /// did, for a case that checks what a later migration does to the rows it left.
    pub async fn migrate_before(&self, first_left_out: &str) {
        let backend = match self {
            Database::Sqlite { .. } => "sqlite",
            Database::Postgres { .. } => "postgres",
        };
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let old = tempfile::tempdir().expect("temp dir");
        for entry in std::fs::read_dir(&source).expect("migrations") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            if name.as_str() < first_left_out {
                std::fs::copy(&path, old.path().join(&name)).expect("copy");
            }
        }
        let migrator = sqlx::migrate::Migrator::new(old.path())
            .await
            .expect("old migrations");
        match self {
            Database::Sqlite { url } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
                migrator.run(&mut conn).await.expect("old schema");
                conn.close().await.expect("close");
            }
            Database::Postgres { options, .. } => {
                let schema = options.schema.as_deref().expect("a test schema");
                self.execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                    .await;
                let mut conn = self.pg_connection().await;
                migrator.run(&mut conn).await.expect("old schema");
                conn.close().await.expect("close");
            }
        }
    }

    /// The SQLite database file (`None` on PostgreSQL).
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        let Database::Sqlite { url } = self else {
            return None;
        };
        let path = url.strip_prefix("sqlite://")?;
        Some(path.split('?').next().unwrap_or(path).into())
    }
}

/// Runs `case` on a fresh store of `kind` and its [`Database`], or prints why it is skipped.
pub async fn run_with_sql<F, Fut>(kind: Kind, case: F)
where
    F: FnOnce(Arc<dyn Store>, Database) -> Fut,
    Fut: Future<Output = ()>,
{
    run_unopened(kind, |database| async move {
        let store = database.open_another().await;
        let expected = match kind {
            Kind::Sqlite => Backend::Sqlite,
            Kind::Postgres => Backend::Postgres,
            Kind::Timescale => Backend::Timescale,
        };
        assert_eq!(store.backend(), expected);
        case(store.clone(), database).await;
        store.close().await;
    })
    .await;
}

/// Runs `case` on a fresh, empty database of `kind` that no store has opened yet (it opens
/// and closes its own stores), or prints why it is skipped.
pub async fn run_unopened<F, Fut>(kind: Kind, case: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()>,
{
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("store.db").display()
            );
            case(Database::Sqlite { url }).await;
        }
        Kind::Postgres | Kind::Timescale => {
            let Some(url) = database_url() else { return };
            if kind == Kind::Timescale && !timescale_available(&url).await {
                eprintln!("notice: TimescaleDB is not installed on the test server; skipped");
                return;
            }
            let schema = fresh_schema();
            let options = OpenOptions {
                schema: Some(schema.clone()),
                max_connections: 4,
                timescale: if kind == Kind::Timescale {
                    TimescaleMode::Required
                } else {
                    TimescaleMode::Off
                },
                ..OpenOptions::default()
            };
            let database = Database::Postgres {
                url: url.clone(),
                options,
            };
            case(database).await;
            drop_schema(&url, &schema).await;
        }
    }
}

/// `TEST_DATABASE_URL`; without it, `None` with a notice, or a failure under CI.
fn database_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("TEST_DATABASE_URL is not set: CI must run the store suite on PostgreSQL")
        }
        _ => {
            eprintln!("notice: TEST_DATABASE_URL is not set; PostgreSQL runs skipped");
            None
        }
    }
}

async fn timescale_available(url: &str) -> bool {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to TEST_DATABASE_URL");
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
            .fetch_optional(&mut conn)
            .await
            .expect("query extensions");
    found.is_some()
}

fn fresh_schema() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "store_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// The store's TimescaleDB setup lock (`SETUP_LOCK` in `src/postgres/timescale.rs`): TimescaleDB's
/// catalog deadlocks when hypertables are dropped while others are created.
const SETUP_LOCK: i64 = 0x6265_6666_726f_6932;

async fn drop_schema(url: &str, schema: &str) {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to drop schema");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(SETUP_LOCK)
        .execute(&mut conn)
        .await
        .expect("lock");
    let timescale: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
            .fetch_optional(&mut conn)
            .await
            .expect("query extensions");
    if timescale.is_some() {
        // Its jobs first: a job running while its table is dropped can crash the server.
        sqlx::query(
            "SELECT delete_job(job_id) FROM timescaledb_information.jobs \
             WHERE hypertable_schema = $1",
        )
        .bind(schema)
        .execute(&mut conn)
        .await
        .expect("delete jobs");
    }
    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .expect("drop schema");
    conn.close().await.expect("close");
}
