//! A fresh TLS key and its PKCS#10 request, and the checks on the certificate that comes back.
//!
//! The TLS key is ECDSA P-256: rcgen generates it with ring, the gate's rustls
//! `WebPkiClientVerifier` (ring) accepts it in TLS 1.2 and 1.3, and it is the key type
//! gateway secure elements and TPMs offer. Agents provisioned by hand with Ed25519 TLS keys
//! keep working; their first renewal moves them to P-256.

use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// A CSR or certificate problem.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    /// rcgen could not generate the key or the request.
    #[error("cannot build the certificate request: {0}")]
    Build(#[from] rcgen::Error),
    /// The certificate is not usable PEM/X.509.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The certificate is for another key than the one the agent holds.
    #[error("the certificate's public key is not this gateway's TLS key")]
    KeyMismatch,
}

/// A new TLS key and the request for its certificate.
pub struct TlsRequest {
    /// The key pair (stays on the gateway).
    pub key: KeyPair,
    /// PKCS#10, PEM.
    pub csr_pem: String,
    /// PKCS#10, DER (what the signing-key proof covers).
    pub csr_der: Vec<u8>,
}

/// Generates a TLS key and a CSR for it; the subject is informative only (the platform names
/// the certificate after the token or the current certificate).
pub fn tls_request(common_name: &str) -> Result<TlsRequest, CsrError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let csr = params.serialize_request(&key)?;
    Ok(TlsRequest {
        csr_pem: csr.pem()?,
        csr_der: csr.der().to_vec(),
        key,
    })
}

/// Validity of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start.
    pub not_before: SystemTime,
    /// End.
    pub not_after: SystemTime,
}

impl Validity {
    /// The whole lifetime (zero if inverted).
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }

    /// The instant `fraction` of the lifetime after `not_before`.
    pub fn at_fraction(&self, fraction: f64) -> SystemTime {
        self.not_before + self.lifetime().mul_f64(fraction.clamp(0.0, 1.0))
    }

    /// Whether a certificate still in use at `now` should have been replaced: it is in the
    /// last sixth of its lifetime (or past it), while renewal is due at two thirds. The agent
    /// warns in its log and `beffroi-agent status` shows it.
    pub fn renewal_overdue(&self, now: SystemTime) -> bool {
        now >= self.at_fraction(5.0 / 6.0)
    }
}

/// The leaf (first) certificate of a PEM chain: its validity and raw public key.
pub struct Leaf {
    /// Its validity.
    pub validity: Validity,
    /// The subjectPublicKey bits.
    pub public_key: Vec<u8>,
}

/// Reads the first certificate of a PEM chain.
pub fn leaf(chain_pem: &[u8]) -> Result<Leaf, CsrError> {
    let pem = Pem::iter_from_buffer(chain_pem)
        .next()
        .ok_or_else(|| CsrError::Certificate("no PEM certificate".into()))?
        .map_err(|e| CsrError::Certificate(e.to_string()))?;
    if pem.label != "CERTIFICATE" {
        return Err(CsrError::Certificate(format!(
            "first PEM block is {:?}, not a CERTIFICATE",
            pem.label
        )));
    }
    let (_, cert) = X509Certificate::from_der(&pem.contents)
        .map_err(|e| CsrError::Certificate(e.to_string()))?;
    let time = |t: x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0))
    };
    Ok(Leaf {
        validity: Validity {
            not_before: time(cert.validity().not_before),
            not_after: time(cert.validity().not_after),
        },
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// Checks that the chain's leaf certifies `key`, and returns its validity.
pub fn check_leaf(chain_pem: &str, key: &KeyPair) -> Result<Validity, CsrError> {
    let leaf = leaf(chain_pem.as_bytes())?;
    if leaf.public_key != key.public_key_raw() {
        return Err(CsrError::KeyMismatch);
    }
    Ok(leaf.validity)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_certificate_for_the_request_key_is_accepted_another_is_not() {
        let request = tls_request("gw-1").unwrap();
        assert!(request
            .csr_pem
            .starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let params = CertificateParams::new(vec!["gw-1".into()]).unwrap();
        let cert = params.self_signed(&request.key).unwrap();
        let validity = check_leaf(&cert.pem(), &request.key).unwrap();
        assert!(validity.lifetime() > Duration::ZERO);
        let other = tls_request("gw-2").unwrap();
        assert!(matches!(
            check_leaf(&cert.pem(), &other.key),
            Err(CsrError::KeyMismatch)
        ));
        assert!(matches!(
            check_leaf(&request.csr_pem, &request.key),
            Err(CsrError::Certificate(_))
        ));
        assert!(matches!(
            check_leaf("", &request.key),
            Err(CsrError::Certificate(_))
        ));
    }

    #[test]
    fn fractions_of_the_lifetime() {
        let v = Validity {
            not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
            not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(400),
        };
        assert_eq!(v.lifetime(), Duration::from_secs(300));
        assert_eq!(
            v.at_fraction(2.0 / 3.0),
            SystemTime::UNIX_EPOCH + Duration::from_secs(300)
        );
    }
}
