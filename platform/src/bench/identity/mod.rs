//! `beffroi bench identity` (issue #9): the enrollment and renewal rates the platform
//! sustains, and mutual-TLS handshakes per second at the gate, each beside a baseline
//! measured in the same run.
//!
//! ```text
//! setup    : temp dir, database (SQLite there, or a fresh PostgreSQL database), platform
//!            started as `serve` would (`super::platform`); one tenant; N tokens created by
//!            the admin code; N requests (P-256 TLS key + CSR, Ed25519 signing key + proof)
//!            made before any clock starts — the gateways' work, not the platform's
//! enroll   : C clients, each request on a new TLS connection pinned like the agent's,
//!            POST /enroll/v1/enroll; every answer must be 200
//!   baseline: the same N certificates issued in memory by the CA (`Ca::issue_gateway_for_spki`),
//!            no HTTP, TLS, store or audit: the ceiling of what enrollment can reach
//! renew    : the N enrolled identities renew over mutual TLS with a fresh CSR each
//! handshake: C clients for S seconds: TCP + TLS 1.3 handshake with a gateway certificate
//!            against the gate, then closed
//!   baseline: the same against a bare tokio-rustls acceptor with the gate's own rustls
//!            configuration (`beffroi_gate::server_tls_config`) in this process
//! ```
//! Clients run on a runtime of their own (`--client-threads`); the run fails if any
//! enrollment or renewal is refused.

pub(super) mod clients;
mod report;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use beffroi_protocol::{GatewayId, TenantId};

use super::database::BenchDatabase;
use super::TimescaleArg;
use crate::admin;

/// Options of `beffroi bench identity`.
#[derive(Debug, Clone, clap::Args)]
pub struct IdentityBenchArgs {
    /// Database URL; default: SQLite in a temporary directory. For `postgres://…` a fresh
    /// database is created next to the named one and dropped at the end.
    #[arg(long)]
    pub database: Option<String>,
    /// PostgreSQL: `off` runs on plain PostgreSQL even when the server has TimescaleDB.
    #[arg(long, value_enum, default_value_t = TimescaleArg::Auto)]
    pub timescale: TimescaleArg,
    /// Gateways enrolled, then renewed.
    #[arg(
        long,
        default_value_t = 2000,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000)
    )]
    pub gateways: usize,
    /// Clients at once (at most 1,000: the enrollment endpoint serves 1,024 at once).
    #[arg(
        long,
        default_value_t = 16,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000)
    )]
    pub concurrency: usize,
    /// Length of each handshake measurement, seconds.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Worker threads of the clients' runtime.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
}

impl IdentityBenchArgs {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.seconds >= 1 && self.client_threads >= 1,
            "--seconds and --client-threads must be at least 1"
        );
        Ok(())
    }
}

/// Runs the benchmark and prints its report.
pub fn run(args: IdentityBenchArgs) -> anyhow::Result<()> {
    args.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(super::PLATFORM_THREAD)
        .build()
        .context("cannot start the platform runtime")?;
    let clients = super::gateway_runtime(args.client_threads)?;
    runtime.block_on(bench(args, clients.handle().clone()))
}

async fn bench(args: IdentityBenchArgs, clients: tokio::runtime::Handle) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("temporary directory")?;
    let database = BenchDatabase::prepare(args.database.as_deref(), scratch.path()).await?;
    let load_before = super::load_average();
    let outcome = run_on(&args, &database, scratch.path(), &clients).await;
    let dropped = database.drop_database().await;
    let (backend, result) = outcome?;
    dropped?;
    let context = format!(
        "{} cores, load average {} before / {} after; clients on {} thread(s) of the same process",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        super::load_average(),
        args.client_threads,
    );
    println!("{}", report::render(backend, &context, &args, &result));
    result.check()
}

async fn run_on(
    args: &IdentityBenchArgs,
    database: &BenchDatabase,
    scratch: &std::path::Path,
    clients: &tokio::runtime::Handle,
) -> anyhow::Result<(&'static str, report::IdentityResult)> {
    let (running, config) = super::platform::start(database, scratch, args.timescale, "").await?;
    let backend = running.store.backend().as_str();
    let outcome = measure(args, &running, &config, clients).await;
    super::platform::stop(running).await;
    Ok((backend, outcome?))
}

async fn measure(
    args: &IdentityBenchArgs,
    running: &crate::server::Running,
    config: &crate::config::PlatformConfig,
    clients: &tokio::runtime::Handle,
) -> anyhow::Result<report::IdentityResult> {
    let enroll_addr = running
        .enroll_addr
        .context("the enrollment endpoint is disabled")?;
    let tenant = TenantId::new("bench-identity")?;
    admin::create_tenant(running.store.as_ref(), &tenant, "Identity benchmark").await?;
    let pin = admin::enrollment_pin(config)?;
    eprintln!(
        "bench identity: making {} tokens and requests…",
        args.gateways
    );
    let mut plans = Vec::with_capacity(args.gateways);
    for i in 0..args.gateways {
        let gateway = GatewayId::new(format!("gw-{i:05}"))?;
        let created = admin::create_enrollment_token(
            running.store.as_ref(),
            config,
            &pin,
            &tenant,
            &gateway,
            None,
        )
        .await?;
        plans.push(clients::Plan::new(gateway, created.token)?);
    }
    let pki = config.pki_dir();
    let ca = crate::pki::Ca::load_or_create(&pki, crate::server::CA_NAME)?;
    let baseline = clients::issue_in_memory(&ca, &tenant, &plans, config.certificate_lifetime)?;

    let target = Arc::new(clients::Target::new(enroll_addr, running.gate_addr, &pki)?);
    eprintln!("bench identity: enrolling…");
    let enrolled = clients
        .spawn(clients::enroll_all(target.clone(), plans, args.concurrency))
        .await??;
    eprintln!("bench identity: renewing…");
    let renewed = clients
        .spawn(clients::renew_all(
            target.clone(),
            enrolled.identities.clone(),
            args.concurrency,
        ))
        .await??;
    let seconds = Duration::from_secs(args.seconds);
    eprintln!("bench identity: handshakes at the gate…");
    let gate = clients
        .spawn(clients::handshakes(
            target.clone(),
            target.gate,
            renewed.identities.clone(),
            args.concurrency,
            seconds,
        ))
        .await??;
    eprintln!("bench identity: handshakes with a bare rustls server…");
    let bare_server = clients::BareServer::start(&pki).await?;
    let bare = clients
        .spawn(clients::handshakes(
            target.clone(),
            bare_server.addr,
            renewed.identities.clone(),
            args.concurrency,
            seconds,
        ))
        .await??;
    let bare_accepted = bare_server.stop().await;
    Ok(report::IdentityResult {
        baseline,
        enrolled: enrolled.phase,
        renewed: renewed.phase,
        gate,
        bare,
        bare_accepted,
    })
}
