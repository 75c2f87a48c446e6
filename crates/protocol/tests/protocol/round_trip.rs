//! Round trips: CBOR encode → decode is the identity and `encoded_len` is exact; sealing and
//! verifying returns the message; the JSON (serde) form round-trips.

use beffroi_protocol::{
    Batch, CommitAck, GatewayId, Health, MetricName, Opened, Reading, SensorId, TenantId,
    Timestamp, Unit, Value, MAX_READINGS_PER_BATCH,
};
use proptest::prelude::*;

use crate::strategies::{self, signer};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn batch_round_trips(batch in strategies::batch()) {
        let bytes = batch.encode();
        prop_assert_eq!(bytes.len(), batch.encoded_len());
        let header = Batch::header_len(batch.tenant(), batch.gateway(), batch.seq(), batch.readings().len());
        let readings: usize = batch.readings().iter().map(Reading::encoded_len).sum();
        prop_assert_eq!(header + readings, bytes.len());
        let decoded = Batch::decode(&bytes).unwrap();
        // PartialEq on f64 treats -0.0 == 0.0: compare the bit patterns as well.
        prop_assert_eq!(&decoded, &batch);
        prop_assert_eq!(decoded.encode(), bytes);
        for (a, b) in decoded.readings().iter().zip(batch.readings()) {
            if let (Value::Number(x), Value::Number(y)) = (&a.value, &b.value) {
                prop_assert_eq!(x.to_bits(), y.to_bits());
            }
        }
    }

    #[test]
    fn health_round_trips(health in strategies::health()) {
        let bytes = health.encode().unwrap();
        let decoded = Health::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &health);
        prop_assert_eq!(decoded.encode().unwrap(), bytes);
    }

    #[test]
    fn ack_round_trips(ack in strategies::commit_ack()) {
        let bytes = ack.encode().unwrap();
        let decoded = CommitAck::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &ack);
        prop_assert_eq!(decoded.encode().unwrap(), bytes);
        for &seq in &ack.above {
            prop_assert!(decoded.covers(seq));
        }
        prop_assert!(decoded.covers(ack.contiguous));
    }

    #[test]
    fn sealed_batch_verifies(batch in strategies::batch(), seed in 0u8..4) {
        let signer = signer(seed);
        let (topic, envelope) = signer.seal_batch(&batch).unwrap();
        prop_assert_eq!(topic.to_string(), format!("beffroi/v1/{}/{}/batch", batch.tenant(), batch.gateway()));
        let opened = Opened::parse(&envelope).unwrap();
        prop_assert_eq!(opened.key_id(), signer.key_id());
        prop_assert_eq!(opened.payload_unverified(), &batch.encode()[..]);
        let verified = opened.verify_batch(&topic, &signer.verifying_key()).unwrap();
        // Ed25519 is deterministic: sealing again at the same signed time gives the same bytes
        // (sealing "now" twice may straddle a second boundary).
        let signed_at = opened.signed_at().unwrap();
        prop_assert_eq!(signer.seal_at(&topic, verified.encode(), signed_at).unwrap(), envelope);
        prop_assert_eq!(verified, batch);
    }

    #[test]
    fn sealed_health_verifies(health in strategies::health()) {
        let signer = signer(9);
        let (topic, envelope) = signer.seal_health(&health).unwrap();
        let opened = Opened::parse(&envelope).unwrap();
        let verified = opened.verify_health(&topic, &signer.verifying_key()).unwrap();
        prop_assert_eq!(verified, health);
    }

    /// The JSON form used by test vectors and tooling, for times RFC 3339 can express.
    #[test]
    fn batch_json_round_trips(batch in strategies::json_batch()) {
        let json = serde_json::to_string(&batch).unwrap();
        let back: Batch = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back.encode(), batch.encode(), "{}", json);
    }

    #[test]
    fn health_json_round_trips(health in strategies::health().prop_filter("years 0000..=9999", |h| {
        (-62_167_219_200_000_000..253_402_300_800_000_000).contains(&h.time.unix_micros())
    })) {
        let json = serde_json::to_string(&health).unwrap();
        let back: Health = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, health);
    }
}

/// The largest batch by count: 5000 readings.
#[test]
fn batch_of_5000_readings_round_trips() {
    let readings: Vec<Reading> = (0..MAX_READINGS_PER_BATCH)
        .map(|i| Reading {
            sensor: SensorId::new(format!("sensor-{}", i % 97)).unwrap(),
            metric: MetricName::new(["air.pm25", "traffic.count", "parking.occupied"][i % 3])
                .unwrap(),
            unit: Unit::new(["ug/m3", "count", ""][i % 3]).unwrap(),
            time: Timestamp::from_unix_micros(1_795_400_833_000_000 + i as i64 * 1_000_000),
            value: match i % 3 {
                0 => Value::Number(i as f64 * 0.1),
                1 => Value::Number(i as f64),
                _ => Value::Bool(i % 2 == 0),
            },
        })
        .collect();
    let batch = Batch::new(
        TenantId::new("lyon").unwrap(),
        GatewayId::new("gw-01").unwrap(),
        u64::from(u32::MAX) + 1,
        readings,
    )
    .unwrap();
    let bytes = batch.encode();
    assert_eq!(bytes.len(), batch.encoded_len());
    assert_eq!(Batch::decode(&bytes).unwrap(), batch);
    let signer = signer(1);
    let (topic, envelope) = signer.seal_batch(&batch).unwrap();
    let verified = Opened::parse(&envelope)
        .unwrap()
        .verify_batch(&topic, &signer.verifying_key())
        .unwrap();
    assert_eq!(verified, batch);
}
