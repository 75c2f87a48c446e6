//! Scenario 5: `kill -9` of the platform while two agents stream known readings (JSON lines
//! files that grow during the test), then a restart on the same ports and data directory: the
//! agents reconnect and resend what was not acknowledged, and the store ends with every
//! reading exactly once. Prints the time from restart to the gate accepting again (budget
//! ≤ 2 s in DESIGN.md; printed, asserted only loosely).

use std::time::{Duration, Instant};

use beffroi_tests::gate_client::GateClient;
use beffroi_tests::input;
use beffroi_tests::wait::poll_until;
use beffroi_tests::PlatformSpec;

use crate::common::{
    assert_exactly_once, feed, jsonl_agent, range, recent_base, unique_tenant, wait_stored,
    Scenario,
};

/// Readings per gateway.
const PER_GATEWAY: usize = 3000;
/// Kill when this many readings were committed.
const KILL_AFTER: f64 = 800.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load() -> anyhow::Result<()> {
    let scenario = Scenario::new("kill9-platform")?;
    let mut platform = scenario.platform("platform", &PlatformSpec::default())?;
    let tenant = unique_tenant("crash");
    platform.create_tenant(&tenant).await?;
    let token = platform.create_token(&tenant, "viewer").await?;
    let gateways = [
        platform.enroll(&tenant, "gw-1").await?,
        platform.enroll(&tenant, "gw-2").await?,
    ];
    let probe = platform.enroll(&tenant, "probe").await?;
    platform.start().await?;

    let base = recent_base();
    let inputs = [
        input::readings_from(base, 0, PER_GATEWAY),
        input::readings_from(base, PER_GATEWAY, PER_GATEWAY),
    ];
    let mut agents = Vec::new();
    let mut files = Vec::new();
    for (gateway, readings) in gateways.iter().zip(&inputs) {
        let file = gateway.dir.join("readings.jsonl");
        std::fs::write(&file, "")?;
        files.push((file.clone(), input::jsonl(readings)));
        let mut agent = gateway.agent(jsonl_agent(&file, true), platform.gate_port)?;
        agent.start()?;
        agents.push(agent);
    }
    let feeder = feed(files);

    // Mid-stream: some readings committed, the files still growing.
    let api = platform.api();
    let committed = poll_until(
        "readings committed before the kill",
        Duration::from_secs(30),
        || async {
            let n = api
                .metric("beffroi_ingest_readings_total")
                .await
                .unwrap_or(0.0);
            Ok((n >= KILL_AFTER).then_some(n))
        },
        || platform.log_text(),
    )
    .await?;
    platform.kill9()?;
    let killed_at = Instant::now();
    eprintln!(
        "kill9-platform: killed with {committed} readings committed (feeder done: {})",
        feeder.is_finished()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Restart on the same ports and data; time until the gate accepts a gateway again.
    let restarted = Instant::now();
    platform.spawn()?;
    let mut attempts = 0;
    let accepting = loop {
        attempts += 1;
        let mut client = GateClient::connect(platform.gate_port, probe.tls()?, "probe");
        if let Ok(Ok(())) = client.connected(Duration::from_secs(2)).await {
            break restarted.elapsed();
        }
        anyhow::ensure!(
            restarted.elapsed() < Duration::from_secs(30),
            "the gate did not accept again within 30 s: {}",
            platform.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    platform.wait_ready(Duration::from_secs(30)).await?;
    let ready = restarted.elapsed();
    eprintln!(
        "kill9-platform: restart → gate accepting (TLS + CONNACK) in {accepting:.2?} \
         ({attempts} attempts; budget 2 s), /readyz in {ready:.2?}; kill → restart {:.2?}",
        restarted.duration_since(killed_at)
    );
    assert!(
        accepting < Duration::from_secs(10),
        "the gate took {accepting:?} to accept again"
    );

    feeder.await??;
    let api = platform.api_as(&token);
    let stored = wait_stored(&api, range(base), 2 * PER_GATEWAY, &[&platform.log]).await?;
    assert_exactly_once(&stored, &[("gw-1", &inputs[0]), ("gw-2", &inputs[1])]);
    assert_eq!(stored.len(), 2 * PER_GATEWAY);
    for agent in &agents {
        assert!(!agent.log().contains("panicked"), "an agent panicked");
    }
    scenario.pass();
    Ok(())
}
