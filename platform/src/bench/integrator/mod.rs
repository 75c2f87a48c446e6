//! The integrator baseline of `beffroi bench ingest` (issue #11, DESIGN.md's budgets): what an
//! integrator typically builds instead of Beffroi — Mosquitto with no TLS and a small Python
//! consumer writing with `COPY` (SQLite: `executemany` in transactions), no signatures, no
//! duplicate checks, no acknowledgement of what was written — measured in the same run, on
//! the same backend, into the same readings table.
//!
//! ```text
//! per mode: tenant → private Mosquitto (default queue limits) → consumer (subscribed, QoS 1,
//!           clean session) → publishers (JSON, N readings or 1 per message, flow-controlled
//!           against what the consumer received) → warm-up → window (consumer's committed
//!           rows, its CPU, Mosquitto's, PostgreSQL's) → stop publishing → consumer drains,
//!           commits, exits → rows counted in the table: loss = published − stored
//! ```
//!
//! The consumer's rate is what it commits in the window. With `--integrator-ahead` above
//! Mosquitto's per-client queue (1000 messages), publishers outrun the consumer and Mosquitto
//! drops what does not fit: the loss figure shows it.

mod consumer;
mod publishers;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::TenantId;
use beffroi_store::Store;

use self::consumer::{Consumer, Installation};
use self::publishers::Publishers;
use super::database::BenchDatabase;
use super::mosquitto::Mosquitto;
use super::usage;
use super::Mode;

/// Once publishing stops, the consumer is given until it has received every message
/// published, or until it has received nothing more for this long (what Mosquitto dropped
/// never comes).
const DRAIN_IDLE: Duration = Duration::from_secs(3);

/// Whether to run the integrator baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IntegratorSwitch {
    /// When python3 and its environment are available (skipped with a message otherwise).
    On,
    /// Never.
    Off,
}

/// Options of the integrator baseline (`beffroi bench ingest`).
#[derive(Debug, Clone, clap::Args)]
pub struct IntegratorArgs {
    /// The integrator baseline: Mosquitto + `bench/integrator/consumer.py`, run after each
    /// mode on the same backend.
    #[arg(long, value_enum, default_value_t = IntegratorSwitch::On)]
    pub integrator: IntegratorSwitch,
    /// Its Python virtual environment, created from `bench/integrator/requirements.txt` (pip,
    /// PyPI) when missing.
    #[arg(long, default_value = "target/bench-integrator/venv")]
    pub integrator_venv: PathBuf,
    /// The Mosquitto executable.
    #[arg(long, default_value = "mosquitto")]
    pub mosquitto: PathBuf,
    /// Readings per JSON message in the batched mode (DESIGN.md's baseline: 100; the
    /// unbatched mode sends 1).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=5000))]
    pub integrator_readings_per_message: u16,
    /// Publisher connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub integrator_publishers: u16,
    /// Messages the publishers may run ahead of what the consumer received. Below
    /// Mosquitto's default queue (1000 per client) nothing should be dropped; above it,
    /// Mosquitto drops silently.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub integrator_ahead: u64,
    /// The consumer commits every this many rows…
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub integrator_commit_rows: u32,
    /// … or every this many milliseconds, whichever comes first.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub integrator_commit_ms: u32,
}

/// What the baseline needs for every mode, prepared once.
pub(crate) struct Integrator {
    installation: Installation,
    args: IntegratorArgs,
}

/// Where a run of the baseline happens: the benchmark's database (and the platform's store
/// on it), its directory, and the runtime the publishers run on (the simulated gateways').
#[derive(Clone, Copy)]
pub(crate) struct Site<'a> {
    /// The platform's store: the baseline's tenant is created and its rows counted through it.
    pub store: &'a dyn Store,
    /// The database the consumer writes into.
    pub database: &'a BenchDatabase,
    /// The run's directory.
    pub scratch: &'a Path,
    /// The publishers' runtime.
    pub runtime: &'a tokio::runtime::Handle,
}

impl Integrator {
    /// The baseline when asked for and available; `None` with a message on standard error
    /// otherwise.
    pub(crate) fn prepare(args: &IntegratorArgs) -> Option<Self> {
        if args.integrator == IntegratorSwitch::Off {
            return None;
        }
        // `mosquitto -h` exits non-zero: only whether it starts at all matters here.
        if let Err(error) = std::process::Command::new(&args.mosquitto)
            .arg("-h")
            .output()
        {
            eprintln!(
                "bench: integrator baseline skipped: cannot run {} ({error}; install it: \
                 apt-get install mosquitto, or pass --mosquitto PATH)",
                args.mosquitto.display()
            );
            return None;
        }
        match Installation::prepare(&args.integrator_venv) {
            Ok(installation) => Some(Self {
                installation,
                args: args.clone(),
            }),
            Err(error) => {
                eprintln!("bench: integrator baseline skipped: {error:#}");
                None
            }
        }
    }

    /// Readings per message in `mode`.
    fn per_message(&self, mode: Mode) -> usize {
        match mode {
            Mode::Batched => usize::from(self.args.integrator_readings_per_message),
            Mode::Unbatched => 1,
        }
    }
}

/// What the baseline measured in one mode.
#[derive(Debug, Clone)]
pub(crate) struct IntegratorResult {
    /// Readings per message.
    pub readings_per_message: usize,
    /// Publisher connections.
    pub publishers: usize,
    /// Length of the measure window, s.
    pub seconds: f64,
    /// Readings the consumer committed per second in the window.
    pub readings_per_s: f64,
    /// Messages published (acknowledged by Mosquitto) over the whole run.
    pub published_messages: u64,
    /// Readings in them.
    pub published_readings: u64,
    /// Readings the consumer received.
    pub received_readings: u64,
    /// Readings found in the table for its tenant at the end.
    pub stored_readings: u64,
    /// CPU of the consumer in the window, % of one core.
    pub consumer_cpu: f64,
    /// CPU of Mosquitto in the window, % of one core.
    pub mosquitto_cpu: f64,
    /// CPU of local `postgres` processes in the window, % of one core.
    pub server_cpu: f64,
    /// Resident memory of the consumer at the end of the window, bytes.
    pub consumer_rss: Option<u64>,
    /// Committed readings/s, second by second from the start of publishing.
    pub rate_series: Vec<(f64, f64)>,
}

impl IntegratorResult {
    /// Messages committed per second in the window.
    pub(crate) fn messages_per_s(&self) -> f64 {
        self.readings_per_s / self.readings_per_message.max(1) as f64
    }

    /// Readings published and not in the table.
    pub(crate) fn lost(&self) -> u64 {
        self.published_readings.saturating_sub(self.stored_readings)
    }
}

/// The phase's timing: warm-up, then the measure window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Warm-up before the window opens.
    pub warmup: Duration,
    /// The measure window.
    pub window: Duration,
}

/// Runs the baseline for `mode` at `site`: its readings go to a tenant of its own, `tenant`.
pub(crate) async fn run(
    integrator: &Integrator,
    mode: Mode,
    tenant: &str,
    site: Site<'_>,
    timing: Timing,
) -> anyhow::Result<IntegratorResult> {
    let tenant = &TenantId::new(tenant)?;
    let args = &integrator.args;
    let per_message = integrator.per_message(mode);
    site.store
        .create_tenant(tenant, "integrator baseline")
        .await
        .context("integrator tenant")?;
    let dir = site.scratch.join(tenant.as_str());
    let broker = Mosquitto::start(&args.mosquitto, &dir.join("mosquitto"), None).await?;
    let topic = format!("sensors/{tenant}");
    let mut consumer = Consumer::start(
        &integrator.installation,
        &dir,
        site.database,
        &[
            ("--port", broker.port().to_string()),
            ("--topic", topic.clone()),
            ("--tenant", tenant.to_string()),
            ("--commit-rows", args.integrator_commit_rows.to_string()),
            ("--commit-ms", args.integrator_commit_ms.to_string()),
        ],
    )
    .await?;
    eprintln!(
        "bench {}: integrator baseline ({per_message} reading(s)/message), warming up {} s",
        mode.as_str(),
        timing.warmup.as_secs()
    );
    let progress = consumer.progress.clone();
    let publishers = Publishers::start(
        site.runtime,
        broker.port(),
        &topic,
        usize::from(args.integrator_publishers),
        per_message,
        args.integrator_ahead,
        progress.clone(),
    )
    .await?;

    // Warm-up then window, sampled every second.
    let started = Instant::now();
    let mut rate_series = Vec::new();
    let mut last = (0.0, progress.written());
    let mut sample = |consumer: &mut Consumer| -> anyhow::Result<()> {
        consumer.check_alive()?;
        let (t, written) = (started.elapsed().as_secs_f64(), progress.written());
        rate_series.push((
            t,
            written.saturating_sub(last.1) as f64 / (t - last.0).max(1e-9),
        ));
        last = (t, written);
        Ok(())
    };
    for _ in 0..timing.warmup.as_secs() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        sample(&mut consumer)?;
    }
    let consumer_pid = consumer.pid().unwrap_or(0);
    let cpu_ticks = || {
        [
            usage::ticks_of_pid(consumer_pid),
            usage::ticks_of_pid(broker.pid()),
            usage::ticks_of_processes("postgres"),
        ]
    };
    let (written_before, ticks_before, opened) = (progress.written(), cpu_ticks(), Instant::now());
    let window_end = tokio::time::Instant::now() + timing.window;
    while tokio::time::Instant::now() < window_end {
        tokio::time::sleep_until(
            window_end.min(tokio::time::Instant::now() + Duration::from_secs(1)),
        )
        .await;
        sample(&mut consumer)?;
    }
    let (written_after, ticks_after, seconds) = (
        progress.written(),
        cpu_ticks(),
        opened.elapsed().as_secs_f64(),
    );
    let consumer_rss = usage::resident_of(consumer_pid);
    let cpu = |i: usize| usage::ticks_pct(ticks_after[i].saturating_sub(ticks_before[i]), seconds);

    // Stop, let the consumer take what Mosquitto still holds, commit and exit.
    let published = publishers.stop().await?;
    let mut seen = (progress.messages(), tokio::time::Instant::now());
    while progress.messages() < published.messages && seen.1.elapsed() < DRAIN_IDLE {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if progress.messages() != seen.0 {
            seen = (progress.messages(), tokio::time::Instant::now());
        }
    }
    let progress = consumer.finish().await?;
    drop(broker);
    let stored_readings = site.store.reading_count(tenant).await?;
    Ok(IntegratorResult {
        readings_per_message: per_message,
        publishers: usize::from(args.integrator_publishers),
        seconds,
        readings_per_s: written_after.saturating_sub(written_before) as f64 / seconds,
        published_messages: published.messages,
        published_readings: published.readings,
        received_readings: progress.received(),
        stored_readings,
        consumer_cpu: cpu(0),
        mosquitto_cpu: cpu(1),
        server_cpu: cpu(2),
        consumer_rss,
        rate_series,
    })
}
