//! Subcommands: `serve`, `demo`, administration (`tenant`, `gateway`, `token`, `partner`,
//! `pki`), `audit`, `retention`, `export`, `import`, `backup`, `restore`, `watch`, `probe`,
//! `bench` and `config reference`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use beffroi::config::PlatformConfig;
use beffroi::{admin, broker_logs};
use beffroi_policy::PartnerId;
use beffroi_protocol::{GatewayId, TenantId};
use beffroi_store::{Role, Store};
use clap::{Parser, Subcommand, ValueEnum};

/// Beffroi platform: TLS gate, embedded broker, verified ingest, storage and API.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Configuration file (TOML); every key has a default.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Log line format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the platform until SIGTERM or SIGINT.
    Serve,
    /// Run the demo: platform with embedded broker and SQLite, simulated gateways over mTLS.
    Demo(beffroi::demo::DemoArgs),
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// The platform CA: the shared PKI directory of several nodes, trust-anchor rollover.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Manage gateways.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage partners (organisations that are not tenants and may be granted data).
    Partner {
        #[command(subcommand)]
        command: PartnerCommand,
    },
    /// The tamper-evident audit log: verify, checkpoint, platform key.
    Audit {
        #[command(subcommand)]
        command: beffroi::audit::AuditCommand,
    },
    /// Retention per tenant and metric class: set, list, apply now.
    Retention {
        #[command(subcommand)]
        command: beffroi::retention::RetentionCommand,
    },
    /// Export a tenant's whole state (readings, registry, rules, agreements, audit log) to a
    /// directory with a signed manifest (see docs/export.md).
    Export(beffroi::export::ExportArgs),
    /// Import an export into this instance, which must not have the tenant; verifies every
    /// file and the manifest's signature first.
    Import(beffroi::export::ImportArgs),
    /// Back up the whole platform while it runs: database (SQLite copy or pg_dump), PKI
    /// directory, configuration file, with a manifest of SHA-256s (see docs/backup.md).
    Backup(beffroi::backup::BackupArgs),
    /// Restore a backup into this configuration's database, which must be empty, and its PKI
    /// directory; verifies every file against the manifest first.
    Restore(beffroi::backup::RestoreArgs),
    /// Tail a live view (readings, alarms, security events or gateway states).
    Watch(beffroi::watch::WatchArgs),
    /// Exit 0 if `GET /readyz` at this address answers 200 (container health checks).
    Probe {
        /// host:port of the HTTP API.
        address: String,
    },
    /// Benchmarks (see docs/benchmarks.md).
    #[command(subcommand)]
    Bench(beffroi::bench::BenchCommand),
    /// The configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the reference of every key (type, default, meaning) as markdown, generated from
    /// the config types: docs/configuration.md.
    Reference,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant id (`[a-z0-9][a-z0-9-]{0,62}`).
        #[arg(long)]
        id: TenantId,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// List tenants.
    List,
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Make, once, the PKI directory every node of a deployment shares (`pki.dir`): root and
    /// issuing CA, gate certificate, audit key, key-encryption key (docs/gateway-identity.md,
    /// "Several nodes"). Needs no configuration file.
    Init(beffroi::pki_init::InitArgs),
    /// Replace the root CA in three steps (docs/gateway-identity.md): begin, complete,
    /// retire; restart every node after each.
    Rollover {
        #[command(subcommand)]
        step: beffroi::rollover::RolloverStep,
    },
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    /// Create a gateway (or prepare an existing one's re-enrollment): prints a one-time
    /// enrollment token for `beffroi-agent enroll`.
    Create {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// The gateway id.
        #[arg(long, visible_alias = "id")]
        gateway: GatewayId,
        /// The token's lifetime in seconds (default: `enroll.token_ttl_s`, 24 h; at most 30
        /// days).
        #[arg(long)]
        ttl_s: Option<u64>,
    },
    /// Register a gateway and issue its client certificate.
    Register {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// The gateway id.
        #[arg(long)]
        id: GatewayId,
        /// The gateway's Ed25519 signing public key (the `.pub` that `beffroi-agent keygen` wrote).
        #[arg(long)]
        signing_key: PathBuf,
        /// The gateway's TLS public key (SubjectPublicKeyInfo PEM, e.g. a second keygen's `.pub`).
        #[arg(long)]
        tls_key: PathBuf,
        /// Where to write the client certificate (PEM).
        #[arg(long)]
        cert_out: PathBuf,
    },
    /// List a tenant's gateways with their state.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
    },
    /// Revoke a gateway: its certificates are refused, its live connections cut (within 1 s
    /// by a running platform) and what it signs from now on quarantined.
    Revoke {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// The gateway id.
        #[arg(long, visible_alias = "gateway")]
        id: GatewayId,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an API token; the secret is printed once.
    Create {
        /// The tenant it grants access to.
        #[arg(long, required_unless_present_any = ["platform", "partner"], requires = "role")]
        tenant: Option<TenantId>,
        /// viewer, operator or admin.
        #[arg(long, value_parser = parse_role, requires = "tenant")]
        role: Option<Role>,
        /// A platform operator's token instead: the security events that belong to no tenant,
        /// and no tenant's data.
        #[arg(long, conflicts_with_all = ["tenant", "role"])]
        platform: bool,
        /// A partner's token instead: it reads only what sharing agreements grant the
        /// partner, under /api/v1/shared.
        #[arg(long, conflicts_with_all = ["tenant", "role", "platform"])]
        partner: Option<PartnerId>,
        /// A label.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum PartnerCommand {
    /// Create a partner.
    Create {
        /// Partner id (`[a-z0-9][a-z0-9-]{0,62}`).
        #[arg(long)]
        id: PartnerId,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// List partners.
    List,
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("unknown role {text:?}: viewer, operator or admin"))
}

/// The log filter unless `RUST_LOG` gives one. rumqttd's events are written under the target
/// `beffroi::broker` at their classified level (see `beffroi::broker_logs`).
const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn";

/// Logs to standard error; `RUST_LOG` overrides the default filter.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => {
            broker_logs::subscriber(fmt, filter).map(tracing::subscriber::set_global_default)
        }
        LogFormat::Json => {
            broker_logs::subscriber(fmt.json(), filter).map(tracing::subscriber::set_global_default)
        }
    };
    match installed {
        Ok(Ok(())) => {}
        Ok(Err(error)) => eprintln!("beffroi: cannot install the logger: {error}"),
        Err(error) => eprintln!("beffroi: cannot start the broker's log relay: {error}"),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    // One crypto provider for the whole process, installed before any TLS is set up.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = || PlatformConfig::load(cli.config.as_deref()).context("configuration");
    match cli.command {
        Command::Serve => runtime()?.block_on(serve(config()?)),
        Command::Demo(args) => runtime()?.block_on(beffroi::demo::run(args)),
        Command::Probe { address } => probe(&address),
        Command::Watch(args) => runtime()?.block_on(beffroi::watch::run(args)),
        Command::Bench(command) => beffroi::bench::run(command),
        Command::Config {
            command: ConfigCommand::Reference,
        } => {
            println!("{}", beffroi::config_reference::markdown());
            Ok(())
        }
        Command::Tenant { command } => runtime()?.block_on(tenant(config()?, command)),
        Command::Gateway { command } => runtime()?.block_on(gateway(config()?, command)),
        Command::Pki {
            command: PkiCommand::Init(args),
        } => {
            println!("{}", beffroi::pki_init::run(&args)?);
            Ok(())
        }
        Command::Pki {
            command: PkiCommand::Rollover { step },
        } => {
            let config = config()?;
            println!(
                "{}",
                beffroi::rollover::run(&config.pki_dir(), beffroi::server::CA_NAME, step)?
            );
            Ok(())
        }
        Command::Token { command } => runtime()?.block_on(token(config()?, command)),
        Command::Partner { command } => runtime()?.block_on(partner(config()?, command)),
        Command::Retention { command } => {
            runtime()?.block_on(beffroi::retention::run(config()?, command))
        }
        Command::Export(args) => runtime()?.block_on(beffroi::export::run_export(config()?, args)),
        Command::Import(args) => runtime()?.block_on(beffroi::export::run_import(config()?, args)),
        Command::Backup(args) => {
            let config = config()?;
            let done = runtime()?.block_on(beffroi::backup::run_backup(
                &config,
                cli.config.as_deref(),
                &args,
            ))?;
            println!("{done}");
            Ok(())
        }
        Command::Restore(args) => {
            let config = config()?;
            println!(
                "{}",
                runtime()?.block_on(beffroi::backup::run_restore(&config, &args))?
            );
            Ok(())
        }
        Command::Audit { command } => {
            Ok(runtime()?.block_on(beffroi::audit::run(config(), command))?)
        }
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

async fn serve(config: PlatformConfig) -> anyhow::Result<()> {
    let running = beffroi::server::start(config).await?;
    shutdown_signal().await?;
    if !running.stop().await {
        anyhow::bail!("shutdown did not finish in time");
    }
    Ok(())
}

async fn open_store(config: &PlatformConfig) -> anyhow::Result<Arc<dyn Store>> {
    Ok(admin::open_store(config).await?)
}

async fn tenant(config: PlatformConfig, command: TenantCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    match command {
        TenantCommand::Create { id, name } => {
            let tenant = admin::create_tenant(store.as_ref(), &id, &name).await?;
            println!("tenant {} created", tenant.id);
        }
        TenantCommand::List => {
            for tenant in store.list_tenants().await? {
                println!("{}\t{}", tenant.id, tenant.name);
            }
        }
    }
    Ok(())
}

async fn partner(config: PlatformConfig, command: PartnerCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    match command {
        PartnerCommand::Create { id, name } => {
            let partner = admin::create_partner(store.as_ref(), &id, &name).await?;
            println!("partner {} created", partner.id);
        }
        PartnerCommand::List => {
            for partner in store.list_partners().await? {
                println!("{}\t{}", partner.id, partner.name);
            }
        }
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

async fn gateway(config: PlatformConfig, command: GatewayCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    match command {
        GatewayCommand::Create {
            tenant,
            gateway,
            ttl_s,
        } => {
            let pin = admin::enrollment_pin(&config)?;
            let created = admin::create_enrollment_token(
                store.as_ref(),
                &config,
                &pin,
                &tenant,
                &gateway,
                ttl_s.map(std::time::Duration::from_secs),
            )
            .await?;
            println!("gateway {tenant}/{gateway}: one-time enrollment token (shown once), valid until {}", created.record.expires_at);
            println!("{}", created.token);
            if let Some(url) = &config.enroll.public_url {
                println!(
                    "on the gateway: beffroi-agent enroll --url {url} --token {}",
                    created.token
                );
            }
        }
        GatewayCommand::Register {
            tenant,
            id,
            signing_key,
            tls_key,
            cert_out,
        } => {
            let ca = beffroi::node_pki::load_ca(&config)?;
            let signing = admin::read_signing_public_key(&signing_key)?;
            let registration = admin::register_gateway(
                store.as_ref(),
                &ca,
                &config,
                &tenant,
                &id,
                &signing,
                &read(&tls_key)?,
            )
            .await?;
            std::fs::write(&cert_out, &registration.certificate.cert_pem)
                .with_context(|| format!("cannot write {}", cert_out.display()))?;
            let ca_out = cert_out.with_file_name("platform-ca.pem");
            std::fs::write(&ca_out, ca.cert_pem())
                .with_context(|| format!("cannot write {}", ca_out.display()))?;
            println!("gateway {tenant}/{id} registered");
            println!("key_id = {}", registration.key_id);
            println!("certificate = {}", cert_out.display());
            println!(
                "certificate_fingerprint = {}",
                registration.certificate.fingerprint
            );
            println!("platform_ca = {}", ca_out.display());
        }
        GatewayCommand::List { tenant } => {
            let never = |t: Option<beffroi_protocol::Timestamp>| {
                t.map_or_else(|| "never".to_owned(), |t| t.to_string())
            };
            for g in admin::list_gateways(store.as_ref(), &tenant).await? {
                println!(
                    "{}\tkey {}\t{}\tcertificate until {}\tlast seen {}\tspool {} batches",
                    g.id,
                    g.key_id,
                    match g.revoked_at {
                        Some(at) => format!("REVOKED at {at}"),
                        None => "active".to_owned(),
                    },
                    never(g.cert_not_after),
                    never(g.state.last_seen),
                    g.state.spool_batches
                );
            }
            let now = beffroi_protocol::Timestamp::now();
            for pending in store.pending_enrollments(&tenant, now).await? {
                println!(
                    "{}\tawaiting enrollment (token valid until {}, by {})",
                    pending.gateway, pending.expires_at, pending.created_by
                );
            }
        }
        GatewayCommand::Revoke { tenant, id } => {
            admin::revoke_gateway(store.as_ref(), &tenant, &id).await?;
            println!("gateway {tenant}/{id} revoked");
        }
    }
    Ok(())
}

async fn token(config: PlatformConfig, command: TokenCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let TokenCommand::Create {
        tenant,
        role,
        platform,
        partner,
        name,
    } = command;
    let secret = match (tenant, role, partner) {
        (Some(tenant), Some(role), None) => {
            admin::create_token(&store, &tenant, role, &name).await?
        }
        (None, None, Some(partner)) => {
            admin::create_partner_token(store.as_ref(), &partner, &name).await?
        }
        _ if platform => admin::create_platform_token(store.as_ref(), &name).await?,
        _ => anyhow::bail!("give --tenant and --role, --partner, or --platform"),
    };
    println!("{secret}");
    Ok(())
}

/// A minimal HTTP/1.1 GET of `/readyz`, for images without curl.
fn probe(address: &str) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address)
        .with_context(|| format!("cannot connect to {address}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        anyhow::bail!("not ready: {status}")
    }
}
