//! A connected gateway's identity, read from its verified client certificate.

use std::fmt;

use beffroi_protocol::{parse_identity_uri, GatewayId, TenantId, Timestamp};
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Error, Result};

/// The SHA-256 of a certificate's DER encoding, as 64 lowercase hexadecimal digits: the key
/// under which certificates are revoked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(der)))
    }

    /// Parses 64 hexadecimal digits (either case; kept in lowercase).
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Fingerprint {
                value: text.chars().take(80).collect(),
            });
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    /// The fingerprint as lowercase hexadecimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Who is connected: always taken from the verified certificate, never from the client's
/// claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The tenant in the certificate's identity URI.
    pub tenant: TenantId,
    /// The gateway in the certificate's identity URI.
    pub gateway: GatewayId,
    /// The fingerprint of the leaf certificate.
    pub fingerprint: Fingerprint,
    /// When the leaf certificate expires: the gate closes the connection then.
    pub not_after: Timestamp,
}

impl Identity {
    /// Reads the identity from a verified leaf certificate (DER): exactly one URI subject
    /// alternative name of the form `urn:beffroi:gateway:{tenant}:{gateway}`, and its expiry.
    pub fn from_certificate(der: &[u8]) -> Result<Self> {
        let fail = |reason: String| Error::Identity { reason };
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| fail(format!("cannot parse the certificate: {e}")))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| fail(format!("bad subject alternative name extension: {e}")))?
            .ok_or_else(|| fail("no subject alternative name".to_owned()))?;
        let mut found = None;
        for name in &san.value.general_names {
            let GeneralName::URI(uri) = name else {
                continue;
            };
            if !uri.starts_with("urn:beffroi:") {
                continue;
            }
            let parsed = parse_identity_uri(uri).map_err(|e| fail(e.to_string()))?;
            if found.replace(parsed).is_some() {
                return Err(fail("more than one gateway identity URI".to_owned()));
            }
        }
        let (tenant, gateway) =
            found.ok_or_else(|| fail("no urn:beffroi:gateway: URI".to_owned()))?;
        let not_after = cert.validity().not_after.timestamp();
        Ok(Self {
            tenant,
            gateway,
            fingerprint: Fingerprint::of_der(der),
            not_after: Timestamp::from_unix_micros(not_after.saturating_mul(1_000_000)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_and_normalise() {
        let upper = "AB".repeat(32);
        assert_eq!(
            Fingerprint::parse(&upper).unwrap().as_str(),
            "ab".repeat(32)
        );
        assert!(Fingerprint::parse("abc").is_err());
        assert!(Fingerprint::parse(&"zz".repeat(32)).is_err());
        assert_eq!(Fingerprint::of_der(b"").as_str().len(), 64);
    }

    #[test]
    fn garbage_is_not_an_identity() {
        assert!(Identity::from_certificate(b"not a certificate").is_err());
    }
}
