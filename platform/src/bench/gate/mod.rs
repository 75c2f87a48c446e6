//! `beffroi bench gate` (issue #11): idle mutual-TLS gateways held by one node — how many,
//! the node's memory per connection (DESIGN.md: ≥ 10k held, ≤ 50 KB each), connections per
//! second, and a live gateway's publish → ack latency while they are held, each beside a
//! baseline measured in the same run.
//!
//! ```text
//! setup    : open-file limit raised to the hard limit; temp dir, database (SQLite there, or
//!            a fresh PostgreSQL database), `pki init`, one node config (embedded broker);
//!            N idle gateways registered (keys, certificates from the CA, gateway rows) and
//!            their CONNECTs encoded — before any clock; `beffroi serve` started as a child
//!            process, so that its /proc figures are its own
//! alone    : a live gateway publishes R signed batches/s; publish → ack in the window
//! baseline : mutual-TLS handshakes with a bare rustls server (the gate's rustls config) in
//!            this process, C at once, with the idle gateways' identities
//! connect  : the N idle gateways connect, C at once (TCP + TLS 1.3 + CONNECT/CONNACK +
//!            SUBSCRIBE/SUBACK), node RSS sampled every N/10 (at most every 1,000); settle;
//!            node RSS again: (after − before) / held = memory per connection
//! held     : another live gateway publishes as the first did, while the N are held
//! end      : every idle connection still open? (client side and the gate's gauge); closed;
//!            every batch of both live gateways stored once; node stopped (SIGTERM)
//! ```
//! With its embedded broker a node holds three sockets per gateway (the gate's client socket,
//! its connection to the broker and the broker's end of it); with `--broker mosquitto` (an
//! external broker of the run's own) two, and the broker's memory is measured apart. Under a
//! hard open-file limit below that many per gateway the run holds what the limit allows and
//! says so.

mod hold;
mod live;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::{GatewayId, TenantId};

use self::hold::Holder;
use self::live::LivePlan;
use self::report::GateResult;
use super::cluster::node::{bench_handles, init_pki, Node, NodeConfig, Shared};
use super::database::BenchDatabase;
use super::gateways::Registrar;
use super::identity::clients::{self, BareServer, Target};
use super::mosquitto::Mosquitto;
use super::{count_readings, fd_limit, usage, TimescaleArg};
use crate::admin;

/// Open files kept for everything else (database, listeners, live gateway, handshakes).
const FD_RESERVE: u64 = 512;
/// Identities used for the bare handshake baseline (at most).
const BASELINE_IDENTITIES: usize = 1000;
/// Time allowed to close the idle connections.
const CLOSE_DEADLINE: Duration = Duration::from_secs(30);
/// The points of the RSS series: one every `held / SERIES_POINTS` connections, at most every
/// [`SERIES_STEP_MAX`].
const SERIES_POINTS: u64 = 10;
const SERIES_STEP_MAX: u64 = 1000;

/// The broker behind the node's gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokerArg {
    /// The node's embedded broker, as `serve` runs by default.
    Embedded,
    /// A Mosquitto of the run's own as the node's external broker.
    Mosquitto,
}

impl BrokerArg {
    /// Open files the node needs per held gateway: the gate's client socket and its
    /// connection to the broker, plus the broker's end of it when the broker is embedded.
    fn node_fds_per_gateway(self) -> u64 {
        match self {
            BrokerArg::Embedded => 3,
            BrokerArg::Mosquitto => 2,
        }
    }

    /// How the report names it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            BrokerArg::Embedded => "embedded broker",
            BrokerArg::Mosquitto => "external broker (Mosquitto)",
        }
    }
}

/// Options of `beffroi bench gate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GateBenchArgs {
    /// Database URL; default: SQLite in a temporary directory. For `postgres://…` a fresh
    /// database is created next to the named one and dropped at the end.
    #[arg(long)]
    pub database: Option<String>,
    /// PostgreSQL: `off` runs on plain PostgreSQL even when the server has TimescaleDB.
    #[arg(long, value_enum, default_value_t = TimescaleArg::Auto)]
    pub timescale: TimescaleArg,
    /// The broker behind the gate.
    #[arg(long, value_enum, default_value_t = BrokerArg::Embedded)]
    pub broker: BrokerArg,
    /// The Mosquitto executable (with `--broker mosquitto`).
    #[arg(long, default_value = "mosquitto")]
    pub mosquitto: PathBuf,
    /// Idle gateways to hold (fewer when the open-file limit does not allow them).
    #[arg(
        long,
        default_value_t = 10_000,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000)
    )]
    pub gateways: usize,
    /// Gateways connecting at once.
    #[arg(
        long,
        default_value_t = 64,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000)
    )]
    pub concurrency: usize,
    /// The live gateway's measure window, seconds (each of the two runs).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// The live gateway's warm-up before its window, seconds.
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// The live gateway's signed batches per second.
    #[arg(long, default_value_t = 10)]
    pub rate: u32,
    /// Readings per batch.
    #[arg(long, default_value_t = 10)]
    pub readings_per_batch: usize,
    /// Length of the bare handshake baseline, seconds.
    #[arg(long, default_value_t = 5)]
    pub handshake_seconds: u64,
    /// Wait after the last connection before reading the node's memory, seconds.
    #[arg(long, default_value_t = 5)]
    pub settle: u64,
    /// Worker threads of the clients' runtime.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Also write the figures to this file (JSON, `bench/report` reads it).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl GateBenchArgs {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=1000).contains(&self.rate) && (1..=5000).contains(&self.readings_per_batch),
            "--rate must be 1..=1000 and --readings-per-batch 1..=5000"
        );
        anyhow::ensure!(
            self.seconds >= 1 && self.handshake_seconds >= 1 && self.client_threads >= 1,
            "--seconds, --handshake-seconds and --client-threads must be at least 1"
        );
        Ok(())
    }

    fn live_plan(&self) -> LivePlan {
        LivePlan {
            rate: self.rate,
            readings_per_batch: self.readings_per_batch,
            warmup: Duration::from_secs(self.warmup),
            window: Duration::from_secs(self.seconds),
        }
    }
}

/// Runs the benchmark and prints its report.
pub fn run(args: GateBenchArgs) -> anyhow::Result<()> {
    args.validate()?;
    let fd_limit = fd_limit::raise_open_files(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let clients = super::gateway_runtime(args.client_threads)?;
    let result = runtime.block_on(bench(&args, fd_limit, clients.handle()));
    clients.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn bench(
    args: &GateBenchArgs,
    fd_limit: Option<u64>,
    clients: &tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("temporary directory")?;
    let database = BenchDatabase::prepare(args.database.as_deref(), scratch.path()).await?;
    let load_before = super::load_average();
    let outcome = run_node(args, fd_limit, &database, scratch.path(), clients).await;
    let dropped = database.drop_database().await;
    let (backend, result) = outcome?;
    dropped?;
    let context = format!(
        "{backend}, {}; {} cores, load average {} before / {} after; the node in its own \
         process, the clients on {} thread(s) of this one",
        args.broker.label(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        super::load_average(),
        args.client_threads,
    );
    println!("{}", report::render(&context, args, &result));
    report::record(&context, &result).write(args.json.as_deref())?;
    result.check()
}

/// How many idle gateways the open-file limit lets one node and this process hold.
fn holdable(args: &GateBenchArgs, fd_limit: Option<u64>) -> usize {
    let wanted = args.gateways;
    let Some(limit) = fd_limit else {
        return wanted;
    };
    let node = limit.saturating_sub(FD_RESERVE) / args.broker.node_fds_per_gateway();
    let client = limit.saturating_sub(FD_RESERVE + args.concurrency as u64);
    let allowed = usize::try_from(node.min(client)).unwrap_or(usize::MAX);
    wanted.min(allowed)
}

/// Sets up the node and the gateways, measures, stops the node.
async fn run_node(
    args: &GateBenchArgs,
    fd_limit: Option<u64>,
    database: &BenchDatabase,
    dir: &Path,
    clients: &tokio::runtime::Handle,
) -> anyhow::Result<(&'static str, GateResult)> {
    let pki = init_pki(dir)?;
    let broker = match args.broker {
        BrokerArg::Embedded => None,
        BrokerArg::Mosquitto => {
            Some(Mosquitto::start(&args.mosquitto, &dir.join("broker"), None).await?)
        }
    };
    let broker_address = broker.as_ref().map(Mosquitto::address);
    let config = NodeConfig::write(
        dir,
        1,
        &Shared {
            database: database.url(),
            broker: broker_address.as_deref(),
            pki: &pki,
            timescale: args.timescale,
        },
    )?;
    let (store, ca) = bench_handles(&config).await?;
    let backend = store.backend().as_str();
    let tenant = TenantId::new("bench-gate")?;
    admin::create_tenant(store.as_ref(), &tenant, "Gate benchmark").await?;
    let gate = SocketAddr::from(([127, 0, 0, 1], config.gate_port));
    let target = Arc::new(Target::new(config.enroll, gate, &pki)?);
    let count = holdable(args, fd_limit);
    if count < args.gateways {
        eprintln!(
            "bench gate: the open-file limit ({}) allows {count} of the {} gateways wanted \
             ({} open files per gateway in the node)",
            fd_limit.unwrap_or(0),
            args.gateways,
            args.broker.node_fds_per_gateway()
        );
    }
    eprintln!("bench gate: registering {count} idle gateways…");
    let registering = Instant::now();
    let idle = hold::register(
        store.as_ref(),
        &ca,
        &config.config,
        &tenant,
        &target,
        count,
        BASELINE_IDENTITIES,
    )
    .await?;
    let registered_s = registering.elapsed().as_secs_f64();
    let node = Node::start(&config).await?;
    eprintln!("bench gate: node up (pid {}), gate {gate}", node.pid());
    let registrar = Registrar {
        store: store.as_ref(),
        ca: &ca,
        config: &config.config,
        gate_port: config.gate_port,
    };
    let setup = Setup {
        args,
        node: &node,
        registrar,
        tenant: &tenant,
        target,
        gate,
        keys: dir.join("gateways"),
        clients,
        broker: broker.as_ref().map(Mosquitto::pid),
    };
    let outcome = measure(&setup, idle).await;
    let stopped = node.stop().await;
    store.close().await;
    let mut result = outcome?;
    stopped?;
    result.wanted = args.gateways;
    result.fd_limit = fd_limit;
    result.registered_s = registered_s;
    Ok((backend, result))
}

/// What the measurement works with.
struct Setup<'a> {
    args: &'a GateBenchArgs,
    node: &'a Node,
    registrar: Registrar<'a>,
    tenant: &'a TenantId,
    target: Arc<Target>,
    gate: SocketAddr,
    keys: PathBuf,
    clients: &'a tokio::runtime::Handle,
    /// The external broker's process, if any.
    broker: Option<u32>,
}

/// Open files of process `pid` now (0 when unreadable).
fn open_files(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count() as u64)
}

async fn measure(setup: &Setup<'_>, idle: hold::Registered) -> anyhow::Result<GateResult> {
    let (args, node, clients) = (setup.args, setup.node, setup.clients);
    let plan = args.live_plan();
    eprintln!(
        "bench gate: live gateway alone for {} s…",
        args.warmup + args.seconds
    );
    let alone = live::run(
        setup.registrar,
        setup.tenant,
        GatewayId::new("live-alone")?,
        &setup.keys,
        plan,
        clients,
    )
    .await?;

    eprintln!("bench gate: handshakes with a bare rustls server…");
    let bare_server = BareServer::start(&setup.registrar.config.pki_dir()).await?;
    let bare = clients
        .spawn(clients::handshakes(
            setup.target.clone(),
            bare_server.addr,
            idle.identities.clone(),
            args.concurrency,
            Duration::from_secs(args.handshake_seconds),
        ))
        .await??;
    bare_server.stop().await;

    let before = Memory::read(node.pid(), setup.broker);
    let held_wanted = idle.gateways.len() as u64;
    eprintln!(
        "bench gate: connecting {held_wanted} idle gateways, {} at once…",
        args.concurrency
    );
    let holder = Arc::new(Holder::default());
    let step = (held_wanted / SERIES_POINTS).clamp(1, SERIES_STEP_MAX);
    let ramp = clients
        .spawn(hold::connect_all(
            idle.gateways,
            setup.gate,
            args.concurrency,
            holder.clone(),
            node.pid(),
            step,
        ))
        .await??;
    eprintln!(
        "bench gate: {} connected in {:.1} s ({} failed); settling {} s…",
        ramp.connected,
        ramp.elapsed.as_secs_f64(),
        ramp.failed,
        args.settle
    );
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let held_settled = holder.alive();
    let after = Memory::read(node.pid(), setup.broker);
    let while_held = node.scrape().await?;

    eprintln!("bench gate: live gateway while {held_settled} are held…");
    let held = live::run(
        setup.registrar,
        setup.tenant,
        GatewayId::new("live-held")?,
        &setup.keys,
        plan,
        clients,
    )
    .await?;
    let held_at_end = holder.alive();
    let end = node.scrape().await?;
    let (dropped, first_drop) = holder.dropped();
    eprintln!("bench gate: closing {held_at_end} connections…");
    let aborted_on_close = holder.close(CLOSE_DEADLINE).await;
    let stored_readings = count_readings(setup.registrar.store, setup.tenant).await?;
    Ok(GateResult {
        wanted: 0,
        fd_limit: None,
        registered_s: 0.0,
        ramp,
        bare,
        before,
        after,
        held_settled,
        held_at_end,
        gate_open: end.get("beffroi_gate_connections"),
        gate_open_settled: while_held.get("beffroi_gate_connections"),
        gate_refused: end.sum("beffroi_gate_refused_total"),
        dropped,
        first_drop,
        aborted_on_close,
        alone,
        held,
        stored_readings,
        duplicates: end.get("beffroi_ingest_duplicate_batches_total"),
    })
}

/// Memory and open files of the node and of this process at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    /// The node's resident set, bytes.
    pub node_rss: u64,
    /// The node's open files.
    pub node_fds: u64,
    /// This process's resident set, bytes.
    pub client_rss: u64,
    /// The external broker's resident set, bytes (`None`: embedded broker).
    pub broker_rss: Option<u64>,
}

impl Memory {
    fn read(node: u32, broker: Option<u32>) -> Self {
        Self {
            node_rss: usage::resident_of(node).unwrap_or(0),
            node_fds: open_files(node),
            client_rss: usage::resident().unwrap_or(0),
            broker_rss: broker.map(|pid| usage::resident_of(pid).unwrap_or(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: GateBenchArgs,
    }

    fn args(extra: &[&str]) -> GateBenchArgs {
        Cli::parse_from(["gate"].iter().chain(extra)).args
    }

    #[test]
    fn the_open_file_limit_caps_the_gateways_held() {
        let embedded = args(&[]);
        embedded.validate().unwrap();
        assert_eq!(holdable(&embedded, None), 10_000);
        assert_eq!(holdable(&embedded, Some(20_000)), (20_000 - 512) / 3);
        assert_eq!(holdable(&embedded, Some(1_000_000)), 10_000);
        let external = args(&["--broker", "mosquitto", "--gateways", "500"]);
        assert_eq!(holdable(&external, Some(20_000)), 500);
        assert_eq!(
            holdable(&args(&["--broker", "mosquitto"]), Some(20_000)),
            9_744
        );
        for refused in [["--gateways", "0"], ["--concurrency", "1001"]] {
            let parsed = Cli::try_parse_from(["gate"].iter().chain(&refused));
            assert!(parsed.is_err(), "{refused:?} accepted");
        }
    }
}
