//! Opening a store from a database URL: backend selection, options, migrations.

use std::sync::Arc;
use std::time::Duration;

use crate::{Error, KeyEncryptionKey, PostgresStore, Result, SqliteStore, Store};

/// Whether to use TimescaleDB on PostgreSQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimescaleMode {
    /// Use it when the server has the extension (creating it if needed); otherwise run on
    /// plain PostgreSQL with a warning.
    #[default]
    Auto,
    /// Never use it, even when available (plain PostgreSQL semantics).
    Off,
    /// Fail to open when the extension is not available.
    Required,
}

/// How to open a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// Connections in the pool (SQLite in memory always uses one).
    pub max_connections: u32,
    /// The instance-wide cap on raw retention: TimescaleDB adds a `drop_chunks` retention
    /// policy (whole chunks, every tenant, no per-tenant receipt). The platform's retention
    /// task also purges, per tenant and with receipts, everything older than this
    /// ([`Store::purge`]; see `retention`), on every backend.
    pub retention: Option<Duration>,
    /// PostgreSQL schema to create and use (`search_path`), e.g. to isolate a test; `None`
    /// uses the connection's default (`public`). Must match `[a-z_][a-z0-9_]{0,62}`.
    pub schema: Option<String>,
    /// TimescaleDB use on PostgreSQL.
    pub timescale: TimescaleMode,
    /// TimescaleDB: compress chunks older than this.
    pub compress_after: Duration,
    /// The key-encryption key that seals pseudonym keys at rest (see `sealing`). Without
    /// one, writing or reading a pseudonym key fails. With one, opening seals the keys still
    /// stored in clear, unless keys sealed under another KEK are found: then it warns, and
    /// reading those keys fails with [`Error::WrongKek`].
    pub kek: Option<KeyEncryptionKey>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            retention: None,
            schema: None,
            timescale: TimescaleMode::Auto,
            compress_after: Duration::from_secs(7 * 86_400),
            kek: None,
        }
    }
}

impl OpenOptions {
    /// Checks the options without touching any database.
    pub fn validate(&self) -> Result<()> {
        if self.max_connections == 0 {
            return Err(Error::Invalid {
                what: "max_connections",
                reason: "must be at least 1".into(),
            });
        }
        if let Some(schema) = &self.schema {
            let mut bytes = schema.bytes();
            let first_ok = bytes
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
            let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !first_ok || !rest_ok || schema.len() > 63 || schema.starts_with("pg_") {
                return Err(Error::Invalid {
                    what: "schema",
                    reason: format!("{schema:?} must match [a-z_][a-z0-9_]{{0,62}}, not pg_…"),
                });
            }
        }
        Ok(())
    }
}

/// Opens (creating if needed) and migrates the store named by `url`:
/// `sqlite://path?mode=rwc`, `sqlite:path`, `sqlite::memory:`, or `postgres://…`
/// (`postgresql://…`).
pub async fn open(url: &str, options: OpenOptions) -> Result<Arc<dyn Store>> {
    options.validate()?;
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, &options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url, &options).await?))
    } else {
        Err(Error::UnsupportedUrl(redact(url)))
    }
}

/// The URL without its password, for errors and logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        let with = |s: &str| OpenOptions {
            schema: Some(s.into()),
            ..OpenOptions::default()
        };
        assert!(with("t_123_abc").validate().is_ok());
        for bad in ["", "A", "1a", "a-b", "a;drop", "pg_x", &"a".repeat(64)] {
            assert!(with(bad).validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("mysql://x"), "mysql://x");
    }

    #[tokio::test]
    async fn unknown_scheme_is_refused() {
        let err = open("mysql://x", OpenOptions::default()).await.err();
        assert!(matches!(err, Some(Error::UnsupportedUrl(_))), "{err:?}");
    }
}
