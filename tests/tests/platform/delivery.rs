//! Scenario 1: two real agents with known readings (number, bool and string values) deliver
//! through the gate (mTLS), the broker and the ingest into the store; the API returns every
//! reading exactly once, under the right gateway; SIGTERM stops the platform cleanly. Once on
//! SQLite, once on PostgreSQL.

use std::time::Duration;

use beffroi_tests::input;
use beffroi_tests::platform::{test_database_url, TestDatabase};
use beffroi_tests::PlatformSpec;

use crate::common::{
    assert_exactly_once, jsonl_agent, range, recent_base, unique_tenant, wait_stored, write_jsonl,
    Scenario,
};

/// Readings per gateway.
const PER_GATEWAY: usize = 1500;

async fn delivery(name: &'static str, database: Option<String>) -> anyhow::Result<()> {
    let scenario = Scenario::new(name)?;
    let spec = PlatformSpec {
        database,
        ..PlatformSpec::default()
    };
    let mut platform = scenario.platform("platform", &spec)?;
    let tenant = unique_tenant("deliv");
    platform.create_tenant(&tenant).await?;
    let token = platform.create_token(&tenant, "viewer").await?;
    let gateways = [
        platform.enroll(&tenant, "gw-1").await?,
        platform.enroll(&tenant, "gw-2").await?,
    ];
    let took = platform.start().await?;
    eprintln!("{name}: platform ready in {took:.1?}");

    let base = recent_base();
    let inputs = [
        input::readings_from(base, 0, PER_GATEWAY),
        input::readings_from(base, PER_GATEWAY, PER_GATEWAY),
    ];
    let mut agents = Vec::new();
    for (gateway, readings) in gateways.iter().zip(&inputs) {
        let file = gateway.dir.join("readings.jsonl");
        write_jsonl(&file, readings)?;
        let mut agent = gateway.agent(jsonl_agent(&file, false), platform.gate_port)?;
        agent.start()?;
        agents.push(agent);
    }

    let api = platform.api_as(&token);
    let stored = wait_stored(&api, range(base), 2 * PER_GATEWAY, &[&platform.log]).await?;
    assert_exactly_once(&stored, &[("gw-1", &inputs[0]), ("gw-2", &inputs[1])]);

    // The registry shows both gateways with their last committed seq.
    let listed = api.get_json("/api/v1/gateways").await?;
    let listed = listed["items"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for gateway in ["gw-1", "gw-2"] {
        let max_seq = stored
            .iter()
            .filter(|r| r.gateway == gateway)
            .map(|r| r.seq)
            .max()
            .unwrap();
        let one = api.get_json(&format!("/api/v1/gateways/{gateway}")).await?;
        assert_eq!(one["revoked"], false, "{one}");
        assert_eq!(one["state"]["last_committed_seq"], max_seq, "{one}");
    }

    for agent in &mut agents {
        agent.kill9()?;
    }
    let (status, took) = platform.terminate(Duration::from_secs(8)).await?;
    assert!(
        status.success(),
        "the platform exited with {status} after SIGTERM"
    );
    eprintln!(
        "{name}: {} readings, SIGTERM → exit in {took:.1?}",
        stored.len()
    );
    assert!(
        !platform.log_text().contains("panicked"),
        "the platform panicked"
    );
    scenario.pass();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_sqlite() -> anyhow::Result<()> {
    delivery("delivery-sqlite", None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_postgres() -> anyhow::Result<()> {
    let Some(url) = test_database_url("delivery_postgres")? else {
        return Ok(());
    };
    let database = TestDatabase::create(&url).await?;
    delivery("delivery-postgres", Some(database.url.clone())).await
}

/// A lone batch — nothing published after it but health reports — is committed at once, not
/// at the agent's resend. The agent waits 60 s before resending, so the store must have each
/// batch within 10 s of its writing. (The embedded broker once delivered a batch that came
/// just after a health report only when later traffic moved its read position on: the ingest's
/// two filters shared one `$share` group, and rumqttd keeps one position per group.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_batches_are_committed_without_a_resend() -> anyhow::Result<()> {
    let scenario = Scenario::new("lone-batch")?;
    let mut platform = scenario.platform("platform", &PlatformSpec::default())?;
    let tenant = unique_tenant("lone");
    platform.create_tenant(&tenant).await?;
    let token = platform.create_token(&tenant, "viewer").await?;
    let gateway = platform.enroll(&tenant, "gw-1").await?;
    platform.start().await?;

    let file = gateway.dir.join("readings.jsonl");
    std::fs::write(&file, "")?;
    let mut spec = jsonl_agent(&file, true);
    spec.max_readings = 1000;
    spec.ack_timeout_s = 60;
    spec.health_interval_s = 1;
    let mut agent = gateway.agent(spec, platform.gate_port)?;
    agent.start()?;
    let api = platform.api_as(&token);
    let base = recent_base();
    let mut sent = Vec::new();
    for round in 0..3 {
        // Health reports only, for a few seconds; then one batch of 300 readings.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let readings = input::readings_from(base, round * 300, 300);
        let mut appended = std::fs::OpenOptions::new().append(true).open(&file)?;
        std::io::Write::write_all(&mut appended, input::jsonl(&readings).as_bytes())?;
        sent.extend(readings);
        let stored = tokio::time::timeout(
            Duration::from_secs(10),
            wait_stored(&api, range(base), sent.len(), &[&platform.log]),
        )
        .await
        .map_err(|_| anyhow::anyhow!("batch {round} not committed within 10 s"))??;
        assert_exactly_once(&stored, &[("gw-1", &sent)]);
    }
    agent.kill9()?;
    scenario.pass();
    Ok(())
}
