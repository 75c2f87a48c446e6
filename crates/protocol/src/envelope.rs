//! The COSE_Sign1 (RFC 9052) envelope around every agent message.
//!
//! ```text
//! COSE_Sign1 (tag 18) = [ protected: bstr .cbor protected-header,
//!                         unprotected: {}, payload: bstr, signature: bstr (64) ]
//! protected-header = { 1 (alg): -8 (EdDSA), 4 (kid): bstr, ? 15 (CWT Claims): claims }
//! claims = { 6 (iat): uint }   ; signed time, seconds since the Unix epoch (RFC 9597)
//! Sig_structure = ["Signature1", protected, external_aad = topic bytes, payload]
//! ```
//! Binding the MQTT topic as `external_aad` makes a message replayed on another tenant's or
//! gateway's topic, or on another kind of topic, fail verification. The signed time
//! ([`Opened::signed_at`]) is when the agent sealed the message; ingest compares it with the
//! retirement of the key and the revocation of the gateway (docs/gateway-identity.md).
//! Envelopes of agents older than the signed time have no claims and are still accepted;
//! any other protected header (other labels, other claims, a negative or non-integer `iat`,
//! `crit`) is refused. Sizes are checked before any decoding. The envelope, its protected
//! header included, must be in deterministic encoding, so one signed message has exactly one
//! envelope byte string. Encoding and verification use `coset` and `ed25519-dalek`.

use coset::cbor::Value;
use coset::{
    iana, CborSerializable, CoseSign1, CoseSign1Builder, Header, HeaderBuilder, Label,
    TaggedCborSerializable,
};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::health::Health;
use crate::ids::KeyId;
use crate::time::Timestamp;
use crate::topic::{Topic, TopicKind};

/// Protected header label of the CWT claims (RFC 9597).
const CWT_CLAIMS: i64 = 15;
/// Claim key of `iat`, the issue time (RFC 8392).
const IAT: i64 = 6;
/// Largest `iat` a [`Timestamp`] holds (seconds).
const MAX_IAT: u64 = (i64::MAX / 1_000_000) as u64;

/// The protected header: `alg`, `kid` and, when given, the signed time (whole seconds).
fn protected_header(kid: Vec<u8>, iat: Option<u64>) -> Header {
    let header = HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(kid);
    match iat {
        Some(iat) => header.value(
            CWT_CLAIMS,
            Value::Map(vec![(Value::from(IAT), Value::from(iat))]),
        ),
        None => header,
    }
    .build()
}

/// The `iat` of a protected header's claims: `None` without claims; an error for anything but
/// exactly `{15: {6: uint}}` beside `alg` and `kid`.
fn signed_iat(header: &Header) -> Result<Option<u64>> {
    let refused =
        || Error::Cose("protected header may carry only alg, kid and {15: {6: iat}}".into());
    match header.rest.as_slice() {
        [] => Ok(None),
        [(Label::Int(CWT_CLAIMS), Value::Map(claims))] => match claims.as_slice() {
            [(Value::Integer(key), Value::Integer(iat))] if i128::from(*key) == i128::from(IAT) => {
                u64::try_from(i128::from(*iat))
                    .ok()
                    .filter(|iat| *iat <= MAX_IAT)
                    .map(Some)
                    .ok_or_else(refused)
            }
            _ => Err(refused()),
        },
        _ => Err(refused()),
    }
}

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

    /// Wraps `payload` in a tagged COSE_Sign1 bound to `topic`, signed now.
    pub fn seal(&self, topic: &Topic, payload: Vec<u8>) -> Result<Vec<u8>> {
        self.seal_at(topic, payload, Timestamp::now())
    }

    /// Wraps `payload` in a tagged COSE_Sign1 bound to `topic`, with `signed_at` (truncated
    /// to whole seconds) as its signed time. [`Error::Invalid`] for a time before the epoch.
    pub fn seal_at(
        &self,
        topic: &Topic,
        payload: Vec<u8>,
        signed_at: Timestamp,
    ) -> Result<Vec<u8>> {
        let iat =
            u64::try_from(signed_at.unix_micros() / 1_000_000).map_err(|_| Error::Invalid {
                what: "signed time",
                reason: format!("{signed_at} is before the Unix epoch"),
            })?;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::TooLarge {
                what: "payload",
                len: payload.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        let protected = protected_header(self.kid.as_str().as_bytes().to_vec(), Some(iat));
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
    signed_at: Option<Timestamp>,
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
        // Exactly `alg`, `kid` and optionally the signed time: any other protected label,
        // `crit` included, is something this implementation does not understand, and RFC 9052
        // §3.1 says to reject it.
        let iat = signed_iat(header)?;
        let expected = protected_header(header.key_id.clone(), iat);
        if *header != expected {
            return Err(Error::Cose(
                "protected header may carry only alg, kid and {15: {6: iat}}".into(),
            ));
        }
        // The protected bytes are signed as received: they too must be the one deterministic
        // encoding of the header (the comparison of the whole envelope below keeps them).
        let canonical_header = expected.to_vec().map_err(|e| Error::Cose(e.to_string()))?;
        if sign1.protected.original_data.as_deref() != Some(canonical_header.as_slice()) {
            return Err(Error::Cose(
                "protected header is not in deterministic CBOR encoding".into(),
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
            // `signed_iat` bounds it by `MAX_IAT`: the product fits an `i64`.
            signed_at: iat.map(|iat| Timestamp::from_unix_micros(iat as i64 * 1_000_000)),
            signature,
        })
    }

    /// The key id from the protected header (not yet authenticated).
    pub fn key_id(&self) -> &KeyId {
        &self.kid
    }

    /// When the agent signed the message (whole seconds), from the protected header; `None`
    /// for an envelope of an agent older than the signed time. Authenticated only once the
    /// signature is verified.
    pub fn signed_at(&self) -> Option<Timestamp> {
        self.signed_at
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

    fn claims(entries: Vec<(Value, Value)>) -> impl FnOnce(HeaderBuilder) -> HeaderBuilder {
        move |h| h.value(CWT_CLAIMS, Value::Map(entries))
    }

    fn iat(value: Value) -> impl FnOnce(HeaderBuilder) -> HeaderBuilder {
        claims(vec![(Value::from(IAT), value)])
    }

    fn signer() -> Signer {
        Signer::with_key_id(SigningKey::from_bytes(&[3; 32]), KeyId::new("k-1").unwrap())
    }

    #[test]
    fn only_alg_kid_and_the_signed_time_are_accepted_in_the_protected_header() {
        assert!(Opened::parse(&signed_with(|h| h)).is_ok());
        assert!(Opened::parse(&signed_with(iat(Value::from(1_795_400_833u64)))).is_ok());
        for envelope in [
            signed_with(|h| h.add_critical(iana::HeaderParameter::ContentType)),
            signed_with(|h| h.content_format(iana::CoapContentFormat::Cbor)),
            signed_with(|h| h.value(-70_000, Value::Bool(true))),
            // The signed time beside anything else, or malformed.
            signed_with(|h| iat(Value::from(1u64))(h).value(-70_000, Value::Bool(true))),
            signed_with(|h| {
                iat(Value::from(1u64))(h).add_critical(iana::HeaderParameter::ContentType)
            }),
            signed_with(iat(Value::from(-1i64))),
            signed_with(iat(Value::Float(1.5))),
            signed_with(iat(Value::Text("1795400833".into()))),
            signed_with(iat(Value::from(u64::MAX))),
            signed_with(claims(vec![])),
            signed_with(claims(vec![(Value::from(4), Value::from(1u64))])),
            signed_with(claims(vec![
                (Value::from(IAT), Value::from(1u64)),
                (Value::from(7), Value::from(2u64)),
            ])),
            signed_with(|h| h.value(CWT_CLAIMS, Value::from(1u64))),
        ] {
            let err = Opened::parse(&envelope).unwrap_err();
            assert!(
                err.to_string().contains("only alg, kid and {15: {6: iat}}"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_signed_time_round_trips_in_whole_seconds() {
        let at = Timestamp::from_unix_micros(1_795_400_833_750_000);
        let envelope = signer().seal_at(&topic(), b"p".to_vec(), at).unwrap();
        let opened = Opened::parse(&envelope).unwrap();
        assert_eq!(
            opened.signed_at(),
            Some(Timestamp::from_unix_micros(1_795_400_833_000_000))
        );
        assert_eq!(
            opened.verify(&topic(), &signer().verifying_key()).unwrap(),
            b"p"
        );
        // `seal` stamps the current time.
        let before = Timestamp::now().unix_micros() / 1_000_000 * 1_000_000;
        let opened = Opened::parse(&signer().seal(&topic(), b"p".to_vec()).unwrap()).unwrap();
        let signed_at = opened.signed_at().unwrap();
        assert!(
            signed_at >= Timestamp::from_unix_micros(before),
            "{signed_at}"
        );
        assert!(signed_at <= Timestamp::now());
        // No time before the epoch.
        let err = signer()
            .seal_at(
                &topic(),
                b"p".to_vec(),
                Timestamp::from_unix_micros(-1_000_000),
            )
            .unwrap_err();
        assert!(err.to_string().contains("before the Unix epoch"), "{err}");
    }

    #[test]
    fn an_envelope_without_signed_time_is_accepted_without_one() {
        let opened = Opened::parse(&signed_with(|h| h)).unwrap();
        assert_eq!(opened.signed_at(), None);
        let key = SigningKey::from_bytes(&[3; 32]).verifying_key();
        assert_eq!(opened.verify(&topic(), &key).unwrap(), b"payload");
    }

    #[test]
    fn changing_the_signed_time_breaks_the_signature() {
        let at = Timestamp::from_unix_micros(1_795_400_833_000_000);
        let envelope = signer().seal_at(&topic(), b"p".to_vec(), at).unwrap();
        // The iat is the protected header's last 4 bytes (1a xx xx xx xx): move it one second.
        let mut sign1 = CoseSign1::from_tagged_slice(&envelope).unwrap();
        let mut protected = sign1.protected.original_data.take().unwrap();
        let last = protected.len() - 1;
        protected[last] ^= 1;
        let tampered = coset::cbor::Value::Tag(
            18,
            Box::new(Value::Array(vec![
                Value::Bytes(protected),
                Value::Map(vec![]),
                Value::Bytes(b"p".to_vec()),
                Value::Bytes(sign1.signature.clone()),
            ])),
        );
        let mut bytes = Vec::new();
        coset::cbor::ser::into_writer(&tampered, &mut bytes).unwrap();
        let opened = Opened::parse(&bytes).unwrap();
        assert_eq!(
            opened.signed_at(),
            Some(Timestamp::from_unix_micros(1_795_400_832_000_000))
        );
        assert!(matches!(
            opened.verify(&topic(), &signer().verifying_key()),
            Err(Error::BadSignature)
        ));
    }

    #[test]
    fn a_non_deterministic_protected_header_is_refused() {
        // {1: -8, 4: 'k-1'} with the kid's length in a one-byte head (58 03) instead of 43.
        let protected = vec![0xa2, 0x01, 0x27, 0x04, 0x58, 0x03, b'k', b'-', b'1'];
        let key = SigningKey::from_bytes(&[3; 32]);
        let payload = b"payload".to_vec();
        let tbs = coset::cbor::Value::Array(vec![
            Value::Text("Signature1".into()),
            Value::Bytes(protected.clone()),
            Value::Bytes(topic().to_string().into_bytes()),
            Value::Bytes(payload.clone()),
        ]);
        let mut tbs_bytes = Vec::new();
        coset::cbor::ser::into_writer(&tbs, &mut tbs_bytes).unwrap();
        let envelope = Value::Tag(
            18,
            Box::new(Value::Array(vec![
                Value::Bytes(protected),
                Value::Map(vec![]),
                Value::Bytes(payload),
                Value::Bytes(key.sign(&tbs_bytes).to_bytes().to_vec()),
            ])),
        );
        let mut bytes = Vec::new();
        coset::cbor::ser::into_writer(&envelope, &mut bytes).unwrap();
        let err = Opened::parse(&bytes).unwrap_err();
        assert!(err.to_string().contains("deterministic"), "{err}");
    }
}
