//! The agent config file as `enroll` leaves it.
//!
//! A missing file is created complete and commented, ready for `beffroi-agent run` (with no
//! source yet: the agent then only renews its certificate and reports its health). An
//! existing file is edited in place with `toml_edit`: only the identity, the uplink's host,
//! port and TLS files, the spool directory if it had none, and `[enrollment].url` change;
//! every other value and every comment stays.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use toml_edit::{value, DocumentMut, Item, Table};

use super::files::{self, FileError};

/// What `enroll` knows after the platform answered.
#[derive(Debug, Clone)]
pub struct Values {
    /// The tenant the certificate names.
    pub tenant: String,
    /// The gateway the certificate names.
    pub gateway: String,
    /// The signing key file.
    pub signing_key: PathBuf,
    /// The MQTT gate host.
    pub gate_host: String,
    /// The MQTT gate port.
    pub gate_port: u16,
    /// Trust anchors file.
    pub ca: PathBuf,
    /// Certificate chain file.
    pub certificate: PathBuf,
    /// TLS key file.
    pub private_key: PathBuf,
    /// Spool directory (used only when the file names none).
    pub spool_dir: PathBuf,
    /// The enrollment URL, for renewals.
    pub url: String,
}

/// The config file could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML, or a section is not a table.
    #[error("{path}: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] FileError),
}

/// Whether the file was created or edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// There was no file: a complete one was written.
    Created,
    /// The existing file was edited in place.
    Updated,
}

const TEMPLATE: &str = r#"# beffroi-agent configuration, written by `beffroi-agent enroll`.
# Every setting is described in the annotated example (deploy/agent/agent.toml in the
# Beffroi sources). Check with: beffroi-agent check-config --config <this file>
# Running `beffroi-agent enroll` again (re-enrollment) updates [identity], the uplink's host,
# port and TLS files and [enrollment].url, and keeps everything else, comments included.

# Who this gateway is. The signing key was generated here and never leaves the gateway.
[identity]

# The platform's MQTT gate, mutual TLS with the certificate the platform issued.
[uplink]

# Durable queue of signed batches: a batch leaves it once the platform has committed it.
[spool]

# Automatic certificate renewal over the gateway's mutual-TLS identity.
#   renew_at = 0.667              fraction of the certificate's lifetime after which to renew
#   rotate_signing_key_days = 0   0: rotate only after `beffroi-agent rotate-key`
[enrollment]

# No sources yet: the agent runs, keeps its certificate fresh and reports its health.
# Add one [[sources]] table per source, for example:
#
# [[sources]]
# kind = "jsonl"
# path = "/var/lib/beffroi-agent/readings.jsonl"
# follow = true
"#;

fn syntax(path: &Path, reason: impl std::fmt::Display) -> ConfigFileError {
    ConfigFileError::Syntax {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn read(path: &Path) -> Result<Option<DocumentMut>, ConfigFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigFileError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    text.parse::<DocumentMut>()
        .map(Some)
        .map_err(|e| syntax(path, e))
}

/// The `identity.tenant` and `identity.gateway` an existing file names, if any.
pub fn named_identity(path: &Path) -> Result<(Option<String>, Option<String>), ConfigFileError> {
    let Some(doc) = read(path)? else {
        return Ok((None, None));
    };
    let field = |key| {
        doc.get("identity")
            .and_then(|identity| identity.get(key))
            .and_then(Item::as_str)
            .map(str::to_owned)
    };
    Ok((field("tenant"), field("gateway")))
}

fn table<'a>(
    doc: &'a mut DocumentMut,
    name: &str,
    path: &Path,
) -> Result<&'a mut Table, ConfigFileError> {
    let item = doc.entry(name).or_insert(Item::Table(Table::new()));
    item.as_table_mut()
        .ok_or_else(|| syntax(path, format!("`{name}` is not a table")))
}

fn path_value(path: &Path) -> toml_edit::Item {
    value(path.display().to_string())
}

/// Writes the config at `path` (created if missing, else edited) atomically.
pub fn write(path: &Path, values: &Values) -> Result<Outcome, ConfigFileError> {
    let (mut doc, outcome) = match read(path)? {
        Some(doc) => (doc, Outcome::Updated),
        None => (
            TEMPLATE
                .parse::<DocumentMut>()
                .map_err(|e| syntax(path, e))?,
            Outcome::Created,
        ),
    };
    let identity = table(&mut doc, "identity", path)?;
    identity["tenant"] = value(&values.tenant);
    identity["gateway"] = value(&values.gateway);
    identity["signing_key"] = path_value(&values.signing_key);

    let uplink = table(&mut doc, "uplink", path)?;
    uplink["host"] = value(&values.gate_host);
    uplink["port"] = value(i64::from(values.gate_port));
    uplink["ca"] = path_value(&values.ca);
    uplink["certificate"] = path_value(&values.certificate);
    uplink["private_key"] = path_value(&values.private_key);

    let spool = table(&mut doc, "spool", path)?;
    if !spool.contains_key("dir") {
        spool["dir"] = path_value(&values.spool_dir);
    }

    table(&mut doc, "enrollment", path)?["url"] = value(&values.url);

    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| FileError {
            path: dir.to_owned(),
            source,
        })?;
    }
    // An edited file keeps its mode (an operator may have made it private).
    let mode = std::fs::metadata(path).map_or(files::PUBLIC, |m| m.permissions().mode() & 0o777);
    files::write_atomic(path, doc.to_string().as_bytes(), mode)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn values(dir: &Path) -> Values {
        Values {
            tenant: "lyon".into(),
            gateway: "gw-1".into(),
            signing_key: dir.join("signing.key"),
            gate_host: "gate.example".into(),
            gate_port: 8883,
            ca: dir.join("ca.crt"),
            certificate: dir.join("tls.crt"),
            private_key: dir.join("tls.key"),
            spool_dir: dir.join("spool"),
            url: "https://platform.example:8443".into(),
        }
    }

    #[test]
    fn reads_the_named_identity_and_refuses_what_is_not_toml() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        assert_eq!(named_identity(&path).unwrap(), (None, None));
        std::fs::write(&path, "[identity]\ntenant = \"lyon\"\n").unwrap();
        assert_eq!(named_identity(&path).unwrap(), (Some("lyon".into()), None));
        std::fs::write(&path, "[identity\n").unwrap();
        assert!(matches!(
            named_identity(&path),
            Err(ConfigFileError::Syntax { .. })
        ));
        std::fs::write(&path, "identity = 3\n").unwrap();
        let error = write(&path, &values(dir.path())).unwrap_err();
        assert!(
            error.to_string().contains("`identity` is not a table"),
            "{error}"
        );
    }

    #[test]
    fn an_existing_spool_dir_is_kept_and_values_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "# mine\n[identity]\ntenant = \"old\" # inline\n[spool]\ndir = \"/data/spool\"\n",
        )
        .unwrap();
        assert_eq!(write(&path, &values(dir.path())).unwrap(), Outcome::Updated);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# mine\n"), "{text}");
        assert!(text.contains("tenant = \"lyon\""), "{text}");
        assert!(text.contains("dir = \"/data/spool\""), "{text}");
        assert!(
            text.contains("url = \"https://platform.example:8443\""),
            "{text}"
        );
    }
}
