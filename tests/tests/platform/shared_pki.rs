//! Scenario 12: one trust domain for several nodes (issue #10, docs/gateway-identity.md,
//! "Several nodes"). `beffroi pki init` makes the PKI directory once; two platform processes
//! on one database and one Mosquitto of the scenario's own both point `pki.dir` at it, made read-only
//! (0500, files 0400), and start without writing to it (checked by content and mtime: the
//! tests run as root, which permissions do not stop). No file is copied between nodes:
//!
//! - an enrollment token made through node 1's API is redeemed by a real agent at node 2's
//!   enrollment endpoint (the pin matches: both serve the one gate certificate), and the agent
//!   sends through node 1's gate;
//! - the gateway revoked through node 2's API is cut at node 1's gate within about a second
//!   (the revocation source is the shared database) and its reconnects are refused.
//!
//! A node given a provisioned directory that lacks a file refuses to start, naming the file
//! and the command that makes the set.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use beffroi_tests::broker::Broker;
use beffroi_tests::enroll::enroll;
use beffroi_tests::gate_client::GateClient;
use beffroi_tests::input;
use beffroi_tests::platform::{pki_init, shared_database, BrokerSpec};
use beffroi_tests::wait::poll_until;
use beffroi_tests::PlatformSpec;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::common::{
    assert_exactly_once, jsonl_agent, range, recent_base, unique_tenant, wait_stored, Scenario,
};

const CONNECT: Duration = Duration::from_secs(10);

/// Every entry of a directory (and the directory itself) with its SHA-256, mode and mtime.
type Snapshot = Vec<(PathBuf, String, u32, SystemTime)>;

fn snapshot(dir: &Path) -> anyhow::Result<Snapshot> {
    let meta = std::fs::metadata(dir)?;
    let mut entries = vec![(
        dir.to_owned(),
        String::new(),
        meta.permissions().mode(),
        meta.modified()?,
    )];
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = std::fs::metadata(&path)?;
        let hash = format!("{:x}", Sha256::digest(std::fs::read(&path)?));
        entries.push((path, hash, meta.permissions().mode(), meta.modified()?));
    }
    entries.sort();
    Ok(entries)
}

/// `chmod 0400` every file of `dir` and `0500` the directory (or back to 0600/0700).
fn set_read_only(dir: &Path, read_only: bool) -> anyhow::Result<()> {
    let (file, directory) = if read_only {
        (0o400, 0o500)
    } else {
        (0o600, 0o700)
    };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        std::fs::set_permissions(entry?.path(), std::fs::Permissions::from_mode(file))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(directory))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_read_only_pki() -> anyhow::Result<()> {
    let scenario = Scenario::new("shared-pki")?;
    let broker = Broker::start_private(&scenario.path("broker")).await?;
    let pki = scenario.path("pki");
    let printed = pki_init(&pki).await?;
    assert!(printed.contains("enrollment pin"), "{printed}");
    set_read_only(&pki, true)?;
    let before = snapshot(&pki)?;

    let (database, _database) = shared_database(
        "two_nodes_share_one_read_only_pki",
        &scenario.path("shared.db"),
    )
    .await?;
    let spec = PlatformSpec {
        database: Some(database),
        broker: BrokerSpec::External(broker.addr()),
        pki_dir: Some(pki.clone()),
        ..PlatformSpec::default()
    };
    let mut nodes = [
        scenario.platform("node-1", &spec)?,
        scenario.platform("node-2", &spec)?,
    ];
    let tenant = unique_tenant("shared");
    nodes[0].create_tenant(&tenant).await?;
    let admin = nodes[0].create_token(&tenant, "admin").await?;
    for node in &mut nodes {
        node.start().await?;
    }
    let (api_1, api_2) = (nodes[0].api_as(&admin), nodes[1].api_as(&admin));

    // A token made by node 1, redeemed at node 2: one gate certificate, one pin.
    let created = api_1
        .post_json("/api/v1/gateways", &json!({"id": "gw-1"}))
        .await?;
    assert_eq!(created.status, 201, "{}", created.body);
    let token = created.json()?["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no token in {}", created.body))?;
    let (mut gw, out) = enroll(&nodes[1].enroll_url(), &token, &scenario.path("gw-1"), &[]).await?;
    assert!(
        out.status.success(),
        "enrollment at node 2 with node 1's token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    gw.tenant.clone_from(&tenant);
    gw.gateway = "gw-1".into();

    // It sends through node 1's gate; node 2 serves what was stored.
    let base = recent_base();
    let readings = input::readings_from(base, 0, 300);
    let file = gw.dir.join("readings.jsonl");
    std::fs::write(&file, input::jsonl(&readings))?;
    let mut agent = gw.agent(jsonl_agent(&file, false), nodes[0].gate_port)?;
    agent.start()?;
    let logs = [&*nodes[0].log, &*nodes[1].log];
    let stored = wait_stored(&api_2, range(base), readings.len(), &logs).await?;
    assert_exactly_once(&stored, &[("gw-1", &readings)]);

    // Revoked through node 2: node 1's gate cuts the live connection.
    poll_until(
        "the agent connected to node 1's gate",
        Duration::from_secs(20),
        || async {
            let connections = api_1.metric("beffroi_gate_connections").await?;
            Ok((connections >= 1.0).then_some(()))
        },
        || nodes[0].log_text(),
    )
    .await?;
    let started = Instant::now();
    let revoked = api_2
        .post_json("/api/v1/gateways/gw-1/revoke", &json!({}))
        .await?;
    assert!(revoked.status < 300, "revoke: {}", revoked.body);
    poll_until(
        "node 1's gate cutting the gateway revoked at node 2",
        Duration::from_secs(5),
        || async {
            let connections = api_1.metric("beffroi_gate_connections").await?;
            Ok((connections == 0.0).then_some(()))
        },
        || nodes[0].log_text(),
    )
    .await?;
    let cut_after = started.elapsed();
    eprintln!("shared-pki: revoked at node 2, cut at node 1 after {cut_after:.0?}");
    // Node 1 reloads revocations every 500 ms; the rest is the API call and the polling.
    assert!(
        cut_after < Duration::from_millis(1500),
        "cut after {cut_after:?}"
    );
    let mut again = GateClient::connect(nodes[0].gate_port, gw.tls()?, "gw-1");
    assert!(
        again.connected(CONNECT).await?.is_err(),
        "the revoked gateway reconnected at node 1"
    );
    agent.kill9()?;

    for node in &mut nodes {
        let (status, _) = node.terminate(Duration::from_secs(8)).await?;
        assert!(status.success(), "a node exited with {status}");
    }
    assert_eq!(
        snapshot(&pki)?,
        before,
        "a node wrote to the shared PKI directory"
    );
    set_read_only(&pki, false)?;
    scenario.pass();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_shared_pki_is_refused_at_start() -> anyhow::Result<()> {
    let scenario = Scenario::new("shared-pki-incomplete")?;
    let pki = scenario.path("pki");
    pki_init(&pki).await?;
    std::fs::remove_file(pki.join("audit.key"))?;
    let spec = PlatformSpec {
        pki_dir: Some(pki.clone()),
        ..PlatformSpec::default()
    };
    let mut platform = scenario.platform("platform", &spec)?;
    let error = match platform.start().await {
        Ok(_) => anyhow::bail!("a node started without the shared audit key"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains(&pki.join("audit.key").display().to_string()),
        "{error}"
    );
    assert!(
        error.contains(&format!("beffroi pki init --dir {}", pki.display())),
        "{error}"
    );
    assert!(
        !pki.join("audit.key").exists(),
        "the node created a file in the shared directory"
    );
    scenario.pass();
    Ok(())
}
