//! The database part of a backup: a consistent copy taken while the platform runs, and its
//! restoration into an empty database.
//!
//! - SQLite: `VACUUM INTO` writes a consistent, compacted copy from one read transaction
//!   (writers go on meanwhile); restoring puts the file in place of the configured one, which
//!   must not exist yet.
//! - PostgreSQL: `pg_dump --format=custom` (one snapshot) and `pg_restore --single-transaction
//!   --exit-on-error --no-owner --no-privileges` into a database that has no table. With
//!   TimescaleDB in the dump, `timescaledb_pre_restore()` and `timescaledb_post_restore()`
//!   frame the restoration, as TimescaleDB asks. The programs come from the PostgreSQL
//!   client package, at least the server's version; the password is handed to them in
//!   `PGPASSWORD`, never on their command line.

use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr as _;

use serde::{Deserialize, Serialize};
use sqlx::{Connection as _, Executor as _, Row as _};

use super::{io_error, BackupError};

/// The database backend of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL (with or without TimescaleDB).
    Postgres,
}

impl Backend {
    /// The backend of a database URL (validated by the configuration: `sqlite:` or
    /// `postgres…`).
    pub fn of(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The dump's file name in a backup.
    pub fn dump_file(self) -> &'static str {
        match self {
            Backend::Sqlite => "database.sqlite",
            Backend::Postgres => "database.pgdump",
        }
    }
}

fn db_error(what: &'static str) -> impl FnOnce(sqlx::Error) -> BackupError {
    move |source| BackupError::Database { what, source }
}

/// Writes a consistent copy of the database of `url` to `out`.
pub async fn dump(url: &str, out: &Path) -> Result<(), BackupError> {
    match Backend::of(url) {
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(url)
                .await
                .map_err(db_error("opening the SQLite database"))?;
            sqlx::query("VACUUM INTO ?")
                .bind(out.to_string_lossy().into_owned())
                .execute(&mut connection)
                .await
                .map_err(db_error("VACUUM INTO"))?;
            connection
                .close()
                .await
                .map_err(db_error("closing the SQLite database"))?;
            std::fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .map_err(io_error(out))
        }
        Backend::Postgres => {
            let mut args = vec!["--format=custom".to_owned(), "--file".to_owned()];
            args.push(out.to_string_lossy().into_owned());
            pg_tool("pg_dump", Some(url), args).await.map(|_| ())
        }
    }
}

/// Fails unless the database of `url` is empty: no SQLite file (or an empty one), or a
/// PostgreSQL database without tables of its own.
pub async fn ensure_empty(url: &str) -> Result<(), BackupError> {
    match Backend::of(url) {
        Backend::Sqlite => {
            let path = sqlite_path(url)?;
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if bytes > 0 {
                return Err(super::BackupError::NotEmpty {
                    action: "restore",
                    what: format!(
                        "the SQLite database {} exists ({bytes} bytes): restore into a fresh \
                         data directory",
                        path.display()
                    ),
                });
            }
            Ok(())
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(url)
                .await
                .map_err(db_error("connecting to PostgreSQL"))?;
            let tables: i64 = sqlx::query(
                "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN \
                 ('pg_catalog', 'information_schema') AND schemaname NOT LIKE '\\_timescaledb%' \
                 AND schemaname NOT LIKE 'timescaledb\\_%'",
            )
            .fetch_one(&mut connection)
            .await
            .map_err(db_error("counting tables"))?
            .get(0);
            if tables > 0 {
                return Err(super::BackupError::NotEmpty {
                    action: "restore",
                    what: format!(
                        "the PostgreSQL database has {tables} tables: restore into a new, empty \
                         database (CREATE DATABASE …)"
                    ),
                });
            }
            Ok(())
        }
    }
}

/// Loads the dump `from` into the (empty, see [`ensure_empty`]) database of `url`.
pub async fn restore(url: &str, from: &Path) -> Result<(), BackupError> {
    match Backend::of(url) {
        Backend::Sqlite => {
            let path = sqlite_path(url)?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io_error(parent))?;
            }
            let staged = path.with_extension("restoring");
            std::fs::copy(from, &staged).map_err(io_error(&staged))?;
            std::fs::File::open(&staged)
                .and_then(|f| f.sync_all())
                .map_err(io_error(&staged))?;
            std::fs::rename(&staged, &path).map_err(io_error(&path))
        }
        Backend::Postgres => {
            let listing = pg_tool(
                "pg_restore",
                None,
                vec!["--list".to_owned(), from.to_string_lossy().into_owned()],
            )
            .await?;
            let timescale = listing
                .lines()
                .any(|line| line.contains("EXTENSION - timescaledb"));
            let mut connection = sqlx::PgConnection::connect(url)
                .await
                .map_err(db_error("connecting to PostgreSQL"))?;
            if timescale {
                connection
                    .execute(
                        "CREATE EXTENSION IF NOT EXISTS timescaledb; \
                         SELECT timescaledb_pre_restore();",
                    )
                    .await
                    .map_err(db_error("timescaledb_pre_restore()"))?;
            }
            let args = [
                "--single-transaction",
                "--exit-on-error",
                "--no-owner",
                "--no-privileges",
            ];
            let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            args.push(from.to_string_lossy().into_owned());
            pg_tool("pg_restore", Some(url), args).await?;
            if timescale {
                connection
                    .execute("SELECT timescaledb_post_restore();")
                    .await
                    .map_err(db_error("timescaledb_post_restore()"))?;
            }
            connection
                .close()
                .await
                .map_err(db_error("closing the connection"))
        }
    }
}

/// The file of a `sqlite:` URL.
fn sqlite_path(url: &str) -> Result<std::path::PathBuf, BackupError> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(db_error("reading the SQLite URL"))?;
    Ok(options.get_filename().to_owned())
}

/// A PostgreSQL URL without its password, and the password (percent-decoded).
fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_owned(), None);
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return (url.to_owned(), None);
    };
    (
        format!("{scheme}://{user}@{host}{tail}"),
        Some(percent_decode(password)),
    )
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `tool` (`pg_dump`, `pg_restore`) with `args`, on the database of `url` if given
/// (`--dbname` with the URL without its password, which goes in `PGPASSWORD`). Returns its
/// standard output.
async fn pg_tool(
    tool: &'static str,
    url: Option<&str>,
    args: Vec<String>,
) -> Result<String, BackupError> {
    let (mut all, password) = match url.map(split_password) {
        Some((url, password)) => (vec![format!("--dbname={url}")], password),
        None => (Vec::new(), None),
    };
    all.extend(args);
    let args = all;
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(tool);
        command.args(&args).stdin(Stdio::null());
        if let Some(password) = password {
            command.env("PGPASSWORD", password);
        }
        command.output()
    })
    .await
    .map_err(|e| BackupError::Tool {
        tool,
        reason: e.to_string(),
    })?
    .map_err(|e| BackupError::Tool {
        tool,
        reason: format!("cannot run it ({e}): install the PostgreSQL client programs"),
    })?;
    if !output.status.success() {
        return Err(BackupError::Tool {
            tool,
            reason: format!(
                "exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_the_url() {
        assert_eq!(
            split_password("postgres://u:p%40ss@db:5432/beffroi?sslmode=require"),
            (
                "postgres://u@db:5432/beffroi?sslmode=require".to_owned(),
                Some("p@ss".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://postgres@127.0.0.1/test"),
            ("postgres://postgres@127.0.0.1/test".to_owned(), None)
        );
        assert_eq!(
            split_password("postgres://127.0.0.1/test"),
            ("postgres://127.0.0.1/test".to_owned(), None)
        );
    }
}
