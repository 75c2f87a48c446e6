//! `beffroi bench live` (issue #7): live views while ingest runs at a fixed rate — latency
//! publish → websocket frame, frames/s per client, the platform's memory and CPU — against a
//! plain MQTT subscriber on the embedded broker, measured in the same run.
//!
//! ```text
//! setup    : temp dir, database, platform started as `serve` would (`super::platform`)
//! scenario : tenant + zones + gateways enrolled, their sensors registered in the zones
//!            → MQTT baseline subscriber and in-process hub probe (thread `bench-probe`)
//!            → paced gateways publish stamped, signed batches through the gate
//!            → websocket clients connect in a child process (`bench live-clients`)
//!            → warm-up → window (clients, probe, baseline, gateways' acks, the platform's
//!              metrics, CPU per thread, RSS sampled) → gateways stop, every ack awaited
//!            → zero loss checked in the store
//!   latency: a few clients on one zone each and a few on one sensor each, default max_fps
//!   fan-out: 1,000 clients on one zone each, max_fps 10
//! end      : platform stopped, PostgreSQL database dropped, tables printed; the command
//!            fails if readings were lost or clients could not connect
//! ```

mod commit_latency;
mod hub_probe;
pub(super) mod load;
mod mqtt_baseline;
pub(super) mod paced;
mod record;
mod report;
mod scenario;

use std::time::Duration;

use anyhow::Context as _;

use self::report::ScenarioResult;
pub(crate) use self::report::{LiveCounts, Table};
use self::scenario::Plan;
use super::database::BenchDatabase;
use super::TimescaleArg;

/// Name of the thread that runs the MQTT baseline subscriber and the hub probe.
pub const PROBE_THREAD: &str = "bench-probe";

/// Which scenarios to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioArg {
    /// A few clients at the default frame rate: latency.
    Latency,
    /// Many clients at a low frame rate: fan-out.
    FanOut,
    /// Latency, then fan-out.
    Both,
}

/// Options of `beffroi bench live`.
#[derive(Debug, Clone, clap::Args)]
pub struct LiveBenchArgs {
    /// Database URL; default: SQLite in a temporary directory. For `postgres://…` a fresh
    /// database is created next to the named one and dropped at the end.
    #[arg(long)]
    pub database: Option<String>,
    /// PostgreSQL: `off` runs on plain PostgreSQL even when the server has TimescaleDB.
    #[arg(long, value_enum, default_value_t = TimescaleArg::Auto)]
    pub timescale: TimescaleArg,
    /// Which scenarios.
    #[arg(long, value_enum, default_value_t = ScenarioArg::Both)]
    pub scenario: ScenarioArg,
    /// Readings per second published, all gateways together.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u32,
    /// Simulated gateways over mTLS.
    #[arg(long, default_value_t = 20)]
    pub gateways: usize,
    /// Readings per signed batch.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=5000))]
    pub readings_per_batch: u16,
    /// Zones the sensors are registered in (views follow one zone each).
    #[arg(long, default_value_t = 10)]
    pub zones: usize,
    /// Latency scenario: clients following one zone each, at the server's default max_fps.
    #[arg(long, default_value_t = 10)]
    pub latency_clients: usize,
    /// Latency scenario: clients following one sensor each (sparse views: no frame waits for
    /// the pacing), at the server's default max_fps.
    #[arg(long, default_value_t = 10)]
    pub sensor_clients: usize,
    /// Fan-out scenario: clients following one zone each.
    #[arg(long, default_value_t = 1000)]
    pub fanout_clients: usize,
    /// Fan-out scenario: the clients' `options.max_fps`.
    #[arg(long, default_value_t = 10)]
    pub fanout_fps: u32,
    /// Length of each measure window, after the warm-up.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Warm-up before each window, once the clients are connected.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Worker threads of the websocket clients' process.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Worker threads of the simulated gateways' runtime.
    #[arg(long, default_value_t = 1)]
    pub gateway_threads: usize,
    /// What-if: the platform's `ingest.commit_interval_ms` (default: the platform's, 0),
    /// the longest a verified batch waits for others before its group commit.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub commit_interval_ms: Option<u64>,
    /// What-if: the platform's `live.max_fps` (default: the platform's, 50), the pacing of
    /// every client that does not ask for less (the latency scenario's clients do not).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_fps: Option<u32>,
    /// Also write the figures to this file as JSON (what `bench/report` plots).
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

impl LiveBenchArgs {
    fn validate(&self) -> anyhow::Result<()> {
        self.shape().validate()?;
        if self.seconds == 0 {
            anyhow::bail!("--seconds must be at least 1");
        }
        if !(1..=1000).contains(&self.fanout_fps) {
            anyhow::bail!("--fanout-fps must be 1..=1000 (the server caps it at live.max_fps)");
        }
        if self.client_threads == 0 || self.gateway_threads == 0 {
            anyhow::bail!("--client-threads and --gateway-threads must be at least 1");
        }
        Ok(())
    }

    fn plans(&self) -> Vec<Plan> {
        let mut plans = Vec::new();
        if matches!(self.scenario, ScenarioArg::Latency | ScenarioArg::Both) {
            plans.push(Plan::latency(self));
        }
        if matches!(self.scenario, ScenarioArg::FanOut | ScenarioArg::Both) {
            plans.push(Plan::fan_out(self));
        }
        plans
    }

    /// The load the gateways make.
    fn shape(&self) -> load::Shape {
        load::Shape {
            rate: self.rate,
            gateways: self.gateways,
            readings_per_batch: self.readings_per_batch,
            zones: self.zones,
        }
    }

    /// Time between two batches of one gateway.
    fn period(&self) -> Duration {
        self.shape().period()
    }
}

/// Runs `beffroi bench live` on runtimes of its own (platform, gateways, probe).
pub(crate) fn run(args: LiveBenchArgs) -> anyhow::Result<()> {
    args.validate()?;
    // The platform's end of every websocket, plus gateways, broker, database and files.
    let wanted = (args.fanout_clients.max(args.latency_clients) + 1024) as u64;
    super::fd_limit::raise_open_files(wanted);
    let platform = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(super::PLATFORM_THREAD)
        .build()
        .context("cannot start the platform runtime")?;
    let gateways = super::gateway_runtime(args.gateway_threads)?;
    let probes = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name(PROBE_THREAD)
        .build()
        .context("cannot start the probe runtime")?;
    let runtimes = scenario::Runtimes {
        gateways: gateways.handle().clone(),
        probes: probes.handle().clone(),
    };
    let result = platform.block_on(bench(args, runtimes));
    gateways.shutdown_timeout(Duration::from_secs(1));
    probes.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn bench(args: LiveBenchArgs, runtimes: scenario::Runtimes) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("temporary directory")?;
    let database = BenchDatabase::prepare(args.database.as_deref(), scratch.path()).await?;
    let load_before = super::load_average();
    let outcome = run_plans(&args, &database, scratch.path(), &runtimes).await;
    let dropped = database.drop_database().await;
    let (backend, results) = outcome?;
    dropped?;
    let context = format!(
        "{} cores, load average {} before / {} after; platform and gateways in one process, \
         websocket clients in another",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        super::load_average()
    );
    println!("{}", report::render(backend, &context, &args, &results));
    record::of(backend, &args, &results).write(args.json.as_deref())?;
    let broken: Vec<String> = results.iter().filter_map(ScenarioResult::broken).collect();
    if !broken.is_empty() {
        anyhow::bail!("the run broke: {}", broken.join("; "));
    }
    Ok(())
}

async fn run_plans(
    args: &LiveBenchArgs,
    database: &BenchDatabase,
    scratch: &std::path::Path,
    runtimes: &scenario::Runtimes,
) -> anyhow::Result<(&'static str, Vec<ScenarioResult>)> {
    let mut what_if = String::new();
    if let Some(ms) = args.commit_interval_ms {
        what_if.push_str(&format!("[ingest]\ncommit_interval_ms = {ms}\n"));
    }
    if let Some(fps) = args.max_fps {
        what_if.push_str(&format!("[live]\nmax_fps = {fps}\n"));
    }
    let (running, config) =
        super::platform::start(database, scratch, args.timescale, &what_if).await?;
    let backend = running.store.backend().as_str();
    let mut results = Vec::new();
    let mut failure = None;
    for plan in args.plans() {
        let name = plan.name;
        match scenario::run(args, plan, &running, &config, scratch, runtimes).await {
            Ok(result) => results.push(result),
            Err(error) => {
                failure = Some(error.context(format!("{name} scenario")));
                break;
            }
        }
    }
    super::platform::stop(running).await;
    match failure {
        Some(error) => Err(error),
        None => Ok((backend, results)),
    }
}
