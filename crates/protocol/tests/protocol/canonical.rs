//! Hand-written encodings: the canonical bytes of a minimal batch, and one non-canonical or
//! invalid variant per rule, each rejected with an error that names the problem.

use beffroi_protocol::{Batch, CommitAck, Error, Gap, GapReason, Health};

use crate::strategies::{small_batch, small_health};

/// The pieces of `[1, "lyon", "gw-1", 7, [["s1", "air.pm25", "ug/m3", 0, 1.0]]]`, in hex.
const PIECES: [(&str, &str); 12] = [
    ("outer", "85"),
    ("version", "01"),
    ("tenant", "646c796f6e"),
    ("gateway", "6467772d31"),
    ("seq", "07"),
    ("readings", "81"),
    ("reading", "85"),
    ("sensor", "627331"),
    ("metric", "686169722e706d3235"),
    ("unit", "6575672f6d33"),
    ("time", "00"),
    ("value", "f93c00"),
];

/// The minimal batch with the piece `name` replaced by `hex`.
fn with(name: &str, hex: &str) -> Vec<u8> {
    assert!(PIECES.iter().any(|(n, _)| *n == name), "no piece {name}");
    let text: String = PIECES
        .iter()
        .map(|(n, h)| if *n == name { hex } else { h })
        .collect();
    hex::decode(text).unwrap()
}

#[test]
fn minimal_batch_has_the_expected_bytes() {
    let canonical = with("outer", "85");
    assert_eq!(small_batch("lyon", "gw-1", 7).encode(), canonical);
    assert_eq!(
        Batch::decode(&canonical).unwrap(),
        small_batch("lyon", "gw-1", 7)
    );
}

#[test]
fn non_canonical_or_invalid_batches_are_rejected() {
    let cases: &[(&str, &str, &str)] = &[
        // (piece, replacement hex, text the error must contain)
        ("outer", "9f", "indefinite"),
        ("outer", "86", "array of 5"),
        ("outer", "9805", "non-shortest"),
        ("version", "1801", "non-shortest"),
        ("version", "02", "unsupported wire version 2"),
        ("tenant", "78046c796f6e", "non-shortest"),
        ("tenant", "7a000000046c796f6e", "non-shortest"),
        ("tenant", "7f646c796f6eff", "indefinite"),
        ("tenant", "446c796f6e", "expected text"),
        ("tenant", "644c796f6e", "invalid tenant id"),
        ("gateway", "60", "must not be empty"),
        ("seq", "1807", "non-shortest"),
        ("seq", "1b0000000000000007", "non-shortest"),
        ("seq", "26", "expected unsigned integer"),
        ("readings", "80", "0 readings"),
        ("readings", "9801", "non-shortest"),
        ("readings", "82", "needs 1 bytes"),
        ("reading", "84", "array of 5"),
        ("sensor", "62c328", "UTF-8"),
        ("metric", "684169722e706d3235", "invalid metric"),
        ("unit", "6575672f6d20", "unit"),
        ("time", "1800", "non-shortest"),
        ("time", "3800", "non-shortest"),
        ("time", "c100", "integer"),
        ("time", "3b8000000000000000", "i64 range"),
        ("time", "f93c00", "integer"),
        ("value", "fa3f800000", "shortest"),
        ("value", "fb3ff0000000000000", "shortest"),
        ("value", "fa47c35000ff", "trailing"),
        ("value", "f97e00", "finite"),
        ("value", "f97c00", "finite"),
        ("value", "f9fc00", "finite"),
        ("value", "fa7fc00000", "finite"),
        ("value", "fb7ff0000000000000", "finite"),
        ("value", "f6", "expected float, bool or text"),
        ("value", "f7", "expected float, bool or text"),
        ("value", "01", "expected float, bool or text"),
        ("value", "c1f93c00", "expected float, bool or text"),
        ("value", "f8f5", "expected float, bool or text"),
        ("value", "4161", "expected float, bool or text"),
        ("value", "7900016161", "non-shortest"),
        ("value", "f93c0000", "1 trailing bytes"),
    ];
    for (piece, hex, expected) in cases {
        let bytes = with(piece, hex);
        let err = match Batch::decode(&bytes) {
            Ok(batch) => panic!("{piece} = {hex} accepted as {batch:?}"),
            Err(err) => err.to_string(),
        };
        assert!(
            err.contains(expected),
            "{piece} = {hex}: {err:?} lacks {expected:?}"
        );
    }
}

/// Shortest float widths: values exact in half precision take 3 bytes, in single 5, else 9.
#[test]
fn floats_use_their_shortest_width() {
    let cases: &[(f64, &str)] = &[
        (0.0, "f90000"),
        (-0.0, "f98000"),
        (1.0, "f93c00"),
        (65504.0, "f97bff"),
        (5.960_464_477_539_063e-8, "f90001"), // smallest half subnormal
        (65520.0, "fa477ff000"),              // rounds to infinity in half
        (100_000.0, "fa47c35000"),
        (f64::from(f32::from_bits(1)), "fa00000001"),
        (0.1, "fb3fb999999999999a"),
        (f64::from_bits(1), "fb0000000000000001"),
        (f64::MAX, "fb7fefffffffffffff"),
    ];
    for (value, hex) in cases {
        let bytes = with("value", hex);
        let batch = Batch::decode(&bytes).unwrap_or_else(|e| panic!("{value:e} ({hex}): {e}"));
        match &batch.readings()[0].value {
            beffroi_protocol::Value::Number(n) => assert_eq!(n.to_bits(), value.to_bits(), "{hex}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(batch.encode(), bytes, "{value:e}");
    }
}

#[test]
fn health_counters_must_be_in_deterministic_order() {
    let mut health = small_health("lyon", "gw-1");
    health.counters = [
        ("a".to_owned(), 1),
        ("b".to_owned(), 2),
        ("aa".to_owned(), 3),
    ]
    .into_iter()
    .collect();
    let bytes = health.encode().unwrap();
    let hex_bytes = hex::encode(&bytes);
    // Shorter keys first, then bytewise: a, b, aa.
    assert!(
        hex_bytes.ends_with("a3616101616202626161 03".replace(' ', "").as_str()),
        "{hex_bytes}"
    );
    for (from, to) in [
        ("a3616101616202626161 03", "a3616202616101626161 03"), // b before a
        ("a3616101616202626161 03", "a3626161 03616101616202"), // aa before a
        ("a3616101616202626161 03", "a3616101616102626161 03"), // duplicate a
    ] {
        let (from, to) = (from.replace(' ', ""), to.replace(' ', ""));
        let tampered = hex::decode(hex_bytes.replace(&from, &to)).unwrap();
        let err = Health::decode(&tampered).unwrap_err().to_string();
        assert!(err.contains("deterministic order"), "{to}: {err}");
    }
}

#[test]
fn health_rejects_unknown_gap_reason_and_too_many_gaps() {
    let health = small_health("lyon", "gw-1");
    let bytes = health.encode().unwrap();
    let tampered = hex::decode(
        hex::encode(&bytes).replace(&hex::encode("spool-full"), &hex::encode("spool-fulx")),
    )
    .unwrap();
    let err = Health::decode(&tampered).unwrap_err().to_string();
    assert!(
        err.contains("gap reason") && err.contains("spool-fulx"),
        "{err}"
    );

    let gap = Gap {
        first_seq: 1,
        last_seq: 1,
        batches: 1,
        readings: 1,
        reason: GapReason::CrashRestart,
    };
    let mut health = small_health("lyon", "gw-1");
    health.counters.clear();
    health.gaps = vec![gap; 64];
    let bytes = health.encode().unwrap();
    Health::decode(&bytes).unwrap();
    let gap_hex = "8501010101".to_owned() + &hex::encode([0x6d]) + &hex::encode("crash-restart");
    let hex_bytes = hex::encode(&bytes);
    assert!(hex_bytes.contains("9840") && hex_bytes.ends_with(&format!("{gap_hex}a0")));
    let patched = hex_bytes.replacen("9840", "9841", 1);
    let patched = format!("{}{gap_hex}a0", &patched[..patched.len() - 2]);
    let err = Health::decode(&hex::decode(patched).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("65 gaps"), "{err}");

    health.gaps = vec![gap; 65];
    let err = health.encode().unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                what: "gap list",
                len: 65,
                max: 64
            }
        ),
        "{err}"
    );
}

#[test]
fn acks_must_be_strictly_increasing_above_contiguous() {
    // [1, "lyon", "gw-1", 5, [...]]
    let head = "8501646c796f6e6467772d3105";
    let ack = CommitAck::decode(&hex::decode(format!("{head}820607")).unwrap()).unwrap();
    assert_eq!(ack.above, vec![6, 7]);
    for tail in ["820606", "820706", "820506", "8104"] {
        let bytes = hex::decode(format!("{head}{tail}")).unwrap();
        let err = CommitAck::decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("strictly increasing"), "{tail}: {err}");
    }
    let err = CommitAck::decode(&hex::decode(format!("{head}82180607")).unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("malformed ack") && err.to_string().contains("non-shortest"),
        "{err}"
    );
}
