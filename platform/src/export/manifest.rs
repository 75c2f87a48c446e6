//! The manifest of an export: what it holds (every file's size, SHA-256 and rows), whose
//! tenant, which audit head it covers, signed with the platform's audit key.
//!
//! Signature: Ed25519 (RFC 8032, verified strictly) over
//! `"beffroi/export/manifest/v1" 0x00 ‖ canonical(manifest without its "signature" member)`,
//! where `canonical` is the JSON canonical form of `beffroi_audit` (RFC 8785 ordering and
//! escaping). Import checks it against the JSON text as read, so any edited byte of a member
//! breaks it.

use beffroi_audit::{canonical_json, AuditHead};
use beffroi_protocol::{key_id_for, KeyId, SigningKey, Timestamp, VerifyingKey};
use beffroi_store::Tenant;
use ed25519_dalek::{Signature, Signer as _};
use serde::{Deserialize, Serialize};

use super::files::MANIFEST;
use super::hashing::FileDigest;
use super::ExportError;

/// The `format` member of every manifest.
pub const FORMAT: &str = "beffroi-tenant-export";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Domain separation of manifest signatures (followed by a zero byte).
const SIGNATURE_TAG: &str = "beffroi/export/manifest/v1\0";
/// The only signature algorithm.
const ALGORITHM: &str = "Ed25519";

/// One file of the export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Its name in the export directory.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// Its rows (see `docs/export.md` for what a row is in each file).
    pub rows: u64,
}

impl FileEntry {
    /// The entry of `path` with `digest` and `rows`.
    pub fn new(path: &str, digest: FileDigest, rows: u64) -> Self {
        Self {
            path: path.to_owned(),
            bytes: digest.bytes,
            sha256: digest.sha256_hex(),
            rows,
        }
    }
}

/// The manifest's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSignature {
    /// Always `Ed25519`.
    pub alg: String,
    /// The signing key's id (`key_id_for` its public key).
    pub key_id: KeyId,
    /// The signing public key, 32 bytes in lowercase hex.
    pub public_key: String,
    /// The signature, 64 bytes in lowercase hex.
    pub value: String,
}

/// The manifest (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// The tenant: id, name, creation time.
    pub tenant: Tenant,
    /// When the export was made (UTC).
    pub created_at: Timestamp,
    /// The version of the platform that made it.
    pub platform_version: String,
    /// The head of the tenant's audit log that `audit.jsonl` ends at.
    pub audit_head: AuditHead,
    /// The seq of the `export` entry that recorded this export in the source's audit log
    /// (after `audit_head`, so not in `audit.jsonl`).
    pub export_audit_seq: u64,
    /// Every file but the manifest.
    pub files: Vec<FileEntry>,
    /// The signature (absent only while signing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ManifestSignature>,
}

impl Manifest {
    /// The file entry named `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Signs the manifest with `key` and returns its JSON text (pretty, with a final newline).
    pub fn signed_text(mut self, key: &SigningKey) -> Result<String, ExportError> {
        self.signature = None;
        let unsigned =
            serde_json::to_value(&self).map_err(|e| ExportError::file(MANIFEST, e.to_string()))?;
        let message = format!("{SIGNATURE_TAG}{}", canonical_json(&unsigned));
        let public = key.verifying_key();
        self.signature = Some(ManifestSignature {
            alg: ALGORITHM.to_owned(),
            key_id: key_id_for(&public),
            public_key: hex::encode(public.as_bytes()),
            value: hex::encode(key.sign(message.as_bytes()).to_bytes()),
        });
        let mut text = serde_json::to_string_pretty(&self)
            .map_err(|e| ExportError::file(MANIFEST, e.to_string()))?;
        text.push('\n');
        Ok(text)
    }

    /// Parses `text`, checks its format and version, and verifies its signature against
    /// `trusted`. Returns the manifest and the key that signed it.
    pub fn verify(
        text: &str,
        trusted: &[VerifyingKey],
    ) -> Result<(Self, VerifyingKey), ExportError> {
        let mut value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ExportError::file(MANIFEST, format!("not JSON: {e}")))?;
        let signature = value
            .as_object_mut()
            .and_then(|members| members.remove("signature"))
            .ok_or_else(|| ExportError::Signature("no signature".into()))?;
        let signature: ManifestSignature = serde_json::from_value(signature)
            .map_err(|e| ExportError::Signature(format!("malformed signature: {e}")))?;
        if signature.alg != ALGORITHM {
            return Err(ExportError::Signature(format!(
                "algorithm {:?}: only {ALGORITHM} is accepted",
                signature.alg
            )));
        }
        let key = parse_public_key(&signature.public_key)?;
        if key_id_for(&key) != signature.key_id {
            return Err(ExportError::Signature(format!(
                "key id {} does not match the public key ({})",
                signature.key_id,
                key_id_for(&key)
            )));
        }
        if !trusted.contains(&key) {
            return Err(ExportError::Signature(format!(
                "signed by key {}, which this instance does not trust: pass the source \
                 platform's audit public keys with --trust-key (`beffroi audit public-key \
                 --all` on the source)",
                signature.key_id
            )));
        }
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(&signature.value, &mut bytes)
            .map_err(|e| ExportError::Signature(format!("signature value: {e}")))?;
        let message = format!("{SIGNATURE_TAG}{}", canonical_json(&value));
        key.verify_strict(message.as_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| {
                ExportError::Signature(format!(
                    "the signature does not verify with key {}: the manifest was altered",
                    signature.key_id
                ))
            })?;
        let mut manifest: Manifest = serde_json::from_value(value)
            .map_err(|e| ExportError::file(MANIFEST, format!("malformed: {e}")))?;
        if manifest.format != FORMAT || manifest.version != VERSION {
            return Err(ExportError::file(
                MANIFEST,
                format!(
                    "format {:?} version {}: this build reads {FORMAT:?} version {VERSION}",
                    manifest.format, manifest.version
                ),
            ));
        }
        manifest.signature = Some(signature);
        Ok((manifest, key))
    }
}

fn parse_public_key(text: &str) -> Result<VerifyingKey, ExportError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes)
        .map_err(|e| ExportError::Signature(format!("public key: {e}")))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| ExportError::Signature("public key: not an Ed25519 point".into()))
}

#[cfg(test)]
mod tests {
    use beffroi_audit::Digest;
    use beffroi_protocol::TenantId;

    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT.to_owned(),
            version: VERSION,
            tenant: Tenant {
                id: TenantId::new("lyon").unwrap(),
                name: "Métropole de Lyon".into(),
                created_at: Timestamp::from_unix_micros(1_700_000_000_000_000),
            },
            created_at: Timestamp::from_unix_micros(1_767_225_600_000_000),
            platform_version: "0.1.0".into(),
            audit_head: AuditHead {
                seq: 3,
                hash: Digest::new([7; 32]),
            },
            export_audit_seq: 4,
            files: vec![FileEntry {
                path: "sensors.json".into(),
                bytes: 10,
                sha256: "ab".repeat(32),
                rows: 2,
            }],
            signature: None,
        }
    }

    #[test]
    fn signed_verifies_and_any_change_breaks_it() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let text = manifest().signed_text(&key).unwrap();
        let (read, signer) = Manifest::verify(&text, &[key.verifying_key()]).unwrap();
        assert_eq!(signer, key.verifying_key());
        assert_eq!(read.file("sensors.json").unwrap().rows, 2);

        let error = Manifest::verify(&text, &[other.verifying_key()]).unwrap_err();
        assert!(error.to_string().contains("does not trust"), "{error}");

        let edited = text.replace("\"rows\": 2", "\"rows\": 3");
        assert_ne!(edited, text);
        let error = Manifest::verify(&edited, &[key.verifying_key()]).unwrap_err();
        assert!(error.to_string().contains("altered"), "{error}");

        let unsigned = serde_json::to_string(&manifest()).unwrap();
        let error = Manifest::verify(&unsigned, &[key.verifying_key()]).unwrap_err();
        assert!(error.to_string().contains("no signature"), "{error}");
    }
}
