//! A gateway's Ed25519 signing public key and its proof of possession: an Ed25519 signature
//! by that key over `beffroi-signing-key-proof:v1:` followed by the lowercase hex SHA-256 of
//! the CSR's DER (so a proof cannot be replayed with another request).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use beffroi_protocol::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use ed25519_dalek::Signature;
use sha2::{Digest as _, Sha256};

use super::error::Refusal;

/// What the proof signs before the hex SHA-256 of the CSR.
pub const PROOF_CONTEXT: &str = "beffroi-signing-key-proof:v1:";

/// The message a proof signs for a CSR (DER).
pub fn proof_message(csr_der: &[u8]) -> Vec<u8> {
    let mut message = PROOF_CONTEXT.as_bytes().to_vec();
    message.extend_from_slice(hex::encode(Sha256::digest(csr_der)).as_bytes());
    message
}

/// Parses `signing_key` (Ed25519 SubjectPublicKeyInfo PEM) and checks `proof` (unpadded
/// base64url signature) over the CSR; 400 `bad_request` on any defect.
pub fn verify(signing_key: &str, proof: &str, csr_der: &[u8]) -> Result<VerifyingKey, Refusal> {
    let key = VerifyingKey::from_public_key_pem(signing_key).map_err(|e| {
        Refusal::bad_request(format!("signing_key: not an Ed25519 public key PEM: {e}"))
    })?;
    let signature = URL_SAFE_NO_PAD
        .decode(proof)
        .ok()
        .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
        .map(|bytes| Signature::from_bytes(&bytes))
        .ok_or_else(|| {
            Refusal::bad_request("proof: expected 64 bytes of Ed25519 signature in base64url")
        })?;
    key.verify_strict(&proof_message(csr_der), &signature)
        .map_err(|_| {
            Refusal::bad_request(
                "proof: the signature does not verify with signing_key over this CSR",
            )
        })?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use beffroi_protocol::SigningKey;
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey as _};
    use ed25519_dalek::Signer as _;

    fn proof(key: &SigningKey, csr_der: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(key.sign(&proof_message(csr_der)).to_bytes())
    }

    #[test]
    fn a_proof_binds_the_key_to_the_csr() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let csr = b"the csr";
        assert_eq!(
            verify(&pem, &proof(&key, csr), csr).unwrap(),
            key.verifying_key()
        );
        // Another CSR, another key, garbage.
        assert!(verify(&pem, &proof(&key, b"another csr"), csr).is_err());
        let other = SigningKey::from_bytes(&[4; 32]);
        assert!(verify(&pem, &proof(&other, csr), csr).is_err());
        assert!(verify(&pem, "not base64!", csr).is_err());
        assert!(verify("not a key", &proof(&key, csr), csr).is_err());
    }
}
