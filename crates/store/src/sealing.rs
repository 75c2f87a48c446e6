//! Envelope encryption of pseudonym keys at rest: the store never writes a pseudonym key in
//! clear, it seals it with the key-encryption key (KEK) it was opened with
//! ([`crate::OpenOptions::kek`]), so that a database dump or backup alone cannot re-identify a
//! pseudonym.
//!
//! A sealed row of `pseudonym_keys` (migration `0007_sealed_pseudonym_keys.sql`) holds:
//! - `kek_id`: the id of the KEK that sealed it ([`KeyEncryptionKey::id`]), so that a wrong
//!   KEK is told apart from altered bytes, and so that the KEK can be rotated later (re-seal
//!   every row whose `kek_id` is the old one);
//! - `nonce`: 24 random bytes, fresh for every seal (XChaCha20's extended nonce: random nonces
//!   never collide in practice, whatever the number of keys);
//! - `key`: the XChaCha20-Poly1305 ciphertext of the 32-byte key and its 16-byte tag (48
//!   bytes), with the row's identity (grantor, agreement, epoch; see [`KeyRow::associated_data`])
//!   as associated data: a sealed key copied onto another row does not open.
//!
//! A row with no `kek_id` holds its key in clear: written before the migration (or by a node
//! of an older version during a rolling upgrade). It is read as is, and sealed when a store
//! opens with a KEK (each backend's `pseudonym_keys` module).
//!
//! The KEK itself is never stored in the database: the platform keeps it in a file
//! (`docs/pseudonym-keys.md`).

use std::fmt;

use beffroi_policy::{Agreement, AgreementId};
use beffroi_protocol::TenantId;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::decode::{bytes32, corrupt};
use crate::{Error, Result};

/// Bytes of a nonce.
pub(crate) const NONCE_LEN: usize = 24;

/// What the error of a store without a KEK says.
const NO_KEK: &str = "pseudonym keys are sealed at rest: open the store with a key-encryption \
                      key (OpenOptions::kek; the platform's store.kek_file)";

/// A key-encryption key: 32 secret bytes that seal every pseudonym key of a database. Every
/// store (platform node) on one database must be opened with the same one.
///
/// Prints only its id; its bytes are wiped from memory when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyEncryptionKey {
    bytes: [u8; 32],
    id: String,
}

impl KeyEncryptionKey {
    /// The KEK of 32 secret random bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"beffroi key-encryption key id v1\0")
            .chain_update(bytes)
            .finalize();
        Self {
            bytes,
            id: hex::encode(&digest[..8]),
        }
    }

    /// A new KEK from the system's random number generator.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        random(&mut bytes)?;
        let kek = Self::from_bytes(bytes);
        bytes.zeroize();
        Ok(kek)
    }

    /// Its public id: 16 lowercase hex digits, the start of a SHA-256 of the key (it reveals
    /// nothing of the key). Stored beside every key it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret bytes, to write them to the KEK file. Never log them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.bytes
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(&self.bytes))
    }
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Drop for KeyEncryptionKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// The identity of a `pseudonym_keys` row: what a sealed key is bound to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRow<'a> {
    pub(crate) grantor: &'a TenantId,
    pub(crate) agreement: &'a AgreementId,
    pub(crate) epoch: u32,
}

impl<'a> KeyRow<'a> {
    /// The row of the first key (epoch 1) of `agreement`.
    pub(crate) fn first_of(agreement: &'a Agreement) -> Self {
        Self {
            grantor: &agreement.grantor,
            agreement: &agreement.id,
            epoch: 1,
        }
    }

    /// The associated data of its sealed key: a label, then grantor and agreement each after
    /// its length (big-endian u32), then the epoch (big-endian u32).
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = b"beffroi pseudonym key v1\0".to_vec();
        for part in [self.grantor.as_str(), self.agreement.as_str()] {
            // Ids are a few dozen bytes: the length always fits.
            aad.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad.extend_from_slice(&self.epoch.to_be_bytes());
        aad
    }

    /// `grantor/agreement`, as errors name an agreement.
    pub(crate) fn agreement_name(&self) -> String {
        format!("{}/{}", self.grantor, self.agreement)
    }
}

/// A key sealed for its row.
pub(crate) struct Sealed {
    /// The id of the KEK that sealed it.
    pub(crate) kek_id: String,
    /// Its random nonce.
    pub(crate) nonce: [u8; NONCE_LEN],
    /// Ciphertext and tag.
    pub(crate) ciphertext: Vec<u8>,
}

/// Seals `key` for `row` under `kek`; [`Error::Unsupported`] without a KEK.
pub(crate) fn seal(
    kek: Option<&KeyEncryptionKey>,
    row: &KeyRow<'_>,
    key: &[u8; 32],
) -> Result<Sealed> {
    let kek = kek.ok_or_else(|| Error::Unsupported(NO_KEK.into()))?;
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce)?;
    let aad = row.associated_data();
    let ciphertext = kek
        .cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: key,
                aad: &aad,
            },
        )
        // Only a message longer than the cipher's limit (256 GiB) fails to seal.
        .map_err(|_| Error::Invalid {
            what: "pseudonym key",
            reason: "cannot be sealed".into(),
        })?;
    Ok(Sealed {
        kek_id: kek.id.clone(),
        nonce,
        ciphertext,
    })
}

/// How a `pseudonym_keys` row holds its key.
pub(crate) enum StoredKey<'a> {
    /// In clear (no `kek_id`): written before keys were sealed.
    Clear(&'a [u8]),
    /// Sealed under the KEK `kek_id`.
    Sealed {
        kek_id: &'a str,
        nonce: &'a [u8],
        ciphertext: &'a [u8],
    },
}

/// The key of `row` as stored: opened under `kek` when sealed. [`Error::WrongKek`] if it was
/// sealed under another KEK, [`Error::Corrupt`] if it does not open under this one (altered,
/// or copied from another row).
pub(crate) fn open_key(
    kek: Option<&KeyEncryptionKey>,
    row: &KeyRow<'_>,
    stored: StoredKey<'_>,
) -> Result<[u8; 32]> {
    let (kek_id, nonce, ciphertext) = match stored {
        StoredKey::Clear(bytes) => return bytes32("pseudonym_keys", bytes),
        StoredKey::Sealed {
            kek_id,
            nonce,
            ciphertext,
        } => (kek_id, nonce, ciphertext),
    };
    let kek = kek.ok_or_else(|| Error::Unsupported(NO_KEK.into()))?;
    if kek_id != kek.id {
        return Err(wrong_kek(row, kek_id, kek));
    }
    let unreadable = || {
        corrupt(
            "pseudonym_keys",
            format!(
                "the key of agreement {} (epoch {}) does not open under key-encryption key {}: \
                 the row was altered or copied from another row",
                row.agreement_name(),
                row.epoch,
                kek.id
            ),
        )
    };
    if nonce.len() != NONCE_LEN {
        return Err(unreadable());
    }
    let aad = row.associated_data();
    let mut clear = kek
        .cipher()
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| unreadable())?;
    let key = bytes32("pseudonym_keys", &clear);
    clear.zeroize();
    key
}

/// [`Error::WrongKek`] for the key of `row`, sealed under `sealed_with`.
pub(crate) fn wrong_kek(row: &KeyRow<'_>, sealed_with: &str, kek: &KeyEncryptionKey) -> Error {
    Error::WrongKek {
        agreement: row.agreement_name(),
        epoch: row.epoch,
        sealed_with: sealed_with.to_owned(),
        opened_with: kek.id.clone(),
    }
}

/// Fills `bytes` from the system's random number generator.
fn random(bytes: &mut [u8]) -> Result<()> {
    getrandom::getrandom(bytes).map_err(|e| Error::Random(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (TenantId, AgreementId, AgreementId) {
        (
            TenantId::new("lyon").unwrap(),
            AgreementId::new("air").unwrap(),
            AgreementId::new("air-2").unwrap(),
        )
    }

    fn sealed(s: &Sealed) -> StoredKey<'_> {
        StoredKey::Sealed {
            kek_id: &s.kek_id,
            nonce: &s.nonce,
            ciphertext: &s.ciphertext,
        }
    }

    #[test]
    fn seals_and_opens_for_its_row_only() {
        let (lyon, air, other) = ids();
        let kek = KeyEncryptionKey::from_bytes([7; 32]);
        let row = KeyRow {
            grantor: &lyon,
            agreement: &air,
            epoch: 1,
        };
        let s = seal(Some(&kek), &row, &[42; 32]).unwrap();
        assert_eq!((s.ciphertext.len(), s.kek_id.as_str()), (48, kek.id()));
        assert!(!s.ciphertext.windows(32).any(|w| w == [42; 32]));
        assert_eq!(open_key(Some(&kek), &row, sealed(&s)).unwrap(), [42; 32]);
        let again = seal(Some(&kek), &row, &[42; 32]).unwrap();
        assert_ne!(again.nonce, s.nonce, "a fresh nonce per seal");

        for moved in [
            KeyRow { epoch: 2, ..row },
            KeyRow {
                agreement: &other,
                ..row
            },
        ] {
            let error = open_key(Some(&kek), &moved, sealed(&s)).unwrap_err();
            assert!(matches!(error, Error::Corrupt { .. }), "{error}");
            assert!(error.to_string().contains("lyon/air"), "{error}");
        }
        let mut altered = sealed(&s);
        let mut bytes = s.ciphertext.clone();
        bytes[0] ^= 1;
        if let StoredKey::Sealed { ciphertext, .. } = &mut altered {
            *ciphertext = &bytes;
        }
        assert!(open_key(Some(&kek), &row, altered).is_err());
    }

    #[test]
    fn a_wrong_or_missing_kek_is_a_clear_error() {
        let (lyon, air, _) = ids();
        let row = KeyRow {
            grantor: &lyon,
            agreement: &air,
            epoch: 3,
        };
        let kek = KeyEncryptionKey::from_bytes([7; 32]);
        let other = KeyEncryptionKey::from_bytes([8; 32]);
        assert_ne!(kek.id(), other.id());
        let s = seal(Some(&kek), &row, &[1; 32]).unwrap();
        let error = open_key(Some(&other), &row, sealed(&s)).unwrap_err();
        assert!(
            matches!(&error, Error::WrongKek { agreement, epoch: 3, .. } if agreement == "lyon/air"),
            "{error}"
        );
        assert!(error.to_string().contains(kek.id()), "{error}");
        assert!(matches!(
            open_key(None, &row, sealed(&s)),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            seal(None, &row, &[1; 32]),
            Err(Error::Unsupported(_))
        ));
        assert_eq!(
            open_key(None, &row, StoredKey::Clear(&[5; 32])).unwrap(),
            [5; 32]
        );
    }

    #[test]
    fn prints_only_its_id() {
        let kek = KeyEncryptionKey::from_bytes([9; 32]);
        assert_eq!(kek.id().len(), 16);
        assert_eq!(kek, KeyEncryptionKey::from_bytes([9; 32]));
        let printed = format!("{kek:?}");
        assert!(
            printed.contains(kek.id()) && !printed.contains("9, 9"),
            "{printed}"
        );
        assert_ne!(KeyEncryptionKey::generate().unwrap(), kek);
    }
}
