//! The benchmark's database: SQLite in the run's temporary directory by default, or a fresh
//! PostgreSQL database created next to the one `--database` names, dropped at the end (the
//! named database itself is never written).

use std::path::Path;

use anyhow::Context as _;
use sqlx::{Connection as _, PgConnection};

/// Where the run stores its readings.
pub(crate) enum BenchDatabase {
    /// An SQLite file (removed with the temporary directory).
    Sqlite {
        /// Its URL.
        url: String,
    },
    /// A PostgreSQL database created for this run.
    Postgres {
        /// The URL given (used to create and drop the run's database).
        admin_url: String,
        /// The run's database.
        name: String,
        /// The run's URL.
        url: String,
    },
}

impl BenchDatabase {
    /// Prepares the run's database from `--database` (or SQLite under `scratch`).
    pub(crate) async fn prepare(database: Option<&str>, scratch: &Path) -> anyhow::Result<Self> {
        let Some(url) = database else {
            return Ok(Self::Sqlite {
                url: format!("sqlite://{}?mode=rwc", scratch.join("bench.db").display()),
            });
        };
        if url.starts_with("sqlite:") {
            return Ok(Self::Sqlite {
                url: url.to_owned(),
            });
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            anyhow::bail!("--database: expected sqlite://… or postgres://…");
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = format!("beffroi_bench_{}_{stamp}", std::process::id());
        let mut conn = PgConnection::connect(url)
            .await
            .context("cannot connect to --database")?;
        // `name` is built from digits and a fixed prefix: safe to splice.
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        conn.close().await?;
        Ok(Self::Postgres {
            admin_url: url.to_owned(),
            url: with_database(url, &name),
            name,
        })
    }

    /// The URL the platform opens.
    pub(crate) fn url(&self) -> &str {
        match self {
            Self::Sqlite { url } | Self::Postgres { url, .. } => url,
        }
    }

    /// Drops the run's PostgreSQL database (SQLite goes with the temporary directory).
    pub(crate) async fn drop_database(&self) -> anyhow::Result<()> {
        if let Self::Postgres {
            admin_url, name, ..
        } = self
        {
            let mut conn = PgConnection::connect(admin_url).await?;
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .with_context(|| format!("cannot drop database {name}"))?;
            conn.close().await?;
        }
        Ok(())
    }
}

/// `url` with its database path replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "b"),
            "postgres://u:p@h/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "b"), "postgres://h/b");
    }
}
