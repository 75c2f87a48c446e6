//! JSON bodies of the enrollment API (`docs/gateway-identity.md`) and the signing-key proof.

use base64::Engine as _;
use beffroi_protocol::SigningKey;
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Route of the first enrollment (token, no client certificate).
pub const ENROLL_ROUTE: &str = "/enroll/v1/enroll";
/// Route of a renewal (client certificate).
pub const RENEW_ROUTE: &str = "/enroll/v1/renew";

/// Body of `POST /enroll/v1/enroll` and `POST /enroll/v1/renew` (the latter without
/// `tenant`/`gateway`, and with `signing_key`/`proof` only when rotating).
#[derive(Debug, Serialize)]
pub struct CertificateRequest {
    /// PKCS#10 CSR, PEM.
    pub csr: String,
    /// The Ed25519 signing key, SubjectPublicKeyInfo PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// [`proof`] of possession of that key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// The tenant the agent's config names, for the platform's mismatch check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The gateway the agent's config names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// This agent's version.
    pub agent_version: &'static str,
}

/// Where the gateway's MQTT gate listens.
#[derive(Debug, Clone, Deserialize)]
pub struct GateAddress {
    /// Host name (also the name in the gate's certificate).
    pub host: String,
    /// Port.
    pub port: u16,
}

/// The 200 answer of enrollment and renewal.
#[derive(Debug, Clone, Deserialize)]
pub struct CertificateAnswer {
    /// The tenant the certificate names.
    pub tenant: String,
    /// The gateway the certificate names.
    pub gateway: String,
    /// The key id of the gateway's current signing key.
    pub key_id: String,
    /// The certificate chain, PEM, leaf first.
    pub certificate_chain: String,
    /// Every CA the agent must trust, PEM.
    pub trust_anchors: String,
    /// When the platform advises renewing (RFC 3339); the agent computes its own from the
    /// certificate and `enrollment.renew_at`.
    pub renew_after: String,
    /// The MQTT gate.
    pub gate: GateAddress,
}

/// An error answer: `{"error": code, "message": text}`.
#[derive(Debug, Deserialize)]
pub struct ErrorAnswer {
    /// Stable code (`token_used`, `gateway_revoked`…).
    pub error: String,
    /// Human-readable explanation.
    #[serde(default)]
    pub message: String,
}

/// Proof of possession of the signing key: its Ed25519 signature over
/// `beffroi-signing-key-proof:v1:` and the lowercase hex SHA-256 of the CSR's DER,
/// base64url without padding.
pub fn proof(signing_key: &SigningKey, csr_der: &[u8]) -> String {
    let message = format!(
        "beffroi-signing-key-proof:v1:{}",
        hex::encode(Sha256::digest(csr_der))
    );
    let signature = signing_key.sign(message.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.to_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::Verifier as _;

    #[test]
    fn proof_signs_the_documented_message() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let csr = b"csr der bytes";
        let proof = proof(&key, csr);
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&proof)
            .unwrap();
        let signature = ed25519_dalek::Signature::from_slice(&bytes).unwrap();
        let message = format!(
            "beffroi-signing-key-proof:v1:{}",
            hex::encode(Sha256::digest(csr))
        );
        key.verifying_key()
            .verify(message.as_bytes(), &signature)
            .unwrap();
    }

    #[test]
    fn renewal_without_rotation_sends_only_the_csr() {
        let body = CertificateRequest {
            csr: "pem".into(),
            signing_key: None,
            proof: None,
            tenant: None,
            gateway: None,
            agent_version: "0.1.0",
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"csr":"pem","agent_version":"0.1.0"}"#
        );
    }
}
