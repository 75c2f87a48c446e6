//! Scenario 15: `beffroi-agent status` (issue #10) for a real agent enrolled with a real
//! platform: while it runs, it reports the connection, the last commit ack, the spool depth
//! and the certificate's expiry and exits 0; after SIGTERM it reports a clean stop, after
//! `kill -9` a vanished process, both with exit code 3 and the spool read from disk.

use std::time::Duration;

use beffroi_tests::input;
use beffroi_tests::wait::poll_until;
use beffroi_tests::{AgentProcess, PlatformSpec, DEFAULT_TIMEOUT};

use crate::common::{jsonl_agent, recent_base, unique_tenant, write_jsonl, Scenario};

/// Readings the agent delivers before its status is read.
const READINGS: usize = 300;

/// Waits until `status --json` exits with `code` and its report satisfies `check`.
async fn wait_status(
    agent: &AgentProcess,
    what: &str,
    code: i32,
    check: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let last = std::sync::Mutex::new(serde_json::Value::Null);
    poll_until(
        what,
        DEFAULT_TIMEOUT,
        || async {
            let (exit, report) = agent.status().await?;
            let done = exit == Some(code) && check(&report);
            *last.lock().unwrap() = report.clone();
            if !done {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(done.then_some(report))
        },
        || format!("last report: {}", last.lock().unwrap()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_status() -> anyhow::Result<()> {
    let scenario = Scenario::new("agent-status")?;
    let mut platform = scenario.platform("platform", &PlatformSpec::default())?;
    let tenant = unique_tenant("status");
    platform.create_tenant(&tenant).await?;
    let gateway = platform.enroll(&tenant, "gw-1").await?;
    platform.start().await?;

    let file = gateway.dir.join("readings.jsonl");
    write_jsonl(&file, &input::readings_from(recent_base(), 0, READINGS))?;
    let mut agent = gateway.agent(jsonl_agent(&file, true), platform.gate_port)?;
    let (code, report) = agent.status().await?;
    assert_eq!(code, Some(3), "before the first start: {report}");
    assert_eq!(report["state"], "never-started", "{report}");

    agent.start()?;
    let report = wait_status(&agent, "running, connected, everything acked", 0, |r| {
        r["status"]["connection"]["state"] == "connected"
            && r["status"]["last_ack"]["highest_seq"].as_u64() >= Some(1)
            && r["spool"]["batches"] == 0
    })
    .await?;
    assert_eq!(report["running"], true, "{report}");
    assert_eq!(report["spool"]["source"], "agent", "{report}");
    assert_eq!(report["status"]["pid"], agent.pid().unwrap(), "{report}");
    assert_eq!(report["status"]["gateway"], "gw-1", "{report}");
    let expires_in = report["certificate"]["expires_in_s"].as_i64().unwrap();
    assert!(expires_in > 0, "{report}");
    assert_eq!(report["certificate"]["renewal_overdue"], false, "{report}");
    assert_eq!(
        report["certificate"]["not_after"], report["status"]["certificate_not_after"],
        "the agent and the file disagree on the certificate: {report}"
    );
    let (code, text) = agent.status_text().await?;
    assert_eq!(code, Some(0), "{text}");
    for line in [
        "running: pid",
        "connection: connected since",
        "last ack: ",
        "spool: 0 batches",
        "certificate: valid until",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }

    // A clean stop is recorded as such.
    agent.terminate()?;
    agent.wait_exit(Duration::from_secs(10)).await?;
    let report = wait_status(&agent, "stopped", 3, |r| r["state"] == "stopped").await?;
    assert_eq!(report["running"], false, "{report}");
    assert_eq!(report["spool"]["source"], "disk", "{report}");
    assert_eq!(report["spool"]["batches"], 0, "{report}");

    // kill -9 leaves a status file whose process is gone.
    agent.start()?;
    wait_status(&agent, "running again", 0, |r| r["running"] == true).await?;
    agent.kill9()?;
    let (code, report) = agent.status().await?;
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(report["state"], "gone", "{report}");
    let (code, text) = agent.status_text().await?;
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("NOT RUNNING: process"), "{text}");
    assert!(text.contains("last known connection:"), "{text}");

    platform.terminate(Duration::from_secs(8)).await?;
    scenario.pass();
    Ok(())
}
