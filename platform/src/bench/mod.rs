//! Benchmarks: `beffroi bench ingest`, `bench broker`, `bench live`, `bench governance`, `bench
//! identity`, `bench cluster`, `bench gate` and `bench soak` (see docs/benchmarks.md). Figures
//! are printed with their budgets and the baseline measured in the same run; a run fails only
//! when it breaks (lost readings, a process that does not start).
//!
//! `beffroi bench ingest` (issue #3): sustained ingest through the full path —
//! simulated gateways over mTLS → gate → embedded broker → verify → group commit → store →
//! commit ack — against the raw bulk load of the same number of readings into the same table,
//! measured in the same run.
//!
//! ```text
//! setup   : temp dir, database (SQLite there, or a fresh PostgreSQL database), platform
//!           started as `serve` would (default ingest settings), on its own runtime
//! per mode: tenant + N gateways enrolled (keys, certificates) → signer threads prefill
//!           envelopes (timed: the generator's max rate) → gateways connect and publish
//!           → warm-up → measure window (metric deltas, CPU per thread, latencies)
//!           → stop publishing, wait for every ack → verify in the store (each gateway's
//!           seqs 1..=n committed, readings counted) → raw bulk load of as many readings
//!           → integrator baseline: Mosquitto + a Python consumer into the same table
//!           (`integrator`, issue #11; `--integrator off` skips it)
//! end     : platform stopped in order, PostgreSQL database dropped, table printed (and
//!           `--json PATH` written, `ingest_record`)
//! ```
//! With `--live-clients N` websocket clients follow the run's zones through the window; with
//! `--compare-live` each mode runs without them, then with them, or the other way round with
//! `--live-first` (`ingest_live`).
//! `beffroi bench live` (issue #7) is in `live`; `beffroi bench governance` (issue #8) in
//! `governance`; `beffroi bench cluster` (issue #10) in `cluster`.
//! The platform and the simulated gateways share the process, so the CPU figures are split
//! by thread name: the platform's runtime ([`PLATFORM_THREAD`]), the embedded broker and the
//! database driver on one side; the gateways' runtime ([`GATEWAY_THREAD`]) and the signers
//! ([`SIGNER_THREAD`]) on the other.

mod baseline;
mod broker;
mod city;
mod cluster;
mod database;
mod fd_limit;
mod fleet;
mod gate;
mod gateways;
mod generator;
mod governance;
mod histogram;
mod http;
mod identity;
mod ingest_live;
mod ingest_record;
mod integrator;
mod live;
mod live_frame;
mod mosquitto;
mod platform;
mod record;
mod report;
mod soak;
mod usage;
mod ws_client_process;
mod ws_clients;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::{GatewayId, TenantId, Timestamp};
use beffroi_store::{ReadingFilter, Store};
use beffroi_telemetry::Metrics;

pub use self::cluster::ClusterBenchArgs;
use self::database::BenchDatabase;
use self::fleet::{Fleet, FleetPlan};
pub use self::gate::GateBenchArgs;
use self::gateways::{GatewayReport, Phase, Registrar};
pub use self::governance::GovernanceBenchArgs;
pub use self::identity::IdentityBenchArgs;
use self::ingest_live::IngestLive;
use self::integrator::Integrator;
pub use self::integrator::{IntegratorArgs, IntegratorSwitch};
use self::live::LiveCounts;
pub use self::live::{LiveBenchArgs, ScenarioArg};
pub(crate) use self::platform::free_port;
use self::report::PhaseResult;
pub use self::soak::SoakBenchArgs;
use self::usage::CpuSample;
pub use self::ws_clients::LiveClientsArgs;
use crate::admin;
use crate::config::PlatformConfig;
use crate::server::Running;

/// Name of the platform runtime's threads.
pub const PLATFORM_THREAD: &str = "platform";
/// Name of the simulated gateways' runtime threads.
pub const GATEWAY_THREAD: &str = "bench-gateway";
/// Name of the signer threads.
pub const SIGNER_THREAD: &str = "bench-signer";

/// A runtime of `threads` workers named [`GATEWAY_THREAD`], for the simulated gateways or
/// the benchmarks' clients, so that their CPU is told apart from the platform's.
fn gateway_runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .thread_name(GATEWAY_THREAD)
        .build()
        .context("cannot start the gateways' runtime")
}

/// `beffroi bench …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchCommand {
    /// Sustained ingest over the full path against the raw bulk load (issue #3).
    Ingest(IngestBenchArgs),
    /// The embedded broker's memory while its consumer is stalled (issue #3).
    Broker(broker::BrokerBenchArgs),
    /// Live views while ingest runs: latency publish → websocket frame, fan-out to many
    /// clients (issue #7).
    Live(LiveBenchArgs),
    /// A governed read against the same read run directly, in the same run (issue #8).
    Governance(GovernanceBenchArgs),
    /// Enrollments and renewals per second, mutual-TLS handshakes per second at the gate
    /// (issue #9).
    Identity(IdentityBenchArgs),
    /// The same ingest on 1, 2 and 3 nodes sharing one broker and one PostgreSQL: cluster and
    /// per-node ingest, relay cost, write ceiling, disk per million readings (issue #10).
    Cluster(ClusterBenchArgs),
    /// Idle mutual-TLS gateways held by one node: how many, memory per connection,
    /// connections per second, a live gateway's publish → ack while they are held (issue #11).
    Gate(GateBenchArgs),
    /// A long run at a steady load with dashboard clients: memory flat, no growing queue,
    /// rate held, nothing lost (issue #11).
    Soak(SoakBenchArgs),
    /// The websocket clients of `bench live` and `bench ingest --live-clients`, run by
    /// those benchmarks in a process of their own (internal).
    #[command(hide = true)]
    LiveClients(LiveClientsArgs),
}

/// Which runs to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// `--readings-per-message` readings per signed message.
    Batched,
    /// One reading per signed message.
    Unbatched,
    /// Batched, then unbatched.
    Both,
}

/// Whether the PostgreSQL run uses TimescaleDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimescaleArg {
    /// When the server has it (the platform's default).
    Auto,
    /// Plain PostgreSQL.
    Off,
}

impl TimescaleArg {
    /// The platform's `store.timescale` value.
    fn as_str(self) -> &'static str {
        match self {
            TimescaleArg::Auto => "auto",
            TimescaleArg::Off => "off",
        }
    }
}

/// One run's message shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Many readings per message.
    Batched,
    /// One reading per message.
    Unbatched,
}

impl Mode {
    /// `batched` or `unbatched`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Batched => "batched",
            Mode::Unbatched => "unbatched",
        }
    }
}

/// Options of `beffroi bench ingest`.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestBenchArgs {
    /// Database URL; default: SQLite in a temporary directory. For `postgres://…` a fresh
    /// database is created next to the named one and dropped at the end.
    #[arg(long)]
    pub database: Option<String>,
    /// Simulated gateways, each with its own certificate and connection.
    #[arg(long, default_value_t = 20)]
    pub gateways: usize,
    /// Length of the measure window, after the warm-up.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Warm-up before the window opens.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Readings per message in the batched run (the unbatched run uses 1).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=5000))]
    pub readings_per_message: u16,
    /// Which runs.
    #[arg(long, value_enum, default_value_t = ModeArg::Both)]
    pub mode: ModeArg,
    /// Batches in flight per gateway (default: 8 batched, 256 unbatched: 20 gateways stand for
    /// many more, and at one reading per message throughput = in flight / latency).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub window: Option<u16>,
    /// A batch unacknowledged for this long is published again (the agent's default).
    #[arg(long, default_value_t = 30)]
    pub ack_timeout_s: u64,
    /// Memory for envelopes signed ahead of the run, MiB.
    #[arg(long, default_value_t = 320)]
    pub presign_mib: usize,
    /// Signer threads.
    #[arg(long, default_value_t = 2)]
    pub signer_threads: usize,
    /// PostgreSQL: `off` runs on plain PostgreSQL even when the server has TimescaleDB.
    #[arg(long, value_enum, default_value_t = TimescaleArg::Auto)]
    pub timescale: TimescaleArg,
    /// Worker threads of the simulated gateways' runtime.
    #[arg(long, default_value_t = 1)]
    pub gateway_threads: usize,
    /// What-if: the platform's `ingest.commit_interval_ms` (default: the platform's, 0).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub commit_interval_ms: Option<u64>,
    /// Live-view websocket clients attached through the window (one zone each; a child
    /// process).
    #[arg(long, default_value_t = 0)]
    pub live_clients: usize,
    /// Run each mode without, then with, the `--live-clients` clients, and compare.
    #[arg(long, requires = "live_clients")]
    pub compare_live: bool,
    /// With `--compare-live`: the run with clients first (the second run of a mode always
    /// writes into a larger table; swapping the order shows how much that weighs).
    #[arg(long, requires = "compare_live")]
    pub live_first: bool,
    /// Zones the gateways' sensors are registered in when live clients are attached.
    #[arg(long, default_value_t = 4)]
    pub live_zones: usize,
    /// The live clients' `options.max_fps`.
    #[arg(long, default_value_t = 10)]
    pub live_fps: u32,
    /// Worker threads of the live clients' process.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// The integrator baseline (Mosquitto + a Python consumer), run after each mode.
    #[command(flatten)]
    pub integrator: IntegratorArgs,
    /// Also write the figures as JSON (`bench/report` reads it).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl IngestBenchArgs {
    fn modes(&self) -> Vec<Mode> {
        match self.mode {
            ModeArg::Batched => vec![Mode::Batched],
            ModeArg::Unbatched => vec![Mode::Unbatched],
            ModeArg::Both => vec![Mode::Batched, Mode::Unbatched],
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=900).contains(&self.gateways) {
            anyhow::bail!(
                "--gateways must be 1..=900 (the gate allows 1000 connections per address)"
            );
        }
        if self.seconds == 0 {
            anyhow::bail!("--seconds must be at least 1");
        }
        if !(1..=3600).contains(&self.ack_timeout_s) {
            anyhow::bail!("--ack-timeout-s must be 1..=3600");
        }
        if self.signer_threads == 0 || self.gateway_threads == 0 || self.client_threads == 0 {
            anyhow::bail!(
                "--signer-threads, --gateway-threads and --client-threads must be at least 1"
            );
        }
        if self.compare_live && self.live_clients == 0 {
            anyhow::bail!("--compare-live needs --live-clients N (N ≥ 1)");
        }
        if self.live_zones == 0 || !(1..=1000).contains(&self.live_fps) {
            anyhow::bail!("--live-zones must be at least 1 and --live-fps 1..=1000");
        }
        Ok(())
    }

    /// Warm-up and measure window, as the integrator baseline takes them.
    fn timing(&self) -> integrator::Timing {
        integrator::Timing {
            warmup: Duration::from_secs(self.warmup),
            window: Duration::from_secs(self.seconds),
        }
    }

    /// The clients attached to each run of a mode: none, N, or none then N.
    fn live_runs(&self) -> Vec<usize> {
        if self.compare_live && self.live_first {
            vec![self.live_clients, 0]
        } else if self.compare_live {
            vec![0, self.live_clients]
        } else {
            vec![self.live_clients]
        }
    }
}

/// Runs a benchmark; builds its own runtimes (the platform's and the gateways').
pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    let args = match command {
        BenchCommand::Ingest(args) => args,
        BenchCommand::Broker(args) => return broker::run(args),
        BenchCommand::Live(args) => return live::run(args),
        BenchCommand::Governance(args) => return governance::run(args),
        BenchCommand::Identity(args) => return identity::run(args),
        BenchCommand::Cluster(args) => return cluster::run(args),
        BenchCommand::Gate(args) => return gate::run(args),
        BenchCommand::Soak(args) => return soak::run(args),
        BenchCommand::LiveClients(args) => return ws_clients::run(args),
    };
    args.validate()?;
    let integrator = Integrator::prepare(&args.integrator);
    let platform = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(PLATFORM_THREAD)
        .build()
        .context("cannot start the platform runtime")?;
    let gateways = gateway_runtime(args.gateway_threads)?;
    let result = platform.block_on(ingest(args, integrator, gateways.handle().clone()));
    gateways.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn ingest(
    args: IngestBenchArgs,
    integrator: Option<Integrator>,
    gateways: tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("temporary directory")?;
    let database = BenchDatabase::prepare(args.database.as_deref(), scratch.path()).await?;
    let load_before = load_average();
    let outcome = run_modes(
        &args,
        integrator.as_ref(),
        &database,
        scratch.path(),
        &gateways,
    )
    .await;
    let dropped = database.drop_database().await;
    let (backend, results) = outcome?;
    dropped?;
    let context = format!(
        "{} cores, load average {} before / {} after; platform and generator in one process",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        load_average()
    );
    println!("{}", report::render(backend, &context, &results));
    ingest_record::record(backend, &context, &results).write(args.json.as_deref())
}

pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

async fn run_modes(
    args: &IngestBenchArgs,
    integrator: Option<&Integrator>,
    database: &BenchDatabase,
    scratch: &Path,
    gateways: &tokio::runtime::Handle,
) -> anyhow::Result<(&'static str, Vec<PhaseResult>)> {
    let what_if = args.commit_interval_ms.map_or_else(String::new, |ms| {
        format!("[ingest]\ncommit_interval_ms = {ms}\n")
    });
    let (running, config) = platform::start(database, scratch, args.timescale, &what_if).await?;
    let backend = running.store.backend().as_str();
    let mut results = Vec::new();
    let mut failure = None;
    'modes: for mode in args.modes() {
        for clients in args.live_runs() {
            let mut measured =
                run_mode(args, mode, clients, &running, &config, scratch, gateways).await;
            if let (Ok(result), Some(integrator)) = (&mut measured, integrator) {
                let site = integrator::Site {
                    store: running.store.as_ref(),
                    database,
                    scratch,
                    runtime: gateways,
                };
                let name = format!("integrator-{}-{}", mode.as_str(), results.len());
                match integrator::run(integrator, mode, &name, site, args.timing()).await {
                    Ok(baseline) => result.integrator = Some(baseline),
                    Err(error) => measured = Err(error.context("integrator baseline")),
                }
            }
            match measured {
                Ok(result) => results.push(result),
                Err(error) => {
                    failure = Some(error.context(format!("{} run", mode.as_str())));
                    break 'modes;
                }
            }
        }
    }
    platform::stop(running).await;
    match failure {
        Some(error) => Err(error),
        None => Ok((backend, results)),
    }
}

/// Counters read at the edges of the window.
#[derive(Debug, Clone, Copy)]
struct Counts {
    readings: u64,
    batches: u64,
    commits: u64,
    duplicates: u64,
    rejected: u64,
    commit_errors: u64,
}

impl Counts {
    fn of(metrics: &Metrics) -> Self {
        Self {
            readings: metrics.ingest_readings.get(),
            batches: metrics.ingest_batches.get(),
            commits: metrics.ingest_commits.get(),
            duplicates: metrics.ingest_duplicates.get(),
            rejected: metrics.ingest_rejected.snapshot().values().sum(),
            commit_errors: metrics.ingest_commit_errors.get(),
        }
    }
}

/// Raw bulk loads made; the fastest is the baseline (the ratio is then conservative).
const BASELINE_RUNS: usize = 2;

#[allow(clippy::too_many_lines)]
async fn run_mode(
    args: &IngestBenchArgs,
    mode: Mode,
    live_clients: usize,
    running: &Running,
    config: &PlatformConfig,
    scratch: &Path,
    gateway_runtime: &tokio::runtime::Handle,
) -> anyhow::Result<PhaseResult> {
    let per_message = match mode {
        Mode::Batched => usize::from(args.readings_per_message),
        Mode::Unbatched => 1,
    };
    let window = args.window.map_or(
        match mode {
            Mode::Batched => 8,
            Mode::Unbatched => 256,
        },
        usize::from,
    );
    let store = running.store.clone();
    // With live clients, another tenant and other gateways than the run without.
    let live_suffix = if live_clients > 0 { "-live" } else { "" };
    let tenant = TenantId::new(format!("bench-{}{live_suffix}", mode.as_str()))?;
    admin::create_tenant(store.as_ref(), &tenant, "Benchmark").await?;
    let ack_timeout = Duration::from_secs(args.ack_timeout_s);

    // Enrollment and generator: outside every measurement.
    let plan = FleetPlan::sized(
        per_message,
        window,
        args.gateways,
        args.warmup + args.seconds + 10,
        args.presign_mib,
    )
    .with(ack_timeout, args.signer_threads);
    let keys_dir = scratch
        .join("gateways")
        .join(format!("{}{live_suffix}", mode.as_str()));
    let prefix = format!(
        "{}{}",
        &mode.as_str()[..1],
        &live_suffix.get(1..2).unwrap_or("")
    );
    let names = (1..=args.gateways)
        .map(|n| GatewayId::new(format!("{prefix}-gw-{n:03}")))
        .collect::<Result<Vec<_>, _>>()?;
    let fleet = Fleet::enroll(
        &[Registrar::of(running, config)],
        &tenant,
        names.clone(),
        &keys_dir,
        plan,
    )
    .await?;
    eprintln!("bench {}: warming up {} s", mode.as_str(), args.warmup);
    // Sensors in zones whenever clients are asked for, so that the runs compared do the same
    // work but for the clients.
    let city = if args.live_clients > 0 {
        Some(ingest_live::register(running, &tenant, &names, args.live_zones).await?)
    } else {
        None
    };
    let mut clients = match &city {
        Some(city) if live_clients > 0 => {
            Some(ingest_live::connect(args, running, &tenant, city, live_clients).await?)
        }
        _ => None,
    };

    // Run.
    let phase = Arc::new(Phase::default());
    let start_counts = Counts::of(&running.metrics);
    let flying = fleet.start(gateway_runtime, phase.clone());
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let (before, cpu_before, opened) = (
        Counts::of(&running.metrics),
        CpuSample::now(),
        Instant::now(),
    );
    let server_before = usage::ticks_of_processes("postgres");
    let live_before = LiveCounts::of(&running.metrics);
    phase.measuring.store(true, Ordering::Relaxed);
    if let Some(clients) = &mut clients {
        clients.start().await?;
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    phase.measuring.store(false, Ordering::Relaxed);
    if let Some(clients) = &mut clients {
        clients.close_window().await?;
    }
    let (after, cpu_after, seconds) = (
        Counts::of(&running.metrics),
        CpuSample::now(),
        opened.elapsed().as_secs_f64(),
    );
    let server_cpu = usage::ticks_pct(
        usage::ticks_of_processes("postgres").saturating_sub(server_before),
        seconds,
    );
    let live_counts = LiveCounts::of(&running.metrics).since(&live_before);
    let live = match clients {
        Some(clients) => Some(IngestLive {
            clients: live_clients,
            max_fps: args.live_fps,
            report: clients.stop().await?,
            counts: live_counts,
        }),
        None => None,
    };
    eprintln!(
        "bench {}: window closed; waiting for every ack…",
        mode.as_str()
    );
    let mut landed = flying.land().await?;
    let end_counts = Counts::of(&running.metrics);

    // Verify through the store.
    let gateways_complete = landed.complete_in(store.as_ref(), &tenant).await?;
    let stored_readings = count_readings(store.as_ref(), &tenant).await?;
    let window_readings = after.readings - before.readings;

    eprintln!(
        "bench {}: raw bulk load of {window_readings} readings, best of {BASELINE_RUNS}…",
        mode.as_str()
    );
    let baseline_tenant = TenantId::new(format!("baseline-{}{live_suffix}", mode.as_str()))?;
    // Its readings need a tenant (and its series) like the ingest's.
    store
        .create_tenant(&baseline_tenant, "ingest benchmark baseline")
        .await?;
    let mut baseline: Option<baseline::Baseline> = None;
    for _ in 0..BASELINE_RUNS {
        let run = baseline::run(
            store.as_ref(),
            &baseline_tenant,
            window_readings.max(100_000),
        )
        .await?;
        if baseline.is_none_or(|best| run.rate() > best.rate()) {
            baseline = Some(run);
        }
    }
    let baseline = baseline.context("no baseline run")?;

    let mut latencies = landed.take_latencies();
    let sum = |f: fn(&GatewayReport) -> u64| landed.sum(f);
    Ok(PhaseResult {
        mode,
        readings_per_message: per_message,
        gateways: args.gateways,
        window,
        seconds,
        readings_per_s: window_readings as f64 / seconds,
        messages_per_s: (after.batches - before.batches) as f64 / seconds,
        commits_per_s: (after.commits - before.commits) as f64 / seconds,
        latency_us: report::percentiles(&mut latencies),
        cpu: cpu_before.usage_until(&cpu_after),
        server_cpu,
        peak_rss: usage::peak_rss(),
        generator: landed.generator,
        stalls: sum(|r| r.stalls),
        resends: sum(|r| r.resends),
        reconnects: sum(|r| r.reconnects),
        duplicates: end_counts.duplicates - start_counts.duplicates,
        rejected: end_counts.rejected - start_counts.rejected,
        commit_errors: end_counts.commit_errors - start_counts.commit_errors,
        published: sum(|r| r.published),
        published_readings: sum(|r| r.published_readings),
        stored_readings,
        gateways_complete,
        unacked: sum(|r| r.unacked),
        baseline,
        integrator: None,
        live,
    })
}

/// Readings of `tenant` in the store, counted through the store's own aggregate query.
pub(crate) async fn count_readings(store: &dyn Store, tenant: &TenantId) -> anyhow::Result<u64> {
    let now = Timestamp::now();
    let day = Duration::from_secs(86_400);
    let filter = ReadingFilter {
        tenant: tenant.clone(),
        sensors: Vec::new(),
        metrics: Vec::new(),
        zone: None,
        from: Timestamp::from_unix_micros(now.unix_micros() - 86_400_000_000),
        to: now.saturating_add(day),
    };
    let buckets = store.buckets(&filter, 86_400_000_000).await?;
    Ok(buckets.iter().map(|b| b.count).sum())
}
