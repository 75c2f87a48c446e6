//! The two halves of an enrollment token as the endpoint sees them: the pin it is known by
//! (SHA-256 of its certificate's DER, carried in every token) and the secret a gateway
//! presents (`Authorization: Bearer <secret>`), of which only the hash is looked up. The
//! token format itself is [`beffroi_api::enrollment`].

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use beffroi_gate::Fingerprint;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

use super::error::{Code, Refusal};
use crate::pki::PkiError;

/// The pin of the endpoint's certificate (the first of a PEM chain): SHA-256 of its DER,
/// lowercase hex.
pub fn pin_of(cert_pem: &str) -> Result<String, PkiError> {
    let der =
        CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| PkiError::Invalid {
            what: "gate certificate",
            reason: e.to_string(),
        })?;
    Ok(Fingerprint::of_der(&der).as_str().to_owned())
}

/// The stored hash of the bearer secret; 401 `token_unknown` without a well-formed one (no
/// such token can exist).
pub fn presented_hash(headers: &HeaderMap) -> Result<String, Refusal> {
    let unknown = || Refusal::new(Code::TokenUnknown, "no valid enrollment token presented");
    let secret = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unknown)?;
    beffroi_api::enrollment::secret_hash(secret.trim()).ok_or_else(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_secrets_and_pins() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            presented_hash(&headers).unwrap_err().code,
            Code::TokenUnknown
        );
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer short"));
        assert_eq!(
            presented_hash(&headers).unwrap_err().code,
            Code::TokenUnknown
        );
        let secret = "A".repeat(43);
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {secret}")).unwrap(),
        );
        assert_eq!(presented_hash(&headers).unwrap().len(), 64);
        assert!(pin_of("not a certificate").is_err());
    }
}
