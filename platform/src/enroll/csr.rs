//! PKCS#10 certificate signing requests: parsed, self-signature verified (the proof that the
//! gateway holds the TLS key), key type checked. The subject and requested extensions are
//! ignored: the certificate names what the token or the client certificate is bound to.

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateSigningRequestDer;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};
use x509_parser::prelude::FromDer as _;

use super::error::Refusal;

/// A CSR whose self-signature is valid, for an Ed25519 or ECDSA P-256 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCsr {
    /// The CSR, DER (what the signing-key proof covers).
    pub der: Vec<u8>,
    /// The TLS public key, SubjectPublicKeyInfo DER (what the certificate certifies).
    pub spki_der: Vec<u8>,
}

/// Parses and verifies a PEM CSR; 400 `bad_request` on any defect.
pub fn verify(pem: &str) -> Result<VerifiedCsr, Refusal> {
    let bad = |why: String| Refusal::bad_request(format!("csr: {why}"));
    let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| bad(format!("not a PEM CERTIFICATE REQUEST: {e}")))?;
    let (rest, csr) = X509CertificationRequest::from_der(der.as_ref())
        .map_err(|e| bad(format!("not a PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the request".to_owned()));
    }
    let spki = &csr.certification_request_info.subject_pki;
    let algorithm = &spki.algorithm;
    let supported = algorithm.algorithm == OID_SIG_ED25519
        || (algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
            && algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|curve| curve == OID_EC_P256));
    if !supported {
        return Err(bad("the key must be Ed25519 or ECDSA P-256".to_owned()));
    }
    csr.verify_signature()
        .map_err(|e| bad(format!("the self-signature does not verify: {e}")))?;
    Ok(VerifiedCsr {
        spki_der: spki.raw.to_vec(),
        der: der.as_ref().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, PublicKeyData as _};

    fn csr_pem(key: &KeyPair) -> String {
        CertificateParams::new(vec!["ignored.example".to_owned()])
            .unwrap()
            .serialize_request(key)
            .unwrap()
            .pem()
            .unwrap()
    }

    #[test]
    fn accepts_ed25519_and_p256() {
        for alg in [&rcgen::PKCS_ED25519, &rcgen::PKCS_ECDSA_P256_SHA256] {
            let key = KeyPair::generate_for(alg).unwrap();
            let verified = verify(&csr_pem(&key)).unwrap();
            assert_eq!(verified.spki_der, key.subject_public_key_info());
        }
    }

    #[test]
    fn refuses_a_bad_signature_other_keys_and_garbage() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let pem = csr_pem(&key);
        let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).unwrap();
        // Flip a bit in the signature (the last byte of the request).
        let mut tampered = der.as_ref().to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let refused = verify(&pem_of(&tampered)).unwrap_err();
        assert!(refused.message.contains("self-signature"), "{refused}");

        let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let refused = verify(&csr_pem(&p384)).unwrap_err();
        assert!(
            refused.message.contains("Ed25519 or ECDSA P-256"),
            "{refused}"
        );

        for garbage in [
            "",
            "not a csr",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        ] {
            assert!(verify(garbage).is_err(), "{garbage:?}");
        }
    }

    fn pem_of(der: &[u8]) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            lines.join("\n")
        )
    }
}
