//! Observability (issue #10), against a running platform: the metrics reference
//! (`docs/metrics.md`) and the example Grafana dashboard (`deploy/grafana/beffroi.json`)
//! name exactly what `/metrics` exposes, and the embedded broker's own events reach the log
//! at their level: clients that drop their connection abruptly leave DEBUG lines and no
//! ERROR, while a broker listener that cannot bind is an ERROR. The process runs with the
//! allocator option it sets for itself.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use beffroi_tests::wait::poll_until;
use beffroi_tests::{Platform, PlatformSpec, DEFAULT_TIMEOUT};

use crate::common::Scenario;

/// The broker's events in the log, DEBUG included.
const BROKER_DEBUG: &str = "info,beffroi::broker=debug";

fn repository_file(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every metric of a Prometheus text exposition and its type, from its `# TYPE` lines.
fn exposed(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

/// The metrics `docs/metrics.md` lists: table rows whose first cell is a backquoted
/// `beffroi_…` or `process_…` name, and their type (second cell).
fn documented(reference: &str) -> BTreeMap<String, String> {
    reference
        .lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix('|')?.split('|').map(str::trim);
            let name = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let kind = cells.next()?;
            (name.starts_with("beffroi_") || name.starts_with("process_"))
                .then(|| (name.to_owned(), kind.to_owned()))
        })
        .collect()
}

/// The metric names the dashboard's PromQL expressions and variables use, with a histogram's
/// series (`_bucket`, `_sum`, `_count`) mapped to the histogram.
fn dashboard_metrics(dashboard: &str, exposed: &BTreeMap<String, String>) -> Vec<String> {
    let mut names: Vec<String> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("beffroi_"))
        .map(|series| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = series.strip_suffix(suffix)?;
                    (exposed.get(base).map(String::as_str) == Some("histogram"))
                        .then(|| base.to_owned())
                })
                .unwrap_or_else(|| series.to_owned())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_reference_and_dashboard_match_the_exposition() -> anyhow::Result<()> {
    let scenario = Scenario::new("metrics")?;
    let mut platform = scenario.platform("platform", &PlatformSpec::default())?;
    platform.start().await?;
    let response = platform.api().get("/metrics").await?;
    anyhow::ensure!(response.status == 200, "GET /metrics: {}", response.status);
    let exposed = exposed(&response.body);
    assert!(exposed.len() > 30, "{}", response.body);

    let documented = documented(&repository_file("docs/metrics.md"));
    let undocumented: Vec<_> = exposed
        .keys()
        .filter(|name| !documented.contains_key(*name))
        .collect();
    assert!(
        undocumented.is_empty(),
        "exposed but not in docs/metrics.md: {undocumented:?}"
    );
    let absent: Vec<_> = documented
        .keys()
        .filter(|name| !exposed.contains_key(*name))
        .collect();
    assert!(
        absent.is_empty(),
        "in docs/metrics.md but not exposed: {absent:?}"
    );
    for (name, kind) in &exposed {
        assert_eq!(
            &documented[name], kind,
            "the type of {name} in docs/metrics.md"
        );
    }

    let dashboard = repository_file("deploy/grafana/beffroi.json");
    let json: serde_json::Value = serde_json::from_str(&dashboard)?;
    assert!(json["panels"].as_array().is_some_and(|p| p.len() > 10));
    let used = dashboard_metrics(&dashboard, &exposed);
    assert!(used.len() > 20, "{used:?}");
    let unknown: Vec<_> = used
        .iter()
        .filter(|name| !exposed.contains_key(*name))
        .collect();
    assert!(
        unknown.is_empty(),
        "deploy/grafana/beffroi.json queries metrics the platform does not expose: {unknown:?}"
    );
    scenario.pass();
    Ok(())
}

/// An MQTT 5 CONNECT with client id `probe`, keep-alive 60 s.
const CONNECT_V5: [u8; 20] = [
    0x10, 18, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 5, b'p', b'r', b'o', b'b', b'e',
];

/// Connects to the embedded broker's MQTT 5 listener, is accepted, then drops the socket:
/// between two packets when `torn` is false, in the middle of one when it is true.
fn connect_and_drop(port: u16, torn: bool) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(&CONNECT_V5)?;
    let mut connack = [0_u8; 2];
    stream.read_exact(&mut connack)?;
    anyhow::ensure!(connack[0] == 0x20, "expected a CONNACK, got {connack:?}");
    if torn {
        // The first bytes of a PUBLISH whose remaining length promises more.
        stream.write_all(&[0x30, 100, 0])?;
    }
    Ok(())
}

/// The log lines of `platform` at `level` from the target `beffroi::broker`.
fn broker_lines(platform: &Platform, level: &str) -> Vec<String> {
    let marker = format!(" {level} beffroi::broker: ");
    platform
        .log_text()
        .lines()
        .filter(|line| line.contains(&marker))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_events_are_logged_at_their_level() -> anyhow::Result<()> {
    let scenario = Scenario::new("broker-logs")?;
    let spec = PlatformSpec {
        log_filter: Some(BROKER_DEBUG.to_owned()),
        ..PlatformSpec::default()
    };
    let mut platform = scenario.platform("platform", &spec)?;
    platform.start().await?;
    let port = platform.broker_v5_port.unwrap();
    connect_and_drop(port, false)?;
    connect_and_drop(port, true)?;
    // A socket that closes before its CONNECT (a port probe, a load balancer's check).
    drop(TcpStream::connect(("127.0.0.1", port))?);
    poll_until(
        "the broker's DEBUG lines for the dropped connections",
        DEFAULT_TIMEOUT,
        || {
            let lines = broker_lines(&platform, "DEBUG");
            let dropped = lines
                .iter()
                .filter(|l| l.contains(" disconnected "))
                .count();
            let unconnected = lines
                .iter()
                .any(|l| l.contains("Error while handling MQTT connect packet"));
            async move { Ok((dropped >= 2 && unconnected).then_some(())) }
        },
        || platform.log_text(),
    )
    .await?;
    let mut errors: Vec<String> = platform
        .log_text()
        .lines()
        .filter(|line| line.contains(" ERROR "))
        .map(str::to_owned)
        .collect();
    errors.extend(broker_lines(&platform, "WARN"));
    assert!(errors.is_empty(), "{errors:#?}");

    // A real problem: the second platform's broker listener cannot bind its port.
    let mut second = scenario.platform("second", &spec)?;
    let taken = TcpListener::bind(("127.0.0.1", second.broker_v5_port.unwrap()))?;
    second.spawn()?;
    let error = poll_until(
        "an ERROR from the broker whose listener cannot bind",
        DEFAULT_TIMEOUT,
        || {
            let line = broker_lines(&second, "ERROR")
                .into_iter()
                .find(|l| l.contains("Server error - V5"));
            async move { Ok(line) }
        },
        || second.log_text(),
    )
    .await?;
    assert!(error.contains("AddrInUse"), "{error}");
    drop(taken);
    scenario.pass();
    Ok(())
}

/// `beffroi` runs on jemalloc (`platform/src/main.rs`; docs/benchmarks.md, "Soak") and its
/// metrics show the allocator's figures: they are rendered only where jemalloc is the global
/// allocator, and they must be consistent with each other and with the process's resident size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_runs_on_jemalloc_and_reports_it() -> anyhow::Result<()> {
    let scenario = Scenario::new("allocator")?;
    let mut platform = scenario.platform("platform", &PlatformSpec::default())?;
    platform.start().await?;
    let api = platform.api();
    let allocated = api.metric("beffroi_allocator_allocated_bytes").await?;
    let active = api.metric("beffroi_allocator_active_bytes").await?;
    let resident = api.metric("beffroi_allocator_resident_bytes").await?;
    let process = api.metric("process_resident_memory_bytes").await?;
    // A running platform (runtime, broker, store pool, API) holds megabytes on its heap.
    assert!(allocated > 1_048_576.0, "allocated {allocated}");
    assert!(
        allocated <= active,
        "allocated {allocated} > active {active}"
    );
    assert!(active <= resident, "active {active} > resident {resident}");
    // The allocator's resident pages are part of the process's, read a moment later.
    assert!(
        resident <= process * 1.1,
        "allocator resident {resident} > process resident {process}"
    );
    scenario.pass();
    Ok(())
}
