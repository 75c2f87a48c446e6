//! `beffroi demo`: the platform with its embedded broker and SQLite in a local data directory,
//! a demo tenant with zones, sensors and alarm rules, two grantees it may share data with (a
//! neighbouring commune's tenant and a partner lab, with no data of their own; the commune
//! uses the demo's sensors inside its boundary through a pooling agreement), simulated
//! gateways running the real agent pipeline (in-process, each with its own keys, spool and mTLS
//! connection through the gate), and the operators' dashboard (built with npm on first use, see
//! [`crate::webapp`]). It prints the dashboard's link (with an operator token in its fragment)
//! and writes `demo.json` (addresses and token, for scripts and browser tests) and
//! `beffroi.toml` (the same platform for `serve`, without the simulated gateways) in the data
//! directory, then runs until Ctrl-C (or `--duration`) and stops in order: agents, gate, ingest
//! (drained and committed), live views, HTTP.

mod pooling;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use beffroi_agent::keys;
use beffroi_agent::source::simulator::{Simulator, SimulatorSpec};
use beffroi_policy::PartnerId;
use beffroi_protocol::{GapReason, GatewayId, MetricName, TenantId, Timestamp};
use beffroi_store::{
    AlarmRule, Comparison, Role, RuleCondition, RuleId, Sensor, Severity, Store, Zone, ZoneId,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::config::PlatformConfig;
use crate::server::{self, Running};
use crate::webapp;

/// Demo options.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Data directory (wiped at start).
    #[arg(long, default_value = "data/demo")]
    pub data_dir: PathBuf,
    /// Simulated gateways.
    #[arg(long, default_value_t = 3)]
    pub gateways: usize,
    /// Readings per second per gateway.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Simulated sensors per gateway (air, noise, traffic and parking in turn).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=5000))]
    pub sensors: u16,
    /// Gate port (0: any free port).
    #[arg(long, default_value_t = 8883)]
    pub gate_port: u16,
    /// HTTP API port (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub api_port: u16,
    /// Enrollment endpoint port (0: any free port): a real agent can enroll into the demo
    /// with the command the dashboard's Gateways page gives.
    #[arg(long, default_value_t = 8443)]
    pub enroll_port: u16,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long)]
    pub duration: Option<u64>,
    /// The dashboard's source directory (default: `dashboards/` of this source tree).
    #[arg(long)]
    pub dashboard_dir: Option<PathBuf>,
    /// Serve the API only, without building or serving the dashboard.
    #[arg(long)]
    pub no_dashboard: bool,
}

const TENANT: &str = "demo";
/// Centre of the demo city (Lyon, place Bellecour) and the zones around it.
const CENTRE: (f64, f64) = (4.8320, 45.7578);
const ZONES: [(&str, &str, (f64, f64)); 4] = [
    ("presquile", "Presqu'île", (0.0, 0.0)),
    ("part-dieu", "Part-Dieu", (0.025, 0.004)),
    ("vieux-lyon", "Vieux-Lyon", (-0.008, 0.004)),
    ("gerland", "Gerland", (0.008, -0.025)),
];
const ZONE_HALF_SIZE: f64 = 0.006;
/// A neighbouring commune (a tenant) and a partner lab: grantees for the sharing agreements.
const NEIGHBOUR: (&str, &str) = ("villeurbanne", "Commune voisine");
const PARTNER: (&str, &str) = ("air-lab", "Laboratoire Air (démo)");

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("cannot clear {}", args.data_dir.display()))?;
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let dashboard = dashboard(&args);
    let mut ports = PortPicker::default();
    let mut toml = format!(
        "data_dir = {dir:?}\n[gate]\nlisten = \"127.0.0.1:{gate}\"\nnames = [\"localhost\", \"127.0.0.1\"]\n\
         [broker]\nlisten_v4 = \"127.0.0.1:{v4}\"\nlisten_v5 = \"127.0.0.1:{v5}\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n\
         [enroll]\nlisten = \"127.0.0.1:{enroll}\"\npublic_url = \"https://localhost:{enroll}\"\n",
        dir = data_dir.display().to_string(),
        gate = ports.pick(args.gate_port)?,
        v4 = ports.pick(0)?,
        v5 = ports.pick(0)?,
        api = ports.pick(args.api_port)?,
        enroll = ports.pick(args.enroll_port)?,
    );
    drop(ports);
    if let Some(dist) = &dashboard {
        toml.push_str(&format!(
            "[dashboard]\ndir = {:?}\n",
            dist.display().to_string()
        ));
    }
    let config = PlatformConfig::from_toml(&toml)?;
    // The same platform without the simulated gateways: `beffroi --config data/demo/beffroi.toml
    // serve` (keeps the demo's data, tenant, token and rules).
    std::fs::write(data_dir.join("beffroi.toml"), &toml)?;
    let running = server::start(config.clone()).await?;
    let store = running.store.clone();

    let tenant = TenantId::new(TENANT)?;
    let neighbour = TenantId::new(NEIGHBOUR.0)?;
    admin::create_tenant(store.as_ref(), &tenant, "Ville de démonstration").await?;
    admin::create_tenant(store.as_ref(), &neighbour, NEIGHBOUR.1).await?;
    let partner = PartnerId::new(PARTNER.0)?;
    admin::create_partner(store.as_ref(), &partner, PARTNER.1).await?;
    for (id, name, offset) in ZONES {
        store.upsert_zone(&zone(&tenant, id, name, offset)?).await?;
    }
    for rule in rules(&tenant)? {
        store.create_alarm_rule(&rule).await?;
    }
    pooling::pool_with_neighbour(&store, &tenant, &neighbour, NEIGHBOUR.1).await?;
    let stop_agents = CancellationToken::new();
    let mut agents = JoinSet::new();
    for n in 1..=args.gateways {
        let agent = enroll(&running, &config, &tenant, n, &args, &data_dir).await?;
        let stop = stop_agents.clone();
        agents.spawn(async move {
            if let Err(error) = agent.run(stop.cancelled_owned()).await {
                tracing::error!(%error, "demo agent stopped");
            }
        });
    }
    let token = admin::create_token(&store, &tenant, Role::Admin, "demo").await?;
    // The alert engine loaded the (then empty) rule set at start: tell it.
    running.alerts.rules_changed(tenant.clone());
    let partner_token = admin::create_partner_token(store.as_ref(), &partner, "demo").await?;
    let neighbour_token = admin::create_token(&store, &neighbour, Role::Admin, "demo").await?;
    let tokens = DemoTokens {
        tenant: &token,
        partner: &partner_token,
        neighbour: &neighbour_token,
    };
    write_demo_file(&data_dir, &running, &tokens)?;
    print_banner(&running, &tokens, args.gateways, dashboard.is_some());

    match args.duration {
        Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
        None => {
            tokio::signal::ctrl_c().await?;
        }
    }
    println!("stopping: agents, gate, ingest, HTTP…");
    stop_agents.cancel();
    while agents.join_next().await.is_some() {}
    let committed = running.metrics.ingest_readings.get();
    if !running.stop().await {
        anyhow::bail!("shutdown did not finish in time");
    }
    println!("stopped; {committed} readings committed");
    Ok(())
}

/// Ports the demo picks from when the one asked for is taken (or 0): below Linux's ephemeral
/// range (32768–60999), so that the platform's own outgoing connections (ingest to broker,
/// agents to gate), opened between the pick and the bind, never take them.
const SPARE_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// Free ports on 127.0.0.1, each held until the picker is dropped so that no two picks give
/// the same port.
#[derive(Default)]
struct PortPicker {
    held: Vec<std::net::TcpListener>,
}

impl PortPicker {
    /// `port` if it is free (and not 0), else a free port of [`SPARE_PORTS`], starting from a
    /// point that differs between processes.
    fn pick(&mut self, port: u16) -> anyhow::Result<u16> {
        let bind = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).ok();
        let spare = SPARE_PORTS.end - SPARE_PORTS.start;
        let offset = (std::process::id() as u16).wrapping_mul(7919) % spare;
        let listener = (port != 0)
            .then(|| bind(port))
            .flatten()
            .or_else(|| (0..spare).find_map(|i| bind(SPARE_PORTS.start + (offset + i) % spare)))
            .context("no free port on 127.0.0.1")?;
        let picked = listener.local_addr()?.port();
        self.held.push(listener);
        Ok(picked)
    }
}

fn zone(tenant: &TenantId, id: &str, name: &str, (dx, dy): (f64, f64)) -> anyhow::Result<Zone> {
    let (lon, lat) = (CENTRE.0 + dx, CENTRE.1 + dy);
    let h = ZONE_HALF_SIZE;
    Ok(Zone {
        tenant: tenant.clone(),
        id: ZoneId::new(id)?,
        name: name.to_owned(),
        geometry: serde_json::json!({
            "type": "Polygon",
            "coordinates": [[[lon - h, lat - h], [lon + h, lat - h], [lon + h, lat + h],
                             [lon - h, lat + h], [lon - h, lat - h]]],
        }),
    })
}

/// Creates gateway `n`'s keys, registers it, registers its sensors in a zone, and builds its
/// agent (ready to run).
async fn enroll(
    running: &Running,
    config: &PlatformConfig,
    tenant: &TenantId,
    n: usize,
    args: &DemoArgs,
    data_dir: &Path,
) -> anyhow::Result<beffroi_agent::Agent> {
    let gateway = GatewayId::new(format!("gw-{n:02}"))?;
    let dir = data_dir.join("gateways").join(gateway.as_str());
    std::fs::create_dir_all(&dir)?;
    keys::generate(&dir.join("signing.key"), true)?;
    keys::generate(&dir.join("tls.key"), true)?;
    let signing = admin::read_signing_public_key(&dir.join("signing.key.pub"))?;
    let tls_public = std::fs::read_to_string(dir.join("tls.key.pub"))?;
    let registration = admin::register_gateway(
        running.store.as_ref(),
        &running.ca,
        config,
        tenant,
        &gateway,
        &signing,
        &tls_public,
    )
    .await?;
    std::fs::write(dir.join("gateway.crt"), &registration.certificate.cert_pem)?;
    std::fs::write(dir.join("platform-ca.pem"), running.ca.cert_pem())?;

    let prefix = format!("g{n}");
    let spec = SimulatorSpec {
        seed: n as u64,
        sensors: usize::from(args.sensors),
        rate_per_s: args.rate,
        sensor_prefix: prefix.clone(),
        ..SimulatorSpec::default()
    };
    register_sensors(running.store.as_ref(), tenant, &spec, n).await?;
    let agent_toml = format!(
        "[identity]\ntenant = {tenant:?}\ngateway = {gateway:?}\nsigning_key = \"signing.key\"\n\
         [uplink]\nhost = \"localhost\"\nport = {port}\nca = \"platform-ca.pem\"\n\
         certificate = \"gateway.crt\"\nprivate_key = \"tls.key\"\nbackoff_initial_ms = 200\nbackoff_max_ms = 5000\n\
         [spool]\ndir = \"spool\"\nmax_bytes = \"16 MiB\"\nsegment_bytes = \"1 MiB\"\n\
         [batch]\nmax_readings = 500\nmax_linger_ms = 250\n[health]\ninterval_s = 5\n\
         [[sources]]\nkind = \"simulator\"\nseed = {seed}\nsensors = {sensors}\nrate_per_s = {rate}\nsensor_prefix = {prefix:?}\n",
        tenant = tenant.as_str(),
        gateway = gateway.as_str(),
        port = running.gate_addr.port(),
        seed = spec.seed,
        sensors = spec.sensors,
        rate = spec.rate_per_s,
    );
    let agent_config = beffroi_agent::Config::from_toml(&agent_toml, &dir)?;
    Ok(beffroi_agent::Agent::build(agent_config)?)
}

/// Registers the simulator's sensors (in one import) with a position inside one of the zones,
/// spread over the zone.
async fn register_sensors(
    store: &dyn Store,
    tenant: &TenantId,
    spec: &SimulatorSpec,
    n: usize,
) -> anyhow::Result<()> {
    let simulator = Simulator::new(spec)?;
    let now = Timestamp::now();
    let mut sensors: Vec<Sensor> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for slot in 0..simulator.slot_count() {
        let reading = simulator.reading(slot, now);
        if !seen.insert(reading.sensor.clone()) {
            continue;
        }
        let i = sensors.len() as f64;
        let (zone_id, _, (dx, dy)) = ZONES[(n + sensors.len()) % ZONES.len()];
        // Two incommensurate phases: the sensors of a zone fill its square.
        let spread = ZONE_HALF_SIZE * 0.9;
        let (jx, jy) = (
            (i * 0.754 + n as f64).sin(),
            (i * 1.318 + 2.0 * n as f64).cos(),
        );
        let kind = reading
            .metric
            .as_str()
            .split('.')
            .next()
            .unwrap_or("unknown")
            .to_owned();
        sensors.push(Sensor {
            tenant: tenant.clone(),
            id: reading.sensor.clone(),
            kind,
            unit: Some(reading.unit.clone()),
            lat: Some(CENTRE.1 + dy + jy * spread),
            lon: Some(CENTRE.0 + dx + jx * spread),
            zone: Some(ZoneId::new(zone_id)?),
            tags: Vec::new(),
            placed_at: None,
        });
    }
    store.upsert_sensors(&sensors).await?;
    Ok(())
}

/// The built dashboard to serve, unless `--no-dashboard`; a failed build is reported and the
/// demo goes on with the API only.
fn dashboard(args: &DemoArgs) -> Option<PathBuf> {
    if args.no_dashboard {
        return None;
    }
    let dir = args
        .dashboard_dir
        .clone()
        .unwrap_or_else(webapp::source_dir);
    match webapp::ensure_built(&dir) {
        Ok(dist) => Some(dist),
        Err(error) => {
            eprintln!("the dashboard is not available ({error:#}); the API runs without it");
            None
        }
    }
}

/// The demo's alarm rules: thresholds (the WHO 24-hour PM2.5 guideline, road noise), gateways
/// offline, spool gaps and security events.
fn rules(tenant: &TenantId) -> anyhow::Result<Vec<AlarmRule>> {
    let now = Timestamp::now();
    let rule = |id: &str, name: &str, severity, condition| -> anyhow::Result<AlarmRule> {
        Ok(AlarmRule {
            tenant: tenant.clone(),
            id: RuleId::new(id)?,
            name: name.to_owned(),
            severity,
            enabled: true,
            condition,
            created_at: now,
            updated_at: now,
        })
    };
    let threshold = |metric: &str, value, for_s| -> anyhow::Result<RuleCondition> {
        Ok(RuleCondition::Threshold {
            metric: MetricName::new(metric)?,
            zone: None,
            sensors: Vec::new(),
            op: Comparison::Gt,
            value,
            for_s,
            pooled: None,
        })
    };
    Ok(vec![
        rule(
            "pm25-who",
            "PM2.5 above 15 µg/m³ (WHO 24-h guideline) for 1 min",
            Severity::Warning,
            threshold("air.pm25", 15.0, 60)?,
        )?,
        rule(
            "noise-high",
            "Noise above 68 dB(A) for 2 min",
            Severity::Warning,
            threshold("noise.laeq", 68.0, 120)?,
        )?,
        rule(
            "gateway-offline",
            "Gateway silent for 1 min",
            Severity::Major,
            RuleCondition::GatewayOffline {
                after_s: 60,
                gateways: Vec::new(),
            },
        )?,
        rule(
            "certificate-expiry",
            "Gateway certificate expiring within 7 days (renewal failing)",
            Severity::Major,
            RuleCondition::CertificateExpiry {
                before_s: 7 * 86_400,
                gateways: Vec::new(),
            },
        )?,
        rule(
            "spool-gap",
            "Readings lost on a gateway",
            Severity::Major,
            RuleCondition::SpoolGap {
                reasons: vec![GapReason::SpoolFull],
            },
        )?,
        rule(
            "security",
            "Security event",
            Severity::Critical,
            RuleCondition::Security { events: Vec::new() },
        )?,
    ])
}

/// The tokens the demo hands out.
struct DemoTokens<'a> {
    /// The demo tenant's admin.
    tenant: &'a str,
    /// The partner lab's.
    partner: &'a str,
    /// The neighbouring commune's admin (it uses the demo's pooled sensors).
    neighbour: &'a str,
}

/// `demo.json`: the addresses, the tenant admin's token, the partner lab's and the
/// neighbouring commune's, for scripts and browser tests (owner-only: it holds tokens).
fn write_demo_file(data_dir: &Path, running: &Running, tokens: &DemoTokens) -> anyhow::Result<()> {
    let json = serde_json::json!({
        "api": format!("http://{}", running.api_addr),
        "gate": running.gate_addr.to_string(),
        "enroll": running.enroll_addr.map(|a| format!("https://localhost:{}", a.port())),
        "token": tokens.tenant,
        "tenant": TENANT,
        "partner": PARTNER.0,
        "partner_token": tokens.partner,
        "neighbour": NEIGHBOUR.0,
        "neighbour_token": tokens.neighbour,
    });
    crate::pki::write_private(&data_dir.join("demo.json"), &format!("{json:#}\n"))?;
    Ok(())
}

fn print_banner(running: &Running, tokens: &DemoTokens, gateways: usize, dashboard: bool) {
    let api: SocketAddr = running.api_addr;
    let token = tokens.tenant;
    println!();
    println!("Beffroi demo is running: {gateways} simulated gateways → gate (mTLS) → broker → ingest → SQLite → live views");
    if dashboard {
        println!("  dashboard: http://{api}/#token={token}");
    }
    println!("  gate (MQTT over mutual TLS): {}", running.gate_addr);
    if let Some(enroll) = running.enroll_addr {
        println!(
            "  enrollment: https://localhost:{} (one-time tokens: the dashboard's Gateways page)",
            enroll.port()
        );
    }
    println!("  API:       http://{api}/api/v1/");
    println!("  OpenAPI:   http://{api}/api/v1/openapi.json");
    println!("  metrics:   http://{api}/metrics");
    println!("  API token (tenant demo, admin): {token}");
    if dashboard {
        println!(
            "  the neighbouring commune, which uses the demo's pooled sensors: http://{api}/#token={}",
            tokens.neighbour
        );
    }
    println!();
    println!("  try: curl -s -H 'Authorization: Bearer {token}' http://{api}/api/v1/gateways");
    println!("       curl -s -H 'Authorization: Bearer {token}' 'http://{api}/api/v1/readings/buckets?metric=air.pm25&bucket=1m'");
    println!();
    println!("Ctrl-C stops it in order.");
}
