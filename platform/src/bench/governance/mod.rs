//! `beffroi bench governance` (issue #8): the overhead of a governed read against the same
//! read run directly, measured in the same run on the same server.
//!
//! ```text
//! setup   : temp dir, database (SQLite there, or a fresh PostgreSQL database), platform
//!           started as `serve` would (`super::platform`)
//! seed    : grantor tenant with zones and N sensors × M metrics, one reading a minute over
//!           the last H whole hours (store batch commits); partner with a token; two active
//!           agreements created through the API: read_aggregate (1 h, avg/min/max/count,
//!           k = 3, zone level) and read_raw (time, value, sensor, metric, unit)
//! HTTP    : one keep-alive connection; per round the direct and the governed query, in
//!           alternating order (cancels drift and order effects)
//!   aggregate: GET /api/v1/readings/buckets  vs  GET /api/v1/shared/{grantor}/aggregates
//!   raw      : GET /api/v1/readings (1000)   vs  GET /api/v1/shared/{grantor}/readings (1000)
//! store   : the same alternation without HTTP: store.buckets against the governed read's
//!           queries (grantor, registry, series, cells)
//! parts   : decide, an audit append (its own tenant's chain), SHA-256 of the governed body
//! end     : platform stopped in order, PostgreSQL database dropped, table printed
//! ```
//! The run fails if a query does not answer 200 or the governed answer is empty.

mod measure;
mod report;
mod seed;

use std::time::Duration;

use anyhow::Context as _;

use super::database::BenchDatabase;
use super::TimescaleArg;

/// Options of `beffroi bench governance`.
#[derive(Debug, Clone, clap::Args)]
pub struct GovernanceBenchArgs {
    /// Database URL; default: SQLite in a temporary directory. For `postgres://…` a fresh
    /// database is created next to the named one and dropped at the end.
    #[arg(long)]
    pub database: Option<String>,
    /// PostgreSQL: `off` runs on plain PostgreSQL even when the server has TimescaleDB.
    #[arg(long, value_enum, default_value_t = TimescaleArg::Auto)]
    pub timescale: TimescaleArg,
    /// Sensors of the grantor.
    #[arg(long, default_value_t = 200)]
    pub sensors: usize,
    /// Metrics per sensor (1..=8).
    #[arg(long, default_value_t = 4)]
    pub metrics: usize,
    /// Hours of readings, one a minute per sensor and metric; the queries cover them all.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Zones the sensors are spread over.
    #[arg(long, default_value_t = 10)]
    pub zones: usize,
    /// Measure time of each HTTP comparison (aggregate, raw), seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Measure time of the comparison through the store, seconds.
    #[arg(long, default_value_t = 6)]
    pub store_seconds: u64,
    /// Rounds run (and not counted) before each comparison.
    #[arg(long, default_value_t = 3)]
    pub warmup: u32,
    /// The raw agreement pseudonymises sensor ids (HMAC-SHA256 per row).
    #[arg(long)]
    pub pseudonymise: bool,
}

impl GovernanceBenchArgs {
    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=100_000).contains(&self.sensors) {
            anyhow::bail!("--sensors must be 1..=100000");
        }
        if !(1..=seed::METRICS.len()).contains(&self.metrics) {
            anyhow::bail!("--metrics must be 1..={}", seed::METRICS.len());
        }
        if !(1..=24 * 7).contains(&self.hours) {
            anyhow::bail!("--hours must be 1..=168 (the API's bucket limits)");
        }
        if self.zones == 0 || self.zones > self.sensors {
            anyhow::bail!("--zones must be 1..=--sensors");
        }
        if self.seconds == 0 || self.store_seconds == 0 {
            anyhow::bail!("--seconds and --store-seconds must be at least 1");
        }
        Ok(())
    }
}

/// Runs `beffroi bench governance` on a runtime of its own.
pub(crate) fn run(args: GovernanceBenchArgs) -> anyhow::Result<()> {
    args.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(super::PLATFORM_THREAD)
        .build()
        .context("cannot start the platform runtime")?;
    runtime.block_on(bench(args))
}

async fn bench(args: GovernanceBenchArgs) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("temporary directory")?;
    let database = BenchDatabase::prepare(args.database.as_deref(), scratch.path()).await?;
    let load_before = super::load_average();
    let outcome = run_on(&args, &database, scratch.path()).await;
    let dropped = database.drop_database().await;
    let (backend, result) = outcome?;
    dropped?;
    let context = format!(
        "{} cores, load average {} before / {} after; client and platform in one process",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        super::load_average()
    );
    println!("{}", report::render(backend, &context, &result));
    Ok(())
}

async fn run_on(
    args: &GovernanceBenchArgs,
    database: &BenchDatabase,
    scratch: &std::path::Path,
) -> anyhow::Result<(&'static str, report::GovernanceResult)> {
    let (running, _config) = super::platform::start(database, scratch, args.timescale, "").await?;
    let backend = running.store.backend().as_str();
    let outcome = measure_all(args, &running).await;
    super::platform::stop(running).await;
    Ok((backend, outcome?))
}

async fn measure_all(
    args: &GovernanceBenchArgs,
    running: &crate::server::Running,
) -> anyhow::Result<report::GovernanceResult> {
    let seeded = seed::seed(args, running).await?;
    eprintln!(
        "bench governance: {} readings seeded in {:.1} s; measuring…",
        seeded.readings,
        seeded.elapsed.as_secs_f64()
    );
    let window = Duration::from_secs(args.seconds);
    let mut client = super::http::Client::connect(running.api_addr).await?;
    let aggregate = measure::http_pair(
        &mut client,
        &seeded.direct_aggregate(),
        &seeded.governed_aggregate(),
        args.warmup,
        window,
    )
    .await
    .context("aggregate queries")?;
    let raw = measure::http_pair(
        &mut client,
        &seeded.direct_raw(),
        &seeded.governed_raw(),
        args.warmup,
        window,
    )
    .await
    .context("raw queries")?;
    let store = measure::store_pair(
        running.store.as_ref(),
        &seeded,
        args.warmup,
        Duration::from_secs(args.store_seconds),
    )
    .await
    .context("store queries")?;
    let parts = measure::parts(running.store.as_ref(), &seeded, &aggregate.governed_body)
        .await
        .context("governed read's parts")?;
    Ok(report::GovernanceResult {
        seeded,
        aggregate,
        raw,
        store,
        parts,
    })
}
