//! Proptest strategies for every wire value, plus fixed keys and small fixtures.

use std::collections::BTreeMap;

use beffroi_protocol::{
    Batch, CommitAck, Gap, GapReason, GatewayId, Health, MetricName, Reading, SensorId, Signer,
    SigningKey, TenantId, Timestamp, Unit, Value, MAX_STRING_VALUE_BYTES,
};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;

/// A signing key from a fixed seed byte (Ed25519 signing is deterministic).
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A signer from a fixed seed byte.
pub fn signer(seed: u8) -> Signer {
    Signer::new(key(seed))
}

/// A slug id (`[a-z0-9][a-z0-9-]{0,62}`).
pub fn slug() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9][a-z0-9-]{0,12}",
        1 => "[a-z0-9][a-z0-9-]{62}",
    ]
}

pub fn tenant() -> impl Strategy<Value = TenantId> {
    slug().prop_map(|s| TenantId::new(s).unwrap())
}

pub fn gateway() -> impl Strategy<Value = GatewayId> {
    slug().prop_map(|s| GatewayId::new(s).unwrap())
}

pub fn sensor() -> impl Strategy<Value = SensorId> {
    slug().prop_map(|s| SensorId::new(s).unwrap())
}

pub fn metric() -> impl Strategy<Value = MetricName> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,10}(\\.[a-z][a-z0-9_]{0,10}){0,3}",
        Just("air.pm25".to_owned()),
        Just(format!("a{}", "b".repeat(63))),
    ]
    .prop_map(|s| MetricName::new(s).unwrap())
}

pub fn unit() -> impl Strategy<Value = Unit> {
    prop_oneof!["[!-~]{0,32}", Just(String::new()), Just("ug/m3".to_owned()),]
        .prop_map(|s| Unit::new(s).unwrap())
}

/// The value of a half-precision float given its bits, computed independently of `half`.
pub fn f16_bits_to_f64(bits: u16) -> Option<f64> {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let mantissa = f64::from(bits & 0x3ff);
    match exp {
        31 => None,
        0 => Some(sign * mantissa * 2f64.powi(-24)),
        _ => Some(sign * (1024.0 + mantissa) * 2f64.powi(exp - 25)),
    }
}

/// Finite floats, weighted towards edge values and values exact in half or single precision.
pub fn finite_f64() -> impl Strategy<Value = f64> {
    use proptest::num::{f32 as f32s, f64 as f64s};
    let edges = prop::sample::select(vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        1.5,
        65504.0,        // largest half
        65520.0,        // rounds to half infinity: must not be encoded as half
        2f64.powi(-24), // smallest half subnormal
        2f64.powi(-14), // smallest half normal
        f64::from(f32::MIN_POSITIVE),
        f64::from(f32::from_bits(1)), // smallest single subnormal
        f64::from(f32::MAX),
        f64::MIN_POSITIVE,
        f64::from_bits(1), // smallest double subnormal
        -f64::from_bits(1),
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        0.1,
        100_000.0,
        1.0e300,
    ]);
    prop_oneof![
        3 => edges,
        2 => any::<u16>().prop_filter_map("half inf/nan", f16_bits_to_f64),
        2 => (f32s::NORMAL | f32s::SUBNORMAL | f32s::ZERO | f32s::POSITIVE | f32s::NEGATIVE)
            .prop_map(f64::from),
        2 => f64s::NORMAL | f64s::SUBNORMAL | f64s::ZERO | f64s::POSITIVE | f64s::NEGATIVE,
        1 => (-1_000_000i32..1_000_000).prop_map(f64::from),
    ]
}

/// Text of at most `max_bytes` bytes, with multibyte UTF-8.
pub fn text(max_bytes: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => vec(any::<char>(), 0..=max_bytes / 4 + 8).prop_map(move |chars| {
            let mut s = String::new();
            for c in chars {
                if s.len() + c.len_utf8() > max_bytes {
                    break;
                }
                s.push(c);
            }
            s
        }),
        1 => Just("é".repeat(max_bytes / 2)),
        1 => Just("x".repeat(max_bytes)),
        1 => Just(String::new()),
    ]
}

pub fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => finite_f64().prop_map(Value::Number),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => text(MAX_STRING_VALUE_BYTES).prop_map(Value::Text),
    ]
}

pub fn time() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        any::<i64>(),
        // 1900..2100: the range that also survives the RFC 3339 JSON form.
        -2_208_988_800_000_000i64..4_102_444_800_000_000,
        Just(i64::MIN),
        Just(i64::MAX),
        Just(-1),
    ]
    .prop_map(Timestamp::from_unix_micros)
}

/// Times RFC 3339 can express (years 0000..=9999), for the JSON form.
pub fn json_time() -> impl Strategy<Value = Timestamp> {
    (-62_167_219_200_000_000i64..253_402_300_800_000_000).prop_map(Timestamp::from_unix_micros)
}

pub fn reading() -> impl Strategy<Value = Reading> {
    reading_at(time())
}

pub fn reading_at(time: impl Strategy<Value = Timestamp>) -> impl Strategy<Value = Reading> {
    (sensor(), metric(), unit(), time, value()).prop_map(|(sensor, metric, unit, time, value)| {
        Reading {
            sensor,
            metric,
            unit,
            time,
            value,
        }
    })
}

pub fn seq() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), 0u64..30, Just(u64::MAX)]
}

pub fn batch() -> impl Strategy<Value = Batch> {
    (tenant(), gateway(), seq(), vec(reading(), 1..=50))
        .prop_map(|(t, g, s, r)| Batch::new(t, g, s, r).unwrap())
}

/// Batches whose times the JSON (RFC 3339) form can express.
pub fn json_batch() -> impl Strategy<Value = Batch> {
    (
        tenant(),
        gateway(),
        seq(),
        vec(reading_at(json_time()), 1..=50),
    )
        .prop_map(|(t, g, s, r)| Batch::new(t, g, s, r).unwrap())
}

pub fn gap() -> impl Strategy<Value = Gap> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        prop_oneof![Just(GapReason::SpoolFull), Just(GapReason::CrashRestart)],
    )
        .prop_map(|(first_seq, last_seq, batches, readings, reason)| Gap {
            first_seq,
            last_seq,
            batches,
            readings,
            reason,
        })
}

fn counter_name() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z_.]{0,30}", 1 => text(64)]
}

pub fn health() -> impl Strategy<Value = Health> {
    (
        (tenant(), gateway(), time(), any::<u64>(), text(64)),
        (
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
        ),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        vec(gap(), 0..=8),
        btree_map(counter_name(), any::<u64>(), 0..=12),
    )
        .prop_map(
            |(
                (tenant, gateway, time, uptime_s, agent_version),
                (spool_batches, spool_bytes, oldest_unacked_age_s),
                (batches_dropped, readings_dropped, rss_bytes, next_seq),
                gaps,
                counters,
            )| Health {
                tenant,
                gateway,
                time,
                uptime_s,
                agent_version,
                spool_batches,
                spool_bytes,
                oldest_unacked_age_s,
                batches_dropped,
                readings_dropped,
                rss_bytes,
                next_seq,
                gaps,
                counters: counters.into_iter().collect::<BTreeMap<_, _>>(),
            },
        )
}

pub fn commit_ack() -> impl Strategy<Value = CommitAck> {
    (
        tenant(),
        gateway(),
        prop_oneof![any::<u64>(), 0u64..1000],
        btree_set(1u64..1_000_000, 0..=40),
        any::<bool>(),
    )
        .prop_map(|(tenant, gateway, contiguous, offsets, near_max)| {
            let base = if near_max {
                u64::MAX - 1_000_001
            } else {
                contiguous.min(u64::MAX - 1_000_001)
            };
            CommitAck {
                tenant,
                gateway,
                contiguous: base,
                above: offsets.into_iter().map(|o| base + o).collect(),
            }
        })
}

/// A one-reading batch for fixtures.
pub fn small_batch(tenant: &str, gateway: &str, seq: u64) -> Batch {
    Batch::new(
        TenantId::new(tenant).unwrap(),
        GatewayId::new(gateway).unwrap(),
        seq,
        vec![Reading {
            sensor: SensorId::new("s1").unwrap(),
            metric: MetricName::new("air.pm25").unwrap(),
            unit: Unit::new("ug/m3").unwrap(),
            time: Timestamp::from_unix_micros(0),
            value: Value::Number(1.0),
        }],
    )
    .unwrap()
}

/// A health report for fixtures.
pub fn small_health(tenant: &str, gateway: &str) -> Health {
    Health {
        tenant: TenantId::new(tenant).unwrap(),
        gateway: GatewayId::new(gateway).unwrap(),
        time: Timestamp::from_unix_micros(1_795_400_833_000_000),
        uptime_s: 3600,
        agent_version: "0.1.0".into(),
        spool_batches: 2,
        spool_bytes: 4096,
        oldest_unacked_age_s: Some(12),
        batches_dropped: 0,
        readings_dropped: 0,
        rss_bytes: 8 << 20,
        next_seq: 43,
        gaps: vec![Gap {
            first_seq: 10,
            last_seq: 12,
            batches: 3,
            readings: 300,
            reason: GapReason::SpoolFull,
        }],
        counters: [("mqtt.retries".to_owned(), 4), ("a".to_owned(), 1)]
            .into_iter()
            .collect(),
    }
}
