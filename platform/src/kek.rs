//! The key-encryption key (KEK) that seals the pseudonym keys of sharing agreements in the
//! database ([`KeyEncryptionKey`]; why and how in `docs/pseudonym-keys.md`).
//!
//! One file, named by `store.kek_file` (default `<pki.dir>/pseudonym.kek`, next to the audit
//! key): `#` comment lines (one gives the KEK's id), then the key as 64 hex digits. Mode 0600;
//! the platform refuses it when the group or others may read it. Created on first start (or
//! by the first command that opens the store) when absent, without ever replacing a file
//! another process created at the same time. Never logged, never served.
//!
//! Every platform node on one database must use the same KEK: `beffroi pki init` puts it in
//! the PKI directory the nodes share (`pki.dir` set: there it is read, never created), or
//! point their `store.kek_file` at copies of one file. A node with another KEK warns at start
//! and fails, naming the agreement, every read of a key sealed under the database's KEK. Back
//! the file up apart from the database dumps: without it the current pseudonym keys cannot be
//! opened (rotating them seals new ones under the new KEK), and with a dump it re-identifies
//! every pseudonym.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use beffroi_store::{KeyEncryptionKey, OpenOptions};

use crate::config::{PkiDir, PlatformConfig};
use crate::pki::{write_private, PkiError};

/// The KEK's default file name in the PKI directory.
pub const KEK_FILE: &str = "pseudonym.kek";

/// Why the KEK file could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KekFileError {
    /// The file or its directory could not be read or created.
    #[error("key-encryption key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A new file could not be written.
    #[error("key-encryption key: {0}")]
    Write(#[from] PkiError),
    /// The file may be read by others than its owner.
    #[error(
        "{path} is readable by group or others (mode {mode:o}): run `chmod 600 {path}`; the \
         key-encryption key must stay private"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold a key (the reason never quotes it).
    #[error("key-encryption key {path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No key could be generated.
    #[error("key-encryption key: {0}")]
    Generate(#[from] beffroi_store::Error),
}

/// The configured store options with the KEK of `config.kek_file`: loaded, or created when
/// the PKI directory is managed by the node itself.
pub fn store_options(config: &PlatformConfig) -> Result<OpenOptions, KekFileError> {
    let kek = match config.pki {
        PkiDir::Managed(_) => load_or_create(&config.kek_file)?,
        PkiDir::Provisioned(_) => read(&config.kek_file)?,
    };
    tracing::info!(
        path = %config.kek_file.display(),
        kek_id = kek.id(),
        "key-encryption key loaded"
    );
    Ok(OpenOptions {
        kek: Some(kek),
        ..config.store.clone()
    })
}

/// Loads the KEK of `path`, or creates it (and its directory) when there is none.
pub fn load_or_create(path: &Path) -> Result<KeyEncryptionKey, KekFileError> {
    match read(path) {
        Err(KekFileError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
            create(path)
        }
        loaded => loaded,
    }
}

/// Reads the KEK of `path`, refusing a file others may read.
pub fn read(path: &Path) -> Result<KeyEncryptionKey, KekFileError> {
    let io = |source| KekFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KekFileError::Exposed {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    parse(&std::fs::read_to_string(path).map_err(io)?).map_err(|reason| KekFileError::Malformed {
        path: path.to_owned(),
        reason: reason.into(),
    })
}

/// The key of a KEK file's text: one line of 64 hex digits, besides `#` comments and blank
/// lines.
fn parse(text: &str) -> Result<KeyEncryptionKey, &'static str> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'));
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Err("expected exactly one line of 64 hex digits besides # comments");
    };
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(line, &mut bytes).map_err(|_| "the key line is not 64 hex digits")?;
    Ok(KeyEncryptionKey::from_bytes(bytes))
}

/// The text of the KEK file.
fn render(kek: &KeyEncryptionKey) -> String {
    format!(
        "# Beffroi key-encryption key: seals the pseudonym keys in the database\n\
         # (docs/pseudonym-keys.md). Key id {}.\n\
         # Secret: mode 0600, the same file on every node of one database, backed up apart\n\
         # from the database.\n\
         {}\n",
        kek.id(),
        hex::encode(kek.expose_secret())
    )
}

/// Writes a new KEK at `path`, unless another process just did: then that one is read.
fn create(path: &Path) -> Result<KeyEncryptionKey, KekFileError> {
    let io = |source| KekFileError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let kek = KeyEncryptionKey::generate()?;
    // Written whole under a private name, then linked in place: the link fails rather than
    // replace a file created meanwhile, and no reader ever sees a partial file.
    let fresh = path.with_extension(format!("new-{}", std::process::id()));
    write_private(&fresh, &render(&kek))?;
    let linked = std::fs::hard_link(&fresh, path);
    let _ = std::fs::remove_file(&fresh);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), kek_id = kek.id(), "key-encryption key created");
            Ok(kek)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;

    use super::*;

    #[test]
    fn created_private_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pki").join(KEK_FILE);
        let created = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(created.id()), "the file names its id");
        assert_eq!(load_or_create(&path).unwrap(), created);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn the_configured_file_seals_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let config = PlatformConfig::from_toml(&format!(
            "data_dir = {:?}",
            dir.path().join("data").display().to_string()
        ))
        .unwrap();
        assert_eq!(config.store.kek, None, "validation reads no file");
        let options = store_options(&config).unwrap();
        let kek = read(&dir.path().join("data").join("pki").join(KEK_FILE)).unwrap();
        assert_eq!(options.kek, Some(kek));
        assert_eq!(
            store_options(&config).unwrap(),
            options,
            "the same KEK every time"
        );
    }

    #[test]
    fn a_copied_file_is_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a.kek");
        let kek = load_or_create(&first).unwrap();
        let copy = dir.path().join("b.kek");
        std::fs::copy(&first, &copy).unwrap();
        assert_eq!(read(&copy).unwrap(), kek);
    }

    #[test]
    fn refuses_a_file_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEK_FILE);
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        let error = load_or_create(&path).unwrap_err();
        assert!(
            matches!(error, KekFileError::Exposed { mode: 0o644, .. }),
            "{error}"
        );
    }

    #[test]
    fn bad_files_are_clear_errors_that_quote_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEK_FILE);
        for text in [
            "",
            "# only a comment\n",
            "secret-not-hex\n",
            "00\n",
            &format!("{}\n{}\n", "ab".repeat(32), "cd".repeat(32)),
        ] {
            write_private(&path, text).unwrap();
            let error = load_or_create(&path).unwrap_err();
            assert!(
                matches!(error, KekFileError::Malformed { .. }),
                "{text:?}: {error}"
            );
            assert!(!error.to_string().contains("secret"), "{error}");
        }
        write_private(&path, &format!("# a comment\n\n  {}  \n", "ab".repeat(32))).unwrap();
        assert_eq!(
            read(&path).unwrap(),
            KeyEncryptionKey::from_bytes([0xab; 32])
        );
    }
}
