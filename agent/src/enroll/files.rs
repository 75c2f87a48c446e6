//! Crash-safe writes of the gateway's identity files.
//!
//! Every file is written under a temporary name, fsynced, renamed into place, and the
//! directory fsynced ([`write_atomic`]); private keys are created with mode 0600 from the
//! start. The TLS key and its certificate must never be out of step, and two renames cannot
//! be one, so [`TlsPair`] keeps a tiny journal in the file names:
//!
//! ```text
//! stage : tls.key.new (0600), then tls.crt.new     (each written atomically)
//! commit: tls.key.new → tls.key, then tls.crt.new → tls.crt
//! recover (at start): tls.crt.new present → finish the commit (both were complete)
//!                     only tls.key.new    → staging never finished: remove it
//! ```
//! A pending signing key (`signing.key.new`) follows the same naming: it is the rotation
//! candidate until a renewal registers it.

use std::fs::DirBuilder;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// A file could not be written, renamed or removed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError {
        path: path.to_owned(),
        source,
    }
}

/// Mode of private key files.
pub const PRIVATE: u32 = 0o600;
/// Mode of certificates and configuration.
pub const PUBLIC: u32 = 0o644;

/// Creates the state directory with mode 0700 if it is missing (an existing one is kept).
pub fn create_state_dir(dir: &Path) -> Result<(), FileError> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(at(dir))
}

/// `path` with `.new` appended: where a replacement waits until it is committed.
pub fn pending(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> Result<(), FileError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at(dir))
}

/// Replaces `path` with `bytes` atomically: a reader sees the old or the new content, and a
/// crash leaves one of them. The file is created with `mode` (never wider, not even briefly).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let dir = parent(path);
    let mut file = tempfile::Builder::new()
        .prefix(".beffroi-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(at(dir))?;
    file.write_all(bytes).map_err(at(path))?;
    file.as_file().sync_all().map_err(at(path))?;
    file.persist(path).map_err(|e| FileError {
        path: path.to_owned(),
        source: e.error,
    })?;
    sync_dir(dir)
}

/// Gives `paths` to the owner of `dir` when they belong to root: `sudo beffroi-agent enroll`
/// into the service's state directory leaves files the service user can read. Files of any
/// other owner are left alone.
pub fn give_to_dir_owner(dir: &Path, paths: &[&Path]) -> Result<(), FileError> {
    let owner = std::fs::metadata(dir).map_err(at(dir))?;
    for path in paths {
        let meta = std::fs::metadata(path).map_err(at(path))?;
        if meta.uid() == 0 && owner.uid() != 0 {
            std::os::unix::fs::chown(path, Some(owner.uid()), Some(owner.gid()))
                .map_err(at(path))?;
        }
    }
    Ok(())
}

/// Renames `from` onto `to` and makes the rename durable.
pub fn rename(from: &Path, to: &Path) -> Result<(), FileError> {
    std::fs::rename(from, to).map_err(at(to))?;
    sync_dir(parent(to))
}

/// Removes `path` if it exists.
pub fn remove_if_present(path: &Path) -> Result<(), FileError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(at(path)(e)),
    }
}

/// The gateway's TLS key and certificate chain, replaced together.
#[derive(Debug, Clone)]
pub struct TlsPair {
    /// The certificate chain (PEM, leaf first).
    pub certificate: PathBuf,
    /// Its private key (PEM, 0600).
    pub key: PathBuf,
}

impl TlsPair {
    /// Writes the replacement key and chain under their `.new` names, key first.
    pub fn stage(&self, chain_pem: &str, key_pem: &str) -> Result<(), FileError> {
        self.stage_key(key_pem)?;
        self.stage_certificate(chain_pem)
    }

    /// Writes the replacement key as `<key>.new` (mode 0600).
    pub fn stage_key(&self, key_pem: &str) -> Result<(), FileError> {
        write_atomic(&pending(&self.key), key_pem.as_bytes(), PRIVATE)
    }

    /// Writes the replacement chain as `<certificate>.new`, once its key is staged.
    pub fn stage_certificate(&self, chain_pem: &str) -> Result<(), FileError> {
        write_atomic(&pending(&self.certificate), chain_pem.as_bytes(), PUBLIC)
    }

    /// Moves the staged key, then the staged chain, into place.
    pub fn commit(&self) -> Result<(), FileError> {
        let key = pending(&self.key);
        if key.exists() {
            rename(&key, &self.key)?;
        }
        rename(&pending(&self.certificate), &self.certificate)
    }

    /// Removes a staged pair that will not be committed.
    pub fn discard(&self) -> Result<(), FileError> {
        remove_if_present(&pending(&self.certificate))?;
        remove_if_present(&pending(&self.key))
    }

    /// After a crash: finishes a commit whose chain was staged, drops an unfinished staging.
    /// Returns whether a commit was finished.
    pub fn recover(&self) -> Result<bool, FileError> {
        if pending(&self.certificate).exists() {
            self.commit()?;
            Ok(true)
        } else {
            remove_if_present(&pending(&self.key))?;
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn pair(dir: &Path) -> TlsPair {
        TlsPair {
            certificate: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }

    #[test]
    fn state_dir_is_private_and_writes_are_atomic() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/state");
        create_state_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let key = dir.join("k");
        write_atomic(&key, b"one", PRIVATE).unwrap();
        write_atomic(&key, b"two", PRIVATE).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"two");
        assert_eq!(mode(&key), 0o600);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "temp files left"
        );
    }

    #[test]
    fn a_pair_moves_together_and_recovers_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let tls = pair(dir.path());
        tls.stage("crt 1", "key 1").unwrap();
        assert_eq!(mode(&pending(&tls.key)), 0o600);
        tls.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&tls.key).unwrap(), "key 1");
        assert_eq!(std::fs::read_to_string(&tls.certificate).unwrap(), "crt 1");

        // Crash after the key was renamed, before the chain: roll forward.
        tls.stage("crt 2", "key 2").unwrap();
        rename(&pending(&tls.key), &tls.key).unwrap();
        assert!(tls.recover().unwrap());
        assert_eq!(std::fs::read_to_string(&tls.certificate).unwrap(), "crt 2");

        // Crash while staging (key written, chain not): the old pair stays.
        write_atomic(&pending(&tls.key), b"key 3", PRIVATE).unwrap();
        assert!(!tls.recover().unwrap());
        assert!(!pending(&tls.key).exists());
        assert_eq!(std::fs::read_to_string(&tls.key).unwrap(), "key 2");

        tls.stage("crt 4", "key 4").unwrap();
        tls.discard().unwrap();
        assert!(!tls.recover().unwrap());
        assert_eq!(std::fs::read_to_string(&tls.certificate).unwrap(), "crt 2");
    }
}
