//! Fuzzes the COSE_Sign1 envelope parser (`Opened::parse`), verification with a fixed test key
//! and decoding of the (unauthenticated) payload as a batch and as a health report.
//!
//! Properties: no panic; a decoded payload re-encodes to exactly its bytes; re-sealing what was
//! parsed gives an envelope that parses back to the same key id, signed time and payload and
//! verifies; and an envelope that verifies under the test key is the one byte string the
//! signer makes for that message (deterministic encoding, deterministic Ed25519).

#![no_main]

use std::sync::LazyLock;

use beffroi_protocol::{Batch, Health, Opened, Signer, SigningKey, Topic};
use libfuzzer_sys::fuzz_target;

/// TEST KEY, public in `crates/protocol/tests/vectors/batch-minimal.json`: seed 0, 1, …, 31.
static TEST_KEY: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::from_bytes(&std::array::from_fn(|i| i as u8)));
static BATCH_TOPIC: LazyLock<Topic> =
    LazyLock::new(|| Topic::parse("beffroi/v1/lyon/gw-1/batch").expect("a valid topic"));
static HEALTH_TOPIC: LazyLock<Topic> =
    LazyLock::new(|| Topic::parse("beffroi/v1/lyon/gw-1/health").expect("a valid topic"));

fuzz_target!(|data: &[u8]| {
    let Ok(opened) = Opened::parse(data) else {
        return;
    };
    let key = TEST_KEY.verifying_key();
    let verified = opened.verify(&BATCH_TOPIC, &key).is_ok();
    let _ = opened.verify_batch(&BATCH_TOPIC, &key);
    let _ = opened.verify_health(&HEALTH_TOPIC, &key);
    let payload = opened.payload_unverified();
    if let Ok(batch) = Batch::decode(payload) {
        assert_eq!(batch.encode(), payload, "batch re-encodes differently");
    }
    if let Ok(health) = Health::decode(payload) {
        assert_eq!(health.encode().expect("re-encodes"), payload);
    }

    let Some(signed_at) = opened.signed_at() else {
        return;
    };
    let signer = Signer::with_key_id(TEST_KEY.clone(), opened.key_id().clone());
    let resealed = signer
        .seal_at(&BATCH_TOPIC, payload.to_vec(), signed_at)
        .expect("a parsed payload and signed time seal again");
    let reopened = Opened::parse(&resealed).expect("a sealed envelope parses");
    assert_eq!(reopened.key_id(), opened.key_id());
    assert_eq!(reopened.signed_at(), Some(signed_at));
    assert_eq!(
        reopened
            .verify(&BATCH_TOPIC, &key)
            .expect("a sealed envelope verifies"),
        payload
    );
    if verified {
        assert_eq!(
            resealed, data,
            "a verified envelope is not the signer's encoding"
        );
    }
});
