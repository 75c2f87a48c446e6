//! Limits: reading count, string length, payload and envelope size, finite numbers; and the
//! error messages that name each problem.

use beffroi_protocol::{
    Batch, CommitAck, Error, GatewayId, Health, MetricName, Opened, Reading, SensorId, TenantId,
    Timestamp, Topic, Unit, Value, MAX_ENVELOPE_BYTES, MAX_PAYLOAD_BYTES, MAX_READINGS_PER_BATCH,
    MAX_STRING_VALUE_BYTES,
};

use crate::strategies::{signer, small_batch};

fn reading(value: Value) -> Reading {
    Reading {
        sensor: SensorId::new("s1").unwrap(),
        metric: MetricName::new("air.pm25").unwrap(),
        unit: Unit::new("ug/m3").unwrap(),
        time: Timestamp::from_unix_micros(0),
        value,
    }
}

fn batch_of(readings: Vec<Reading>) -> Result<Batch, Error> {
    Batch::new(
        TenantId::new("lyon").unwrap(),
        GatewayId::new("gw-1").unwrap(),
        7,
        readings,
    )
}

#[test]
fn reading_count_is_1_to_5000() {
    let err = batch_of(vec![]).unwrap_err();
    assert_eq!(
        err,
        Error::ReadingCount {
            count: 0,
            max: 5000
        }
    );
    assert_eq!(err.to_string(), "batch has 0 readings, 1..=5000 allowed");

    let full = batch_of(vec![reading(Value::Bool(true)); MAX_READINGS_PER_BATCH]).unwrap();
    let err = batch_of(vec![reading(Value::Bool(true)); MAX_READINGS_PER_BATCH + 1]).unwrap_err();
    assert_eq!(
        err,
        Error::ReadingCount {
            count: 5001,
            max: 5000
        }
    );
    assert!(err.to_string().contains("5001 readings"), "{err}");

    // The same limit on the decoding side: patch the count 5000 → 5001 and add one reading.
    let mut bytes = full.encode();
    let one = full.readings()[0].encoded_len();
    let head = bytes.len() - MAX_READINGS_PER_BATCH * one - 3;
    assert_eq!(bytes[head..head + 3], [0x99, 0x13, 0x88]);
    bytes[head + 2] = 0x89;
    bytes.extend_from_within(bytes.len() - one..);
    assert_eq!(
        Batch::decode(&bytes).unwrap_err(),
        Error::ReadingCount {
            count: 5001,
            max: 5000
        }
    );
}

#[test]
fn string_values_are_at_most_256_bytes() {
    let at_limit = "é".repeat(MAX_STRING_VALUE_BYTES / 2);
    let batch = batch_of(vec![reading(Value::Text(at_limit.clone()))]).unwrap();
    let over = format!("{at_limit}x");
    let err = batch_of(vec![reading(Value::Text(over.clone()))]).unwrap_err();
    assert_eq!(err, Error::StringValueTooLong { len: 257, max: 256 });
    assert_eq!(
        err.to_string(),
        "string value is 257 bytes, at most 256 allowed"
    );
    assert_eq!(Value::Text(over).validate().unwrap_err(), err);

    // Decoding: widen the value's length 256 → 257 and append one byte.
    let mut bytes = batch.encode();
    let head = bytes.len() - MAX_STRING_VALUE_BYTES - 3;
    assert_eq!(bytes[head..head + 3], [0x79, 0x01, 0x00]);
    bytes[head + 2] = 0x01;
    bytes.push(b'x');
    let err = Batch::decode(&bytes).unwrap_err().to_string();
    assert!(err.contains("string value is 257 bytes"), "{err}");
}

#[test]
fn oversized_payloads_are_rejected_before_decoding() {
    // Zero bytes would be a decode error: TooLarge proves the size is checked first.
    let big = vec![0u8; MAX_PAYLOAD_BYTES + 1];
    let too_large = Error::TooLarge {
        what: "payload",
        len: MAX_PAYLOAD_BYTES + 1,
        max: MAX_PAYLOAD_BYTES,
    };
    assert_eq!(Batch::decode(&big).unwrap_err(), too_large);
    assert_eq!(Health::decode(&big).unwrap_err(), too_large);
    assert_eq!(CommitAck::decode(&big).unwrap_err(), too_large);
    assert_eq!(
        too_large.to_string(),
        "payload is 262145 bytes, at most 262144 allowed"
    );
    assert_eq!(too_large.label(), "too_large");
    assert!(matches!(
        Batch::decode(&big[..MAX_PAYLOAD_BYTES]),
        Err(Error::Decode { .. })
    ));

    let signer = signer(1);
    let topic = Topic::parse("beffroi/v1/lyon/gw-1/batch").unwrap();
    assert_eq!(signer.seal(&topic, big).unwrap_err(), too_large);

    let envelope = vec![0u8; MAX_ENVELOPE_BYTES + 1];
    let err = Opened::parse(&envelope).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                what: "envelope",
                ..
            }
        ),
        "{err}"
    );

    // A batch whose readings would encode past the limit cannot be built.
    let text = Value::Text("x".repeat(MAX_STRING_VALUE_BYTES));
    let err = batch_of(vec![reading(text); 1100]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                what: "payload",
                ..
            }
        ),
        "{err}"
    );
}

/// A payload just over the limit inside an envelope still under the envelope limit.
#[test]
fn oversized_payload_inside_envelope_is_rejected() {
    let signer = signer(1);
    let topic = Topic::parse("beffroi/v1/lyon/gw-1/batch").unwrap();
    let payload = vec![0u8; MAX_PAYLOAD_BYTES];
    let mut envelope = signer.seal(&topic, payload).unwrap();
    assert!(envelope.len() <= MAX_ENVELOPE_BYTES);
    // Grow the payload bstr by one byte: 0x5a <len u32>.
    let at = envelope
        .windows(5)
        .position(|w| w == [0x5a, 0x00, 0x04, 0x00, 0x00])
        .unwrap();
    envelope[at + 4] = 0x01;
    envelope.insert(at + 5, 0);
    let err = Opened::parse(&envelope).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                what: "payload",
                len: 262_145,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn non_finite_numbers_are_rejected() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -f64::NAN] {
        let err = batch_of(vec![reading(Value::Number(bad))]).unwrap_err();
        assert_eq!(err, Error::NonFiniteValue);
        assert_eq!(err.to_string(), "reading value must be finite");
    }
}

#[test]
fn error_messages_name_the_problem() {
    let mut bytes = small_batch("lyon", "gw-1", 1).encode();
    bytes[1] = 0x02;
    let err = Batch::decode(&bytes).unwrap_err();
    assert_eq!(err.to_string(), "unsupported wire version 2");
    let err = Batch::decode(&[0x85, 0x01]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed batch: declared 5 items, longer than the input at byte 1"
    );
    bytes[1] = 0x18;
    bytes.insert(2, 0x01);
    let err = Batch::decode(&bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed batch: non-shortest integer or length encoding at byte 1"
    );
    assert_eq!(err.label(), "malformed");
    let err = Health::decode(&small_batch("lyon", "gw-1", 1).encode()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed health: expected an array of 15, found 5 at byte 0"
    );
    let err = Opened::parse(b"not cbor").unwrap_err();
    assert!(err.to_string().starts_with("malformed COSE_Sign1"), "{err}");
    let err = SensorId::new("Bad Sensor").unwrap_err();
    assert!(
        err.to_string().contains("sensor id") && err.to_string().contains("\"Bad Sensor\""),
        "{err}"
    );
    let err = MetricName::new("air..pm25").unwrap_err();
    assert!(err.to_string().contains("empty segment"), "{err}");
    let err = Topic::parse("beffroi/v1/lyon/gw-1/nope").unwrap_err();
    assert!(err.to_string().contains("kind must be"), "{err}");
    assert_eq!(err.label(), "bad_topic");

    let s = signer(1);
    let (topic, envelope) = s.seal_batch(&small_batch("lyon", "gw-1", 1)).unwrap();
    let err = Opened::parse(&envelope)
        .unwrap()
        .verify_batch(&topic, &signer(2).verifying_key())
        .unwrap_err();
    assert_eq!(err.to_string(), "signature verification failed");
    assert_eq!(err.label(), "bad_signature");
    // Offsets point at the offending item: the time field of the first reading.
    let mut bytes = small_batch("lyon", "gw-1", 1).encode();
    let time_at = bytes.len() - 4;
    assert_eq!(bytes[time_at], 0x00);
    bytes[time_at] = 0xf6;
    let err = Batch::decode(&bytes).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("malformed batch: expected integer in i64 range at byte {time_at}")
    );
}
