//! Scenario 6 (issue #10): two and three platform nodes on one external broker (a Mosquitto
//! of the scenario's own, MQTT 5 with `$share`) and one database (a fresh PostgreSQL
//! database, or a shared SQLite file when PostgreSQL is not configured outside CI), with one
//! PKI directory made once by `beffroi pki init` — no file copied between nodes. Agents are
//! split across the gates while they stream.
//!
//! Checked on every node: every batch is stored once; a live client sees, for each series,
//! the newest stored value, whichever node committed it (the cluster relay); exactly one node
//! runs the alert engine. With three nodes, the node running the alert engine is killed -9
//! while agents stream: another node takes the engine over, a threshold crossed afterwards
//! raises one alarm, pushed live to every node and acknowledged through another; the killed
//! node comes back (as an orchestrator restarts it) and its agents drain their spools.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use beffroi_protocol::{MetricName, Reading, SensorId, Timestamp, Unit, Value};
use beffroi_tests::agent::{AgentSpec, SourceSpec};
use beffroi_tests::broker::Broker;
use beffroi_tests::input;
use beffroi_tests::live::LiveClient;
use beffroi_tests::platform::{pki_init, shared_database, BrokerSpec, Platform};
use beffroi_tests::wait::poll_until;
use beffroi_tests::PlatformSpec;
use serde_json::json;

use crate::common::{
    assert_exactly_once, feed, jsonl_agent, range, recent_base, unique_tenant, wait_stored,
    Scenario,
};

/// Readings per gateway; two gateways per node.
const PER_GATEWAY: usize = 1500;
/// Time allowed for cluster-wide conditions (relay, lease take-over, live frames).
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_one_broker_one_database() -> anyhow::Result<()> {
    cluster("two-nodes", 2, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_the_alert_node_killed_under_load() -> anyhow::Result<()> {
    cluster("three-nodes", 3, true).await
}

async fn cluster(name: &'static str, count: usize, kill: bool) -> anyhow::Result<()> {
    let scenario = Scenario::new(name)?;
    let broker = Broker::start_private(&scenario.path("broker")).await?;
    let (database, _database) = shared_database(name, &scenario.path("shared.db")).await?;
    let pki = scenario.path("pki");
    pki_init(&pki).await?;
    let spec = PlatformSpec {
        database: Some(database),
        broker: BrokerSpec::External(broker.addr()),
        pki_dir: Some(pki),
        ..PlatformSpec::default()
    };
    let mut nodes: Vec<Platform> = (1..=count)
        .map(|n| scenario.platform(&format!("node-{n}"), &spec))
        .collect::<anyhow::Result<_>>()?;
    let tenant = unique_tenant(name);
    nodes[0].create_tenant(&tenant).await?;
    let admin = nodes[0].create_token(&tenant, "admin").await?;
    let mut gateways = Vec::new();
    for n in 0..2 * count {
        gateways.push(nodes[0].enroll(&tenant, &format!("gw-{n}")).await?);
    }
    let alarm_gateway = nodes[0].enroll(&tenant, "gw-alarm").await?;
    for node in &mut nodes {
        node.start().await?;
    }
    for node in &nodes {
        let api = node.api();
        poll_until(
            "the cluster relay subscribed",
            WAIT,
            || async {
                let up = api.metric("beffroi_cluster_relay_connected").await? == 1.0;
                Ok(up.then_some(()))
            },
            || node.log_text(),
        )
        .await?;
    }
    let leader = the_alert_node(&nodes, &[]).await?;

    // Rules made through one node reach the engine wherever it runs.
    let rule = json!({"name": "PM2.5 high at the school", "severity": "major", "condition":
        {"kind": "threshold", "metric": "air.pm25", "sensors": ["school"], "op": "gt",
         "value": 50, "for_s": 0}});
    let response = nodes[(leader + 1) % count]
        .api_as(&admin)
        .post_json("/api/v1/alarm-rules", &rule)
        .await?;
    assert_eq!(response.status, 201, "{}", response.body);

    let mut watchers = Vec::new();
    for node in &nodes {
        watchers.push(Watcher::start(node, &admin).await?);
    }

    // Two gateways per node's gate, streaming over a few seconds.
    let base = recent_base();
    let inputs: Vec<Vec<Reading>> = (0..2 * count)
        .map(|n| input::readings_from(base, n * PER_GATEWAY, PER_GATEWAY))
        .collect();
    let mut agents = Vec::new();
    let mut files = Vec::new();
    for (n, (gateway, readings)) in gateways.iter().zip(&inputs).enumerate() {
        let file = gateway.dir.join("readings.jsonl");
        std::fs::write(&file, "")?;
        files.push((file.clone(), input::jsonl(readings)));
        let mut agent = gateway.agent(jsonl_agent(&file, true), nodes[n % count].gate_port)?;
        agent.start()?;
        agents.push(agent);
    }
    let feeding = feed(files);

    let mut alive: Vec<usize> = (0..count).collect();
    if kill {
        // While they stream: the node running the alert engine dies.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        nodes[leader].kill9()?;
        alive.retain(|&n| n != leader);
        let heir = the_alert_node(&nodes, &alive).await?;
        assert_ne!(heir, leader);
    }

    // A threshold crossed through a surviving node's gate: one alarm, on every node.
    let mut alarm_spec = AgentSpec::new("gw-alarm", SourceSpec::JsonlStdin);
    alarm_spec.max_readings = 1;
    alarm_spec.max_linger_ms = 10;
    let mut alarm_agent = alarm_gateway.agent(alarm_spec, nodes[alive[0]].gate_port)?;
    alarm_agent.start()?;
    let school = [school_pm25(80.0, Timestamp::now())];
    alarm_agent.feed(input::jsonl(&school)).await?;
    for &n in &alive {
        let frame = watchers[n]
            .until(|f| f["type"] == "alarm" && f["alarm"]["state"] == "open")
            .await?;
        assert_eq!(frame["alarm"]["value"], 80.0, "node-{}: {frame}", n + 1);
    }
    let alarms = nodes[alive[0]]
        .api_as(&admin)
        .get_json("/api/v1/alarms")
        .await?;
    let alarms = alarms["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(alarms.len(), 1, "one alarm for one crossing: {alarms:?}");
    assert_eq!(alarms[0]["occurrences"], 1, "{alarms:?}");
    let id = alarms[0]["id"].as_i64().unwrap_or_default();
    let response = nodes[*alive.last().unwrap_or(&0)]
        .api_as(&admin)
        .post_json(
            &format!("/api/v1/alarms/{id}/acknowledge"),
            &json!({"comment": "on it"}),
        )
        .await?;
    assert_eq!(response.status, 200, "{}", response.body);
    for &n in &alive {
        watchers[n]
            .until(|f| f["type"] == "alarm" && f["alarm"]["state"] == "acknowledged")
            .await?;
    }

    if kill {
        // The orchestrator restarts the node; its agents reconnect and drain their spools.
        nodes[leader].start().await?;
        watchers[leader] = Watcher::start(&nodes[leader], &admin).await?;
    }
    feeding.await??;

    let logs: Vec<&Path> = nodes.iter().map(|n| n.log.as_path()).collect();
    let api = nodes[0].api_as(&admin);
    let (from, to) = range(base);
    let stored = wait_stored(&api, (from, to), 2 * count * PER_GATEWAY + 1, &logs).await?;
    let expected: Vec<(&str, &[Reading])> = gateways
        .iter()
        .zip(&inputs)
        .map(|(g, r)| (g.gateway.as_str(), r.as_slice()))
        .chain([("gw-alarm", &school[..])])
        .collect();
    assert_exactly_once(&stored, &expected);
    for node in &nodes[1..] {
        let other = node.api_as(&admin).readings(from, to).await?;
        assert_eq!(other.len(), stored.len(), "the same through every node");
    }

    // Every node's live view ends on the newest stored value of every series.
    let mut newest: BTreeMap<String, (Timestamp, f64)> = BTreeMap::new();
    for reading in stored.iter().map(|r| r.reading()) {
        if let (true, Value::Number(value)) = (reading.metric.as_str() == "air.pm25", reading.value)
        {
            let entry = newest
                .entry(reading.sensor.to_string())
                .or_insert((reading.time, value));
            if reading.time > entry.0 {
                *entry = (reading.time, value);
            }
        }
    }
    let newest: BTreeMap<String, f64> = newest.into_iter().map(|(s, (_, v))| (s, v)).collect();
    for (n, watcher) in watchers.iter_mut().enumerate() {
        watcher
            .ends_on(&newest)
            .await
            .map_err(|e| e.context(format!("node-{}'s live view", n + 1)))?;
    }

    let mut committed = Vec::new();
    for node in &nodes {
        let api = node.api();
        committed.push(api.metric("beffroi_ingest_readings_total").await?);
        let received = api
            .metric("beffroi_cluster_relayed_total{direction=\"received\"}")
            .await?;
        assert!(
            received > 0.0,
            "{} heard nothing from the others",
            node.dir.display()
        );
    }
    eprintln!(
        "{name}: {} readings stored once; committed per node (since its last start): {committed:?}",
        stored.len()
    );

    alarm_agent.kill9()?;
    for agent in &mut agents {
        agent.kill9()?;
    }
    for node in &mut nodes {
        let (status, _) = node.terminate(Duration::from_secs(8)).await?;
        assert!(
            status.success(),
            "{} exited with {status}",
            node.dir.display()
        );
    }
    scenario.pass();
    Ok(())
}

/// The index of the one node among `among` (all when empty) that runs the alert engine, once
/// exactly one does.
async fn the_alert_node(nodes: &[Platform], among: &[usize]) -> anyhow::Result<usize> {
    let among: Vec<usize> = if among.is_empty() {
        (0..nodes.len()).collect()
    } else {
        among.to_vec()
    };
    poll_until(
        "exactly one node running the alert engine",
        WAIT,
        || async {
            let mut leaders = Vec::new();
            for &n in &among {
                if nodes[n].api().metric("beffroi_alerts_leader").await? == 1.0 {
                    leaders.push(n);
                }
            }
            Ok((leaders.len() == 1).then(|| leaders[0]))
        },
        || format!("among nodes {among:?}"),
    )
    .await
}

/// A live client on one node following alarms and PM2.5 readings; it remembers, per sensor,
/// the newest reading it was sent, whatever else it waits for.
struct Watcher {
    client: LiveClient,
    newest: BTreeMap<String, (Timestamp, f64)>,
}

impl Watcher {
    /// Connects to `node` and subscribes (the readings' snapshot frames, which may come before
    /// the answer to the subscription, are read like any other).
    async fn start(node: &Platform, token: &str) -> anyhow::Result<Self> {
        let mut client = LiveClient::connect(node.api_addr(), token).await?;
        let subscribed = client
            .subscribe(json!({"id": "alarms", "stream": "alarms", "snapshot": false}))
            .await?;
        anyhow::ensure!(subscribed["type"] == "subscribed", "{subscribed}");
        client
            .send(
                &json!({"type": "subscribe", "id": "pm", "stream": "readings",
                "filter": {"metrics": ["air.pm25"]}}),
            )
            .await?;
        Ok(Self {
            client,
            newest: BTreeMap::new(),
        })
    }

    /// The first frame for which `wanted` holds, within [`WAIT`]; readings frames on the
    /// way are remembered.
    async fn until(
        &mut self,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> anyhow::Result<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.client.until(left, |_| true).await?;
            self.remember(&frame);
            if wanted(&frame) {
                return Ok(frame);
            }
        }
    }

    fn remember(&mut self, frame: &serde_json::Value) {
        if frame["type"] != "readings" || frame["sub"] != "pm" {
            return;
        }
        for item in frame["items"].as_array().into_iter().flatten() {
            let (Some(sensor), Some(time), Some(value)) = (
                item["sensor"].as_str(),
                item["time"].as_str().and_then(Timestamp::parse_rfc3339),
                item["value"].as_f64(),
            ) else {
                continue;
            };
            if self
                .newest
                .get(sensor)
                .is_none_or(|(known, _)| time >= *known)
            {
                self.newest.insert(sensor.to_owned(), (time, value));
            }
        }
    }

    /// Reads frames until, for every sensor of `expected`, the newest value it was sent is
    /// the expected one.
    async fn ends_on(&mut self, expected: &BTreeMap<String, f64>) -> anyhow::Result<()> {
        let matches = |newest: &BTreeMap<String, (Timestamp, f64)>| {
            expected
                .iter()
                .all(|(sensor, value)| newest.get(sensor).is_some_and(|(_, v)| v == value))
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        while !matches(&self.newest) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.client.until(left, |_| true).await.map_err(|error| {
                error.context(format!("expected {expected:?}, saw {:?}", self.newest))
            })?;
            self.remember(&frame);
        }
        Ok(())
    }
}

fn school_pm25(value: f64, time: Timestamp) -> Reading {
    Reading {
        sensor: SensorId::new("school").expect("valid sensor id"),
        metric: MetricName::new("air.pm25").expect("valid metric"),
        unit: Unit::new("ug/m3").expect("valid unit"),
        time,
        value: Value::Number(value),
    }
}
