//! Scenario 13: backup and restore of a whole platform end to end (issue #10,
//! docs/backup.md), on SQLite and on PostgreSQL.
//!
//! A running platform with an enrolled gateway that has sent known readings, an alarm rule
//! and an audit log with a signed checkpoint is backed up while it runs (`beffroi backup`),
//! then stopped. `beffroi restore` fills a fresh database and a fresh data directory, and the
//! restored platform serves the same readings (count and values), the same rules, an audit
//! log that `beffroi audit verify` passes, and takes the same agent back (same keys, same
//! certificate, same spool): its new readings are stored once. A second restore into the
//! now populated database is refused.

use std::time::Duration;

use beffroi_tests::platform::{test_database_url, TestDatabase};
use beffroi_tests::{input, Platform, PlatformSpec};
use serde_json::json;

use crate::common::{
    assert_exactly_once, jsonl_agent, range, recent_base, unique_tenant, wait_stored, Scenario,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_on_sqlite() -> anyhow::Result<()> {
    backup_and_restore("backup-sqlite", None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_on_postgres() -> anyhow::Result<()> {
    let Some(url) = test_database_url("backup_and_restore_on_postgres")? else {
        return Ok(());
    };
    backup_and_restore("backup-postgres", Some(url)).await
}

/// A PostgreSQL database of the server at `url` (kept while the handle lives) and its URL,
/// or SQLite in the platform's data directory.
async fn database(url: Option<&str>) -> anyhow::Result<(Option<String>, Option<TestDatabase>)> {
    match url {
        Some(url) => {
            let database = TestDatabase::create(url).await?;
            Ok((Some(database.url.clone()), Some(database)))
        }
        None => Ok((None, None)),
    }
}

async fn backup_and_restore(name: &'static str, server: Option<String>) -> anyhow::Result<()> {
    let scenario = Scenario::new(name)?;
    let (url, _original_db) = database(server.as_deref()).await?;
    let mut original = scenario.platform(
        "original",
        &PlatformSpec {
            database: url,
            ..PlatformSpec::default()
        },
    )?;
    let tenant = unique_tenant("backup");
    original.create_tenant(&tenant).await?;
    let admin = original.create_token(&tenant, "admin").await?;
    original.start().await?;
    let gw = original.enroll_gateway(&tenant, "gw-1").await?;
    let api = original.api_as(&admin);

    let base = recent_base();
    let first = input::readings_from(base, 0, 400);
    let file = gw.dir.join("first.jsonl");
    std::fs::write(&file, input::jsonl(&first))?;
    let mut agent = gw.agent(jsonl_agent(&file, false), original.gate_port)?;
    agent.start()?;
    let stored = wait_stored(&api, range(base), first.len(), &[&original.log]).await?;
    assert_exactly_once(&stored, &[("gw-1", &first)]);
    agent.kill9()?;

    let rule = json!({"id": "r-gaps", "name": "gaps", "severity": "warning",
        "condition": {"kind": "spool_gap"}});
    let created = api.post_json("/api/v1/alarm-rules", &rule).await?;
    assert_eq!(created.status, 201, "{}", created.body);
    let rules = api.get_json("/api/v1/alarm-rules").await?;
    original.cli(&["audit", "checkpoint"]).await?;

    // Backed up while it runs.
    let backup = scenario.path("backup");
    let out = original
        .cli(&["backup", "--out", &backup.display().to_string()])
        .await?;
    eprintln!("{name}: {}", out.trim());
    assert!(backup.join("manifest.json").exists(), "{out}");
    stop(&mut original).await?;

    // Restored into a fresh database and data directory, and started.
    let (url, _restored_db) = database(server.as_deref()).await?;
    let mut restored = scenario.platform(
        "restored",
        &PlatformSpec {
            database: url,
            ..PlatformSpec::default()
        },
    )?;
    let from = backup.display().to_string();
    let out = restored.cli(&["restore", "--from", &from]).await?;
    eprintln!("{name}: {}", out.trim());
    restored.start().await?;
    let api = restored.api_as(&admin);
    let after = api.readings(range(base).0, range(base).1).await?;
    assert_eq!(after.len(), stored.len(), "readings after the restore");
    for (before, after) in stored.iter().zip(&after) {
        assert_eq!(
            (&before.gateway, before.seq, before.reading()),
            (&after.gateway, after.seq, after.reading()),
            "a reading differs after the restore"
        );
    }
    assert_eq!(api.get_json("/api/v1/alarm-rules").await?, rules);
    let report = restored
        .cli(&["audit", "verify", "--tenant", &tenant])
        .await?;
    assert!(
        report.contains("checkpoints: ") && !report.contains("checkpoints: none"),
        "the backed-up checkpoint verifies:\n{report}"
    );

    // The same agent, same keys and certificate, sends to the restored platform.
    let second = input::readings_from(base, 10_000, 200);
    let file = gw.dir.join("second.jsonl");
    std::fs::write(&file, input::jsonl(&second))?;
    let mut agent = gw.agent(jsonl_agent(&file, false), restored.gate_port)?;
    agent.start()?;
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    let stored = wait_stored(&api, range(base), all.len(), &[&restored.log]).await?;
    assert_exactly_once(&stored, &[("gw-1", &all)]);
    agent.kill9()?;

    // Not over a populated database.
    let error = restored
        .cli(&["restore", "--from", &from])
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        error.contains("refusing to restore"),
        "a second restore over the populated database: {error}"
    );
    stop(&mut restored).await?;
    scenario.pass();
    Ok(())
}

async fn stop(platform: &mut Platform) -> anyhow::Result<()> {
    let (status, _) = platform.terminate(Duration::from_secs(10)).await?;
    anyhow::ensure!(status.success(), "the platform exited with {status}");
    Ok(())
}
