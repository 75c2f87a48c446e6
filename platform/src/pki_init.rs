//! `beffroi pki init`: makes, once, the PKI directory that every node of a deployment shares
//! (`pki.dir`, a provisioned directory, see [`crate::node_pki`]): the root and issuing CA,
//! the gate certificate for the load balancer's names, the audit signing key and the
//! key-encryption key of the pseudonym keys, every file mode 0600.
//!
//! Run again on the same directory, it keeps what is there and makes only what is missing;
//! the gate certificate is re-issued when the names differ or it nears expiry (enrollment
//! tokens pin it: the output says when it changed). With `--offline-root` the root key is
//! moved out of the directory, beside it, so that the secret the nodes get never holds it.

use std::fs::{DirBuilder, Permissions};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::audit::PlatformAuditKey;
use crate::node_pki::{NodePkiError, REQUIRED_FILES};
use crate::pki::{io_error, Ca, PkiError};
use crate::server::CA_NAME;

/// `beffroi pki init` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// The directory to fill (created, mode 0700); what is already there is kept.
    #[arg(long)]
    pub dir: PathBuf,
    /// A DNS name or IP address of the gate as gateways reach it (the load balancer's);
    /// repeat for several.
    #[arg(long = "gate-name", required = true)]
    pub gate_names: Vec<String>,
    /// Move the root CA key out of the directory, to `<dir>.root-ca.key` beside it: keep it
    /// offline; the nodes need only the issuing CA.
    #[arg(long)]
    pub offline_root: bool,
}

/// Why `pki init` failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A file could not be made.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The audit key could not be made.
    #[error(transparent)]
    Node(#[from] NodePkiError),
    /// The key-encryption key could not be made.
    #[error(transparent)]
    Kek(#[from] crate::kek::KekFileError),
    /// `--offline-root` would overwrite a root key kept beside the directory.
    #[error(
        "{0} already exists: move it away first (it may be the offline root key of another CA)"
    )]
    RootKeyExists(PathBuf),
}

/// Where `--offline-root` puts the root key of `dir`.
pub fn offline_root_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".root-ca.key");
    dir.with_file_name(name)
}

/// Makes what is missing in `args.dir`; returns what to tell the operator.
pub fn run(args: &InitArgs) -> Result<String, InitError> {
    let dir = &args.dir;
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;
    }
    let gate_path = dir.join("gate.crt");
    let gate_before = std::fs::read_to_string(&gate_path).ok();
    let ca = Ca::load_or_create(dir, CA_NAME)?;
    let (gate_cert, _) = ca.gate_certificate(dir, &args.gate_names)?;
    let audit = PlatformAuditKey::load_or_create(dir).map_err(NodePkiError::from)?;
    let kek = crate::kek::load_or_create(&dir.join(crate::kek::KEK_FILE))?;
    let root_key = dir.join("ca.key");
    let offline = offline_root_path(dir);
    if args.offline_root && root_key.exists() {
        if offline.exists() {
            return Err(InitError::RootKeyExists(offline));
        }
        std::fs::rename(&root_key, &offline).map_err(io_error(&root_key))?;
    }
    let mut files: Vec<&str> = REQUIRED_FILES.to_vec();
    files.push(crate::kek::KEK_FILE);
    if root_key.exists() {
        files.push("ca.key");
    }
    if dir.join(crate::rollover::ANCHORS_FILE).exists() {
        files.push(crate::rollover::ANCHORS_FILE);
    }
    for file in &files {
        let path = dir.join(file);
        std::fs::set_permissions(&path, Permissions::from_mode(0o600)).map_err(io_error(&path))?;
    }
    let pin = crate::enroll::pin_of(&gate_cert)?;
    let gate_news = match gate_before {
        None => "issued",
        Some(before) if before == gate_cert => "kept",
        Some(_) => "RE-ISSUED: enrollment tokens made before carry a stale pin, make new ones",
    };
    let root_news = if root_key.exists() {
        format!(
            "the root key {} is in the directory: leave it out of the secret (or run again with \
             --offline-root) and keep it offline; the nodes need only the issuing CA",
            root_key.display()
        )
    } else if offline.exists() {
        format!(
            "the root key is at {}: keep it offline (it is needed only to make a new issuing CA \
             or to roll the root over)",
            offline.display()
        )
    } else {
        "the root key is offline".to_owned()
    };
    let node_files: Vec<&str> = files.iter().copied().filter(|f| *f != "ca.key").collect();
    Ok(format!(
        "PKI directory {dir} ready (every file mode 0600):\n  {listed}\n\
         gate certificate for {names}: {gate_news}\n\
         enrollment pin (SHA-256 of gate.crt): {pin}\n\
         audit key id: {audit_id}; key-encryption key id: {kek_id}\n\
         {root_news}.\n\n\
         Give every node the same files, read-only and private to its user (deploy/README.md), \
         e.g. from a Kubernetes Secret:\n  kubectl create secret generic beffroi-pki{from_files}\n\
         and set in each node's beffroi.toml:\n  [pki]\n  dir = \"/run/secrets/beffroi-pki\"\n\
         The revocation source is the shared database: nothing to distribute.",
        dir = dir.display(),
        listed = files.join(" "),
        names = args.gate_names.join(", "),
        audit_id = audit.key_id(),
        kek_id = kek.id(),
        from_files = node_files
            .iter()
            .map(|f| format!(" --from-file={}", dir.join(f).display()))
            .collect::<String>(),
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::config::PlatformConfig;

    fn args(dir: &Path, offline_root: bool) -> InitArgs {
        InitArgs {
            dir: dir.to_owned(),
            gate_names: vec!["gate.example".into(), "10.0.0.1".into()],
            offline_root,
        }
    }

    /// Every file of `dir` with its content and modification time.
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let meta = std::fs::metadata(&path).unwrap();
                (
                    path.clone(),
                    std::fs::read(&path).unwrap(),
                    meta.modified().unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn makes_the_set_once_and_a_node_loads_it_without_writing() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("pki");
        let out = run(&args(&dir, true)).unwrap();
        assert!(out.contains("enrollment pin"), "{out}");
        assert!(!dir.join("ca.key").exists());
        assert!(offline_root_path(&dir).exists());
        for file in REQUIRED_FILES.iter().chain(&[crate::kek::KEK_FILE]) {
            let mode = std::fs::metadata(dir.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let before = snapshot(&dir);
        // Again: everything kept.
        let again = run(&args(&dir, true)).unwrap();
        assert!(again.contains(": kept"), "{again}");
        assert_eq!(snapshot(&dir), before);

        // A node whose gate.names differ loads it and writes nothing.
        let config = PlatformConfig::from_toml(&format!(
            "[pki]\ndir = {:?}\n[gate]\nnames = [\"other.example\"]",
            dir.display().to_string()
        ))
        .unwrap();
        let node = crate::node_pki::load(&config).unwrap();
        assert_eq!(
            node.gate_cert,
            std::fs::read_to_string(dir.join("gate.crt")).unwrap()
        );
        crate::kek::store_options(&config).unwrap();
        assert_eq!(snapshot(&dir), before);

        // Other names: the gate certificate is re-issued, and the output says so.
        let renamed = run(&InitArgs {
            gate_names: vec!["gate.example".into()],
            ..args(&dir, false)
        })
        .unwrap();
        assert!(renamed.contains("RE-ISSUED"), "{renamed}");
    }

    #[test]
    fn refuses_to_overwrite_an_offline_root_key() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("pki");
        std::fs::write(offline_root_path(&dir), "another key").unwrap();
        let error = run(&args(&dir, true)).unwrap_err().to_string();
        assert!(error.contains("already exists"), "{error}");
        assert_eq!(
            std::fs::read_to_string(offline_root_path(&dir)).unwrap(),
            "another key"
        );
    }
}
