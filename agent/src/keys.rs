//! Key material on disk: the gateway's Ed25519 signing key and its TLS client key.
//!
//! Keys are generated locally (`keygen`, `enroll`, renewals), written with mode 0600 and
//! refused at load time if the file is readable or writable by group or others. Key bytes are
//! never logged.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use beffroi_protocol::{key_id_for, KeyId, SigningKey};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _};

/// A key file problem.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The file is accessible to group or others.
    #[error("{path} has mode {mode:o}: a private key must not be accessible to group or others (chmod 600 {path})")]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold a PKCS#8 Ed25519 private key.
    #[error("{path}: not a PKCS#8 PEM Ed25519 private key")]
    Format {
        /// The key file.
        path: PathBuf,
    },
    /// The operating system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// A key could not be encoded as PEM (should not happen for a valid key).
    #[error("cannot encode the {0} as PEM")]
    Encode(&'static str),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Checks that only its owner can access the private key file at `path`.
pub fn check_private_mode(path: &Path) -> Result<(), KeyError> {
    let mode = std::fs::metadata(path)
        .map_err(io_error(path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

/// Reads a private key file after checking that only its owner can access it.
pub fn read_private(path: &Path) -> Result<String, KeyError> {
    check_private_mode(path)?;
    std::fs::read_to_string(path).map_err(io_error(path))
}

/// A fresh Ed25519 signing key from the operating system's random source.
pub fn random_signing_key() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

/// The PKCS#8 PEM of a signing key.
pub fn signing_key_pem(key: &SigningKey) -> Result<String, KeyError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.as_str().to_owned())
        .map_err(|_| KeyError::Encode("signing key"))
}

/// The SubjectPublicKeyInfo PEM of a signing key's public half.
pub fn public_key_pem(key: &SigningKey) -> Result<String, KeyError> {
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|_| KeyError::Encode("public key"))
}

/// Writes private key material to `path`, created with mode 0600 (never readable by others,
/// not even for an instant), and fsyncs it. Refuses an existing file unless `replace`.
pub fn write_private(path: &Path, pem: &str, replace: bool) -> Result<(), KeyError> {
    let mut options = OpenOptions::new();
    options.write(true).mode(0o600);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(io_error(path))?;
    // An existing file keeps its mode when truncated: tighten it explicitly.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io_error(path))?;
    file.write_all(pem.as_bytes()).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Loads the gateway's signing key (PKCS#8 PEM, mode 0600).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let pem = read_private(path)?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|_| KeyError::Format {
        path: path.to_owned(),
    })
}

/// What `keygen` wrote.
#[derive(Debug)]
pub struct Generated {
    /// The key id the agent will put in every envelope.
    pub key_id: KeyId,
    /// The public key, hex.
    pub public_key_hex: String,
    /// Where the public key (SPKI PEM) was written, for enrollment.
    pub public_key_path: PathBuf,
}

/// Generates a signing key at `path` (mode 0600, never overwriting unless `force`) and its
/// public key next to it as `<path>.pub`.
pub fn generate(path: &Path, force: bool) -> Result<Generated, KeyError> {
    let key = random_signing_key()?;
    write_private(path, &signing_key_pem(&key)?, force)?;
    let mut public_key_path = path.as_os_str().to_owned();
    public_key_path.push(".pub");
    let public_key_path = PathBuf::from(public_key_path);
    std::fs::write(&public_key_path, public_key_pem(&key)?).map_err(io_error(&public_key_path))?;
    let verifying = key.verifying_key();
    Ok(Generated {
        key_id: key_id_for(&verifying),
        public_key_hex: hex::encode(verifying.as_bytes()),
        public_key_path,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generate_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let generated = generate(&path, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let key = load_signing_key(&path).unwrap();
        assert_eq!(key_id_for(&key.verifying_key()), generated.key_id);
        assert!(generated.public_key_path.exists());
        assert!(
            matches!(generate(&path, false), Err(KeyError::Io { .. })),
            "overwrote"
        );
    }

    #[test]
    fn refuses_readable_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        generate(&path, false).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = load_signing_key(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::Permissions { mode: 0o640, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        std::fs::write(&path, "not a key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            load_signing_key(&path),
            Err(KeyError::Format { .. })
        ));
    }
}
