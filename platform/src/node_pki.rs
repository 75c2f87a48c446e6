//! What a node loads from its PKI directory at start ([`NodePki`]): the CA, the gate's
//! certificate and key, and the audit signing key (the key-encryption key of the store is
//! loaded with the store, [`crate::kek`]).
//!
//! Two kinds of directory ([`PkiDir`]):
//! - **managed** (`pki.dir` unset, `<data_dir>/pki`): a single node creates what is missing
//!   and re-issues its gate certificate when `gate.names` change or it nears expiry;
//! - **provisioned** (`pki.dir` set): one set of files made once by `beffroi pki init`
//!   ([`crate::pki_init`]) and shared by every node of a deployment, often a read-only
//!   mounted secret. A node only reads it, never writes to it (nothing is created, the gate
//!   certificate is served as it is), and refuses to start when a file is missing, naming it
//!   and the command that makes the set.
//!
//! Revocation needs no file: it lives in the shared database (`gateways.revoked_at`), which
//! every node reloads every 500 ms ([`crate::cutoff`]).

use std::path::{Path, PathBuf};

use crate::audit::{AuditKeyError, PlatformAuditKey, KEY_FILE, PUBLIC_KEYS_FILE};
use crate::config::{PkiDir, PlatformConfig};
use crate::pki::{Ca, PkiError};
use crate::server::CA_NAME;

/// The files a node needs in a provisioned PKI directory (besides the key-encryption key,
/// `store.kek_file`).
pub const REQUIRED_FILES: [&str; 7] = [
    "ca.crt",
    "issuing.crt",
    "issuing.key",
    "gate.crt",
    "gate.key",
    KEY_FILE,
    PUBLIC_KEYS_FILE,
];

/// Why a node's PKI could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum NodePkiError {
    /// The CA or the gate certificate is unusable.
    #[error("PKI: {0}")]
    Pki(#[from] PkiError),
    /// The audit signing key is unusable.
    #[error("audit key: {0}")]
    AuditKey(#[from] AuditKeyError),
    /// A provisioned directory lacks files.
    #[error(
        "the provisioned PKI directory {dir} (pki.dir) lacks {missing}: make the set once with \
         `{command}` and give the same files to every node"
    )]
    Missing {
        /// The directory.
        dir: PathBuf,
        /// The missing files, comma-separated.
        missing: String,
        /// The command that makes them.
        command: String,
    },
}

/// The PKI material of a running node.
pub struct NodePki {
    /// The CA.
    pub ca: Ca,
    /// The gate's certificate chain, PEM, leaf first.
    pub gate_cert: String,
    /// The gate's private key, PEM.
    pub gate_key: String,
    /// The audit signing key.
    pub audit_key: PlatformAuditKey,
}

impl std::fmt::Debug for NodePki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePki")
            .field("audit_key", &self.audit_key)
            .finish_non_exhaustive()
    }
}

/// Loads the node's PKI: created where missing in a managed directory, read only (every file
/// present first) in a provisioned one.
pub fn load(config: &PlatformConfig) -> Result<NodePki, NodePkiError> {
    let (ca, (gate_cert, gate_key)) = load_gate(config)?;
    let audit_key = match &config.pki {
        PkiDir::Managed(dir) => PlatformAuditKey::load_or_create(dir)?,
        PkiDir::Provisioned(dir) => PlatformAuditKey::load(dir)?,
    };
    Ok(NodePki {
        ca,
        gate_cert,
        gate_key,
        audit_key,
    })
}

/// The CA alone (issuing gateway certificates from the command line).
pub fn load_ca(config: &PlatformConfig) -> Result<Ca, NodePkiError> {
    check_complete(config)?;
    Ok(Ca::load_or_create(config.pki.path(), CA_NAME)?)
}

/// The CA and the gate's certificate and key (PEM).
pub fn load_gate(config: &PlatformConfig) -> Result<(Ca, (String, String)), NodePkiError> {
    let ca = load_ca(config)?;
    let gate = match &config.pki {
        PkiDir::Managed(dir) => ca.gate_certificate(dir, &config.gate.names)?,
        PkiDir::Provisioned(dir) => ca.shared_gate_certificate(dir, &config.gate.names)?,
    };
    Ok((ca, gate))
}

/// In a provisioned directory, every file of [`REQUIRED_FILES`] and the key-encryption key
/// must be present (with them, loading writes nothing).
fn check_complete(config: &PlatformConfig) -> Result<(), NodePkiError> {
    let PkiDir::Provisioned(dir) = &config.pki else {
        return Ok(());
    };
    let mut missing: Vec<PathBuf> = REQUIRED_FILES
        .iter()
        .map(|file| dir.join(file))
        .filter(|path| !path.exists())
        .collect();
    if !config.kek_file.exists() {
        missing.push(config.kek_file.clone());
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(NodePkiError::Missing {
        dir: dir.clone(),
        missing: missing
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        command: init_command(dir, &config.gate.names),
    })
}

/// The `beffroi pki init` command line that makes `dir` for a gate named `names`.
pub fn init_command(dir: &Path, names: &[String]) -> String {
    let mut command = format!("beffroi pki init --dir {}", dir.display());
    for name in names {
        command.push_str(" --gate-name ");
        command.push_str(name);
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provisioned(dir: &Path) -> PlatformConfig {
        PlatformConfig::from_toml(&format!(
            "[pki]\ndir = {:?}\n[gate]\nnames = [\"gate.example\"]",
            dir.display().to_string()
        ))
        .unwrap()
    }

    #[test]
    fn a_provisioned_directory_missing_files_names_them_and_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let error = load(&provisioned(dir.path())).unwrap_err().to_string();
        for file in REQUIRED_FILES.iter().chain(&["pseudonym.kek"]) {
            assert!(error.contains(file), "{error}");
        }
        assert!(
            error.contains(&format!(
                "beffroi pki init --dir {} --gate-name gate.example",
                dir.path().display()
            )),
            "{error}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing written"
        );
    }
}
