//! Scenario 9 (issue #8): the tamper-evident audit log, end to end, on SQLite and on
//! PostgreSQL. Changes made through the CLI (token, gateway registration and revocation) and
//! the API (alarm rule, zone) and a read of the log are recorded; `beffroi audit checkpoint`
//! signs the head and `beffroi audit verify` passes and lists the accesses. Then the
//! database is tampered with behind the platform's back — an entry edited, one removed, two
//! swapped, one made unreadable, a checkpoint forged — and each time `verify` exits 1 naming
//! the seq, and passes again once the damage is undone; `beffroi audit checkpoint` refuses
//! to sign over an edited entry.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use beffroi_tests::platform::{psql, run_platform, test_database_url, TestDatabase};
use beffroi_tests::{Platform, PlatformSpec};
use serde_json::json;

use crate::common::{unique_tenant, Scenario};

/// Where the scenario's SQL goes.
enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Database {
    /// Runs `sql` (one or more statements) behind the platform's back.
    async fn run(&self, sql: &str) -> anyhow::Result<()> {
        match self {
            Database::Sqlite(path) => {
                let output = Command::new("sqlite3")
                    .args(["-bail", "-cmd", ".timeout 10000"])
                    .arg(path)
                    .arg(sql)
                    .output()?;
                anyhow::ensure!(
                    output.status.success(),
                    "sqlite3 {sql:?}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                Ok(())
            }
            Database::Postgres(url) => psql(url, sql).await,
        }
    }
}

/// `beffroi audit verify --tenant T [args]`: exit code, standard output, standard error.
async fn verify(
    platform: &Platform,
    tenant: &str,
    args: &[&str],
) -> anyhow::Result<(i32, String, String)> {
    let mut all: Vec<OsString> = vec![
        "--config".into(),
        platform.config.clone().into(),
        "audit".into(),
        "verify".into(),
        "--tenant".into(),
        tenant.into(),
    ];
    all.extend(args.iter().map(OsString::from));
    let output = run_platform(all).await?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// Asserts that `verify` passes.
async fn assert_intact(platform: &Platform, tenant: &str, when: &str) -> anyhow::Result<String> {
    let (code, out, err) = verify(platform, tenant, &[]).await?;
    assert_eq!(code, 0, "{when}: verify failed:\n{out}{err}");
    assert!(out.contains("result: OK"), "{when}:\n{out}");
    Ok(out)
}

/// Asserts that `verify` exits 1 and names `seq` with `problem` (a line of the report).
async fn assert_tampered(
    platform: &Platform,
    tenant: &str,
    seq: u64,
    problem: &str,
) -> anyhow::Result<()> {
    let (code, out, err) = verify(platform, tenant, &[]).await?;
    assert_eq!(code, 1, "expected {problem:?}, verify said:\n{out}{err}");
    assert!(out.contains(problem), "expected {problem:?} in:\n{out}");
    assert!(
        err.contains(&format!("the first at seq {seq}")),
        "expected seq {seq} on stderr: {err}"
    );
    Ok(())
}

async fn scenario(name: &'static str, database: Option<TestDatabase>) -> anyhow::Result<()> {
    let scenario = Scenario::new(name)?;
    let spec = PlatformSpec {
        database: database.as_ref().map(|d| d.url.clone()),
        ..PlatformSpec::default()
    };
    let mut platform = scenario.platform("platform", &spec)?;
    let mut config = std::fs::read_to_string(&platform.config)?;
    // Checkpoints by hand only (`beffroi audit checkpoint`), so that the test decides.
    config.push_str("[audit]\ncheckpoint_interval_s = 86400\n");
    std::fs::write(&platform.config, config)?;
    let db = match &database {
        Some(d) => Database::Postgres(d.url.clone()),
        None => Database::Sqlite(platform.data_dir.join("beffroi.db")),
    };

    // Changes through the CLI: seq 1 token, 2 gateway, 3 certificate.
    let tenant = unique_tenant("audit");
    platform.create_tenant(&tenant).await?;
    let token = platform.create_token(&tenant, "admin").await?;
    let gateway = platform.enroll(&tenant, "gw-1").await?;
    platform.start().await?;
    let api = platform.api_as(&token);
    // Through the API: seq 4 rule, 5 zone; then seq 6 the revocation (CLI).
    let rule = json!({"id": "r-gaps", "name": "gaps", "severity": "warning",
        "condition": {"kind": "spool_gap"}});
    let created = api.post_json("/api/v1/alarm-rules", &rule).await?;
    assert_eq!(created.status, 201, "{}", created.body);
    let zone = json!({"name": "Centre", "geometry": {"type": "Polygon",
        "coordinates": [[[4.0, 45.0], [4.1, 45.0], [4.1, 45.1], [4.0, 45.1], [4.0, 45.0]]]}});
    let put = api.put_json("/api/v1/zones/centre", &zone).await?;
    assert_eq!(put.status, 200, "{}", put.body);
    platform.revoke(&tenant, "gw-1").await?;
    // Reading the log is seq 7.
    let log = api.get_json("/api/v1/audit").await?;
    let kinds: Vec<_> = log["items"]
        .as_array()
        .map(|items| items.iter().map(|e| e["kind"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        kinds,
        [
            "token_change",
            "gateway_change",
            "certificate_change",
            "rule_change",
            "registry_change",
            "gateway_change"
        ],
        "{log}"
    );
    assert_eq!(
        log["items"][2]["detail"]["request"]["fingerprint"],
        gateway.fingerprint.as_str()
    );
    assert!(log["items"][0]["actor"]
        .as_str()
        .is_some_and(|a| a.starts_with("user:")));
    assert!(
        !log.to_string().contains(&token),
        "the token secret is never recorded"
    );

    let out = platform.cli(&["audit", "checkpoint"]).await?;
    assert!(out.contains(&tenant), "{out}");
    let report = assert_intact(&platform, &tenant, "untouched").await?;
    assert!(report.contains("entries"), "{report}");
    assert!(report.contains("checkpoints: "), "{report}");
    assert!(!report.contains("checkpoints: none"), "{report}");
    assert!(
        report.contains("by token:") && report.contains("own data"),
        "the read of the log is listed:\n{report}"
    );
    let (code, json_out, _) = verify(&platform, &tenant, &["--json"]).await?;
    assert_eq!(code, 0);
    let parsed: serde_json::Value = serde_json::from_str(&json_out)?;
    assert!(
        parsed["entries"].as_u64().is_some_and(|n| n >= 7),
        "{parsed}"
    );
    assert_eq!(parsed["first_bad_seq"], serde_json::Value::Null);
    let (code, _, err) = verify(&platform, "no-such-tenant", &[]).await?;
    assert_eq!(code, 2, "{err}");
    let public = platform.cli(&["audit", "public-key"]).await?;
    assert!(public.contains("-----BEGIN PUBLIC KEY-----"), "{public}");

    let t = tenant.as_str();
    // 1. An entry edited: seq 2's detail.
    db.run(&format!(
        "UPDATE audit_entries SET detail = replace(detail, 'register', 'enroll') \
         WHERE tenant = '{t}' AND seq = 2"
    ))
    .await?;
    assert_tampered(&platform, t, 2, "seq 2: altered").await?;
    db.run(&format!(
        "UPDATE audit_entries SET detail = replace(detail, 'enroll', 'register') \
         WHERE tenant = '{t}' AND seq = 2"
    ))
    .await?;
    assert_intact(&platform, t, "edit undone").await?;

    // 2. An entry removed: seq 3.
    db.run(&format!(
        "CREATE TABLE audit_kept AS SELECT * FROM audit_entries WHERE tenant = '{t}' AND seq = 3; \
         DELETE FROM audit_entries WHERE tenant = '{t}' AND seq = 3"
    ))
    .await?;
    assert_tampered(&platform, t, 3, "seq 3: missing").await?;
    db.run("INSERT INTO audit_entries SELECT * FROM audit_kept; DROP TABLE audit_kept")
        .await?;
    assert_intact(&platform, t, "removal undone").await?;

    // 3. Two entries swapped: seqs 4 and 5.
    let swap = format!(
        "UPDATE audit_entries SET seq = 1000000 WHERE tenant = '{t}' AND seq = 4; \
         UPDATE audit_entries SET seq = 4 WHERE tenant = '{t}' AND seq = 5; \
         UPDATE audit_entries SET seq = 5 WHERE tenant = '{t}' AND seq = 1000000"
    );
    db.run(&swap).await?;
    assert_tampered(&platform, t, 4, "seq 4: altered").await?;
    db.run(&swap).await?;
    assert_intact(&platform, t, "swap undone").await?;

    // 4. An entry that no longer decodes: seq 5.
    db.run(&format!(
        "CREATE TABLE audit_kept AS SELECT * FROM audit_entries WHERE tenant = '{t}' AND seq = 5; \
         UPDATE audit_entries SET detail = 'not json' WHERE tenant = '{t}' AND seq = 5"
    ))
    .await?;
    assert_tampered(&platform, t, 5, "seq 5: unreadable").await?;
    db.run(&format!(
        "DELETE FROM audit_entries WHERE tenant = '{t}' AND seq = 5; \
         INSERT INTO audit_entries SELECT * FROM audit_kept; DROP TABLE audit_kept"
    ))
    .await?;
    assert_intact(&platform, t, "unreadable entry undone").await?;

    // 5. An entry after the last checkpoint edited: the checkpointer refuses to sign.
    let created = api
        .post_json(
            "/api/v1/alarm-rules",
            &json!({"id": "r-late", "name": "late",
            "severity": "warning", "condition": {"kind": "spool_gap"}}),
        )
        .await?;
    assert_eq!(created.status, 201, "{}", created.body);
    let head: u64 = 8;
    db.run(&format!(
        "UPDATE audit_entries SET detail = replace(detail, 'late', 'early') \
         WHERE tenant = '{t}' AND seq = {head}"
    ))
    .await?;
    let mut args: Vec<OsString> = vec!["--config".into(), platform.config.clone().into()];
    args.extend(["audit", "checkpoint"].map(OsString::from));
    let output = run_platform(args).await?;
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains(&format!("TAMPERED from seq {head}")), "{out}");
    assert_tampered(&platform, t, head, &format!("seq {head}: altered")).await?;
    let (_, out, _) = verify(&platform, t, &[]).await?;
    assert!(
        out.contains(&format!("not yet checkpointed: seq {head}")),
        "nothing signed over it:\n{out}"
    );
    db.run(&format!(
        "UPDATE audit_entries SET detail = replace(detail, 'early', 'late') \
         WHERE tenant = '{t}' AND seq = {head}"
    ))
    .await?;
    platform.cli(&["audit", "checkpoint"]).await?;
    let out = assert_intact(&platform, t, "late edit undone").await?;
    assert!(!out.contains("not yet checkpointed"), "{out}");

    // 6. A forged checkpoint: the last one's signature copied onto seq 1.
    db.run(&format!(
        "INSERT INTO audit_checkpoints (tenant, seq, head, time, key_id, signature) \
         SELECT tenant, 1, head, time, key_id, signature FROM audit_checkpoints \
         WHERE tenant = '{t}' AND seq = (SELECT max(seq) FROM audit_checkpoints WHERE tenant = '{t}')"
    ))
    .await?;
    assert_tampered(&platform, t, 1, "checkpoint at seq 1: forged").await?;

    platform.terminate(Duration::from_secs(10)).await?;
    drop(database);
    scenario.pass();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_on_sqlite() -> anyhow::Result<()> {
    scenario("audit-sqlite", None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_on_postgres() -> anyhow::Result<()> {
    let Some(url) = test_database_url("audit_log_on_postgres")? else {
        return Ok(());
    };
    let database = TestDatabase::create(&url).await?;
    scenario("audit-postgres", Some(database)).await
}
