//! Decoders never panic on arbitrary input, and whatever they accept re-encodes to exactly
//! the bytes they were given (one value, one encoding).

use beffroi_protocol::{Batch, CommitAck, Health, Opened};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::strategies::{self, signer};

/// Runs every decoder on `bytes`; any accepted message must re-encode to `bytes`.
fn decode_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(batch) = Batch::decode(bytes) {
        prop_assert_eq!(batch.encode(), bytes);
        prop_assert_eq!(batch.encoded_len(), bytes.len());
    }
    if let Ok(health) = Health::decode(bytes) {
        prop_assert_eq!(health.encode().unwrap(), bytes);
    }
    if let Ok(ack) = CommitAck::decode(bytes) {
        prop_assert_eq!(ack.encode().unwrap(), bytes);
    }
    if let Ok(opened) = Opened::parse(bytes) {
        let key = signer(1).verifying_key();
        let topic = beffroi_protocol::Topic::parse("beffroi/v1/lyon/gw-1/batch").unwrap();
        let _ = opened.verify_batch(&topic, &key);
        let _ = Batch::decode(opened.payload_unverified());
        let _ = Health::decode(opened.payload_unverified());
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Remove),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        match m {
            Mutation::Set(i, b) => {
                let at = i.index(bytes.len());
                bytes[at] = *b;
            }
            Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
            Mutation::Remove(i) => {
                bytes.remove(i.index(bytes.len()));
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        decode_all(&bytes)?;
    }

    /// Arbitrary bytes behind a plausible prefix get further into the decoders.
    #[test]
    fn arbitrary_bytes_after_a_valid_prefix_never_panic(
        prefix in prop::sample::select(vec![
            &[0x85, 0x01][..],
            &[0x8f, 0x01][..],
            &[0xd2, 0x84][..],
            &[0x85, 0x01, 0x64, b'l', b'y', b'o', b'n', 0x64, b'g', b'w', b'-', b'1'][..],
        ]),
        tail in vec(any::<u8>(), 0..256),
    ) {
        decode_all(&[prefix, &tail[..]].concat())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_batches_never_panic(batch in strategies::batch(), ms in vec(mutation(), 1..4)) {
        decode_all(&mutate(batch.encode(), &ms))?;
    }

    #[test]
    fn mutated_health_never_panics(health in strategies::health(), ms in vec(mutation(), 1..4)) {
        decode_all(&mutate(health.encode().unwrap(), &ms))?;
    }

    #[test]
    fn mutated_acks_never_panic(ack in strategies::commit_ack(), ms in vec(mutation(), 1..4)) {
        decode_all(&mutate(ack.encode().unwrap(), &ms))?;
    }

    #[test]
    fn mutated_envelopes_never_panic(batch in strategies::batch(), ms in vec(mutation(), 1..4)) {
        let (_, envelope) = signer(1).seal_batch(&batch).unwrap();
        decode_all(&mutate(envelope, &ms))?;
    }
}
