//! Scenario 6: two platform processes on one external broker (the machine's Mosquitto on
//! 127.0.0.1:1883, MQTT 5 with `$share`) and one database (a fresh PostgreSQL database, or a
//! shared SQLite file when PostgreSQL is not configured outside CI), sharing one CA as the
//! nodes of one deployment do. Agents are split across the two gates; every batch is stored
//! once.

use std::time::Duration;

use beffroi_tests::input;
use beffroi_tests::platform::{test_database_url, BrokerSpec, TestDatabase};
use beffroi_tests::PlatformSpec;

use crate::common::{
    assert_exactly_once, jsonl_agent, range, recent_base, unique_tenant, wait_stored, write_jsonl,
    Scenario,
};

const BROKER: &str = "127.0.0.1:1883";
/// Readings per gateway; four gateways.
const PER_GATEWAY: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_platforms_one_broker() -> anyhow::Result<()> {
    let broker = BROKER.parse()?;
    if std::net::TcpStream::connect_timeout(&broker, Duration::from_secs(1)).is_err() {
        anyhow::ensure!(
            std::env::var_os("CI").is_none(),
            "two_platforms_one_broker needs an MQTT 5 broker on {BROKER} (Mosquitto)"
        );
        eprintln!("NOTICE: two_platforms_one_broker skipped: no broker on {BROKER}");
        return Ok(());
    }
    let scenario = Scenario::new("two-platforms")?;
    let _database;
    let database = match test_database_url("two_platforms_one_broker")? {
        Some(url) => {
            let created = TestDatabase::create(&url).await?;
            let url = created.url.clone();
            _database = Some(created);
            url
        }
        None => {
            eprintln!("two-platforms: sharing one SQLite file instead of PostgreSQL");
            format!("sqlite://{}?mode=rwc", scenario.path("shared.db").display())
        }
    };
    let spec = PlatformSpec {
        database: Some(database),
        broker: BrokerSpec::External(broker),
        ..PlatformSpec::default()
    };
    let mut nodes = [
        scenario.platform("node-1", &spec)?,
        scenario.platform("node-2", &spec)?,
    ];
    let tenant = unique_tenant("two");
    nodes[0].create_tenant(&tenant).await?;
    let token = nodes[0].create_token(&tenant, "viewer").await?;
    let mut gateways = Vec::new();
    for n in 1..=4 {
        gateways.push(nodes[0].enroll(&tenant, &format!("gw-{n}")).await?);
    }
    // One deployment, one CA: node-2 gets node-1's CA (certificate and key) before it starts.
    let (pki_1, pki_2) = (nodes[0].data_dir.join("pki"), nodes[1].data_dir.join("pki"));
    std::fs::create_dir_all(&pki_2)?;
    for file in ["ca.crt", "ca.key"] {
        std::fs::copy(pki_1.join(file), pki_2.join(file))?;
    }
    for node in &mut nodes {
        node.start().await?;
    }

    let base = recent_base();
    let inputs: Vec<_> = (0..4)
        .map(|n| input::readings_from(base, n * PER_GATEWAY, PER_GATEWAY))
        .collect();
    let mut agents = Vec::new();
    for (n, (gateway, readings)) in gateways.iter().zip(&inputs).enumerate() {
        let file = gateway.dir.join("readings.jsonl");
        write_jsonl(&file, readings)?;
        let node = &nodes[n % 2];
        let mut agent = gateway.agent(jsonl_agent(&file, false), node.gate_port)?;
        agent.start()?;
        agents.push(agent);
    }

    let api = nodes[1].api_as(&token);
    let logs = [&*nodes[0].log, &*nodes[1].log];
    let stored = wait_stored(&api, range(base), 4 * PER_GATEWAY, &logs).await?;
    let expected: Vec<(String, &[beffroi_protocol::Reading])> = gateways
        .iter()
        .zip(&inputs)
        .map(|(g, r)| (g.gateway.clone(), r.as_slice()))
        .collect();
    let expected: Vec<(&str, &[beffroi_protocol::Reading])> =
        expected.iter().map(|(g, r)| (g.as_str(), *r)).collect();
    assert_exactly_once(&stored, &expected);
    // The same through the other node's API.
    let other = nodes[0]
        .api_as(&token)
        .readings(range(base).0, range(base).1)
        .await?;
    assert_eq!(other.len(), stored.len());

    let mut split = Vec::new();
    for node in &nodes {
        split.push(node.api().metric("beffroi_ingest_readings_total").await?);
    }
    eprintln!(
        "two-platforms: {} readings stored once; committed by node-1 / node-2: {} / {}",
        stored.len(),
        split[0],
        split[1]
    );
    for agent in &mut agents {
        agent.kill9()?;
    }
    for node in &mut nodes {
        let (status, _) = node.terminate(Duration::from_secs(8)).await?;
        assert!(status.success(), "a node exited with {status}");
    }
    scenario.pass();
    Ok(())
}
