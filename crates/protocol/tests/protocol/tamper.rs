//! Tampering: every flipped bit of an envelope, a wrong topic, a wrong key or a re-encoded
//! (malleated) envelope must fail to parse or to verify.

use beffroi_protocol::{
    Batch, Error, GatewayId, Opened, Signer, TenantId, Topic, TopicKind, VerifyingKey,
};
use proptest::prelude::*;

use crate::strategies::{self, key, signer, small_batch, small_health};

/// What happened to a tampered envelope. `Accepted` is always a failure of the test.
#[derive(Debug, PartialEq)]
enum Outcome {
    ParseRejected,
    VerifyRejected,
    Accepted,
}

fn check_batch(envelope: &[u8], topic: &Topic, key: &VerifyingKey) -> Outcome {
    match Opened::parse(envelope) {
        Err(_) => Outcome::ParseRejected,
        Ok(opened) => match (opened.verify(topic, key), opened.verify_batch(topic, key)) {
            (Err(_), Err(_)) => Outcome::VerifyRejected,
            _ => Outcome::Accepted,
        },
    }
}

fn check_health(envelope: &[u8], topic: &Topic, key: &VerifyingKey) -> Outcome {
    match Opened::parse(envelope) {
        Err(_) => Outcome::ParseRejected,
        Ok(opened) => match (opened.verify(topic, key), opened.verify_health(topic, key)) {
            (Err(_), Err(_)) => Outcome::VerifyRejected,
            _ => Outcome::Accepted,
        },
    }
}

/// Flips every bit of the envelope, one at a time.
fn flip_every_bit(envelope: &[u8], check: impl Fn(&[u8]) -> Outcome) -> (usize, usize) {
    let (mut parse, mut verify) = (0, 0);
    for index in 0..envelope.len() {
        for bit in 0..8 {
            let mut tampered = envelope.to_vec();
            tampered[index] ^= 1 << bit;
            match check(&tampered) {
                Outcome::ParseRejected => parse += 1,
                Outcome::VerifyRejected => verify += 1,
                Outcome::Accepted => panic!(
                    "flipping bit {bit} of byte {index} (0x{:02x}) of {} still verifies",
                    envelope[index],
                    hex::encode(envelope)
                ),
            }
        }
    }
    (parse, verify)
}

#[test]
fn every_bit_flip_of_a_batch_envelope_is_rejected() {
    let signer = signer(1);
    let (topic, envelope) = signer.seal_batch(&small_batch("lyon", "gw-1", 7)).unwrap();
    let key = signer.verifying_key();
    assert_eq!(
        check_batch(&envelope, &topic, &key),
        Outcome::Accepted,
        "untampered"
    );
    let (parse, verify) = flip_every_bit(&envelope, |e| check_batch(e, &topic, &key));
    assert_eq!(parse + verify, envelope.len() * 8);
}

#[test]
fn every_bit_flip_of_a_health_envelope_is_rejected() {
    let signer = signer(2);
    let (topic, envelope) = signer.seal_health(&small_health("lyon", "gw-1")).unwrap();
    let key = signer.verifying_key();
    assert_eq!(
        check_health(&envelope, &topic, &key),
        Outcome::Accepted,
        "untampered"
    );
    flip_every_bit(&envelope, |e| check_health(e, &topic, &key));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sampled_bit_flips_are_rejected(
        batch in strategies::batch(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 16),
    ) {
        let signer = signer(3);
        let (topic, envelope) = signer.seal_batch(&batch).unwrap();
        let key = signer.verifying_key();
        for (index, bit) in flips {
            let mut tampered = envelope.clone();
            let at = index.index(tampered.len());
            tampered[at] ^= 1 << bit;
            prop_assert_ne!(check_batch(&tampered, &topic, &key), Outcome::Accepted, "byte {} bit {}", at, bit);
        }
    }

    #[test]
    fn replaced_bytes_are_rejected(
        batch in strategies::batch(),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let signer = signer(3);
        let (topic, envelope) = signer.seal_batch(&batch).unwrap();
        let at = index.index(envelope.len());
        prop_assume!(envelope[at] != byte);
        let mut tampered = envelope.clone();
        tampered[at] = byte;
        prop_assert_ne!(check_batch(&tampered, &topic, &signer.verifying_key()), Outcome::Accepted);
    }

    #[test]
    fn truncated_or_extended_envelopes_are_rejected(
        batch in strategies::batch(),
        cut in any::<prop::sample::Index>(),
        extra in proptest::collection::vec(any::<u8>(), 1..8),
    ) {
        let signer = signer(3);
        let (topic, envelope) = signer.seal_batch(&batch).unwrap();
        let key = signer.verifying_key();
        let short = &envelope[..cut.index(envelope.len())];
        prop_assert_ne!(check_batch(short, &topic, &key), Outcome::Accepted);
        let mut long = envelope.clone();
        long.extend_from_slice(&extra);
        prop_assert_ne!(check_batch(&long, &topic, &key), Outcome::Accepted);
    }
}

/// Topics the lyon/gw-1 batch must not verify on.
fn wrong_topics() -> Vec<Topic> {
    let t = |text: &str| Topic::parse(text).unwrap();
    vec![
        t("beffroi/v1/paris/gw-1/batch"),
        t("beffroi/v1/lyon/gw-2/batch"),
        t("beffroi/v1/lyon/gw-1/health"),
        t("beffroi/v1/lyon/gw-1/ack"),
        t("beffroi/v1/lyon/gw-1/cmd/batch"),
        // Same tenant+gateway text split differently must not collide either.
        t("beffroi/v1/lyon-gw/1/batch"),
    ]
}

#[test]
fn wrong_topic_fails() {
    let signer = signer(1);
    let (topic, envelope) = signer.seal_batch(&small_batch("lyon", "gw-1", 7)).unwrap();
    let key = signer.verifying_key();
    let opened = Opened::parse(&envelope).unwrap();
    opened.verify_batch(&topic, &key).unwrap();
    for wrong in wrong_topics() {
        assert_eq!(
            opened.verify(&wrong, &key),
            Err(Error::BadSignature),
            "{wrong}"
        );
        let err = opened.verify_batch(&wrong, &key).unwrap_err();
        if wrong.kind == TopicKind::Batch {
            assert_eq!(err, Error::BadSignature, "{wrong}");
        } else {
            assert!(matches!(err, Error::InvalidTopic { .. }), "{wrong}: {err}");
        }
    }
}

#[test]
fn health_on_batch_topic_fails() {
    let signer = signer(1);
    let (topic, envelope) = signer.seal_health(&small_health("lyon", "gw-1")).unwrap();
    let key = signer.verifying_key();
    let opened = Opened::parse(&envelope).unwrap();
    opened.verify_health(&topic, &key).unwrap();
    let batch_topic = Topic::batch(&topic.tenant, &topic.gateway);
    assert_eq!(opened.verify(&batch_topic, &key), Err(Error::BadSignature));
    assert!(opened.verify_batch(&batch_topic, &key).is_err());
}

/// A gateway signing, on its own topic, a batch that names another gateway: the signature
/// is valid but the origin check refuses it.
#[test]
fn batch_naming_another_gateway_fails() {
    let signer = signer(1);
    let own = Topic::batch(
        &TenantId::new("lyon").unwrap(),
        &GatewayId::new("gw-1").unwrap(),
    );
    let foreign: Batch = small_batch("lyon", "gw-2", 7);
    let envelope = signer.seal(&own, foreign.encode()).unwrap();
    let err = Opened::parse(&envelope)
        .unwrap()
        .verify_batch(&own, &signer.verifying_key())
        .unwrap_err();
    assert!(matches!(err, Error::TopicMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("lyon/gw-2") && err.to_string().contains("lyon/gw-1"),
        "{err}"
    );
}

#[test]
fn wrong_key_fails() {
    let right = signer(1);
    let (topic, envelope) = right.seal_batch(&small_batch("lyon", "gw-1", 7)).unwrap();
    let opened = Opened::parse(&envelope).unwrap();
    for seed in [0u8, 2, 255] {
        let other = key(seed).verifying_key();
        assert_eq!(
            opened.verify_batch(&topic, &other),
            Err(Error::BadSignature)
        );
    }
    // A key that claims another key's id is still checked against the key looked up.
    let impostor = Signer::with_key_id(key(2), right.key_id().clone());
    let (_, forged) = impostor
        .seal_batch(&small_batch("lyon", "gw-1", 7))
        .unwrap();
    let opened = Opened::parse(&forged).unwrap();
    assert_eq!(opened.key_id(), right.key_id());
    assert_eq!(
        opened.verify_batch(&topic, &right.verifying_key()),
        Err(Error::BadSignature)
    );
}

/// Splits a tagged COSE_Sign1 whose items all use 1-byte (`0x58`) bstr lengths.
fn split_small_envelope(envelope: &[u8]) -> (&[u8], &[u8], &[u8]) {
    assert_eq!(&envelope[..3], [0xd2, 0x84, 0x58]);
    let plen = envelope[3] as usize;
    let protected = &envelope[4..4 + plen];
    let mut at = 4 + plen;
    assert_eq!(&envelope[at..at + 2], [0xa0, 0x58]);
    let len = envelope[at + 2] as usize;
    at += 3;
    let payload = &envelope[at..at + len];
    at += len;
    assert_eq!(&envelope[at..at + 2], [0x58, 0x40]);
    let signature = &envelope[at + 2..];
    assert_eq!(signature.len(), 64);
    (protected, payload, signature)
}

/// Re-encodings of the same signed content with different (valid but non-deterministic)
/// CBOR in the unsigned outer structure. The signature does not cover those bytes, so only
/// a canonical-encoding check in `Opened::parse` can refuse them.
#[test]
fn non_canonical_envelopes_are_rejected() {
    let signer = signer(1);
    let (topic, envelope) = signer.seal_batch(&small_batch("lyon", "gw-1", 7)).unwrap();
    let key = signer.verifying_key();
    let (protected, payload, signature) = split_small_envelope(&envelope);
    let bstr1 = |b: &[u8]| [&[0x58, b.len() as u8][..], b].concat();
    let bstr2 = |b: &[u8]| [&[0x59, 0, b.len() as u8][..], b].concat();
    let variants: Vec<(&str, Vec<u8>)> = vec![
        (
            "payload length in 2 bytes",
            [
                &[0xd2, 0x84][..],
                &bstr1(protected),
                &[0xa0],
                &bstr2(payload),
                &bstr1(signature),
            ]
            .concat(),
        ),
        (
            "protected length in 2 bytes",
            [
                &[0xd2, 0x84][..],
                &bstr2(protected),
                &[0xa0],
                &bstr1(payload),
                &bstr1(signature),
            ]
            .concat(),
        ),
        (
            "signature length in 2 bytes",
            [
                &[0xd2, 0x84][..],
                &bstr1(protected),
                &[0xa0],
                &bstr1(payload),
                &bstr2(signature),
            ]
            .concat(),
        ),
        (
            "tag in 2 bytes",
            [
                &[0xd8, 0x12, 0x84][..],
                &bstr1(protected),
                &[0xa0],
                &bstr1(payload),
                &bstr1(signature),
            ]
            .concat(),
        ),
        (
            "array length in 2 bytes",
            [
                &[0xd2, 0x98, 0x04][..],
                &bstr1(protected),
                &[0xa0],
                &bstr1(payload),
                &bstr1(signature),
            ]
            .concat(),
        ),
        (
            "indefinite array",
            [
                &[0xd2, 0x9f][..],
                &bstr1(protected),
                &[0xa0],
                &bstr1(payload),
                &bstr1(signature),
                &[0xff],
            ]
            .concat(),
        ),
        (
            "indefinite map",
            [
                &[0xd2, 0x84][..],
                &bstr1(protected),
                &[0xbf, 0xff],
                &bstr1(payload),
                &bstr1(signature),
            ]
            .concat(),
        ),
        (
            "chunked payload",
            [
                &[0xd2, 0x84][..],
                &bstr1(protected),
                &[0xa0, 0x5f],
                &bstr1(&payload[..4]),
                &bstr1(&payload[4..]),
                &[0xff],
                &bstr1(signature),
            ]
            .concat(),
        ),
        (
            "untagged",
            [
                &[0x84][..],
                &bstr1(protected),
                &[0xa0],
                &bstr1(payload),
                &bstr1(signature),
            ]
            .concat(),
        ),
    ];
    // Sanity: the splitter rebuilds the original bytes.
    assert_eq!(
        [
            &[0xd2, 0x84][..],
            &bstr1(protected),
            &[0xa0],
            &bstr1(payload),
            &bstr1(signature)
        ]
        .concat(),
        envelope
    );
    let accepted: Vec<&str> = variants
        .iter()
        .filter(|(_, bytes)| check_batch(bytes, &topic, &key) == Outcome::Accepted)
        .map(|(name, _)| *name)
        .collect();
    assert!(
        accepted.is_empty(),
        "malleable envelope encodings accepted: {accepted:?}"
    );
}
