//! `beffroi bench cluster` (issue #10): the same ingest load on 1, 2 and 3 platform nodes —
//! separate `beffroi serve` processes on one external broker (a Mosquitto of the run's own)
//! and one PostgreSQL database, with one PKI directory — to check the capacity model of
//! `docs/capacity.md`: per-node and cluster ingest with `$share`, what the cluster relay costs
//! (messages and bytes each node sends and receives), the database's write ceiling (the raw
//! bulk load of as many readings, in the same run), disk per million readings and, with
//! TimescaleDB, the compression ratio.
//!
//! ```text
//! per node count k:
//!   fresh database, private Mosquitto, `pki init` → k nodes started (ready, relay subscribed)
//!   tenant + G gateways enrolled, gateway i through node (i mod k)'s gate (as a load
//!   balancer spreads them) → generator signs ahead → warm-up → window: each node's
//!   /metrics and /proc figures, PostgreSQL's and Mosquitto's CPU → land (every ack) →
//!   every gateway's seqs committed once → disk sizes (TimescaleDB: compressed) → nodes
//!   stopped in order → database dropped
//! last run: raw bulk load (binary COPY) of the window's readings into the same table
//! ```
//! The simulated gateways run in this process; the nodes, the broker and PostgreSQL in
//! their own, so each one's CPU is read from `/proc`. On a machine with fewer cores than
//! processes the nodes share the cores: the cluster figure then shows what the relay and the
//! coordination cost, not how far more machines would go (see `docs/capacity.md`).

mod disk;
pub(super) mod node;
mod report;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::{GatewayId, TenantId};
use beffroi_store::Store;

use self::node::{Node, NodeConfig, ProcSample, Scrape, Shared};
use self::report::{NodeFigures, RunResult};
use super::database::BenchDatabase;
use super::fleet::{Fleet, FleetPlan};
use super::gateways::{Phase, Registrar};
use super::mosquitto::Mosquitto;
use super::{baseline, count_readings, usage, TimescaleArg};
use crate::admin;
use crate::pki::Ca;

/// The simulated gateways' ack timeout (the agent's default).
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of `beffroi bench cluster`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterBenchArgs {
    /// PostgreSQL URL: each run creates a fresh database next to the named one and drops it
    /// at the end (the nodes share it; SQLite cannot be shared between nodes).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub database: String,
    /// Node counts to run, one after the other.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub nodes: Vec<usize>,
    /// Simulated gateways in each run, spread over the nodes' gates.
    #[arg(long, default_value_t = 12)]
    pub gateways: usize,
    /// Length of the measure window, after the warm-up.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Warm-up before the window opens.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Readings per signed message.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=5000))]
    pub readings_per_message: u16,
    /// Batches in flight per gateway.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub window: u16,
    /// Memory for envelopes signed ahead of the run, MiB.
    #[arg(long, default_value_t = 320)]
    pub presign_mib: usize,
    /// Signer threads.
    #[arg(long, default_value_t = 2)]
    pub signer_threads: usize,
    /// PostgreSQL: `off` runs on plain PostgreSQL even when the server has TimescaleDB.
    #[arg(long, value_enum, default_value_t = TimescaleArg::Auto)]
    pub timescale: TimescaleArg,
    /// The Mosquitto executable (the external broker).
    #[arg(long, default_value = "mosquitto")]
    pub mosquitto: PathBuf,
}

impl ClusterBenchArgs {
    fn validate(&self) -> anyhow::Result<()> {
        if !(self.database.starts_with("postgres://") || self.database.starts_with("postgresql://"))
        {
            anyhow::bail!("--database: the nodes of a cluster share PostgreSQL (postgres://…)");
        }
        if self.nodes.is_empty() || self.nodes.iter().any(|&k| !(1..=8).contains(&k)) {
            anyhow::bail!("--nodes: a list of node counts, each 1..=8 (e.g. 1,2,3)");
        }
        if !(1..=900).contains(&self.gateways) || self.seconds == 0 || self.signer_threads == 0 {
            anyhow::bail!("--gateways must be 1..=900, --seconds and --signer-threads at least 1");
        }
        Ok(())
    }
}

/// Runs the benchmark on its own runtimes (this process's and the gateways').
pub fn run(args: ClusterBenchArgs) -> anyhow::Result<()> {
    args.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let gateways = super::gateway_runtime(1)?;
    let result = runtime.block_on(cluster(&args, gateways.handle()));
    gateways.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn cluster(args: &ClusterBenchArgs, gateways: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("temporary directory")?;
    let load_before = super::load_average();
    let mut results = Vec::new();
    let last = args.nodes.len() - 1;
    let mut ceiling = None;
    for (i, &k) in args.nodes.iter().enumerate() {
        let dir = scratch.path().join(format!("{k}-nodes"));
        let database = BenchDatabase::prepare(Some(&args.database), &dir).await?;
        let outcome = run_nodes(args, k, &database, &dir, gateways, i == last).await;
        let dropped = database.drop_database().await;
        let (result, bulk) = outcome.with_context(|| format!("run with {k} nodes"))?;
        dropped?;
        results.push(result);
        ceiling = bulk.or(ceiling);
    }
    let context = format!(
        "{} cores, load average {} before / {} after; the nodes, Mosquitto, PostgreSQL and the \
         simulated gateways share them",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        super::load_average()
    );
    println!("{}", report::render(&context, &results, ceiling.as_ref()));
    Ok(())
}

/// The nodes of one run, and what the bench holds of the shared state.
struct Cluster<'a> {
    nodes: Vec<Node>,
    configs: Vec<NodeConfig>,
    store: Arc<dyn Store>,
    ca: Ca,
    broker: &'a Mosquitto,
}

/// One run with `k` nodes on `database`; with `ceiling`, also the raw bulk load.
async fn run_nodes(
    args: &ClusterBenchArgs,
    k: usize,
    database: &BenchDatabase,
    dir: &Path,
    gateway_runtime: &tokio::runtime::Handle,
    ceiling: bool,
) -> anyhow::Result<(RunResult, Option<baseline::Baseline>)> {
    // No per-client queue limit below the nodes' own: the nodes hold what is in flight, and a
    // broker that drops QoS 1 messages would show as resends.
    let broker = Mosquitto::start(&args.mosquitto, &dir.join("broker"), Some(100_000)).await?;
    let pki = node::init_pki(dir)?;
    let broker_address = broker.address();
    let shared = Shared {
        database: database.url(),
        broker: Some(&broker_address),
        pki: &pki,
        timescale: args.timescale,
    };
    let configs = (1..=k)
        .map(|n| NodeConfig::write(dir, n, &shared))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (store, ca) = node::bench_handles(&configs[0]).await?;
    let mut cluster = Cluster {
        nodes: Vec::with_capacity(k),
        configs,
        store,
        ca,
        broker: &broker,
    };
    let mut outcome = Ok(());
    for config in &cluster.configs {
        match Node::start(config).await {
            Ok(node) => cluster.nodes.push(node),
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
    }
    let outcome = match outcome {
        Ok(()) => {
            eprintln!(
                "bench cluster: {k} node(s) up; enrolling {} gateways",
                args.gateways
            );
            measure(args, &cluster, dir, gateway_runtime).await
        }
        Err(error) => Err(error),
    };
    for node in cluster.nodes.drain(..) {
        if let Err(error) = node.stop().await {
            eprintln!("bench cluster: {error:#}");
        }
    }
    let finished = match outcome {
        Ok(mut result) => {
            result.disk = Some(disk::measure(database.url(), result.stored_readings).await?);
            let bulk = if ceiling {
                Some(bulk_load(cluster.store.as_ref(), result.window_readings).await?)
            } else {
                None
            };
            Ok((result, bulk))
        }
        Err(error) => Err(error),
    };
    cluster.store.close().await;
    finished
}

/// Figures read from every process at one instant.
struct Sample {
    at: Instant,
    scrapes: Vec<Scrape>,
    procs: Vec<ProcSample>,
    postgres: u64,
    broker: u64,
}

impl Sample {
    async fn take(cluster: &Cluster<'_>) -> anyhow::Result<Self> {
        let mut scrapes = Vec::with_capacity(cluster.nodes.len());
        for node in &cluster.nodes {
            scrapes.push(node.scrape().await?);
        }
        Ok(Self {
            at: Instant::now(),
            scrapes,
            procs: cluster.nodes.iter().map(Node::proc_sample).collect(),
            postgres: usage::ticks_of_processes("postgres"),
            broker: usage::ticks_of_pid(cluster.broker.pid()),
        })
    }
}

/// Streams through every gate for the warm-up and the window, then checks the store.
async fn measure(
    args: &ClusterBenchArgs,
    cluster: &Cluster<'_>,
    dir: &Path,
    gateway_runtime: &tokio::runtime::Handle,
) -> anyhow::Result<RunResult> {
    let store = cluster.store.as_ref();
    let tenant = TenantId::new("bench-cluster")?;
    admin::create_tenant(store, &tenant, "Benchmark").await?;
    let gates: Vec<Registrar<'_>> = cluster
        .configs
        .iter()
        .map(|config| Registrar {
            store,
            ca: &cluster.ca,
            config: &config.config,
            gate_port: config.gate_port,
        })
        .collect();
    let names = (1..=args.gateways)
        .map(|n| GatewayId::new(format!("c-gw-{n:03}")))
        .collect::<Result<Vec<_>, _>>()?;
    let plan = FleetPlan::sized(
        usize::from(args.readings_per_message),
        usize::from(args.window),
        args.gateways,
        args.warmup + args.seconds + 10,
        args.presign_mib,
    )
    .with(ACK_TIMEOUT, args.signer_threads);
    let fleet = Fleet::enroll(&gates, &tenant, names, &dir.join("gateways"), plan).await?;
    let phase = Arc::new(Phase::default());
    let flying = fleet.start(gateway_runtime, phase.clone());
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let before = Sample::take(cluster).await?;
    phase.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    phase.measuring.store(false, Ordering::Relaxed);
    let after = Sample::take(cluster).await?;
    eprintln!("bench cluster: window closed; waiting for every ack…");
    let mut landed = flying.land().await?;
    let seconds = after.at.duration_since(before.at).as_secs_f64();
    let nodes: Vec<NodeFigures> = cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            NodeFigures::between(
                &node.name,
                (&before.scrapes[i], &after.scrapes[i]),
                (before.procs[i], after.procs[i]),
                seconds,
            )
        })
        .collect();
    let window_readings = nodes.iter().map(|n| n.readings).sum();
    Ok(RunResult {
        gateways: args.gateways,
        seconds,
        nodes,
        window_readings,
        postgres_cpu: usage::ticks_pct(after.postgres.saturating_sub(before.postgres), seconds),
        broker_cpu: usage::ticks_pct(after.broker.saturating_sub(before.broker), seconds),
        latency_us: super::report::percentiles(&mut landed.take_latencies()),
        published_readings: landed.sum(|r| r.published_readings),
        resends: landed.sum(|r| r.resends),
        unacked: landed.sum(|r| r.unacked),
        gateways_complete: landed.complete_in(store, &tenant).await?,
        stored_readings: count_readings(store, &tenant).await?,
        disk: None,
    })
}

/// The database's write ceiling: the raw bulk load of `readings` (at least 100,000) into
/// the same table, best of two.
async fn bulk_load(store: &dyn Store, readings: u64) -> anyhow::Result<baseline::Baseline> {
    let tenant = TenantId::new("baseline-cluster")?;
    store
        .create_tenant(&tenant, "cluster benchmark baseline")
        .await?;
    eprintln!("bench cluster: raw bulk load of {readings} readings, best of 2…");
    let first = baseline::run(store, &tenant, readings.max(100_000)).await?;
    let second = baseline::run(store, &tenant, readings.max(100_000)).await?;
    Ok(if second.rate() > first.rate() {
        second
    } else {
        first
    })
}

/// The last 2,000 bytes of a child process's log, for an error message.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut start = text.len().saturating_sub(2000);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}
