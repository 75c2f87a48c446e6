//! `beffroi bench soak` (issue #11): a long run at a steady load — by default 30 minutes at
//! 10,000 readings/s from 100 gateways with 100 dashboard clients on zone views — sampled
//! every `--sample-s`, to show that memory stays flat, that no queue grows, that the rate
//! holds and that no client is dropped, and that nothing is lost.
//!
//! ```text
//! setup : temp dir, database (SQLite there, or a fresh PostgreSQL database), `pki init`,
//!         the node's configuration; the bench opens the store (migrations) and the CA,
//!         creates the tenant, its zones, gateways and sensors (`live::load`), a viewer token
//!         → `beffroi serve` started in a process of its own (`cluster::node`)
//! run   : paced gateways publish signed batches through the gate (this process)
//!         → websocket clients connect in a process of their own (`bench live-clients`)
//!         → every --sample-s: the platform's /metrics and /proc, the clients' counts and
//!           RSS, the store's size, the interval's publish → ack latencies (`sampler`)
//! end   : clients closed, gateways stopped, every ack awaited, zero loss checked in the
//!         store, node stopped in order, PostgreSQL database dropped; verdicts (`verdict`),
//!         table (`report`), `--json` record (`record`)
//! ```
//! Three processes so that each memory figure is its own: the platform's RSS is the
//! `beffroi serve` process's (gate, embedded broker, ingest, store driver, API and live
//! fan-out — what an operator runs), not shared with the simulated gateways (this process)
//! or the websocket clients (theirs), whose RSS is reported beside it.

mod record;
mod report;
mod sampler;
mod store_size;
mod verdict;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use beffroi_protocol::TenantId;
use beffroi_store::{Role, Store};

use self::report::SoakResult;
use self::sampler::{Sampler, Sources};
use self::store_size::StoreSize;
use super::cluster::node::{bench_handles, init_pki, Node, NodeConfig, Shared};
use super::database::BenchDatabase;
use super::gateways::{Phase, Registrar};
use super::live::load::{PacedLoad, Shape, ViewKind};
use super::ws_client_process::ClientProcess;
use super::ws_clients::{ClientsSpec, GroupSpec};
use super::TimescaleArg;
use crate::admin;

/// The warm-up when `--warmup-s` is not given (at most a quarter of the run).
const DEFAULT_WARMUP_S: u64 = 60;

/// Options of `beffroi bench soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakBenchArgs {
    /// Length of the run, minutes (after the clients connected).
    #[arg(long, default_value_t = 30)]
    pub minutes: u64,
    /// Readings per second published, all gateways together.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u32,
    /// Simulated gateways over mTLS.
    #[arg(long, default_value_t = 100)]
    pub gateways: usize,
    /// Dashboard websocket clients, each on one zone view.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// The clients' `options.max_fps` (the dashboard budget's 10 frames/s).
    #[arg(long, default_value_t = 10)]
    pub fps: u32,
    /// Seconds between two samples.
    #[arg(long, default_value_t = 10)]
    pub sample_s: u64,
    /// Seconds at the start left out of the memory band, the queue bounds and the rate
    /// verdict (slopes are fitted on the second half of the run anyway); default 60, at
    /// most a quarter of the run.
    #[arg(long)]
    pub warmup_s: Option<u64>,
    /// Readings per signed batch.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=5000))]
    pub readings_per_batch: u16,
    /// Zones the sensors are registered in (each client follows one).
    #[arg(long, default_value_t = 10)]
    pub zones: usize,
    /// Database URL; default: SQLite in a temporary directory. For `postgres://…` a fresh
    /// database is created next to the named one and dropped at the end.
    #[arg(long)]
    pub database: Option<String>,
    /// PostgreSQL: `off` runs on plain PostgreSQL even when the server has TimescaleDB.
    #[arg(long, value_enum, default_value_t = TimescaleArg::Auto)]
    pub timescale: TimescaleArg,
    /// Worker threads of the websocket clients' process.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Worker threads of the simulated gateways' runtime.
    #[arg(long, default_value_t = 1)]
    pub gateway_threads: usize,
    /// Also write the figures and the sampled series to this file as JSON (what
    /// `bench/report` plots).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl SoakBenchArgs {
    fn shape(&self) -> Shape {
        Shape {
            rate: self.rate,
            gateways: self.gateways,
            readings_per_batch: self.readings_per_batch,
            zones: self.zones,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.shape().validate()?;
        if self.minutes == 0 || self.sample_s == 0 {
            anyhow::bail!("--minutes and --sample-s must be at least 1");
        }
        if self.sample_s * 4 > self.minutes * 60 {
            anyhow::bail!("--sample-s: at least 4 samples per run (2 in each half)");
        }
        if self.warmup() >= self.seconds() / 2 {
            anyhow::bail!("--warmup-s must be shorter than half the run");
        }
        if self.clients > 5000 || !(1..=1000).contains(&self.fps) {
            anyhow::bail!("--clients must be 0..=5000 and --fps 1..=1000");
        }
        if self.client_threads == 0 || self.gateway_threads == 0 {
            anyhow::bail!("--client-threads and --gateway-threads must be at least 1");
        }
        Ok(())
    }

    /// The run's length, s.
    fn seconds(&self) -> u64 {
        self.minutes * 60
    }

    /// The warm-up, s.
    fn warmup(&self) -> u64 {
        self.warmup_s
            .unwrap_or(DEFAULT_WARMUP_S.min(self.seconds() / 4))
    }
}

/// Runs `beffroi bench soak` on runtimes of its own (this process's and the gateways').
pub(crate) fn run(args: SoakBenchArgs) -> anyhow::Result<()> {
    args.validate()?;
    // The node inherits the limit: its end of every websocket and gateway connection.
    super::fd_limit::raise_open_files((args.clients + args.gateways + 1024) as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let gateways = super::gateway_runtime(args.gateway_threads)?;
    let result = runtime.block_on(soak(&args, gateways.handle()));
    gateways.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn soak(args: &SoakBenchArgs, gateways: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("temporary directory")?;
    let database = BenchDatabase::prepare(args.database.as_deref(), scratch.path()).await?;
    let load_before = super::load_average();
    let outcome = run_node(args, &database, scratch.path(), gateways).await;
    let dropped = database.drop_database().await;
    let (backend, result) = outcome?;
    dropped?;
    let context = format!(
        "{} cores, load average {} before / {} after; platform, simulated gateways and \
         websocket clients in three processes",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        super::load_average()
    );
    println!("{}", report::render(backend, &context, args, &result));
    record::of(backend, args, &result).write(args.json.as_deref())?;
    if let Some(broken) = result.broken() {
        anyhow::bail!("the run broke: {broken}");
    }
    Ok(())
}

/// Sets the node up, runs the soak, stops the node.
async fn run_node(
    args: &SoakBenchArgs,
    database: &BenchDatabase,
    dir: &Path,
    gateways: &tokio::runtime::Handle,
) -> anyhow::Result<(&'static str, SoakResult)> {
    let pki = init_pki(dir)?;
    let config = NodeConfig::write(
        dir,
        1,
        &Shared {
            database: database.url(),
            broker: None,
            pki: &pki,
            timescale: args.timescale,
        },
    )?;
    let (store, ca) = bench_handles(&config).await?;
    let backend = store.backend().as_str();
    let tenant = TenantId::new("soak")?;
    admin::create_tenant(store.as_ref(), &tenant, "Soak benchmark").await?;
    let registrar = Registrar {
        store: store.as_ref(),
        ca: &ca,
        config: &config.config,
        gate_port: config.gate_port,
    };
    eprintln!("bench soak: enrolling {} gateways…", args.gateways);
    let load =
        PacedLoad::enroll(registrar, &tenant, "s", args.shape(), &dir.join("gateways")).await?;
    let (views, _) = load.layout.views(ViewKind::Zone, args.clients);
    let spec = ClientsSpec {
        url: format!("ws://{}/api/v1/live", config.api),
        token: admin::create_token(&store, &tenant, Role::Viewer, "bench soak").await?,
        groups: vec![GroupSpec {
            name: "zone views".into(),
            clients: args.clients,
            max_fps: Some(args.fps),
            views,
        }],
    };
    let node = Node::start(&config).await?;
    eprintln!(
        "bench soak: platform up (pid {}) on {backend}, gate 127.0.0.1:{}, API {}",
        node.pid(),
        config.gate_port,
        config.api
    );
    let outcome = measure(
        args, &node, database, &store, &tenant, load, &spec, gateways,
    )
    .await;
    let stopped = node.stop().await;
    store.close().await;
    let result = outcome?;
    stopped?;
    Ok((backend, result))
}

/// The run itself: load, clients, samples, then the landing and the store check.
#[allow(clippy::too_many_arguments)]
async fn measure(
    args: &SoakBenchArgs,
    node: &Node,
    database: &BenchDatabase,
    store: &Arc<dyn Store>,
    tenant: &TenantId,
    load: PacedLoad,
    spec: &ClientsSpec,
    gateways: &tokio::runtime::Handle,
) -> anyhow::Result<SoakResult> {
    // The feeds count every reading they make: the pipeline backlog is made − committed.
    let phase = Arc::new(Phase::default());
    phase.measuring.store(true, Ordering::Relaxed);
    let counts = load.counts.clone();
    let flying = load.start(gateways, &phase);
    eprintln!(
        "bench soak: {} gateways publishing {} readings/s; connecting {} websocket clients…",
        args.gateways, args.rate, args.clients
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut clients = ClientProcess::spawn(spec, args.client_threads).await?;
    let ready = clients.ready.clone();
    eprintln!(
        "bench soak: {}; soaking {} min, a sample every {} s",
        ready.describe(),
        args.minutes,
        args.sample_s
    );
    clients.start().await?;
    let mut sampler = Sampler::start(
        node,
        StoreSize::open(database).await?,
        Sources {
            clients: &mut clients,
            counts: &counts,
            phase: &phase,
        },
    )
    .await?;
    let period = Duration::from_secs(args.sample_s);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut samples = Vec::new();
    for _ in 0..args.seconds().div_ceil(args.sample_s) {
        ticker.tick().await;
        let sample = sampler
            .sample(Sources {
                clients: &mut clients,
                counts: &counts,
                phase: &phase,
            })
            .await?;
        eprintln!("{}", report::progress(&sample));
        samples.push(sample);
    }
    sampler.finish().await;
    let clients_report = clients.stop().await?;
    eprintln!("bench soak: run over; stopping the gateways and waiting for every ack…");
    let landed = flying.land(store.as_ref(), tenant).await?;
    Ok(SoakResult {
        pid: node.pid(),
        ready,
        samples,
        clients: clients_report,
        landed,
    })
}
