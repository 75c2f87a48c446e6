//! The agent's footprint benchmark (issue #2): `cargo bench -p beffroi-tests --bench
//! agent_footprint`. Not a timed test: it prints figures, budgets with PASS/FAIL markers and
//! ratios to a baseline measured in the same run; it fails only when the run itself is broken
//! (a process does not start, readings are lost).
//!
//! 1. **Binary**: builds the size-tuned agent (`cargo build --profile release-small -p
//!    beffroi-agent`, or takes `$BEFFROI_AGENT_BIN`), prints its size and checks with `file`
//!    that it is stripped.
//! 2. **Throughput**: runs that binary's `bench` subcommand (batch → sign → spool against a
//!    raw write of the same bytes).
//! 3. **Footprint at 100 and 1,000 readings/s** (issue #11): a plain local Mosquitto plays the
//!    gateway's sensor bus, where a publisher sends one JSON reading per message at the rate
//!    (one topic per metric). The agent forwards it with its `mqtt` source to the harness's
//!    sandbox (Mosquitto with mutual TLS, the verifying and commit-acking consumer); after a
//!    warm-up, RSS, CPU time and disk writes of the agent process over a fixed window (see
//!    [`support::footprint`]), then a check that every message the bus accepted reached the
//!    consumer exactly once.
//! 4. **Baseline**: ThingsBoard IoT Gateway from PyPI forwarding the same input from the same
//!    kind of bus to a ThingsBoard stand-in, measured the same way (see
//!    [`support::tb_gateway`]). Skipped with a message when Python or pip is unavailable or
//!    `BEFFROI_BENCH_BASELINE=skip`.
//!
//! `BEFFROI_BENCH_WINDOW_S` changes the measurement window (default 30 s);
//! `BEFFROI_BENCH_JSON=PATH` also writes the figures as a `beffroi-bench-record` record (what
//! `bench/report` plots).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use beffroi_bench_record::{Goal, Record};
use beffroi_tests::wait::poll_until;
use beffroi_tests::{AgentSpec, MqttMapping, Sandbox, SourceSpec};

use support::footprint::{self, Footprint};
use support::mqtt_load::{sensor_topic, Publisher, ThingsBoardStandIn, METRICS, SENSOR_TOPICS};
use support::plain_broker::PlainBroker;
use support::report::{kilobytes_per_s, megabytes, percent, print_table, Row, MB};
use support::tb_gateway::{Installation, TbGateway, CONNECTOR_CLIENT_ID, VERSION};

/// The input rates compared: readings per second, one per message on the sensor bus.
const RATES: [f64; 2] = [100.0, 1000.0];
/// Time between the first delivery and the start of the window.
const WARM_UP: Duration = Duration::from_secs(5);
/// Default measurement window.
const DEFAULT_WINDOW: Duration = Duration::from_secs(30);
/// How long the last readings may take to arrive after the source stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Budgets of DESIGN.md, "agent at 1k readings/s".
const RSS_BUDGET_BYTES: f64 = 10.0 * MB;
const CPU_BUDGET_PERCENT: f64 = 3.0;
const BINARY_BUDGET_BYTES: f64 = 8.0 * MB;

/// The gateway identity the benchmark's agent uses.
const TENANT: &str = "acme";
const GATEWAY: &str = "gw-footprint";
/// The agent's MQTT client id on the sensor bus.
const AGENT_CLIENT_ID: &str = "beffroi-agent-bench";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

fn window() -> anyhow::Result<Duration> {
    match std::env::var("BEFFROI_BENCH_WINDOW_S") {
        Ok(text) => Ok(Duration::from_secs(
            text.parse()
                .context("BEFFROI_BENCH_WINDOW_S must be whole seconds")?,
        )),
        Err(_) => Ok(DEFAULT_WINDOW),
    }
}

/// `$BEFFROI_AGENT_BIN`, else the release-small build of this workspace (built now).
fn agent_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("BEFFROI_AGENT_BIN") {
        println!("agent binary: $BEFFROI_AGENT_BIN");
        return Ok(PathBuf::from(path));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    // Cargo gives the running bench its package's variables; build scripts that watch them
    // (ring's watches CARGO_MANIFEST_DIR) would rebuild on every alternation between this
    // build and a plain `cargo build --profile release-small` if they leaked through.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        {
            build.env_remove(name.as_ref());
        }
    }
    let status = build
        .args(["build", "--profile", "release-small", "-p", "beffroi-agent"])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .status()
        .context("running cargo build --profile release-small -p beffroi-agent")?;
    anyhow::ensure!(status.success(), "building the agent failed: {status}");
    let binary = target_dir().join("release-small/beffroi-agent");
    Ok(std::fs::canonicalize(&binary).unwrap_or(binary))
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!(
        "{cores} cores, {model}, CLK_TCK {}",
        footprint::clock_ticks_per_s()
    )
}

/// Size of the binary and whether `file` calls it stripped.
fn binary_size(binary: &Path) -> anyhow::Result<u64> {
    let bytes = std::fs::metadata(binary)
        .with_context(|| format!("{} is missing", binary.display()))?
        .len();
    let file = Command::new("file")
        .arg("--brief")
        .arg(binary)
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|error| format!("(cannot run file: {error})"));
    let stripped = file.contains(", stripped");
    println!("\n== binary ==");
    println!("  {}", binary.display());
    println!("  {bytes} bytes = {}", megabytes(bytes));
    println!("  file: {file}");
    println!(
        "  stripped: {}",
        if stripped {
            "yes"
        } else {
            "NO (check the profile)"
        }
    );
    Ok(bytes)
}

/// Runs `beffroi-agent bench` with its defaults and prints its report.
fn throughput(binary: &Path) -> anyhow::Result<()> {
    println!("\n== throughput: batch → sign → spool (`beffroi-agent bench`, this binary) ==");
    let output = Command::new(binary)
        .arg("bench")
        .stdin(Stdio::null())
        .output()
        .context("running beffroi-agent bench")?;
    anyhow::ensure!(
        output.status.success(),
        "beffroi-agent bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        println!("  {line}");
    }
    Ok(())
}

/// The agent as the footprint benchmark runs it: production batching, spool and health
/// settings, an `mqtt` source on the sensor bus at `port` with one mapping per metric.
fn agent_spec(port: u16) -> AgentSpec {
    let mappings = METRICS
        .iter()
        .map(|(metric, unit)| MqttMapping {
            filter: sensor_topic(metric),
            sensor: "/sensor".to_owned(),
            metric: (*metric).to_owned(),
            unit: (*unit).to_owned(),
            value: "/value".to_owned(),
        })
        .collect();
    AgentSpec {
        max_readings: 1000,
        max_linger_ms: 1000,
        fsync_interval_ms: 200,
        health_interval_s: 30,
        ack_timeout_s: 30,
        max_in_flight: 32,
        ..AgentSpec::new(
            GATEWAY,
            SourceSpec::Mqtt {
                port,
                client_id: AGENT_CLIENT_ID.to_owned(),
                mappings,
            },
        )
    }
}

fn describe_spec(spec: &AgentSpec) -> String {
    format!(
        "mqtt source on a plain local Mosquitto ({SENSOR_TOPICS}, QoS 1, one JSON reading per \
         message, 24 sensors, one mapping per metric); batch max_readings {}, max_linger_ms {}; \
         spool fsync_interval_ms {}; health interval_s {}; uplink max_in_flight {}, \
         ack_timeout_s {}; mutual TLS to Mosquitto on 127.0.0.1, consumer verifying every \
         signature and commit-acking",
        spec.max_readings,
        spec.max_linger_ms,
        spec.fsync_interval_ms,
        spec.health_interval_s,
        spec.max_in_flight,
        spec.ack_timeout_s
    )
}

/// Runs the agent forwarding `rate` readings/s, measures it over `window`, then checks that
/// every message the sensor bus accepted was delivered once.
async fn measure_agent(rate: f64, window: Duration) -> anyhow::Result<Footprint> {
    let sandbox = Sandbox::start().await?;
    let dir = tempfile::Builder::new()
        .prefix("beffroi-bench-agent-")
        .tempdir()?;
    let sensors = PlainBroker::start(dir.path(), "sensors").await?;
    let spec = agent_spec(sensors.port());
    println!("\n== agent at {rate} readings/s ==");
    println!("  config: {}", describe_spec(&spec));
    let mut agent = sandbox.agent(spec).await?;
    agent.start()?;
    let pid = agent.pid().context("the agent is not running")?;
    for (metric, _) in METRICS {
        sensors
            .wait_subscribed(
                AGENT_CLIENT_ID,
                &sensor_topic(metric),
                Duration::from_secs(30),
            )
            .await?;
    }
    let publisher = Publisher::start(sensors.port(), rate);
    let consumer = &sandbox.consumer;
    consumer
        .wait_readings(TENANT, GATEWAY, 1, beffroi_tests::DEFAULT_TIMEOUT)
        .await?;
    println!(
        "  first batch delivered; warm-up {} s, window {} s",
        WARM_UP.as_secs(),
        window.as_secs()
    );
    tokio::time::sleep(WARM_UP).await;
    let measured = footprint::measure(pid, window, || {
        consumer.with(|s| s.reading_count(TENANT, GATEWAY) as u64)
    })
    .await?;
    let published = publisher.stop(Duration::from_secs(5)).await;
    consumer
        .wait_readings(TENANT, GATEWAY, published as usize, DRAIN_TIMEOUT)
        .await
        .context("not every message the sensor bus accepted reached the consumer")?;
    let record = consumer
        .snapshot()
        .gateway(TENANT, GATEWAY)
        .cloned()
        .context("nothing recorded for the agent")?;
    let uncovered = record.uncovered(record.max_seq()).len();
    anyhow::ensure!(
        record.reading_count() as u64 == published && uncovered == 0 && record.conflicts.is_empty(),
        "delivery is not exact: {}",
        record.describe()
    );
    println!(
        "  delivered: all {published} messages the sensor bus accepted, once each ({} batches, \
         {} duplicate copies discarded, {} verification failures)",
        record.batches.len(),
        record.duplicates,
        record.failures.len()
    );
    print_footprint(&measured, "readings");
    agent.terminate()?;
    agent.wait_exit(Duration::from_secs(10)).await?;
    Ok(measured)
}

fn print_footprint(measured: &Footprint, items: &str) {
    println!(
        "  window {:.1} s, {} RSS samples: delivered {} {items} = {:.0}/s; CPU time {:.2} s; \
         disk writes {} B",
        measured.wall.as_secs_f64(),
        measured.samples,
        measured.delivered,
        measured.delivered_per_s(),
        measured.cpu_s,
        measured.disk_written
    );
}

/// What the baseline measured.
struct Baseline {
    footprint: Footprint,
    install_bytes: u64,
}

fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|entry| dir_size(&entry.path()))
            .sum()
    })
}

/// Installs ThingsBoard IoT Gateway once. `Ok(None)`: the baseline is skipped, with the
/// reason printed.
async fn prepare_baseline() -> anyhow::Result<Option<Installation>> {
    println!("\n== baseline: ThingsBoard IoT Gateway {VERSION} (PyPI) ==");
    if std::env::var("BEFFROI_BENCH_BASELINE").as_deref() == Ok("skip") {
        println!("  skipped: BEFFROI_BENCH_BASELINE=skip");
        return Ok(None);
    }
    let venv = target_dir().join("bench-baseline/venv");
    match tokio::task::spawn_blocking(move || Installation::prepare(&venv)).await? {
        Ok(installation) => Ok(Some(installation)),
        Err(error) => {
            println!("  skipped: {error:#}");
            Ok(None)
        }
    }
}

/// Runs ThingsBoard IoT Gateway forwarding `rate` messages/s and measures it like the agent.
async fn measure_baseline(
    installation: &Installation,
    rate: f64,
    window: Duration,
) -> anyhow::Result<Baseline> {
    println!("\n== baseline: ThingsBoard IoT Gateway {VERSION} at {rate} msgs/s ==");
    let dir = tempfile::Builder::new()
        .prefix("beffroi-bench-tb-")
        .tempdir()?;
    let sensors = PlainBroker::start(dir.path(), "sensors").await?;
    let upstream = PlainBroker::start(dir.path(), "thingsboard").await?;
    let thingsboard = ThingsBoardStandIn::start(upstream.port()).await?;
    let mut gateway = TbGateway::start(installation, dir.path(), sensors.port(), upstream.port())?;
    println!(
        "  config: MQTT connector on a plain local Mosquitto ({SENSOR_TOPICS}, QoS 1, one JSON \
         reading per message, 24 devices) → ThingsBoard MQTT API (access token, QoS 1) on \
         another plain local Mosquitto; memory storage; statistics, remote configuration and \
         file logs off"
    );
    wait_gateway_ready(&mut gateway, &sensors, &thingsboard).await?;
    let publisher = Publisher::start(sensors.port(), rate);
    poll_until(
        "the gateway's first forwarded data point",
        Duration::from_secs(30),
        || {
            let forwarded = thingsboard.datapoints();
            async move { Ok((forwarded > 0).then_some(())) }
        },
        || gateway.log_tail(),
    )
    .await?;
    tokio::time::sleep(WARM_UP).await;
    let measured = footprint::measure(gateway.pid(), window, || thingsboard.datapoints()).await?;
    let published = publisher.stop(Duration::from_secs(5)).await;
    let drained = poll_until(
        "the gateway to forward every published message",
        DRAIN_TIMEOUT,
        || {
            let forwarded = thingsboard.datapoints();
            async move { Ok((forwarded >= published).then_some(())) }
        },
        String::new,
    )
    .await;
    let forwarded = thingsboard.datapoints();
    match drained {
        Ok(()) => {
            println!("  delivered: all {published} messages the sensor bus accepted were forwarded")
        }
        Err(_) => println!(
            "  delivered: {forwarded} of the {published} messages the sensor bus accepted were \
             forwarded ({} lost)",
            published - forwarded.min(published)
        ),
    }
    print_footprint(&measured, "data points");
    Ok(Baseline {
        footprint: measured,
        install_bytes: dir_size(&target_dir().join("bench-baseline/venv")),
    })
}

/// Waits until the gateway has its session limits from the stand-in and its connector is
/// subscribed on the sensor bus.
async fn wait_gateway_ready(
    gateway: &mut TbGateway,
    sensors: &PlainBroker,
    thingsboard: &ThingsBoardStandIn,
) -> anyhow::Result<()> {
    let log = gateway.log_tail();
    poll_until(
        "the gateway to connect to the ThingsBoard stand-in",
        Duration::from_secs(60),
        || {
            let ready = thingsboard.limits_answered();
            let exited = !gateway.is_running();
            async move {
                anyhow::ensure!(!exited, "thingsboard-gateway exited");
                Ok(ready.then_some(()))
            }
        },
        || log.clone(),
    )
    .await
    .with_context(|| gateway.log_tail())?;
    sensors
        .wait_subscribed(CONNECTOR_CLIENT_ID, SENSOR_TOPICS, Duration::from_secs(30))
        .await
}

fn rows(binary_bytes: u64, agent: &Footprint, baseline: Option<&Baseline>) -> Vec<Row> {
    let memory = |figure: &'static str, value: u64, of: fn(&Footprint) -> u64| Row {
        figure,
        value: value as f64,
        unit: "B",
        shown: megabytes(value),
        budget: Some((RSS_BUDGET_BYTES, "≤ 10 MB")),
        baseline: baseline.map(|b| (of(&b.footprint) as f64, megabytes(of(&b.footprint)))),
    };
    vec![
        memory("RSS, mean over the window", agent.rss_mean, |f| f.rss_mean),
        memory("RSS, max over the window", agent.rss_max, |f| f.rss_max),
        memory("RSS, peak since start (VmHWM)", agent.rss_peak, |f| {
            f.rss_peak
        }),
        Row {
            figure: "CPU, % of one core (CPU time/wall)",
            value: agent.cpu_percent(),
            unit: "%",
            shown: percent(agent.cpu_percent()),
            budget: Some((CPU_BUDGET_PERCENT, "≤ 3 %")),
            baseline: baseline.map(|b| {
                let cpu = b.footprint.cpu_percent();
                (cpu, percent(cpu))
            }),
        },
        Row {
            figure: "disk writes per second",
            value: agent.disk_per_s(),
            unit: "B/s",
            shown: kilobytes_per_s(agent.disk_per_s()),
            budget: None,
            baseline: baseline.map(|b| {
                let disk = b.footprint.disk_per_s();
                (disk, kilobytes_per_s(disk))
            }),
        },
        Row {
            figure: "stripped binary / installed size",
            value: binary_bytes as f64,
            unit: "B",
            shown: megabytes(binary_bytes),
            budget: Some((BINARY_BUDGET_BYTES, "≤ 8 MB")),
            baseline: baseline.map(|b| (b.install_bytes as f64, megabytes(b.install_bytes))),
        },
    ]
}

/// Adds `rows`, measured at `rate`, to the record `bench/report` reads.
fn record_rows(record: &mut Record, rate: f64, rows: &[Row]) {
    for row in rows {
        record.figure(
            &format!("{} at {rate} readings/s", row.figure),
            row.value,
            row.unit,
        );
        if let Some((limit, _)) = row.budget {
            record.budget(Goal::AtMost, limit);
        }
        if let Some((value, _)) = &row.baseline {
            record.baseline(&format!("ThingsBoard IoT Gateway {VERSION}"), *value);
        }
    }
}

async fn run(binary: PathBuf) -> anyhow::Result<()> {
    let window = window()?;
    let binary_bytes = binary_size(&binary)?;
    throughput(&binary)?;
    let installation = prepare_baseline().await?;
    let mut record = Record::new(
        "agent",
        format!("beffroi-agent and ThingsBoard IoT Gateway {VERSION} forwarding a local MQTT bus"),
    );
    let mut missed = Vec::new();
    for rate in RATES {
        let agent = measure_agent(rate, window).await?;
        let baseline = match &installation {
            Some(installation) => Some(measure_baseline(installation, rate, window).await?),
            None => None,
        };
        println!("\n== agent at {rate} readings/s vs budgets and baseline ==");
        let rows = rows(binary_bytes, &agent, baseline.as_ref());
        missed.extend(
            print_table(&rows)
                .into_iter()
                .map(|figure| format!("{figure} at {rate}/s")),
        );
        record_rows(&mut record, rate, &rows);
    }
    println!(
        "\n  baseline column: ThingsBoard IoT Gateway {VERSION} measured in this run on the same \
         input (one reading per message from the same local bus); its size is the installed \
         virtual environment"
    );
    println!(
        "  cited in DESIGN.md, not measured here: ThingsBoard IoT Gateway forwarding 1k msgs/s \
         ~63 MB RSS, ~28 % of a core"
    );
    println!(
        "  CPU is process CPU time (utime+stime) over the wall-clock window: robust to load \
         from other processes, noisy only through cache and frequency effects"
    );
    if missed.is_empty() {
        println!("  all budgets met");
    } else {
        println!("  BUDGETS MISSED: {}", missed.join(", "));
    }
    let json = std::env::var_os("BEFFROI_BENCH_JSON").map(PathBuf::from);
    record.write(json.as_deref())
}

fn main() -> anyhow::Result<()> {
    println!("agent footprint benchmark (issue #2) — {}", machine());
    let binary = agent_binary()?;
    // The harness starts `$BEFFROI_AGENT_BIN` (also for `keygen`). Set while the process is
    // still single-threaded: no runtime or other thread exists yet.
    std::env::set_var("BEFFROI_AGENT_BIN", &binary);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(binary))
}
