//! The platform's audit signing key: an Ed25519 key that signs the checkpoints of every
//! tenant's audit log (`beffroi_audit::sign_checkpoint`).
//!
//! Files in the PKI directory (`pki.dir`, default `<data_dir>/pki/`), next to the CA:
//! - `audit.key`: the current private key, PKCS#8 PEM, mode 0600. Created on first start (or by
//!   the first `beffroi audit` command that needs it); the platform refuses to use it when the
//!   group or others may read it. Never logged, never served.
//! - `audit-keys.pem`: every audit public key the platform has had, as SubjectPublicKeyInfo
//!   PEM blocks, the current one first, each preceded by a `# key_id …` line. Public: hand it
//!   to whoever verifies a log offline (`beffroi audit verify --keys audit-keys.pem`).
//!
//! [`PlatformAuditKey::rotate`] makes a new key current and keeps the old public key in
//! `audit-keys.pem`, so checkpoints signed before stay verifiable; the old private key is
//! overwritten. Running platforms keep signing with the key they loaded until restarted. The
//! nodes of one deployment share the key as they share the CA: both files are part of the
//! provisioned PKI directory `beffroi pki init` makes ([`PlatformAuditKey::load`] reads it
//! without writing).

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use beffroi_api::audit::AuditKeys;
use beffroi_protocol::{key_id_for, KeyId, SigningKey, VerifyingKey};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _};

use crate::pki::{exposed_mode, write_private};

/// The private key's file name in the PKI directory.
pub const KEY_FILE: &str = "audit.key";
/// The public keys' file name in the PKI directory.
pub const PUBLIC_KEYS_FILE: &str = "audit-keys.pem";

/// Why the audit key could not be loaded, created or rotated.
#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The private key file may be read by others than its owner.
    #[error(
        "{path} is readable by group or others (mode {mode:o}): run `chmod 600 {path}`; \
         the audit signing key must stay private"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file does not hold what it should (the reason never quotes the key).
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The system's random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditKeyError + '_ {
    move |source| AuditKeyError::Io {
        path: path.to_owned(),
        source,
    }
}

fn malformed(path: &Path, reason: impl Into<String>) -> AuditKeyError {
    AuditKeyError::Malformed {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// The platform's audit signing key and every public key it trusts.
pub struct PlatformAuditKey {
    signing: SigningKey,
    keys: AuditKeys,
}

impl std::fmt::Debug for PlatformAuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformAuditKey")
            .field("key_id", &self.keys.current_id())
            .finish_non_exhaustive()
    }
}

impl PlatformAuditKey {
    /// Loads the key from `dir` (the PKI directory), or creates it (and the directory) on
    /// first start. Fails if the private key is readable by group or others.
    pub fn load_or_create(dir: &Path) -> Result<Self, AuditKeyError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key_path = dir.join(KEY_FILE);
        let signing = if key_path.exists() {
            read_private(&key_path)?
        } else {
            let key = generate()?;
            write_private_key(&key_path, &key)?;
            tracing::info!(key_id = %key_id_for(&key.verifying_key()), "audit signing key created");
            key
        };
        let current = signing.verifying_key();
        let public_path = dir.join(PUBLIC_KEYS_FILE);
        let known = if public_path.exists() {
            read_public_keys(&public_path)?
        } else {
            Vec::new()
        };
        if known.first() != Some(&current) {
            // First start, or a key file put in place by hand: it becomes the first listed.
            write_public_keys(&public_path, current, &known)?;
        }
        Ok(Self {
            signing,
            keys: AuditKeys::new(current, known),
        })
    }

    /// Loads the key from `dir` without writing anything (a provisioned PKI directory,
    /// shared by several nodes): `audit.key` and `audit-keys.pem`, which must list that key
    /// first. Fails if the private key is readable by group or others.
    pub fn load(dir: &Path) -> Result<Self, AuditKeyError> {
        let signing = read_private(&dir.join(KEY_FILE))?;
        let current = signing.verifying_key();
        let public_path = dir.join(PUBLIC_KEYS_FILE);
        let known = read_public_keys(&public_path)?;
        if known.first() != Some(&current) {
            return Err(malformed(
                &public_path,
                format!(
                    "does not list the key of {} first: put the audit-keys.pem made with that \
                     key beside it",
                    dir.join(KEY_FILE).display()
                ),
            ));
        }
        Ok(Self {
            signing,
            keys: AuditKeys::new(current, known),
        })
    }

    /// Replaces the key in `dir` by a new one; the old public key stays in
    /// `audit-keys.pem`. Returns the new key.
    pub fn rotate(dir: &Path) -> Result<Self, AuditKeyError> {
        let old = Self::load_or_create(dir)?;
        let key = generate()?;
        let current = key.verifying_key();
        let retired = old.keys.all();
        // The public list first: a crash in between leaves a trusted key not yet used.
        write_public_keys(&dir.join(PUBLIC_KEYS_FILE), current, &retired)?;
        let key_path = dir.join(KEY_FILE);
        let fresh = dir.join(format!("{KEY_FILE}.new"));
        let _ = std::fs::remove_file(&fresh);
        write_private_key(&fresh, &key)?;
        std::fs::rename(&fresh, &key_path).map_err(io(&key_path))?;
        Ok(Self {
            signing: key,
            keys: AuditKeys::new(current, retired),
        })
    }

    /// Adds `keys` to the trusted public keys in `dir` as retired keys (never to sign with):
    /// those that signed the checkpoints of an imported audit log (`beffroi import`). Keys
    /// already trusted are not repeated. Returns the key with its new trusted set.
    pub fn trust(dir: &Path, keys: &[VerifyingKey]) -> Result<Self, AuditKeyError> {
        let loaded = Self::load_or_create(dir)?;
        let current = *loaded.keys.current();
        let mut retired = loaded.keys.retired().to_vec();
        for key in keys {
            if *key != current && !retired.contains(key) {
                retired.push(*key);
            }
        }
        write_public_keys(&dir.join(PUBLIC_KEYS_FILE), current, &retired)?;
        Ok(Self {
            signing: loaded.signing,
            keys: AuditKeys::new(current, retired),
        })
    }

    /// The key checkpoints are signed with.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The current public key and the retired ones.
    pub fn keys(&self) -> &AuditKeys {
        &self.keys
    }

    /// The current key's id.
    pub fn key_id(&self) -> KeyId {
        self.keys.current_id()
    }
}

/// A fresh key from the system's random number generator.
fn generate() -> Result<SigningKey, AuditKeyError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| AuditKeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn write_private_key(path: &Path, key: &SigningKey) -> Result<(), AuditKeyError> {
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| malformed(path, format!("cannot encode the key: {e}")))?;
    write_private(path, &pem).map_err(|e| malformed(path, e.to_string()))
}

/// Reads the private key, refusing a file others may read.
fn read_private(path: &Path) -> Result<SigningKey, AuditKeyError> {
    if let Some(mode) = exposed_mode(path).map_err(io(path))? {
        return Err(AuditKeyError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    let pem = std::fs::read_to_string(path).map_err(io(path))?;
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|_| malformed(path, "not an Ed25519 private key in PKCS#8 PEM"))
}

/// Every public key of a `audit-keys.pem` file (SubjectPublicKeyInfo PEM blocks; text
/// outside the blocks is ignored), in file order.
pub fn read_public_keys(path: &Path) -> Result<Vec<VerifyingKey>, AuditKeyError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let mut keys = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let end = block
            .find(END)
            .ok_or_else(|| malformed(path, "a PUBLIC KEY block has no end line"))?
            + END.len();
        let key = VerifyingKey::from_public_key_pem(&block[..end])
            .map_err(|e| malformed(path, format!("public key {}: {e}", keys.len() + 1)))?;
        keys.push(key);
        rest = &block[end..];
    }
    if keys.is_empty() {
        return Err(malformed(path, "no PUBLIC KEY block"));
    }
    Ok(keys)
}

/// The PEM text of `keys`, each preceded by its `# key_id` line.
pub fn public_keys_pem(keys: &[VerifyingKey]) -> Result<String, String> {
    let mut text = String::new();
    for key in keys {
        let pem = key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| format!("cannot encode a public key: {e}"))?;
        text.push_str(&format!("# key_id {}\n{pem}", key_id_for(key)));
    }
    Ok(text)
}

/// Writes `current` then `retired` (without repeating `current`), atomically.
fn write_public_keys(
    path: &Path,
    current: VerifyingKey,
    retired: &[VerifyingKey],
) -> Result<(), AuditKeyError> {
    let keys = AuditKeys::new(current, retired.iter().copied()).all();
    let text = public_keys_pem(&keys).map_err(|reason| malformed(path, reason))?;
    let fresh = path.with_extension("pem.new");
    std::fs::write(&fresh, text).map_err(io(&fresh))?;
    std::fs::set_permissions(&fresh, Permissions::from_mode(0o644)).map_err(io(&fresh))?;
    std::fs::rename(&fresh, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_reloaded_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let first = PlatformAuditKey::load_or_create(dir.path()).unwrap();
        let again = PlatformAuditKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.key_id(), again.key_id());
        assert_eq!(
            PlatformAuditKey::load(dir.path()).unwrap().keys(),
            first.keys()
        );
        assert!(again.keys().retired().is_empty());
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!format!("{first:?}").contains("signing"));

        let rotated = PlatformAuditKey::rotate(dir.path()).unwrap();
        assert_ne!(rotated.key_id(), first.key_id());
        assert_eq!(rotated.keys().retired(), &[*first.keys().current()]);
        let reloaded = PlatformAuditKey::load_or_create(dir.path()).unwrap();
        assert_eq!(reloaded.keys(), rotated.keys());
        let listed = read_public_keys(&dir.path().join(PUBLIC_KEYS_FILE)).unwrap();
        assert_eq!(listed, rotated.keys().all());
    }

    #[test]
    fn trusted_keys_are_added_once_as_retired() {
        let dir = tempfile::tempdir().unwrap();
        let own = PlatformAuditKey::load_or_create(dir.path()).unwrap();
        let other = SigningKey::from_bytes(&[3; 32]).verifying_key();
        let trusted =
            PlatformAuditKey::trust(dir.path(), &[other, other, *own.keys().current()]).unwrap();
        assert_eq!(
            trusted.key_id(),
            own.key_id(),
            "it still signs with its own key"
        );
        assert_eq!(trusted.keys().retired(), &[other]);
        let reloaded = PlatformAuditKey::load_or_create(dir.path()).unwrap();
        assert_eq!(reloaded.keys(), trusted.keys());
    }

    #[test]
    fn refuses_a_key_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        PlatformAuditKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
        let error = PlatformAuditKey::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(error, AuditKeyError::Exposed { mode: 0o640, .. }),
            "{error}"
        );
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.pem");
        std::fs::write(&path, "nothing here").unwrap();
        assert!(read_public_keys(&path)
            .unwrap_err()
            .to_string()
            .contains("no PUBLIC KEY"));
        std::fs::write(
            &path,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        assert!(read_public_keys(&path).is_err());
        let key_path = dir.path().join(KEY_FILE);
        write_private(&key_path, "garbage").unwrap();
        let error = PlatformAuditKey::load_or_create(dir.path()).unwrap_err();
        assert!(error.to_string().contains("PKCS#8"), "{error}");
        assert!(!error.to_string().contains("garbage"));
    }
}
