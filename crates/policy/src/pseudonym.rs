//! Pseudonymous sensor ids: `p_` + lowercase base32 (RFC 4648 alphabet, no padding) of the
//! first 16 bytes of HMAC-SHA256 under a secret key per agreement, over a domain label, the
//! key epoch, the grantee and the sensor id.
//!
//! - stable for one key: the same grantee sees the same pseudonym for a sensor across
//!   queries, live views and exports, so series can be followed;
//! - different across grantees and agreements (different keys, and the grantee is in the
//!   message), so two grantees cannot join their data on sensor ids;
//! - changed by rotation (a new key with the next epoch): linkage ends at the rotation;
//! - keyed, not a plain hash: sensor ids are few and guessable, a hash would be reversed by
//!   hashing every candidate id.
//!
//! A pseudonym contains `_`, which no sensor id can, so the two are never confused.
//! [`PseudonymKey`] is never serialized and prints redacted: the integrator stores it apart
//! from the agreement (encrypted at rest) and generates it from the OS random source.

use std::fmt;

use beffroi_protocol::SensorId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::grantee::Grantee;

/// Domain separation: these MACs can never be confused with another use of the key.
const DOMAIN: &[u8] = b"beffroi/pseudonym/v1";

/// RFC 4648 base32 alphabet, lowercase.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The secret key of one agreement's pseudonyms, at one epoch.
#[derive(Clone)]
pub struct PseudonymKey {
    bytes: [u8; 32],
    epoch: u32,
}

impl PseudonymKey {
    /// A key from 32 secret random bytes, at `epoch` (start at 1, add 1 on each rotation).
    pub const fn new(bytes: [u8; 32], epoch: u32) -> Self {
        Self { bytes, epoch }
    }

    /// The rotation epoch.
    pub const fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The secret bytes, to store them (encrypted). Never log them.
    pub const fn expose_secret(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PseudonymKey")
            .field("epoch", &self.epoch)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pseudonym key, epoch {} (redacted)", self.epoch)
    }
}

/// The pseudonym of `sensor` for `grantee` under `key` (26 base32 characters after `p_`).
pub fn pseudonym(key: &PseudonymKey, grantee: &Grantee, sensor: &SensorId) -> String {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.bytes).expect("HMAC accepts any key length");
    mac.update(DOMAIN);
    mac.update(&key.epoch.to_be_bytes());
    // Grantee and sensor texts never contain NUL: the separator keeps the message unambiguous.
    mac.update(grantee.to_string().as_bytes());
    mac.update(&[0]);
    mac.update(sensor.as_str().as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(28);
    out.push_str("p_");
    base32(&digest[..16], &mut out);
    out
}

/// Appends RFC 4648 base32 of `bytes`, lowercase, without padding.
fn base32(bytes: &[u8], out: &mut String) {
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            let mut out = String::new();
            base32(input.as_bytes(), &mut out);
            assert_eq!(out, expected, "{input}");
        }
    }
}
