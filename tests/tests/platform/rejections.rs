//! Scenario 2: a hand-driven gateway, connected through the gate with a registered gateway's
//! certificate and signing with that gateway's key, sends one good batch and then bad ones.
//! Each bad one is rejected, quarantined with the right reason (or, when the gate refuses it,
//! recorded as a security event), and none of their readings is ever stored.

use std::time::Duration;

use beffroi_protocol::{Batch, GatewayId, Signer, SigningKey, TenantId, Topic};
use beffroi_tests::gate_client::GateClient;
use beffroi_tests::http::Api;
use beffroi_tests::input;
use beffroi_tests::wait::poll_until;
use beffroi_tests::{Platform, PlatformSpec};
use rumqttc::v5::mqttbytes::QoS;

use crate::common::{range, recent_base, unique_tenant, wait_stored, with_field, Scenario};

const CONNECT: Duration = Duration::from_secs(10);

/// Waits until the quarantine holds `n` records.
async fn wait_quarantined(
    api: &Api,
    platform: &Platform,
    n: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let last = std::sync::Mutex::new(Vec::new());
    poll_until(
        &format!("{n} quarantined messages"),
        Duration::from_secs(20),
        || async {
            let items = api.quarantine().await?;
            let done = items.len() >= n;
            *last.lock().unwrap() = items.clone();
            Ok(done.then_some(items))
        },
        || {
            format!(
                "API: {:#?}; {}",
                last.lock().unwrap(),
                platform.sqlite_counts(&["quarantine", "security_events"])
            )
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections() -> anyhow::Result<()> {
    let scenario = Scenario::new("rejections")?;
    let mut platform = scenario.platform("platform", &PlatformSpec::default())?;
    let tenant = unique_tenant("rej");
    platform.create_tenant(&tenant).await?;
    let token = platform.create_token(&tenant, "viewer").await?;
    let gw_a = platform.enroll(&tenant, "gw-a").await?;
    let gw_b = platform.enroll(&tenant, "gw-b").await?;
    platform.start().await?;
    let api = platform.api_as(&token);

    let tenant_id = TenantId::new(tenant.as_str())?;
    let (a, b) = (GatewayId::new("gw-a")?, GatewayId::new("gw-b")?);
    let signer = Signer::new(gw_a.signing_key()?);
    assert_eq!(
        signer.key_id().to_string(),
        gw_a.key_id,
        "key id printed at registration"
    );
    let base = recent_base();
    let batch = |gateway: &GatewayId, seq: u64, offset: usize| {
        Batch::new(
            tenant_id.clone(),
            gateway.clone(),
            seq,
            input::readings_from(base, offset, 10),
        )
    };

    let mut client = GateClient::connect(platform.gate_port, gw_a.tls()?, "gw-a");
    client
        .connected(CONNECT)
        .await?
        .map_err(anyhow::Error::msg)?;

    // A good batch, stored.
    let good = batch(&a, 1, 0)?;
    let (topic, envelope) = signer.seal_batch(&good)?;
    client.publish_acked(&topic.to_string(), envelope).await?;
    wait_stored(&api, range(base), 10, &[&platform.log]).await?;

    // The same seq with different content: a replay.
    let (topic, envelope) = signer.seal_batch(&batch(&a, 1, 100)?)?;
    client.publish_acked(&topic.to_string(), envelope).await?;

    // A tampered signature (the signature is the envelope's last bytes).
    let (topic, mut envelope) = signer.seal_batch(&batch(&a, 2, 200)?)?;
    *envelope.last_mut().unwrap() ^= 0x01;
    client.publish_acked(&topic.to_string(), envelope).await?;

    // A key that was never registered.
    let stranger = Signer::new(SigningKey::from_bytes(&[0x5a; 32]));
    let (topic, envelope) = stranger.seal_batch(&batch(&a, 3, 300)?)?;
    client.publish_acked(&topic.to_string(), envelope).await?;

    // gw-a's authentic batch re-published by gw-b on gw-b's own topic (the gate lets gw-b
    // publish there; the key is gw-a's).
    let (_, envelope) = signer.seal_batch(&batch(&a, 4, 400)?)?;
    let mut client_b = GateClient::connect(platform.gate_port, gw_b.tls()?, "gw-b");
    client_b
        .connected(CONNECT)
        .await?
        .map_err(anyhow::Error::msg)?;
    let topic_b = Topic::batch(&tenant_id, &b);
    client_b
        .publish_acked(&topic_b.to_string(), envelope)
        .await?;

    let quarantined = wait_quarantined(&api, &platform, 4).await?;
    let reasons = |gateway: &str, reason: &str| {
        with_field(&quarantined, "reason", reason)
            .into_iter()
            .filter(|q| q["gateway"] == gateway)
            .count()
    };
    assert_eq!(reasons("gw-a", "replay"), 1, "{quarantined:#?}");
    assert_eq!(reasons("gw-a", "bad_signature"), 1, "{quarantined:#?}");
    assert_eq!(reasons("gw-a", "unknown_key"), 1, "{quarantined:#?}");
    assert_eq!(reasons("gw-b", "unknown_key"), 1, "{quarantined:#?}");
    assert_eq!(quarantined.len(), 4, "{quarantined:#?}");
    let replay = &with_field(&quarantined, "reason", "replay")[0];
    assert_eq!(replay["seq"], 1, "{replay}");
    let misrouted = &with_field(&quarantined, "gateway", "gw-b")[0];
    assert!(
        misrouted["detail"].as_str().unwrap().contains("gw-a"),
        "{misrouted}"
    );

    // gw-a publishes on gw-b's topic: the gate refuses and disconnects it.
    let (_, envelope) = signer.seal_batch(&batch(&b, 5, 500)?)?;
    client
        .client
        .publish(topic_b.to_string(), QoS::AtLeastOnce, false, envelope)
        .await?;
    let how = client.closed(Duration::from_secs(10)).await?;
    assert!(how.contains("NotAuthorized"), "gw-a was closed with {how}");
    let events = poll_until(
        "an acl_violation security event",
        Duration::from_secs(10),
        || async {
            let events = api.security_events().await?;
            let found = with_field(&events, "kind", "acl_violation")
                .iter()
                .any(|e| e["gateway"] == "gw-a");
            Ok(found.then_some(events))
        },
        String::new,
    )
    .await?;
    let acl = with_field(&events, "kind", "acl_violation")[0];
    assert!(
        acl["detail"]
            .as_str()
            .unwrap()
            .contains(&topic_b.to_string()),
        "{acl}"
    );
    assert!(
        with_field(&events, "kind", "quarantined").len() >= 4,
        "each quarantined message raises a security event: {events:#?}"
    );

    // Only the good batch was ever stored.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = api.readings(range(base).0, range(base).1).await?;
    assert_eq!(stored.len(), 10, "{stored:#?}");
    assert!(stored.iter().all(|r| r.gateway == "gw-a" && r.seq == 1));
    let want: Vec<_> = good.readings().iter().map(input::key).collect();
    let mut got: Vec<_> = stored.iter().map(|r| input::key(&r.reading())).collect();
    got.sort();
    let mut want = want;
    want.sort();
    assert_eq!(got, want);
    scenario.pass();
    Ok(())
}
