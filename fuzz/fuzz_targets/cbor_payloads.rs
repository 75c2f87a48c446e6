//! Fuzzes the CBOR payload decoders (batch, health report, commit acknowledgement) on
//! arbitrary bytes.
//!
//! Besides "never panics", it checks determinism: whatever a decoder accepts must re-encode
//! to exactly the input, since signatures cover those bytes and one value must have one
//! encoding.

#![no_main]

use beffroi_protocol::{Batch, CommitAck, Health};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = Batch::decode(data) {
        assert_eq!(batch.encode(), data, "batch re-encodes differently");
        assert_eq!(
            batch.encoded_len(),
            data.len(),
            "batch encoded_len is wrong"
        );
    }
    if let Ok(health) = Health::decode(data) {
        let again = health.encode().expect("a decoded health report re-encodes");
        assert_eq!(again, data, "health re-encodes differently");
    }
    if let Ok(ack) = CommitAck::decode(data) {
        let again = ack.encode().expect("a decoded ack re-encodes");
        assert_eq!(again, data, "ack re-encodes differently");
    }
});
