//! `beffroi demo`: the platform with its embedded broker and SQLite in a local data directory,
//! a demo tenant with zones and sensors, and simulated gateways running the real agent
//! pipeline (in-process, each with its own keys, spool and mTLS connection through the gate).
//! It prints the URLs and an API token and runs until Ctrl-C (or `--duration`), then stops in
//! order: agents, gate, ingest (drained and committed), HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use beffroi_agent::keys;
use beffroi_agent::source::simulator::{Simulator, SimulatorSpec};
use beffroi_protocol::{GatewayId, TenantId, Timestamp};
use beffroi_store::{Role, Sensor, Store, Zone, ZoneId};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::config::PlatformConfig;
use crate::server::{self, Running};

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
    /// Gate port (0: any free port).
    #[arg(long, default_value_t = 8883)]
    pub gate_port: u16,
    /// HTTP API port (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub api_port: u16,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long)]
    pub duration: Option<u64>,
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

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("cannot clear {}", args.data_dir.display()))?;
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let config = PlatformConfig::from_toml(&format!(
        "data_dir = {dir:?}\n[gate]\nlisten = \"127.0.0.1:{gate}\"\nnames = [\"localhost\", \"127.0.0.1\"]\n\
         [broker]\nlisten_v4 = \"127.0.0.1:{v4}\"\nlisten_v5 = \"127.0.0.1:{v5}\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n",
        dir = data_dir.display().to_string(),
        gate = available_port(args.gate_port)?,
        v4 = available_port(0)?,
        v5 = available_port(0)?,
        api = available_port(args.api_port)?,
    ))?;
    let running = server::start(config.clone()).await?;
    let store = running.store.clone();

    let tenant = TenantId::new(TENANT)?;
    admin::create_tenant(store.as_ref(), &tenant, "Ville de démonstration").await?;
    for (id, name, offset) in ZONES {
        store.upsert_zone(&zone(&tenant, id, name, offset)?).await?;
    }
    let stop_agents = CancellationToken::new();
    let mut agents = JoinSet::new();
    for n in 1..=args.gateways {
        let agent = enroll(&running, &config, &tenant, n, args.rate, &data_dir).await?;
        let stop = stop_agents.clone();
        agents.spawn(async move {
            if let Err(error) = agent.run(stop.cancelled_owned()).await {
                tracing::error!(%error, "demo agent stopped");
            }
        });
    }
    let token = admin::create_token(&store, &tenant, Role::Admin, "demo").await?;
    print_banner(&running, &token, args.gateways);

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

/// `port` if it is free (or 0), else any free port.
fn available_port(port: u16) -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .or_else(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .context("no free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
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
    rate: f64,
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
        sensors: 8,
        rate_per_s: rate,
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

/// Registers the simulator's sensors with a location inside one of the zones.
async fn register_sensors(
    store: &dyn Store,
    tenant: &TenantId,
    spec: &SimulatorSpec,
    n: usize,
) -> anyhow::Result<()> {
    let simulator = Simulator::new(spec)?;
    let now = Timestamp::now();
    let mut seen = std::collections::BTreeSet::new();
    for slot in 0..simulator.slot_count() {
        let reading = simulator.reading(slot, now);
        if !seen.insert(reading.sensor.clone()) {
            continue;
        }
        let (zone_id, _, (dx, dy)) = ZONES[(n + seen.len()) % ZONES.len()];
        let jitter = (seen.len() as f64 * 0.37).sin() * ZONE_HALF_SIZE * 0.8;
        let kind = reading
            .metric
            .as_str()
            .split('.')
            .next()
            .unwrap_or("unknown")
            .to_owned();
        store
            .upsert_sensor(&Sensor {
                tenant: tenant.clone(),
                id: reading.sensor.clone(),
                kind,
                unit: Some(reading.unit.clone()),
                lat: Some(CENTRE.1 + dy + jitter),
                lon: Some(CENTRE.0 + dx - jitter),
                zone: Some(ZoneId::new(zone_id)?),
            })
            .await?;
    }
    Ok(())
}

fn print_banner(running: &Running, token: &str, gateways: usize) {
    let api: SocketAddr = running.api_addr;
    println!();
    println!("Beffroi demo is running: {gateways} simulated gateways → gate (mTLS) → broker → ingest → SQLite");
    println!("  gate (MQTT over mutual TLS): {}", running.gate_addr);
    println!("  API:       http://{api}/api/v1/");
    println!("  OpenAPI:   http://{api}/api/v1/openapi.json");
    println!("  metrics:   http://{api}/metrics");
    println!("  API token (tenant demo, admin): {token}");
    println!();
    println!("  try: curl -s -H 'Authorization: Bearer {token}' http://{api}/api/v1/gateways");
    println!("       curl -s -H 'Authorization: Bearer {token}' 'http://{api}/api/v1/readings/buckets?metric=air.pm25&bucket=1m'");
    println!();
    println!("Ctrl-C stops it in order.");
}
