//! The COSE_Sign1 (RFC 9052) envelope around every agent message.
//!
//! ```text
//! COSE_Sign1 (tag 18) = [ protected: bstr .cbor { 1 (alg): -8 (EdDSA), 4 (kid): bstr },
//!                         unprotected: {}, payload: bstr, signature: bstr (64) ]
//! Sig_structure = ["Signature1", protected, external_aad = topic bytes, payload]
//! ```
//! Binding the MQTT topic as `external_aad` makes a message replayed on another tenant's or
//! gateway's topic, or on another kind of topic, fail verification. Sizes are checked before
//! any decoding. The envelope itself must be in deterministic encoding, so one signed message
//! has exactly one envelope byte string. Encoding and verification use `coset` and `ed25519-dalek`.

use coset::{iana, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::health::Health;
use crate::ids::KeyId;
use crate::topic::{Topic, TopicKind};

/// Largest payload (encoded batch or health) accepted: 256 KiB.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Largest envelope accepted: the payload plus room for headers and signature.
pub const MAX_ENVELOPE_BYTES: usize = MAX_PAYLOAD_BYTES + 1024;

/// Fails with [`Error::TooLarge`] when a payload exceeds [`MAX_PAYLOAD_BYTES`]; every decoder
/// calls it before reading a byte.
pub(crate) fn check_payload_size(payload: &[u8]) -> Result<()> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Error::TooLarge {
            what: "payload",
            len: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

/// The key id derived from a public key: `ed25519-` and the first 8 bytes of its SHA-256, hex.
pub fn key_id_for(key: &VerifyingKey) -> KeyId {
    let digest = Sha256::digest(key.as_bytes());
    KeyId::new(format!("ed25519-{}", hex::encode(&digest[..8])))
        .expect("lowercase hex after a fixed prefix is a valid key id")
}

/// Signs messages for one gateway key.
pub struct Signer {
    key: SigningKey,
    kid: KeyId,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer whose key id is derived from the key ([`key_id_for`]).
    pub fn new(key: SigningKey) -> Self {
        let kid = key_id_for(&key.verifying_key());
        Self { key, kid }
    }

    /// A signer with an explicit key id.
    pub fn with_key_id(key: SigningKey, kid: KeyId) -> Self {
        Self { key, kid }
    }

    /// The key id put in the protected header.
    pub fn key_id(&self) -> &KeyId {
        &self.kid
    }

    /// The public half of the key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Wraps `payload` in a tagged COSE_Sign1 bound to `topic`.
    pub fn seal(&self, topic: &Topic, payload: Vec<u8>) -> Result<Vec<u8>> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::TooLarge {
                what: "payload",
                len: payload.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        let protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(self.kid.as_str().as_bytes().to_vec())
            .build();
        let aad = topic.to_string();
        CoseSign1Builder::new()
            .protected(protected)
            .payload(payload)
            .create_signature(aad.as_bytes(), |tbs| self.key.sign(tbs).to_bytes().to_vec())
            .build()
            .to_tagged_vec()
            .map_err(|e| Error::Cose(e.to_string()))
    }

    /// Encodes and seals a batch; returns its topic and the envelope.
    pub fn seal_batch(&self, batch: &Batch) -> Result<(Topic, Vec<u8>)> {
        let topic = Topic::batch(batch.tenant(), batch.gateway());
        let envelope = self.seal(&topic, batch.encode())?;
        Ok((topic, envelope))
    }

    /// Encodes and seals a health report; returns its topic and the envelope.
    pub fn seal_health(&self, health: &Health) -> Result<(Topic, Vec<u8>)> {
        let topic = Topic::health(&health.tenant, &health.gateway);
        let envelope = self.seal(&topic, health.encode()?)?;
        Ok((topic, envelope))
    }
}

/// A parsed but not yet verified envelope: read the key id, look the key up, then verify.
#[derive(Debug)]
pub struct Opened {
    sign1: CoseSign1,
    kid: KeyId,
    signature: Signature,
}

impl Opened {
    /// Parses a tagged COSE_Sign1, checking its size first, its algorithm and key id.
    pub fn parse(envelope: &[u8]) -> Result<Self> {
        if envelope.len() > MAX_ENVELOPE_BYTES {
            return Err(Error::TooLarge {
                what: "envelope",
                len: envelope.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        let sign1 =
            CoseSign1::from_tagged_slice(envelope).map_err(|e| Error::Cose(e.to_string()))?;
        let header = &sign1.protected.header;
        if header.alg != Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA)) {
            return Err(Error::UnsupportedAlgorithm);
        }
        if !sign1.unprotected.is_empty() {
            return Err(Error::Cose("unprotected header must be empty".into()));
        }
        let kid = std::str::from_utf8(&header.key_id)
            .ok()
            .and_then(|text| KeyId::new(text).ok())
            .ok_or(Error::MissingKeyId)?;
        // Exactly `alg` and `kid`: any other protected label, `crit` included, is something
        // this implementation does not understand, and RFC 9052 §3.1 says to reject it.
        let expected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(header.key_id.clone())
            .build();
        if *header != expected {
            return Err(Error::Cose(
                "protected header may carry only alg and kid".into(),
            ));
        }
        match &sign1.payload {
            None => return Err(Error::MissingPayload),
            Some(p) if p.len() > MAX_PAYLOAD_BYTES => {
                return Err(Error::TooLarge {
                    what: "payload",
                    len: p.len(),
                    max: MAX_PAYLOAD_BYTES,
                })
            }
            Some(_) => {}
        }
        let signature = Signature::from_slice(&sign1.signature).map_err(|_| Error::BadSignature)?;
        // The signature covers the protected header and payload, not the outer CBOR: without
        // this check the same signed message has many envelope encodings (longer length
        // heads, indefinite lengths, chunked strings). Re-encoding keeps the protected bytes
        // as received, so only the unsigned framing is compared.
        let canonical = sign1
            .clone()
            .to_tagged_vec()
            .map_err(|e| Error::Cose(e.to_string()))?;
        if canonical != envelope {
            return Err(Error::Cose(
                "envelope is not in deterministic CBOR encoding".into(),
            ));
        }
        Ok(Self {
            sign1,
            kid,
            signature,
        })
    }

    /// The key id from the protected header (not yet authenticated).
    pub fn key_id(&self) -> &KeyId {
        &self.kid
    }

    /// The bytes the signature covers (the COSE Sig_structure) for `topic`; with
    /// [`Opened::signature`], for batch verification of many envelopes at once.
    pub fn signed_bytes(&self, topic: &Topic) -> Vec<u8> {
        self.sign1.tbs_data(topic.to_string().as_bytes())
    }

    /// The Ed25519 signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The payload, unauthenticated: only for use after a successful batch verification.
    pub fn payload_unverified(&self) -> &[u8] {
        self.sign1.payload.as_deref().unwrap_or_default()
    }

    /// Verifies the signature over the payload, protected header and `topic`; returns the
    /// authenticated payload.
    pub fn verify(&self, topic: &Topic, key: &VerifyingKey) -> Result<&[u8]> {
        key.verify_strict(&self.signed_bytes(topic), &self.signature)
            .map_err(|_| Error::BadSignature)?;
        Ok(self.payload_unverified())
    }

    /// Verifies and decodes a batch published on `topic`, checking that the batch names the
    /// topic's tenant and gateway.
    pub fn verify_batch(&self, topic: &Topic, key: &VerifyingKey) -> Result<Batch> {
        expect_kind(topic, &TopicKind::Batch)?;
        let batch = Batch::decode(self.verify(topic, key)?)?;
        same_origin(topic, batch.tenant(), batch.gateway())?;
        Ok(batch)
    }

    /// Verifies and decodes a health report published on `topic`.
    pub fn verify_health(&self, topic: &Topic, key: &VerifyingKey) -> Result<Health> {
        expect_kind(topic, &TopicKind::Health)?;
        let health = Health::decode(self.verify(topic, key)?)?;
        same_origin(topic, &health.tenant, &health.gateway)?;
        Ok(health)
    }
}

fn expect_kind(topic: &Topic, kind: &TopicKind) -> Result<()> {
    if &topic.kind != kind {
        return Err(Error::InvalidTopic {
            topic: topic.to_string(),
            reason: format!("expected a {kind:?} topic"),
        });
    }
    Ok(())
}

fn same_origin(topic: &Topic, tenant: &crate::TenantId, gateway: &crate::GatewayId) -> Result<()> {
    if &topic.tenant != tenant || &topic.gateway != gateway {
        return Err(Error::TopicMismatch {
            message: format!("{tenant}/{gateway}"),
            topic: format!("{}/{}", topic.tenant, topic.gateway),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GatewayId, TenantId};

    fn topic() -> Topic {
        Topic::batch(
            &TenantId::new("lyon").unwrap(),
            &GatewayId::new("gw-1").unwrap(),
        )
    }

    /// A correctly signed envelope whose protected header carries one more label.
    fn signed_with(extra: impl FnOnce(HeaderBuilder) -> HeaderBuilder) -> Vec<u8> {
        let key = SigningKey::from_bytes(&[3; 32]);
        let protected = extra(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::EdDSA)
                .key_id(b"k-1".to_vec()),
        )
        .build();
        CoseSign1Builder::new()
            .protected(protected)
            .payload(b"payload".to_vec())
            .create_signature(topic().to_string().as_bytes(), |tbs| {
                key.sign(tbs).to_bytes().to_vec()
            })
            .build()
            .to_tagged_vec()
            .unwrap()
    }

    #[test]
    fn only_alg_and_kid_are_accepted_in_the_protected_header() {
        assert!(Opened::parse(&signed_with(|h| h)).is_ok());
        for envelope in [
            signed_with(|h| h.add_critical(iana::HeaderParameter::ContentType)),
            signed_with(|h| h.content_format(iana::CoapContentFormat::Cbor)),
            signed_with(|h| h.value(-70_000, coset::cbor::Value::Bool(true))),
        ] {
            let err = Opened::parse(&envelope).unwrap_err();
            assert!(err.to_string().contains("only alg and kid"), "{err}");
        }
    }
}
