//! Scenario 11: gateway identity (issue #9, docs/gateway-identity.md), with the real binaries.
//!
//! - `enroll`: `beffroi gateway create` prints a one-time token; `beffroi-agent enroll`
//!   generates the keys on the gateway (0600), pins the endpoint, writes a config that passes
//!   `check-config` and runs, and the gateway's readings arrive over mutual TLS. A wrong pin
//!   is refused before anything is sent (the token still works after), a token works once, an
//!   expired token and a token of another tenant are refused.
//! - `renewal`: certificates that live 10 s roll several times while an agent streams known
//!   readings, and its signing key is rotated on the way: every reading stored exactly once,
//!   the first batches under the old key and every later one under the new key (as the
//!   tenant's export lists them).
//! - `rollover`: the platform's root CA is replaced (`pki rollover begin|complete|retire`,
//!   each followed by a restart) while an agent streams: it learns the next root at a
//!   renewal, renews under it, drops the old one, and every reading is stored exactly once.
//! - `revocation`: revoked through the API while an agent streams, the gateway's connection
//!   is cut within 1 s and its reconnects refused; a batch signed after the revocation is
//!   quarantined with a security event, one signed before it (arriving late, as from a spool)
//!   is still stored; after a restart the gateway is still refused.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use beffroi_protocol::{Batch, GatewayId, Signer, SigningKey, TenantId, Timestamp, Topic};
use beffroi_tests::enroll::{enroll, with_pin, Enrolled};
use beffroi_tests::gate_client::GateClient;
use beffroi_tests::http::ApiReading;
use beffroi_tests::input;
use beffroi_tests::platform::Platform;
use beffroi_tests::wait::poll_until;
use beffroi_tests::{PlatformSpec, SourceSpec};
use ed25519_dalek::pkcs8::DecodePrivateKey as _;

use crate::common::{
    assert_exactly_once, feed_paced, jsonl_agent, range, recent_base, unique_tenant, wait_stored,
    Scenario, CHUNK, STEP,
};

const CONNECT: Duration = Duration::from_secs(10);

/// The agent's standard error, for assertions on refusals.
fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_with_one_time_tokens() -> anyhow::Result<()> {
    let scenario = Scenario::new("enroll")?;
    let mut platform = scenario.platform("platform", &PlatformSpec::default())?;
    let (a, b) = (unique_tenant("enroll-a"), unique_tenant("enroll-b"));
    platform.create_tenant(&a).await?;
    platform.create_tenant(&b).await?;
    let viewer = platform.create_token(&a, "viewer").await?;
    platform.start().await?;
    let url = platform.enroll_url();

    // A wrong pin: refused before the token is sent, nothing written.
    let token = platform.create_gateway(&a, "gw-1", None).await?;
    let (bad, out) = enroll(
        &url,
        &with_pin(&token, &"ab".repeat(32)),
        &scenario.path("pin"),
        &[],
    )
    .await?;
    assert!(!out.status.success(), "a wrong pin was accepted");
    assert!(
        stderr(&out).to_lowercase().contains("pin"),
        "{}",
        stderr(&out)
    );
    assert!(
        !bad.certificate().exists() && !bad.config.exists(),
        "files written after a refused pin"
    );

    // The right token: keys made on the gateway, 0600; a config that is ready to run.
    let (mut gw, out) = enroll(&url, &token, &scenario.path("gw-1"), &[]).await?;
    assert!(out.status.success(), "enroll failed: {}", stderr(&out));
    gw.tenant.clone_from(&a);
    gw.gateway = "gw-1".into();
    for key in [gw.signing_key(), gw.tls_key()] {
        assert_eq!(mode(&key), 0o600, "{} is not 0600", key.display());
    }
    let check = beffroi_tests::agent::run_command(vec![
        "check-config".into(),
        "--config".into(),
        gw.config.clone().into(),
    ])
    .await?;
    assert!(check.status.success(), "check-config: {}", stderr(&check));
    let listed = platform
        .api_as(&viewer)
        .get_json("/api/v1/gateways/gw-1")
        .await?;
    assert_eq!(listed["revoked"], false, "{listed}");
    assert!(listed["cert_fingerprint"].is_string(), "{listed}");

    // It sends over mutual TLS with the config enroll wrote, a source added and nothing else.
    let base = recent_base();
    let readings = input::readings_from(base, 0, 300);
    let file = gw.dir.join("readings.jsonl");
    std::fs::write(&file, input::jsonl(&readings))?;
    let mut agent = gw.written_agent(SourceSpec::JsonlFile {
        path: file,
        follow: false,
    })?;
    agent.start()?;
    let stored = wait_stored(
        &platform.api_as(&viewer),
        range(base),
        readings.len(),
        &[&platform.log],
    )
    .await?;
    assert_exactly_once(&stored, &[("gw-1", &readings)]);

    // Once only.
    let (_, out) = enroll(&url, &token, &scenario.path("again"), &[]).await?;
    assert!(!out.status.success(), "a token worked twice");
    assert!(stderr(&out).contains("token_used"), "{}", stderr(&out));

    // Expired.
    let short = platform.create_gateway(&a, "gw-2", Some(1)).await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, out) = enroll(&url, &short, &scenario.path("expired"), &[]).await?;
    assert!(!out.status.success(), "an expired token worked");
    assert!(stderr(&out).contains("token_expired"), "{}", stderr(&out));

    // Tenant B's token cannot put a gateway into tenant A.
    let other = platform.create_gateway(&b, "gw-9", None).await?;
    let (_, out) = enroll(
        &url,
        &other,
        &scenario.path("mismatch"),
        &["--tenant", &a, "--gateway", "gw-9"],
    )
    .await?;
    assert!(
        !out.status.success(),
        "tenant B's token enrolled into tenant A"
    );
    assert!(stderr(&out).contains("token_mismatch"), "{}", stderr(&out));
    let response = platform
        .api_as(&viewer)
        .get("/api/v1/gateways/gw-9")
        .await?;
    assert_eq!(response.status, 404, "gw-9 appeared in tenant A");
    scenario.pass();
    Ok(())
}

/// Distinct certificate fingerprints the API reports for a gateway, polled until `count`.
async fn wait_fingerprints(
    platform: &Platform,
    token: &str,
    gateway: &str,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let api = platform.api_as(token);
    let seen = std::sync::Mutex::new(Vec::<String>::new());
    poll_until(
        &format!("{count} certificates of {gateway}"),
        timeout,
        || async {
            let record = api.get_json(&format!("/api/v1/gateways/{gateway}")).await?;
            let done = {
                let mut seen = seen.lock().unwrap();
                if let Some(fp) = record["cert_fingerprint"].as_str() {
                    if !seen.iter().any(|s| s == fp) {
                        seen.push(fp.to_owned());
                    }
                }
                seen.len() >= count
            };
            if !done {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(done.then_some(()))
        },
        || platform.log_text(),
    )
    .await?;
    Ok(seen.into_inner().unwrap())
}

/// A platform with one enrolled gateway whose agent streams known readings from a file that
/// grows at `pace` (lines, interval) while the scenario acts.
struct Streaming {
    platform: Platform,
    /// An API token of the tenant.
    token: String,
    gw: Enrolled,
    agent: beffroi_tests::AgentProcess,
    feeder: tokio::task::JoinHandle<anyhow::Result<()>>,
    base: Timestamp,
    readings: Vec<beffroi_protocol::Reading>,
}

async fn streaming(
    scenario: &Scenario,
    spec: &PlatformSpec,
    role: &str,
    count: usize,
    (lines, every): (usize, Duration),
) -> anyhow::Result<Streaming> {
    let mut platform = scenario.platform("platform", spec)?;
    let tenant = unique_tenant("identity");
    platform.create_tenant(&tenant).await?;
    let token = platform.create_token(&tenant, role).await?;
    platform.start().await?;
    let gw = platform.enroll_gateway(&tenant, "gw-1").await?;
    let base = recent_base();
    let readings = input::readings_from(base, 0, count);
    let file = gw.dir.join("readings.jsonl");
    std::fs::write(&file, "")?;
    let mut agent = gw.agent(jsonl_agent(&file, true), platform.gate_port)?;
    agent.start()?;
    let feeder = feed_paced(vec![(file, input::jsonl(&readings))], lines, every);
    Ok(Streaming {
        platform,
        token,
        gw,
        agent,
        feeder,
        base,
        readings,
    })
}

/// Waits for the feed to end and every reading to be stored, and checks each is stored once.
async fn assert_all_stored_once(s: &mut Streaming) -> anyhow::Result<Vec<ApiReading>> {
    (&mut s.feeder).await??;
    let stored = wait_stored(
        &s.platform.api_as(&s.token),
        range(s.base),
        s.readings.len(),
        &[&s.platform.log],
    )
    .await?;
    assert_exactly_once(&stored, &[("gw-1", &s.readings)]);
    assert!(!s.agent.log().contains("panicked"), "the agent panicked");
    Ok(stored)
}

/// Sequence numbers of the stored batches of the streaming gateway by signing key id, from
/// `beffroi export`'s `batches.csv`.
async fn batches_by_key(
    s: &Streaming,
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<u64>>> {
    let out = s.gw.dir.join("export");
    s.platform
        .cli(&[
            "export",
            "--tenant",
            &s.gw.tenant,
            "--out",
            &out.display().to_string(),
            "--quiet",
        ])
        .await?;
    let csv = std::fs::read_to_string(out.join("batches.csv"))?;
    let mut by_key = std::collections::BTreeMap::<String, Vec<u64>>::new();
    for line in csv.lines().skip(1) {
        // gateway,seq,key_id,signature,received_at,readings: no field is quoted.
        let fields: Vec<&str> = line.split(',').collect();
        anyhow::ensure!(fields.len() == 6, "batches.csv row: {line}");
        if fields[0] == "gw-1" {
            by_key
                .entry(fields[2].to_owned())
                .or_default()
                .push(fields[1].parse()?);
        }
    }
    Ok(by_key)
}

/// Certificates of 10 s: renewed every ~7 s.
fn short_certificates() -> PlatformSpec {
    PlatformSpec {
        certificate_lifetime_s: Some(10),
        ..PlatformSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_roll_under_load() -> anyhow::Result<()> {
    let scenario = Scenario::new("renewal")?;
    // 32 s of readings (4,000 lines, 25 every 200 ms) while certificates live 10 s.
    let mut run = streaming(
        &scenario,
        &short_certificates(),
        "viewer",
        4000,
        (25, Duration::from_millis(200)),
    )
    .await?;
    let (platform, viewer) = (&run.platform, run.token.as_str());
    wait_fingerprints(platform, viewer, "gw-1", 2, Duration::from_secs(30)).await?;

    // Mid-stream, the signing key is rotated at the next renewal: batches already signed with
    // the old key (in the spool, in flight) still count, new ones carry the new key.
    let rotate = beffroi_tests::agent::run_command(vec![
        "rotate-key".into(),
        "--config".into(),
        run.agent.paths.config.clone().into(),
    ])
    .await?;
    assert!(rotate.status.success(), "rotate-key: {}", stderr(&rotate));
    let api = platform.api_as(viewer);
    poll_until(
        "the new signing key registered",
        Duration::from_secs(30),
        || async {
            let record = api.get_json("/api/v1/gateways/gw-1").await?;
            Ok((record["keys"].as_array().map_or(0, Vec::len) == 2).then_some(()))
        },
        || platform.log_text(),
    )
    .await?;
    assert!(
        !run.feeder.is_finished(),
        "the stream ended before the rotation: nothing was signed with the new key"
    );
    let fingerprints =
        wait_fingerprints(platform, viewer, "gw-1", 4, Duration::from_secs(60)).await?;
    let record = api.get_json("/api/v1/gateways/gw-1").await?;
    let quarantined = api.quarantine().await?;
    let stored = assert_all_stored_once(&mut run).await?;
    let keys = record["keys"].as_array().cloned().unwrap_or_default();
    assert_eq!(keys.len(), 2, "one rotation: {record}");
    assert!(
        keys[0]["retired_at"].is_null() && keys[1]["retired_at"].is_string(),
        "{record}"
    );
    assert_eq!(record["key_id"], keys[0]["key_id"], "{record}");
    assert!(quarantined.is_empty(), "batches refused: {quarantined:?}");
    // The stored batches, as the tenant's export lists them: the first ones under the old key,
    // every later one under the new key.
    let (old_key, new_key) = (keys[1]["key_id"].as_str(), keys[0]["key_id"].as_str());
    let by_key = batches_by_key(&run).await?;
    let seqs = |key: Option<&str>| by_key.get(key.unwrap_or_default()).cloned();
    let (Some(old), Some(new)) = (seqs(old_key), seqs(new_key)) else {
        panic!("stored batches by key id: {by_key:?}; keys {record}");
    };
    assert_eq!(by_key.len(), 2, "{by_key:?}");
    assert!(
        old.iter().max() < new.iter().min(),
        "batches under the old key after the first under the new one: old {old:?}, new {new:?}"
    );
    eprintln!(
        "renewal: {} certificates in turn and one signing-key rotation while streaming; {} \
         readings stored once in {} batches under the old key and {} under the new one, \
         nothing quarantined",
        fingerprints.len(),
        stored.len(),
        old.len(),
        new.len()
    );
    scenario.pass();
    Ok(())
}

/// A batch of `gw` signed at `signed_at` with its signing key, published straight on the
/// embedded broker (as if it had passed the gate just before the cut).
async fn inject(
    platform: &Platform,
    gw: &Enrolled,
    seq: u64,
    readings: Vec<beffroi_protocol::Reading>,
    signed_at: Timestamp,
) -> anyhow::Result<()> {
    let pem = std::fs::read_to_string(gw.signing_key())?;
    let signer = Signer::new(SigningKey::from_pkcs8_pem(&pem)?);
    let (tenant, gateway) = (
        TenantId::new(gw.tenant.as_str())?,
        GatewayId::new(gw.gateway.as_str())?,
    );
    let batch = Batch::new(tenant.clone(), gateway.clone(), seq, readings)?;
    let topic = Topic::batch(&tenant, &gateway);
    let envelope = signer.seal_at(&topic, batch.encode(), signed_at)?;
    let port = platform
        .broker_v5_port
        .ok_or_else(|| anyhow::anyhow!("no embedded broker"))?;
    publish_on_broker(port, &topic.to_string(), envelope).await
}

/// Publishes one QoS 1 message on the embedded broker's loopback listener and waits for its
/// PUBACK.
async fn publish_on_broker(port: u16, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let options = MqttOptions::new(format!("e2e-inject-{port}"), "127.0.0.1", port);
    let (client, mut events) = AsyncClient::new(options, 4);
    client
        .publish(
            topic,
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            payload,
        )
        .await?;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = events.poll().await? {
                return anyhow::Ok(());
            }
        }
    })
    .await??;
    client.disconnect().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_under_load() -> anyhow::Result<()> {
    let scenario = Scenario::new("revocation")?;
    let mut run = streaming(
        &scenario,
        &PlatformSpec::default(),
        "admin",
        6000,
        (CHUNK, STEP),
    )
    .await?;
    let (platform, gw, base) = (&run.platform, &run.gw, run.base);
    let api = platform.api_as(&run.token);
    poll_until(
        "the agent streaming",
        Duration::from_secs(30),
        || async {
            let n = api
                .metric("beffroi_ingest_readings_total")
                .await
                .unwrap_or(0.0);
            Ok(
                (n >= 500.0 && api.metric("beffroi_gate_connections").await.unwrap_or(0.0) >= 1.0)
                    .then_some(()),
            )
        },
        || platform.log_text(),
    )
    .await?;

    // Revoked mid-stream: the live connection is cut within 1 s.
    let started = Instant::now();
    let response = api
        .post_json("/api/v1/gateways/gw-1/revoke", &serde_json::json!({}))
        .await?;
    assert!(
        response.status < 300,
        "revoke answered {}: {}",
        response.status,
        response.body
    );
    let revoked_at = Timestamp::now();
    poll_until(
        "the revoked gateway's connection cut",
        Duration::from_secs(5),
        || async { Ok((api.metric("beffroi_gate_connections").await? == 0.0).then_some(())) },
        || platform.log_text(),
    )
    .await?;
    let cut_after = started.elapsed();
    eprintln!("revocation: live connection cut {cut_after:.0?} after the API call");
    assert!(
        cut_after < Duration::from_secs(1),
        "cut after {cut_after:?}"
    );
    let mut again = GateClient::connect(platform.gate_port, gw.tls()?, "gw-1");
    assert!(
        again.connected(CONNECT).await?.is_err(),
        "a revoked gateway reconnected"
    );
    let stored_before = api.readings(range(base).0, range(base).1).await?.len();
    assert!(
        stored_before >= 500,
        "{stored_before} stored before the revocation"
    );

    // What it signs after the revocation is quarantined; what it signed before still counts.
    let late = input::readings_from(base, 100_000, 5);
    let early = input::readings_from(base, 200_000, 5);
    // Signed times are whole seconds: the quarantine record names the truncated one.
    let after = revoked_at.saturating_add(Duration::from_secs(2));
    let after = Timestamp::from_unix_micros(after.unix_micros() / 1_000_000 * 1_000_000);
    inject(platform, gw, 1_000_000, late, after).await?;
    let before = revoked_at.saturating_sub(Duration::from_secs(5));
    inject(platform, gw, 1_000_001, early.clone(), before).await?;
    let quarantined = poll_until(
        "the batch signed after the revocation quarantined",
        Duration::from_secs(10),
        || async {
            let items = api.quarantine().await?;
            let signed = format!("signed at {after}");
            Ok(items
                .iter()
                .find(|q| {
                    q["reason"] == "revoked"
                        && q["detail"].as_str().is_some_and(|d| d.contains(&signed))
                })
                .cloned())
        },
        || platform.log_text(),
    )
    .await?;
    eprintln!("revocation: quarantined {quarantined}");
    let event = poll_until(
        "a security event for the quarantined batch",
        Duration::from_secs(10),
        || async {
            let events = api.security_events().await?;
            let signed = format!("signed at {after}");
            Ok(events.into_iter().find(|e| {
                e["kind"] == "quarantined"
                    && e["gateway"] == "gw-1"
                    && e["detail"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("revoked") && d.contains(&signed))
            }))
        },
        || platform.log_text(),
    )
    .await?;
    eprintln!("revocation: security event {event}");
    let wanted: Vec<String> = early.iter().map(input::key).collect();
    let stored = poll_until(
        "the batch signed before the revocation stored",
        Duration::from_secs(10),
        || async {
            let stored = api.readings(range(base).0, range(base).1).await?;
            let keys: std::collections::HashSet<String> =
                stored.iter().map(|r| input::key(&r.reading())).collect();
            Ok(wanted.iter().all(|k| keys.contains(k)).then_some(stored))
        },
        || platform.log_text(),
    )
    .await?;
    assert!(stored.len() >= stored_before + early.len());
    run.feeder.await??;

    // The revocation is persisted: after a restart the gateway is still refused, and cannot
    // renew its way back in.
    run.platform.terminate(Duration::from_secs(10)).await?;
    run.platform.start().await?;
    let mut after_restart = GateClient::connect(run.platform.gate_port, run.gw.tls()?, "gw-1");
    assert!(
        after_restart.connected(CONNECT).await?.is_err(),
        "a revoked gateway reconnected after a restart"
    );
    let record = run
        .platform
        .api_as(&run.token)
        .get_json("/api/v1/gateways/gw-1")
        .await?;
    assert_eq!(record["revoked"], true, "{record}");
    assert!(record["revoked_at"].is_string(), "{record}");
    scenario.pass();
    Ok(())
}

/// Certificates in a PEM file.
fn certificates_in(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|pem| pem.matches("-----BEGIN CERTIFICATE-----").count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_anchor_rollover_under_load() -> anyhow::Result<()> {
    let scenario = Scenario::new("rollover")?;
    let mut run = streaming(
        &scenario,
        &short_certificates(),
        "viewer",
        3000,
        (10, Duration::from_millis(150)),
    )
    .await?;
    let gw = run.gw.clone();
    let old_root = std::fs::read_to_string(gw.ca())?;
    assert_eq!(certificates_in(&gw.ca()), 1);
    // begin: the next root is published beside the current one; the agent picks it up at
    // its next renewal.
    run.platform.terminate(Duration::from_secs(10)).await?;
    run.platform.cli(&["pki", "rollover", "begin"]).await?;
    run.platform.start().await?;
    poll_until(
        "the agent to learn the next root",
        Duration::from_secs(30),
        || async { Ok((certificates_in(&gw.ca()) == 2).then_some(())) },
        || run.agent.log(),
    )
    .await?;

    // complete: the next root issues (the gate's certificate too); the agent, which already
    // trusts it, reconnects and renews under it.
    run.platform.terminate(Duration::from_secs(10)).await?;
    run.platform.cli(&["pki", "rollover", "complete"]).await?;
    run.platform.start().await?;
    let before = std::fs::read_to_string(gw.certificate())?;
    poll_until(
        "a certificate issued under the new root",
        Duration::from_secs(30),
        || async {
            let now = std::fs::read_to_string(gw.certificate())?;
            Ok((now != before).then_some(()))
        },
        || run.agent.log(),
    )
    .await?;

    // retire: only the new root is published; the agent drops the old one at its next
    // renewal and keeps sending.
    run.platform.terminate(Duration::from_secs(10)).await?;
    run.platform.cli(&["pki", "rollover", "retire"]).await?;
    run.platform.start().await?;
    poll_until(
        "the agent to drop the old root",
        Duration::from_secs(30),
        || async {
            let anchors = std::fs::read_to_string(gw.ca())?;
            Ok((certificates_in(&gw.ca()) == 1 && anchors != old_root).then_some(()))
        },
        || run.agent.log(),
    )
    .await?;

    assert_all_stored_once(&mut run).await?;
    scenario.pass();
    Ok(())
}
