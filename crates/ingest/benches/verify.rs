//! Signatures verified per second: one by one (`verify_strict`, as `Opened::verify`) versus
//! ed25519 batch verification in groups, over envelopes of one-reading batches (the
//! worst case of the ingest budget: ≥ 20k messages/s). Also the cost of parsing an envelope
//! and building its signed bytes. Plain std timing: `cargo bench -p beffroi-ingest`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use beffroi_protocol::{
    Batch, GatewayId, MetricName, Opened, Reading, SensorId, Signer, SigningKey, TenantId,
    Timestamp, Topic, Unit, Value, VerifyingKey,
};
use ed25519_dalek::Signature;

const MESSAGES: usize = 4096;

fn main() {
    let signers: Vec<Signer> = (0..64u8)
        .map(|i| Signer::new(SigningKey::from_bytes(&[i.wrapping_add(1); 32])))
        .collect();
    let tenant = TenantId::new("lyon").expect("valid tenant");
    let mut envelopes: Vec<(Topic, Vec<u8>, VerifyingKey)> = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let signer = &signers[i % signers.len()];
        let gateway = GatewayId::new(format!("gw-{}", i % signers.len())).expect("valid gateway");
        let reading = Reading {
            sensor: SensorId::new("s-1").expect("valid sensor"),
            metric: MetricName::new("air.pm25").expect("valid metric"),
            unit: Unit::new("ug/m3").expect("valid unit"),
            time: Timestamp::now(),
            value: Value::Number(i as f64),
        };
        let batch =
            Batch::new(tenant.clone(), gateway, i as u64 + 1, vec![reading]).expect("valid batch");
        let (topic, envelope) = signer.seal_batch(&batch).expect("sealed");
        envelopes.push((topic, envelope, signer.verifying_key()));
    }

    let start = Instant::now();
    let opened: Vec<Opened> = envelopes
        .iter()
        .map(|(_, e, _)| Opened::parse(e).expect("parses"))
        .collect();
    let messages: Vec<Vec<u8>> = opened
        .iter()
        .zip(&envelopes)
        .map(|(o, (topic, _, _))| o.signed_bytes(topic))
        .collect();
    report("parse + signed bytes", MESSAGES, start.elapsed());

    let signatures: Vec<Signature> = opened.iter().map(|o| *o.signature()).collect();
    let keys: Vec<VerifyingKey> = envelopes.iter().map(|(_, _, k)| *k).collect();

    let start = Instant::now();
    for ((message, signature), key) in messages.iter().zip(&signatures).zip(&keys) {
        key.verify_strict(message, signature).expect("valid");
    }
    let single = report("single verify_strict", MESSAGES, start.elapsed());

    for group in [8usize, 32, 64, 128, 256] {
        let start = Instant::now();
        for at in (0..MESSAGES).step_by(group) {
            let end = (at + group).min(MESSAGES);
            let refs: Vec<&[u8]> = messages[at..end].iter().map(Vec::as_slice).collect();
            ed25519_dalek::verify_batch(&refs, &signatures[at..end], &keys[at..end])
                .expect("valid");
        }
        let rate = report(&format!("batch of {group}"), MESSAGES, start.elapsed());
        println!("    speed-up over single: {:.2}x", rate / single);
    }
    black_box(&messages);
}

fn report(what: &str, count: usize, elapsed: Duration) -> f64 {
    let rate = count as f64 / elapsed.as_secs_f64();
    println!(
        "{what:>24}: {rate:>10.0} signatures/s ({:.1} µs each)",
        1e6 / rate
    );
    rate
}
