//! Fuzzes the COSE_Sign1 envelope parser, then verification with a fixed key and decoding of
//! the (unauthenticated) payload as a batch and as a health report.

#![no_main]

use beffroi_protocol::{Batch, Health, Opened, SigningKey, Topic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(opened) = Opened::parse(data) else {
        return;
    };
    // Seed 0..32 is the key of tests/vectors/batch-minimal.json.
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    let key = SigningKey::from_bytes(&seed).verifying_key();
    let batch_topic = Topic::parse("beffroi/v1/lyon/gw-1/batch").expect("valid topic");
    let health_topic = Topic::parse("beffroi/v1/lyon/gw-1/health").expect("valid topic");
    let _ = opened.key_id();
    let _ = opened.verify(&batch_topic, &key);
    let _ = opened.verify_batch(&batch_topic, &key);
    let _ = opened.verify_health(&health_topic, &key);
    let payload = opened.payload_unverified();
    if let Ok(batch) = Batch::decode(payload) {
        assert_eq!(batch.encode(), payload);
    }
    if let Ok(health) = Health::decode(payload) {
        assert_eq!(health.encode().expect("re-encodes"), payload);
    }
});
