//! Subcommands: `run`, `check-config`, `status`, `enroll`, `rotate-key`, `keygen`, `spool stats`,
//! `bench`, `config-reference`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use beffroi_agent::enroll::{self, Endpoint, EnrollOptions, EnrollmentToken};
use beffroi_agent::{keys, Agent, Config};
use beffroi_spool::Spool;
use clap::{Parser, Subcommand, ValueEnum};

const DEFAULT_CONFIG: &str = "/etc/beffroi-agent/agent.toml";
const DEFAULT_STATE_DIR: &str = "/var/lib/beffroi-agent";
/// Time allowed for TCP + TLS to the enrollment endpoint.
const ENROLL_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for the whole enrollment request.
const ENROLL_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Beffroi gateway agent: collects, signs, spools and uplinks sensor readings.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Log format: lines on standard error, or native journal fields.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
    /// Native systemd journal entries with structured fields (`journalctl -o json`); text on
    /// standard error, with a warning, when the journal socket is absent.
    Journald,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent until SIGTERM or SIGINT.
    Run {
        /// Configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate the configuration and load the keys and certificates it names.
    CheckConfig {
        /// Configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Whether the agent runs, its connection, last ack, spool depth and certificate expiry.
    /// Exits 0 when it runs, 3 when it does not, 4 when its status cannot be read.
    Status {
        /// Configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Enroll this gateway with a one-time token: generate its keys, get its certificate,
    /// write the configuration (see docs/gateway-identity.md).
    Enroll {
        /// The platform's enrollment endpoint, `https://host:port`.
        #[arg(long)]
        url: String,
        /// The token printed by `beffroi gateway create` (`bfe1.<secret>.<pin>`). It is
        /// visible to other local users in the process list: prefer `--token-file`.
        #[arg(
            long,
            required_unless_present = "token_file",
            conflicts_with = "token_file"
        )]
        token: Option<String>,
        /// A file holding the token (`-`: standard input).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Configuration file to create, or to update if it exists.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Directory for the keys and certificates (created 0700 if missing).
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Tenant this gateway must belong to (default: the configuration's).
        #[arg(long)]
        tenant: Option<String>,
        /// Gateway id this must be (default: the configuration's).
        #[arg(long)]
        gateway: Option<String>,
    },
    /// Prepare a new signing key; the running agent registers it and signs with it from its
    /// next certificate renewal on.
    RotateKey {
        /// Configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Generate an Ed25519 signing key (mode 0600) and print its key id and public key.
    Keygen {
        /// Where to write the private key; the public key goes to `<out>.pub`.
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing key file.
        #[arg(long)]
        force: bool,
    },
    /// Inspect the spool.
    Spool {
        #[command(subcommand)]
        command: SpoolCommand,
    },
    /// Measure the agent's throughput and footprint (see docs/benchmarks.md).
    Bench(crate::bench::BenchArgs),
    /// Print the reference of every configuration key (type, default, meaning) as markdown,
    /// generated from the config types: docs/agent-configuration.md.
    ConfigReference,
}

#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Print the spool's depth, size, drops and gaps as JSON (the agent must be stopped).
    Stats {
        /// Configuration file naming the spool directory.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

/// Logs to standard error or to the journal; `RUST_LOG` overrides the default `info` filter.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
        // Event fields become journal fields prefixed with `F_` (`F_GATEWAY`, `F_ERROR`), the
        // crate's default, so they never collide with the journal's own (`MESSAGE`,
        // `PRIORITY`, `CODE_FILE`…); levels map to priorities (info → notice).
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(journal) => tracing_subscriber::registry()
                .with(filter())
                .with(journal)
                .init(),
            Err(error) => {
                builder.init();
                tracing::warn!(%error, "no systemd journal (socket /run/systemd/journal/socket): logging text to standard error");
            }
        },
    }
}

/// Runs `command`; `status` gives its own exit code, the others succeed or fail.
pub fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    // One crypto provider for the whole process, installed before any TLS is set up.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match command {
        Command::Run { config } => run(&config),
        Command::CheckConfig { config } => check_config(&config),
        Command::Status { config, json } => return status(&config, json),
        Command::Enroll {
            url,
            token,
            token_file,
            config,
            state_dir,
            tenant,
            gateway,
        } => {
            let options = EnrollOptions {
                endpoint: Endpoint::parse(&url)?,
                token: read_token(token, token_file.as_deref())?.parse::<EnrollmentToken>()?,
                config,
                state_dir,
                tenant,
                gateway,
                connect_timeout: ENROLL_CONNECT_TIMEOUT,
                request_timeout: ENROLL_REQUEST_TIMEOUT,
            };
            enroll_gateway(&options)
        }
        Command::RotateKey { config } => rotate_key(&config),
        Command::Keygen { out, force } => keygen(&out, force),
        Command::Spool {
            command: SpoolCommand::Stats { config },
        } => spool_stats(&config),
        Command::Bench(args) => crate::bench::run(args),
        Command::ConfigReference => {
            println!("{}", beffroi_agent::config_reference::markdown());
            Ok(())
        }
    }
    .map(|()| ExitCode::SUCCESS)
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("configuration {}", path.display()))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .context("cannot start the async runtime")
}

fn run(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        let agent = Agent::build(config)?;
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot install the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        agent.run(shutdown).await?;
        Ok(())
    });
    // Dropping the runtime would wait for every blocking task, and the read of standard input
    // behind `tokio::io::stdin()` (jsonl source, `path = "-"`) cannot be cancelled: with the
    // pipe still open the process would never exit. The pipeline is stopped and the spool
    // closed by now, so do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}

fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let key =
        keys::load_signing_key(&config.identity.signing_key).context("identity.signing_key")?;
    beffroi_agent::uplink::tls::client_config(&config.uplink).context("uplink")?;
    for spec in &config.sources {
        spec.build()
            .with_context(|| format!("source {}", spec.name()))?;
    }
    println!(
        "configuration OK: tenant {} gateway {} key id {}; {} source(s); uplink {}:{}",
        config.identity.tenant,
        config.identity.gateway,
        beffroi_protocol::key_id_for(&key.verifying_key()),
        config.sources.len(),
        config.uplink.host,
        config.uplink.port
    );
    Ok(())
}

fn status(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = load(path)?;
    let now = beffroi_protocol::Timestamp::now();
    let report = beffroi_agent::status::report::gather(&config, now);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text(now));
    }
    Ok(ExitCode::from(report.exit_code))
}

fn read_token(token: Option<String>, file: Option<&Path>) -> anyhow::Result<String> {
    match (token, file) {
        (Some(token), _) => Ok(token),
        (None, Some(path)) if path == Path::new("-") => {
            let mut token = String::new();
            std::io::stdin()
                .read_line(&mut token)
                .context("reading the token from standard input")?;
            Ok(token)
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the token from {}", path.display())),
        (None, None) => anyhow::bail!("--token or --token-file is required"),
    }
}

fn enroll_gateway(options: &EnrollOptions) -> anyhow::Result<()> {
    let enrolled = runtime()?.block_on(enroll::enroll(options))?;
    let expires = beffroi_protocol::Timestamp::from(enrolled.validity.not_after);
    println!(
        "enrolled: tenant {} gateway {} key id {}; certificate valid until {expires}",
        enrolled.tenant, enrolled.gateway, enrolled.key_id
    );
    let verb = match enrolled.config_outcome {
        enroll::ConfigOutcome::Created => "written",
        enroll::ConfigOutcome::Updated => "updated",
    };
    println!("configuration {verb}: {}", enrolled.config.display());
    load(&enrolled.config).context("the configuration written does not validate")?;
    println!(
        "next: beffroi-agent check-config --config {0} && beffroi-agent run --config {0}",
        enrolled.config.display()
    );
    Ok(())
}

fn rotate_key(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    anyhow::ensure!(
        config.enrollment.is_some(),
        "{}: no [enrollment] section: the platform learns new signing keys through renewals",
        path.display()
    );
    let pending = enroll::files::pending(&config.identity.signing_key);
    anyhow::ensure!(
        !pending.exists(),
        "a rotation is already pending ({} exists): it happens at the next renewal",
        pending.display()
    );
    let key = enroll::renewal::prepare_rotation(&config.identity.signing_key)?;
    println!(
        "rotation prepared: key id {} is registered and used from the next certificate renewal",
        beffroi_protocol::key_id_for(&key.verifying_key())
    );
    Ok(())
}

fn keygen(out: &Path, force: bool) -> anyhow::Result<()> {
    let generated = keys::generate(out, force)?;
    println!("key_id = {}", generated.key_id);
    println!("public_key = {}", generated.public_key_hex);
    println!("public_key_file = {}", generated.public_key_path.display());
    Ok(())
}

fn spool_stats(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let (spool, recovery) = Spool::open(&config.spool.dir, config.spool.spool)
        .with_context(|| format!("spool {}", config.spool.dir.display()))?;
    let stats = spool.stats();
    let report = serde_json::json!({
        "dir": config.spool.dir,
        "batches": stats.batches,
        "readings": stats.readings,
        "bytes": stats.bytes,
        "oldest_unacked_appended_at_ms": stats.oldest_unacked_appended_at_ms,
        "dropped_batches": stats.dropped_batches,
        "dropped_readings": stats.dropped_readings,
        "next_seq": stats.next_seq,
        "acked_through": stats.acked_through,
        "pending_gaps": spool.pending_gaps(),
        "recovery": format!("{recovery:?}"),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    spool.close()?;
    Ok(())
}
