//! Published test vectors (`tests/vectors/*.json`): regenerated from fixed seeds and compared
//! with the committed files, so any change of the encoding fails here first.
//!
//! Bless new vectors with `BEFFROI_BLESS_VECTORS=1 cargo test -p beffroi-protocol --test
//! protocol vectors`, and say why in the commit: published vectors are a compatibility
//! promise.

use std::path::PathBuf;

use beffroi_protocol::{
    Batch, Gap, GapReason, GatewayId, Health, MetricName, Opened, Reading, SensorId, Signer,
    SigningKey, TenantId, Timestamp, Topic, Unit, Value,
};
use serde_json::json;

enum Message {
    Batch(Batch),
    Health(Health),
}

struct Vector {
    name: &'static str,
    description: &'static str,
    seed: [u8; 32],
    /// The signed time in the protected header; `None` for the vectors published before it
    /// existed (envelopes of older agents, which decoders still accept).
    signed_at: Option<Timestamp>,
    message: Message,
}

fn seed(first: u8) -> [u8; 32] {
    std::array::from_fn(|i| first.wrapping_add(i as u8))
}

fn reading(sensor: &str, metric: &str, unit: &str, micros: i64, value: Value) -> Reading {
    Reading {
        sensor: SensorId::new(sensor).unwrap(),
        metric: MetricName::new(metric).unwrap(),
        unit: Unit::new(unit).unwrap(),
        time: Timestamp::from_unix_micros(micros),
        value,
    }
}

fn batch(tenant: &str, gateway: &str, seq: u64, readings: Vec<Reading>) -> Batch {
    Batch::new(
        TenantId::new(tenant).unwrap(),
        GatewayId::new(gateway).unwrap(),
        seq,
        readings,
    )
    .unwrap()
}

/// 2026-11-23T02:27:13Z
const T0: i64 = 1_795_400_833_000_000;

fn vectors() -> Vec<Vector> {
    use Value::{Bool, Number, Text};
    vec![
        Vector {
            name: "batch-minimal",
            description: "One reading, a number exact in half precision (1.0 → f9 3c00).",
            seed: seed(0x00),
            signed_at: None,
            message: Message::Batch(batch(
                "lyon",
                "gw-1",
                1,
                vec![reading("s1", "air.pm25", "ug/m3", T0, Number(1.0))],
            )),
        },
        Vector {
            name: "batch-mixed-values",
            description: "Number, boolean and string values; floats in half, single and \
                          double width (incl. -0.0 and subnormals); negative and zero times; \
                          an empty unit; multibyte UTF-8.",
            seed: seed(0x20),
            signed_at: None,
            message: Message::Batch(batch(
                "metropole-de-lyon",
                "gw-part-dieu-01",
                42,
                vec![
                    reading("pm-01", "air.pm25", "ug/m3", T0, Number(12.5)),
                    reading("pm-01", "air.pm10", "ug/m3", T0, Number(-0.0)),
                    reading("noise-7", "noise.laeq", "dB", T0 + 1, Number(65504.0)),
                    reading("noise-7", "noise.lamax", "dB", T0 + 2, Number(65520.0)),
                    reading("tc-3", "traffic.count", "count", T0 + 3, Number(100_000.0)),
                    reading("tc-3", "traffic.speed", "km/h", T0 + 4, Number(f64::from(0.1f32))),
                    reading("w-1", "weather.temperature", "Cel", T0 + 5, Number(0.1)),
                    reading("w-1", "weather.pressure", "Pa", T0 + 6, Number(5.960_464_477_539_063e-8)),
                    reading("w-1", "weather.tiny", "", T0 + 7, Number(f64::from_bits(1))),
                    reading("w-1", "weather.huge", "", T0 + 8, Number(f64::MAX)),
                    reading("pk-12", "parking.occupied", "", -1, Bool(true)),
                    reading("pk-12", "parking.free", "", 0, Bool(false)),
                    reading("msg-1", "status.text", "", -86_400_000_001, Text("Défaut capteur ☕ — 温度".into())),
                    reading("msg-1", "status.code", "", T0, Text(String::new())),
                ],
            )),
        },
        Vector {
            name: "batch-lengths",
            description: "Longest ids (63 characters), seq = 2^64-1, a 256-byte multibyte \
                          string (2-byte length head) and 24 readings (1-byte array length head).",
            seed: seed(0x40),
            signed_at: None,
            message: Message::Batch(batch(
                &"t".repeat(63),
                &format!("g{}", "-0".repeat(31)),
                u64::MAX,
                (0..24)
                    .map(|i| {
                        let value = if i == 0 { Text("é".repeat(128)) } else { Number(f64::from(i) * 0.25) };
                        reading(&"s".repeat(63), "a.b.c.d", "%", T0 + i64::from(i) * 60_000_000, value)
                    })
                    .collect(),
            )),
        },
        Vector {
            name: "health",
            description: "A health report with gaps of both reasons, an oldest-unacked age and counters \
                          (keys in deterministic order: shorter first, then bytewise).",
            seed: seed(0x60),
            signed_at: None,
            message: Message::Health(Health {
                tenant: TenantId::new("lyon").unwrap(),
                gateway: GatewayId::new("gw-1").unwrap(),
                time: Timestamp::from_unix_micros(T0),
                uptime_s: 86_400,
                agent_version: "0.1.0".into(),
                spool_batches: 3,
                spool_bytes: 65_536,
                oldest_unacked_age_s: Some(95),
                batches_dropped: 2,
                readings_dropped: 200,
                rss_bytes: 6 << 20,
                next_seq: 1001,
                gaps: vec![
                    Gap { first_seq: 10, last_seq: 11, batches: 2, readings: 200, reason: GapReason::SpoolFull },
                    Gap { first_seq: 500, last_seq: 563, batches: 0, readings: 0, reason: GapReason::CrashRestart },
                ],
                counters: [("mqtt.retries", 4u64), ("readings.rejected", 1), ("drops", 0), ("a", 300)]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            }),
        },
        Vector {
            name: "health-minimal",
            description: "A health report with nothing pending: null oldest-unacked age, no gaps, no counters.",
            seed: seed(0x60),
            signed_at: None,
            message: Message::Health(Health {
                tenant: TenantId::new("lyon").unwrap(),
                gateway: GatewayId::new("gw-1").unwrap(),
                time: Timestamp::from_unix_micros(T0),
                uptime_s: 0,
                agent_version: String::new(),
                spool_batches: 0,
                spool_bytes: 0,
                oldest_unacked_age_s: None,
                batches_dropped: 0,
                readings_dropped: 0,
                rss_bytes: 0,
                next_seq: 1,
                gaps: vec![],
                counters: Default::default(),
            }),
        },
        Vector {
            name: "batch-signed-time",
            description: "The minimal batch sealed with its signed time: protected header \
                          {1: -8, 4: kid, 15 (CWT Claims): {6 (iat): 1795400833}}.",
            seed: seed(0x00),
            signed_at: Some(Timestamp::from_unix_micros(T0)),
            message: Message::Batch(batch(
                "lyon",
                "gw-1",
                1,
                vec![reading("s1", "air.pm25", "ug/m3", T0, Number(1.0))],
            )),
        },
        Vector {
            name: "health-signed-time",
            description: "A health report with nothing pending, sealed with its signed time \
                          (a fraction of a second is truncated: iat 1795400833).",
            seed: seed(0x60),
            signed_at: Some(Timestamp::from_unix_micros(T0 + 999_999)),
            message: Message::Health(Health {
                tenant: TenantId::new("lyon").unwrap(),
                gateway: GatewayId::new("gw-1").unwrap(),
                time: Timestamp::from_unix_micros(T0),
                uptime_s: 0,
                agent_version: String::new(),
                spool_batches: 0,
                spool_bytes: 0,
                oldest_unacked_age_s: None,
                batches_dropped: 0,
                readings_dropped: 0,
                rss_bytes: 0,
                next_seq: 1,
                gaps: vec![],
                counters: Default::default(),
            }),
        },
    ]
}

/// Seals as agents did before the signed time: a protected header of `alg` and `kid` only.
fn seal_without_time(signer: &Signer, seed: &[u8; 32], topic: &Topic, payload: Vec<u8>) -> Vec<u8> {
    use coset::{iana, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};
    use ed25519_dalek::Signer as _;
    let key = SigningKey::from_bytes(seed);
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(signer.key_id().as_str().as_bytes().to_vec())
        .build();
    CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(topic.to_string().as_bytes(), |tbs| {
            key.sign(tbs).to_bytes().to_vec()
        })
        .build()
        .to_tagged_vec()
        .unwrap()
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Builds a vector's JSON document, checking along the way that it verifies.
fn render(vector: &Vector) -> String {
    let signer = Signer::new(SigningKey::from_bytes(&vector.seed));
    let key = signer.verifying_key();
    let seal = |topic: &Topic, payload: Vec<u8>| match vector.signed_at {
        Some(at) => signer.seal_at(topic, payload, at).unwrap(),
        None => seal_without_time(&signer, &vector.seed, topic, payload),
    };
    let (topic, payload, envelope, message) = match &vector.message {
        Message::Batch(b) => {
            let topic = Topic::batch(b.tenant(), b.gateway());
            let envelope = seal(&topic, b.encode());
            let opened = Opened::parse(&envelope).unwrap();
            assert_eq!(&opened.verify_batch(&topic, &key).unwrap(), b);
            (
                topic,
                b.encode(),
                envelope,
                serde_json::to_value(b).unwrap(),
            )
        }
        Message::Health(h) => {
            let topic = Topic::health(&h.tenant, &h.gateway);
            let envelope = seal(&topic, h.encode().unwrap());
            let opened = Opened::parse(&envelope).unwrap();
            assert_eq!(&opened.verify_health(&topic, &key).unwrap(), h);
            (
                topic,
                h.encode().unwrap(),
                envelope,
                serde_json::to_value(h).unwrap(),
            )
        }
    };
    let mut doc = json!({
        "description": vector.description,
        "private_key_seed_hex": hex::encode(vector.seed),
        "public_key_hex": hex::encode(key.as_bytes()),
        "kid": signer.key_id().as_str(),
        "topic": topic.to_string(),
        "message": message,
        "payload_cbor_hex": hex::encode(payload),
        "cose_sign1_hex": hex::encode(envelope),
    });
    if let Some(at) = vector.signed_at {
        // What the envelope carries: whole seconds.
        let iat = at.unix_micros().div_euclid(1_000_000);
        doc["signed_at_iat"] = json!(iat);
    }
    serde_json::to_string_pretty(&doc).unwrap() + "\n"
}

/// Checks a committed vector independently of how it was generated: its JSON message
/// encodes to its payload and its envelope verifies on its topic with its key.
fn check_committed(name: &str, text: &str) {
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    let field = |k: &str| {
        doc[k]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no {k}"))
            .to_owned()
    };
    let payload = hex::decode(field("payload_cbor_hex")).unwrap();
    let envelope = hex::decode(field("cose_sign1_hex")).unwrap();
    let key_bytes: [u8; 32] = hex::decode(field("public_key_hex"))
        .unwrap()
        .try_into()
        .unwrap();
    let key = beffroi_protocol::VerifyingKey::from_bytes(&key_bytes).unwrap();
    let topic = Topic::parse(&field("topic")).unwrap();
    let opened = Opened::parse(&envelope).unwrap();
    assert_eq!(opened.key_id().as_str(), field("kid"), "{name}");
    assert_eq!(
        opened.signed_at().map(|t| t.unix_micros() / 1_000_000),
        doc["signed_at_iat"].as_i64(),
        "{name}: signed time"
    );
    assert_eq!(opened.verify(&topic, &key).unwrap(), &payload[..], "{name}");
    if name.starts_with("batch") {
        let message: Batch = serde_json::from_value(doc["message"].clone()).unwrap();
        assert_eq!(message.encode(), payload, "{name}: message ≠ payload");
        assert_eq!(opened.verify_batch(&topic, &key).unwrap(), message);
    } else {
        let message: Health = serde_json::from_value(doc["message"].clone()).unwrap();
        assert_eq!(
            message.encode().unwrap(),
            payload,
            "{name}: message ≠ payload"
        );
        assert_eq!(opened.verify_health(&topic, &key).unwrap(), message);
    }
}

#[test]
fn vectors_match_committed_files() {
    let bless = std::env::var("BEFFROI_BLESS_VECTORS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for vector in vectors() {
        let path = vectors_dir().join(format!("{}.json", vector.name));
        let fresh = render(&vector);
        if bless {
            std::fs::write(&path, &fresh).unwrap();
            continue;
        }
        let Ok(committed) = std::fs::read_to_string(&path) else {
            failures.push(format!("{}: missing", path.display()));
            continue;
        };
        check_committed(vector.name, &committed);
        if committed != fresh {
            let old: serde_json::Value = serde_json::from_str(&committed).unwrap();
            let new: serde_json::Value = serde_json::from_str(&fresh).unwrap();
            let changed: Vec<&str> = [
                "public_key_hex",
                "kid",
                "topic",
                "message",
                "payload_cbor_hex",
                "cose_sign1_hex",
                "signed_at_iat",
                "description",
            ]
            .into_iter()
            .filter(|k| old[k] != new[k])
            .collect();
            failures.push(format!("{}: changed fields {changed:?}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "test vectors differ from the committed files — the wire encoding changed:\n  {}\n\
         If the change is intended, regenerate them with\n  \
         BEFFROI_BLESS_VECTORS=1 cargo test -p beffroi-protocol --test protocol vectors\n\
         and review the diff: published vectors are a compatibility promise.",
        failures.join("\n  ")
    );
}

/// Every file in the directory is a known vector (a renamed vector leaves no stale file).
#[test]
fn no_stale_vector_files() {
    let known: Vec<String> = vectors()
        .iter()
        .map(|v| format!("{}.json", v.name))
        .collect();
    for entry in std::fs::read_dir(vectors_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") {
            assert!(known.contains(&name), "stale vector file {name}");
        }
    }
}
