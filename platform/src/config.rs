//! Platform configuration: raw TOML → validated [`PlatformConfig`].
//!
//! Every field has a default, so an empty file (or none) runs a single-node platform with
//! SQLite under `./data`. The annotated example is `deploy/platform/beffroi.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use beffroi_api::routes::dashboard::DashboardConfig;
use beffroi_live::LiveConfig;
use beffroi_store::{OpenOptions, TimescaleMode};
use serde::Deserialize;

/// A configuration problem naming the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Malformed TOML, unknown field or wrong type (the message has the location).
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// A field has an invalid value.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// Dotted path of the field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The platform's configuration file (`beffroi.toml`) as written. Every key is optional; unknown
/// keys are errors.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// Data directory: the embedded SQLite database and, unless `pki.dir` is set, the platform PKI
    /// (CA key, gate certificate, audit key, key-encryption key). Unset: `data`, relative to the
    /// working directory.
    data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://PATH?mode=rwc` or `postgres://USER@HOST:PORT/DB`. On PostgreSQL,
    /// TimescaleDB is used when the extension is available (see `store.timescale`); without it,
    /// plain PostgreSQL gives the same query results. Unset: SQLite at `<data_dir>/beffroi.db`.
    database: Option<String>,
    /// The gate: the only network-facing MQTT port. Mutual TLS, identity from the client
    /// certificate, revocation checked at handshake, per-topic ACL.
    #[serde(default)]
    gate: RawGate,
    /// The MQTT broker behind the gate: the embedded rumqttd on loopback (never exposed; the gate
    /// forwards to it), or an external clustered broker for larger deployments.
    #[serde(default)]
    broker: RawBroker,
    /// The ingest: which readings are accepted and how they are committed (group commits).
    #[serde(default)]
    ingest: RawIngest,
    /// The HTTP API, which also serves the dashboard and the live views.
    #[serde(default)]
    api: RawApi,
    /// Gateway certificates and where the platform's PKI material lives.
    #[serde(default)]
    pki: RawPki,
    /// The enrollment endpoint (POST /enroll/v1/enroll, /enroll/v1/renew, GET /enroll/v1/trust;
    /// docs/gateway-identity.md). HTTPS with the gate's certificate, whose SHA-256 every enrollment
    /// token carries as its pin.
    #[serde(default)]
    enroll: RawEnroll,
    /// How the database is used: TimescaleDB, pool size, compression, the key-encryption key of
    /// pseudonym keys.
    #[serde(default)]
    store: RawStore,
    /// Live views (websocket /api/v1/live, protocol in docs/live.md).
    #[serde(default)]
    live: RawLive,
    /// The operators' web app, served at `/`.
    #[serde(default)]
    dashboard: RawDashboard,
    /// The tamper-evident audit log (docs/audit.md). Its signing key is `audit.key` in the PKI
    /// directory (mode 0600; every node of one deployment needs the same one).
    #[serde(default)]
    audit: RawAudit,
    /// The retention task. Retention per tenant and metric class (raw and aggregated) is set by
    /// each tenant's admins (PUT /api/v1/retention/{class} or `beffroi retention set`); this task
    /// applies it, and every purge batch leaves a `purge` receipt in the tenant's audit log.
    #[serde(default)]
    retention: RawRetention,
}

/// `[retention]`: the retention task (per-tenant policies are set through the API or
/// `beffroi retention set`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct RawRetention {
    /// How often every tenant's retention policies are applied, in seconds (60..=86400).
    interval_s: u64,
    /// Instance-wide cap on raw retention, in days (1..=36500), for every tenant and metric class;
    /// on TimescaleDB also a `drop_chunks` retention policy. Unset: no cap.
    max_raw_days: Option<u64>,
}

impl Default for RawRetention {
    fn default() -> Self {
        Self {
            interval_s: 3600,
            max_raw_days: None,
        }
    }
}

/// `[audit]`: the tamper-evident audit log.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct RawAudit {
    /// How often the head of every tenant's audit log that moved is signed, in seconds (1..=86400).
    checkpoint_interval_s: u64,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self {
            checkpoint_interval_s: 60,
        }
    }
}

/// `[live]`: live-view limits.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct RawLive {
    /// Subscriptions per websocket connection, at most (1..=256).
    max_subscriptions: usize,
    /// Highest frame rate a client may ask for, and the default, in frames per second (1..=1000).
    max_fps: u32,
    /// Alarms and events waiting to be sent to one client, at most; past it the client is closed
    /// with 4408 (16..=1000000).
    event_queue: usize,
    /// A frame not written to a client within this many milliseconds closes it with 4408
    /// (100..=120000).
    send_timeout_ms: u64,
    /// A live aggregate bucket closes this many milliseconds after its end, waiting for late
    /// readings (0..=3600000).
    bucket_grace_ms: u64,
}

impl Default for RawLive {
    fn default() -> Self {
        let d = LiveConfig::default();
        Self {
            max_subscriptions: d.max_subscriptions,
            max_fps: d.max_fps,
            event_queue: d.event_capacity,
            send_timeout_ms: u64::try_from(d.send_timeout.as_millis()).unwrap_or(u64::MAX),
            bucket_grace_ms: u64::try_from(d.bucket_grace.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// `[dashboard]`: the operators' web app.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct RawDashboard {
    /// Directory of the built web app (`npm ci && npm run build` in dashboards/), served at `/`.
    /// Unset: no dashboard is served.
    dir: Option<PathBuf>,
    /// Raster tiles behind the map: an http(s) URL template with `{z}`, `{x}` and `{y}`; the CSP
    /// allows its origin for images only. Unset: zones and sensors on a plain background, and no
    /// request leaves the platform.
    tile_url: Option<String>,
    /// Attribution shown with the tiles (`© OpenStreetMap contributors`).
    tile_attribution: Option<String>,
}

/// `[store]`: how the database is used.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct RawStore {
    /// PostgreSQL: whether to use TimescaleDB (hypertable, compression, continuous aggregates,
    /// retention policy). Ignored on SQLite.
    timescale: RawTimescale,
    /// Database connections in the pool: at least `ingest.commit_lanes` + 2 (API, quarantine and
    /// health).
    max_connections: u32,
    /// TimescaleDB: chunks older than this many days are compressed (> 0).
    compress_after_days: u64,
    /// The key-encryption key sealing the agreements' pseudonym keys in the database
    /// (docs/pseudonym-keys.md), created on first start (mode 0600). Every node on one database
    /// needs a copy of the same file; back it up apart from the database dumps. Unset:
    /// `pseudonym.kek` in the PKI directory.
    kek_file: Option<PathBuf>,
}

impl Default for RawStore {
    fn default() -> Self {
        let defaults = OpenOptions::default();
        Self {
            timescale: RawTimescale::Auto,
            max_connections: defaults.max_connections,
            compress_after_days: defaults.compress_after.as_secs() / 86_400,
            kek_file: None,
        }
    }
}

/// `store.timescale`.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum RawTimescale {
    /// Use it when the server has the extension (creating it if needed), else plain PostgreSQL with
    /// a warning at start.
    Auto,
    /// Never use it, even when available.
    Off,
    /// Refuse to start on plain PostgreSQL.
    Required,
}

/// `[gate]`: the TLS gate.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct RawGate {
    /// Address the gate listens on for gateways (MQTT over mutual TLS).
    listen: SocketAddr,
    /// DNS names and IP addresses in the gate's server certificate (at least one); an agent's
    /// `uplink.host` must be one of them.
    names: Vec<String>,
    /// A client that has not finished its TLS handshake within this many milliseconds is dropped,
    /// never blocking others (100..=120000).
    handshake_timeout_ms: u64,
    /// Open connections from one source address, at most (> 0).
    max_connections_per_address: usize,
    /// Open connections of one tenant's gateways, at most (> 0).
    max_connections_per_tenant: usize,
    /// Largest MQTT packet a gateway may send, in bytes: at least 300 KiB (a batch envelope is up
    /// to 257 KiB).
    max_packet_bytes: usize,
}

impl Default for RawGate {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8883)),
            names: vec!["localhost".into(), "127.0.0.1".into()],
            handshake_timeout_ms: 10_000,
            max_connections_per_address: 1000,
            max_connections_per_tenant: 20_000,
            max_packet_bytes: 512 * 1024,
        }
    }
}

/// `[broker]`: the MQTT broker behind the gate.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct RawBroker {
    /// Embedded broker: its MQTT 3.1.1 listener (loopback only).
    listen_v4: SocketAddr,
    /// Embedded broker: its MQTT 5 listener (loopback only).
    listen_v5: SocketAddr,
    /// The external broker's MQTT 3.1.1 address (`host:port`); needs `external_v5`. Unset:
    /// `external_v5` (most brokers serve both versions on one port).
    external_v4: Option<String>,
    /// An external broker's MQTT 5 address, `host:port` with a host name (a Kubernetes Service,
    /// a compose service) or an IP address, resolved when the node starts (EMQX, VerneMQ,
    /// BifroMQ, Mosquitto), used by the gate, the ingest and the cluster relay instead of the
    /// embedded broker. Unset: the embedded broker.
    external_v5: Option<String>,
    /// Embedded broker: connections it accepts, at most (gateways through the gate, plus the
    /// platform's own clients).
    max_connections: usize,
    /// Embedded broker: bytes of one commit-log segment per filter, which bounds the broker's
    /// memory (at least 1 MiB).
    max_segment_size: usize,
    /// Embedded broker: commit-log segments kept per filter (at least 1).
    max_segment_count: usize,
}

impl Default for RawBroker {
    fn default() -> Self {
        Self {
            listen_v4: SocketAddr::from(([127, 0, 0, 1], 18831)),
            listen_v5: SocketAddr::from(([127, 0, 0, 1], 18832)),
            external_v4: None,
            external_v5: None,
            max_connections: 20_010,
            max_segment_size: 4 << 20,
            max_segment_count: 8,
        }
    }
}

/// `[ingest]`: validation and group commits.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct RawIngest {
    /// Readings timestamped more than this many seconds in the future are quarantined.
    max_future_skew_s: u64,
    /// Readings older than this many seconds are quarantined as stale (> 0).
    max_age_s: u64,
    /// Longest wait for more batches before a group commit, in milliseconds (0..=1000; 0: no wait,
    /// batches gather while a commit runs).
    commit_interval_ms: u64,
    /// A group commit starts as soon as this many readings are pending (> 0).
    commit_max_readings: usize,
    /// Group commits in flight at once, one database connection each; gateways are split between
    /// them (1..=16).
    commit_lanes: usize,
}

impl Default for RawIngest {
    fn default() -> Self {
        Self {
            max_future_skew_s: 300,
            max_age_s: 7 * 86_400,
            commit_interval_ms: 0,
            commit_max_readings: 20_000,
            commit_lanes: 2,
        }
    }
}

/// `[api]`: the HTTP API.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct RawApi {
    /// Address of the HTTP API, dashboard and live views. Put a TLS reverse proxy in front for
    /// remote access (it must pass websocket upgrades on /api/v1/live).
    listen: SocketAddr,
}

impl Default for RawApi {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

/// `[pki]`: gateway certificates and the PKI directory.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct RawPki {
    /// Lifetime of issued gateway certificates, in seconds (10 s to 10 years); agents renew them at
    /// two thirds of it.
    certificate_lifetime_s: u64,
    /// Directory of PKI material made once by `beffroi pki init` and shared by every node of a
    /// deployment (a mounted secret, a shared path); nodes only read it, and a missing file is an
    /// error at start. Unset: `<data_dir>/pki`, where a single node creates what is missing at
    /// start (CA, gate certificate, audit key, key-encryption key). Revocation needs no file: its
    /// source is the shared database, which every node reloads every 500 ms.
    dir: Option<PathBuf>,
}

impl Default for RawPki {
    fn default() -> Self {
        Self {
            certificate_lifetime_s: DEFAULT_CERTIFICATE_LIFETIME.as_secs(),
            dir: None,
        }
    }
}

/// Where the PKI material lives and who makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkiDir {
    /// `<data_dir>/pki`, `pki.dir` unset: a single node creates what is missing there at
    /// start (CA, gate certificate, audit key, KEK) and renews its gate certificate.
    Managed(PathBuf),
    /// `pki.dir` set: material made once by `beffroi pki init` and shared by every node of a
    /// deployment (a mounted secret, a shared path). Nodes only read it; a missing file is an
    /// error at start.
    Provisioned(PathBuf),
}

impl PkiDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        match self {
            PkiDir::Managed(path) | PkiDir::Provisioned(path) => path,
        }
    }
}

/// Default lifetime of gateway certificates (`pki.certificate_lifetime_s`): 30 days.
pub const DEFAULT_CERTIFICATE_LIFETIME: Duration = Duration::from_secs(30 * 86_400);
/// Shortest gateway certificate lifetime: 10 s, so that tests can roll certificates quickly.
pub const MIN_CERTIFICATE_LIFETIME: Duration = Duration::from_secs(10);
/// Longest gateway certificate lifetime: 10 years (the CA's own lifetime).
pub const MAX_CERTIFICATE_LIFETIME: Duration = Duration::from_secs(3650 * 86_400);

/// `[enroll]`: the enrollment endpoint (`/enroll/v1/…`, HTTPS with the gate's certificate).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct RawEnroll {
    /// Whether the enrollment endpoint runs.
    enabled: bool,
    /// Address of the enrollment endpoint (HTTPS).
    listen: SocketAddr,
    /// Lifetime of new one-time enrollment tokens unless their creator asks for another, in seconds
    /// (1..=2592000, at most 30 days).
    token_ttl_s: u64,
    /// The endpoint's URL as gateways reach it, `https://HOST[:PORT]`; printed with new tokens and
    /// shown in the dashboard. Unset: tokens are given without it.
    public_url: Option<String>,
}

impl Default for RawEnroll {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            token_ttl_s: beffroi_api::enrollment::DEFAULT_TOKEN_TTL.as_secs(),
            public_url: None,
        }
    }
}

/// The enrollment endpoint's listener and token settings.
#[derive(Debug, Clone)]
pub struct EnrollSettings {
    /// Where the enrollment endpoint listens; `None`: disabled (`enroll.enabled = false`).
    pub listen: Option<SocketAddr>,
    /// Lifetime of new enrollment tokens unless the creator asks for another.
    pub token_ttl: Duration,
    /// The endpoint's URL as gateways reach it, printed with new tokens.
    pub public_url: Option<String>,
}

/// Where the ingest and the gate find the broker.
#[derive(Debug, Clone)]
pub enum BrokerMode {
    /// The embedded rumqttd.
    Embedded(crate::broker::BrokerSettings),
    /// An external broker (Mosquitto, EMQX, VerneMQ…): its v5 listener and, if separate, v4.
    External {
        /// MQTT 5 address (gate for v5 clients, ingest, cluster relay).
        v5: BrokerAddress,
        /// MQTT 3.1.1 address; `None`: the v5 one (most brokers serve both on one port).
        v4: Option<BrokerAddress>,
    },
}

impl BrokerMode {
    /// The broker's v5 and v4 addresses, host names resolved now (the first address of each).
    pub async fn resolve(&self) -> Result<(SocketAddr, SocketAddr), ConfigError> {
        match self {
            BrokerMode::Embedded(s) => Ok((s.listen_v5, s.listen_v4)),
            BrokerMode::External { v5, v4 } => {
                let v5 = v5.resolve().await?;
                let v4 = match v4 {
                    Some(v4) => v4.resolve().await?,
                    None => v5,
                };
                Ok((v5, v4))
            }
        }
    }
}

/// An external broker's `host:port`, checked when the config loads and resolved when the
/// node starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    field: &'static str,
    text: String,
}

impl BrokerAddress {
    fn parse(field: &'static str, text: String) -> Result<Self, ConfigError> {
        let port_ok = text.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok {
            return Err(invalid(
                field,
                "expected host:port, e.g. emqx:1883 or 10.0.0.5:1883",
            ));
        }
        Ok(Self { field, text })
    }

    async fn resolve(&self) -> Result<SocketAddr, ConfigError> {
        let mut addrs = tokio::net::lookup_host(&self.text)
            .await
            .map_err(|e| invalid(self.field, format!("cannot resolve {}: {e}", self.text)))?;
        addrs
            .next()
            .ok_or_else(|| invalid(self.field, format!("{} resolves to no address", self.text)))
    }
}

/// The gate's listener and limits.
#[derive(Debug, Clone)]
pub struct GateSettings {
    /// Where the gate listens (the only network-facing MQTT port).
    pub listen: SocketAddr,
    /// DNS names / IP addresses in the gate's certificate.
    pub names: Vec<String>,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// Connections per source address.
    pub max_connections_per_address: usize,
    /// Connections per tenant.
    pub max_connections_per_tenant: usize,
    /// Largest MQTT packet a gateway may send.
    pub max_packet_bytes: usize,
}

/// Ingest validation and commit settings.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Readings further in the future are quarantined.
    pub max_future_skew: Duration,
    /// Readings older than this are quarantined.
    pub max_age: Duration,
    /// Group commit period.
    pub commit_interval: Duration,
    /// Readings that trigger a commit before the period ends.
    pub commit_max_readings: usize,
    /// Group commits in flight at once (one database connection each).
    pub commit_lanes: usize,
}

/// A validated platform configuration.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// Data directory: SQLite database, and the PKI unless `pki.dir` says otherwise.
    pub data_dir: PathBuf,
    /// The PKI directory (`pki.dir`, default `<data_dir>/pki`).
    pub pki: PkiDir,
    /// Database URL (`sqlite://…` or `postgres://…`).
    pub database: String,
    /// How the store is opened (TimescaleDB use, pool size, compression); its key-encryption
    /// key is loaded from [`PlatformConfig::kek_file`] by [`crate::kek::store_options`].
    pub store: OpenOptions,
    /// The file of the key-encryption key that seals pseudonym keys in the database
    /// (`store.kek_file`, default `<pki.dir>/pseudonym.kek`; see [`crate::kek`]). Every
    /// node on one database needs a copy of the same file.
    pub kek_file: PathBuf,
    /// The gate.
    pub gate: GateSettings,
    /// The broker.
    pub broker: BrokerMode,
    /// The ingest.
    pub ingest: IngestSettings,
    /// Where the HTTP API listens.
    pub api_listen: SocketAddr,
    /// Lifetime of issued gateway certificates (`pki.certificate_lifetime_s`).
    pub certificate_lifetime: Duration,
    /// The enrollment endpoint.
    pub enroll: EnrollSettings,
    /// Live views.
    pub live: LiveConfig,
    /// The dashboard.
    pub dashboard: DashboardConfig,
    /// How often the checkpointer signs the head of every audit log that moved.
    pub audit_checkpoint_interval: Duration,
    /// The retention task.
    pub retention: crate::retention::RetentionSettings,
}

impl PlatformConfig {
    /// Reads and validates a config file; without a file, every default.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let raw = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text)?
            }
            None => RawConfig::default(),
        };
        raw.validate()
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str::<RawConfig>(text)?.validate()
    }

    /// The PKI directory.
    pub fn pki_dir(&self) -> PathBuf {
        self.pki.path().to_owned()
    }
}

impl RawConfig {
    fn validate(self) -> Result<PlatformConfig, ConfigError> {
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let database = self.database.unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("beffroi.db").display()
            )
        });
        if !(database.starts_with("sqlite:") || database.starts_with("postgres")) {
            return Err(invalid("database", "expected sqlite://… or postgres://…"));
        }
        let pki = match self.pki.dir {
            Some(dir) if dir.as_os_str().is_empty() => {
                return Err(invalid("pki.dir", "must name a directory"))
            }
            Some(dir) => PkiDir::Provisioned(dir),
            None => PkiDir::Managed(data_dir.join("pki")),
        };
        let s = self.store;
        let kek_file = s
            .kek_file
            .unwrap_or_else(|| pki.path().join(crate::kek::KEK_FILE));
        if kek_file.as_os_str().is_empty() {
            return Err(invalid("store.kek_file", "must name a file"));
        }
        if s.max_connections < 2 + self.ingest.commit_lanes as u32 {
            return Err(invalid(
                "store.max_connections",
                "must leave one connection per commit lane plus two (API, quarantine and health)",
            ));
        }
        if s.compress_after_days == 0 {
            return Err(invalid("store.compress_after_days", "must be > 0"));
        }
        let r = self.retention;
        if !(60..=86_400).contains(&r.interval_s) {
            return Err(invalid(
                "retention.interval_s",
                "must be 60..=86400 (one minute to one day)",
            ));
        }
        let max_days = beffroi_store::MAX_RETENTION_DAYS;
        if r.max_raw_days
            .is_some_and(|d| d == 0 || d > u64::from(max_days))
        {
            return Err(invalid(
                "retention.max_raw_days",
                format!("must be 1..={max_days}"),
            ));
        }
        let retention = crate::retention::RetentionSettings {
            interval: Duration::from_secs(r.interval_s),
            max_raw: r.max_raw_days.map(|d| Duration::from_secs(d * 86_400)),
        };
        let store = OpenOptions {
            retention: retention.max_raw,
            max_connections: s.max_connections,
            timescale: match s.timescale {
                RawTimescale::Auto => TimescaleMode::Auto,
                RawTimescale::Off => TimescaleMode::Off,
                RawTimescale::Required => TimescaleMode::Required,
            },
            compress_after: Duration::from_secs(s.compress_after_days.saturating_mul(86_400)),
            ..OpenOptions::default()
        };
        let g = self.gate;
        if g.names.is_empty() {
            return Err(invalid(
                "gate.names",
                "at least one name for the gate certificate",
            ));
        }
        if !(100..=120_000).contains(&g.handshake_timeout_ms) {
            return Err(invalid("gate.handshake_timeout_ms", "must be 100..=120000"));
        }
        if g.max_connections_per_address == 0 || g.max_connections_per_tenant == 0 {
            return Err(invalid(
                "gate.max_connections_per_address",
                "limits must be > 0",
            ));
        }
        if g.max_packet_bytes < 300 * 1024 {
            return Err(invalid(
                "gate.max_packet_bytes",
                "must be at least 300 KiB: a batch envelope is up to 257 KiB",
            ));
        }
        let b = self.broker;
        let broker = match (b.external_v5, b.external_v4) {
            (Some(v5), v4) => BrokerMode::External {
                v5: BrokerAddress::parse("broker.external_v5", v5)?,
                v4: match v4 {
                    Some(v4) => Some(BrokerAddress::parse("broker.external_v4", v4)?),
                    None => None,
                },
            },
            (None, Some(_)) => {
                return Err(invalid("broker.external_v4", "needs broker.external_v5"))
            }
            (None, None) => {
                for (field, addr) in [
                    ("broker.listen_v4", b.listen_v4),
                    ("broker.listen_v5", b.listen_v5),
                ] {
                    if !addr.ip().is_loopback() {
                        return Err(invalid(
                            field,
                            "the embedded broker listens on loopback only",
                        ));
                    }
                }
                if b.max_segment_size < 1 << 20 || b.max_segment_count == 0 {
                    return Err(invalid(
                        "broker.max_segment_size",
                        "segments must be at least 1 MiB, and at least one",
                    ));
                }
                BrokerMode::Embedded(crate::broker::BrokerSettings {
                    listen_v4: b.listen_v4,
                    listen_v5: b.listen_v5,
                    max_connections: b.max_connections,
                    max_segment_size: b.max_segment_size,
                    max_segment_count: b.max_segment_count,
                    max_payload_size: g.max_packet_bytes,
                })
            }
        };
        let i = self.ingest;
        if i.commit_interval_ms > 1000 {
            return Err(invalid("ingest.commit_interval_ms", "must be 0..=1000"));
        }
        if i.commit_max_readings == 0 {
            return Err(invalid("ingest.commit_max_readings", "must be > 0"));
        }
        if !(1..=16).contains(&i.commit_lanes) {
            return Err(invalid("ingest.commit_lanes", "must be 1..=16"));
        }
        if i.max_age_s == 0 {
            return Err(invalid("ingest.max_age_s", "must be > 0"));
        }
        let lifetime = Duration::from_secs(self.pki.certificate_lifetime_s);
        if !(MIN_CERTIFICATE_LIFETIME..=MAX_CERTIFICATE_LIFETIME).contains(&lifetime) {
            return Err(invalid(
                "pki.certificate_lifetime_s",
                format!(
                    "must be {}..={} (10 seconds to 10 years)",
                    MIN_CERTIFICATE_LIFETIME.as_secs(),
                    MAX_CERTIFICATE_LIFETIME.as_secs()
                ),
            ));
        }
        let enroll = validate_enroll(self.enroll)?;
        let l = self.live;
        if !(1..=256).contains(&l.max_subscriptions) {
            return Err(invalid("live.max_subscriptions", "must be 1..=256"));
        }
        if !(1..=1000).contains(&l.max_fps) {
            return Err(invalid("live.max_fps", "must be 1..=1000"));
        }
        if !(16..=1_000_000).contains(&l.event_queue) {
            return Err(invalid("live.event_queue", "must be 16..=1000000"));
        }
        if !(100..=120_000).contains(&l.send_timeout_ms) {
            return Err(invalid("live.send_timeout_ms", "must be 100..=120000"));
        }
        if l.bucket_grace_ms > 3_600_000 {
            return Err(invalid(
                "live.bucket_grace_ms",
                "must be at most 3600000 (1 h)",
            ));
        }
        let live = LiveConfig {
            max_subscriptions: l.max_subscriptions,
            max_fps: l.max_fps,
            event_capacity: l.event_queue,
            send_timeout: Duration::from_millis(l.send_timeout_ms),
            bucket_grace: Duration::from_millis(l.bucket_grace_ms),
            ..LiveConfig::default()
        };
        let d = self.dashboard;
        if let Some(url) = &d.tile_url {
            let template = url.contains("{z}") && url.contains("{x}") && url.contains("{y}");
            if !(url.starts_with("https://") || url.starts_with("http://")) || !template {
                return Err(invalid(
                    "dashboard.tile_url",
                    "expected an http(s) URL template with {z}, {x} and {y}",
                ));
            }
        }
        if !(1..=86_400).contains(&self.audit.checkpoint_interval_s) {
            return Err(invalid(
                "audit.checkpoint_interval_s",
                "must be 1..=86400 (one day)",
            ));
        }
        let dashboard = DashboardConfig {
            dir: d.dir,
            tile_url: d.tile_url,
            tile_attribution: d.tile_attribution,
        };
        Ok(PlatformConfig {
            data_dir,
            pki,
            database,
            store,
            kek_file,
            gate: GateSettings {
                listen: g.listen,
                names: g.names,
                handshake_timeout: Duration::from_millis(g.handshake_timeout_ms),
                max_connections_per_address: g.max_connections_per_address,
                max_connections_per_tenant: g.max_connections_per_tenant,
                max_packet_bytes: g.max_packet_bytes,
            },
            broker,
            ingest: IngestSettings {
                max_future_skew: Duration::from_secs(i.max_future_skew_s),
                max_age: Duration::from_secs(i.max_age_s),
                commit_interval: Duration::from_millis(i.commit_interval_ms),
                commit_max_readings: i.commit_max_readings,
                commit_lanes: i.commit_lanes,
            },
            api_listen: self.api.listen,
            certificate_lifetime: lifetime,
            enroll,
            live,
            dashboard,
            audit_checkpoint_interval: Duration::from_secs(self.audit.checkpoint_interval_s),
            retention,
        })
    }
}

fn validate_enroll(e: RawEnroll) -> Result<EnrollSettings, ConfigError> {
    let token_ttl = Duration::from_secs(e.token_ttl_s);
    let max = beffroi_api::enrollment::MAX_TOKEN_TTL;
    if token_ttl.is_zero() || token_ttl > max {
        return Err(invalid(
            "enroll.token_ttl_s",
            format!("must be 1..={} (at most 30 days)", max.as_secs()),
        ));
    }
    if let Some(url) = &e.public_url {
        let rest = url.strip_prefix("https://").unwrap_or_default();
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(invalid(
                "enroll.public_url",
                "expected https://HOST[:PORT] (the enrollment endpoint speaks HTTPS only)",
            ));
        }
    }
    Ok(EnrollSettings {
        listen: e.enabled.then_some(e.listen),
        token_ttl,
        public_url: e.public_url.map(|u| u.trim_end_matches('/').to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_examples_are_valid() {
        let example =
            PlatformConfig::from_toml(include_str!("../../deploy/platform/beffroi.toml")).unwrap();
        assert_eq!(example.ingest.commit_lanes, 2);
        // The deployments' configurations (deploy/compose, deploy/k8s): TimescaleDB required,
        // the shared PKI directory, and an external broker where several nodes share the ingest.
        let deployments = [
            (include_str!("../../deploy/compose/beffroi.toml"), false),
            (
                include_str!("../../deploy/compose/beffroi.external-broker.toml"),
                true,
            ),
            (include_str!("../../deploy/k8s/beffroi.toml"), true),
        ];
        for (text, external) in deployments {
            let config = PlatformConfig::from_toml(text).unwrap();
            assert_eq!(config.store.timescale, TimescaleMode::Required);
            assert!(matches!(config.pki, PkiDir::Provisioned(_)));
            assert_eq!(
                matches!(config.broker, BrokerMode::External { .. }),
                external
            );
        }
    }

    #[test]
    fn defaults_and_errors() {
        let config = PlatformConfig::from_toml("").unwrap();
        assert!(config.database.starts_with("sqlite://data/beffroi.db"));
        assert!(matches!(config.broker, BrokerMode::Embedded(_)));
        assert_eq!(config.store, OpenOptions::default());
        assert_eq!(config.kek_file, Path::new("data/pki/pseudonym.kek"));
        let shared = PlatformConfig::from_toml("[store]\nkek_file = \"/etc/beffroi/kek\"").unwrap();
        assert_eq!(shared.kek_file, Path::new("/etc/beffroi/kek"));
        assert_eq!(config.pki, PkiDir::Managed(PathBuf::from("data/pki")));
        let provisioned = PlatformConfig::from_toml("[pki]\ndir = \"/run/secrets/pki\"").unwrap();
        assert_eq!(
            provisioned.pki,
            PkiDir::Provisioned(PathBuf::from("/run/secrets/pki"))
        );
        assert_eq!(
            provisioned.kek_file,
            Path::new("/run/secrets/pki/pseudonym.kek")
        );
        let required = PlatformConfig::from_toml(
            "[store]\ntimescale = \"required\"\nmax_connections = 12\ncompress_after_days = 2",
        )
        .unwrap();
        assert_eq!(required.store.timescale, TimescaleMode::Required);
        assert_eq!(required.store.max_connections, 12);
        assert_eq!(
            required.store.compress_after,
            Duration::from_secs(2 * 86_400)
        );
        for (toml, field) in [
            ("[gate]\nmax_packet_bytes = 10", "gate.max_packet_bytes"),
            ("[broker]\nlisten_v5 = \"0.0.0.0:1\"", "broker.listen_v5"),
            ("database = \"mysql://x\"", "database"),
            (
                "[ingest]\ncommit_interval_ms = 1001",
                "ingest.commit_interval_ms",
            ),
            ("[api]\nlisten = \"x\"", "listen"),
            ("[gate]\nlisten_typo = 1", "listen_typo"),
            ("[ingest]\ncommit_lanes = 0", "ingest.commit_lanes"),
            ("[live]\nmax_fps = 0", "live.max_fps"),
            (
                "[dashboard]\ntile_url = \"ftp://x/{z}/{x}/{y}\"",
                "dashboard.tile_url",
            ),
            (
                "[dashboard]\ntile_url = \"https://x/a.png\"",
                "dashboard.tile_url",
            ),
            ("[store]\ntimescale = \"maybe\"", "unknown variant"),
            ("[store]\nkek_file = \"\"", "store.kek_file"),
            ("[pki]\ndir = \"\"", "pki.dir"),
            ("[retention]\ninterval_s = 1", "retention.interval_s"),
            ("[retention]\nmax_raw_days = 0", "retention.max_raw_days"),
            (
                "[audit]\ncheckpoint_interval_s = 0",
                "audit.checkpoint_interval_s",
            ),
            (
                "[store]\nmax_connections = 3\n[ingest]\ncommit_lanes = 2",
                "store.max_connections",
            ),
            (
                "[pki]\ncertificate_lifetime_s = 9",
                "pki.certificate_lifetime_s",
            ),
            (
                "[pki]\ncertificate_lifetime_days = 90",
                "certificate_lifetime_days",
            ),
            ("[enroll]\ntoken_ttl_s = 0", "enroll.token_ttl_s"),
            ("[enroll]\ntoken_ttl_s = 2592001", "enroll.token_ttl_s"),
            ("[enroll]\npublic_url = \"http://x\"", "enroll.public_url"),
        ] {
            let err = PlatformConfig::from_toml(toml).unwrap_err().to_string();
            assert!(err.contains(field), "{toml}: {err}");
        }
        assert_eq!(config.certificate_lifetime, DEFAULT_CERTIFICATE_LIFETIME);
        assert_eq!(
            config.enroll.listen,
            Some(SocketAddr::from(([0, 0, 0, 0], 8443)))
        );
        assert_eq!(config.enroll.token_ttl, Duration::from_secs(86_400));
        let short = PlatformConfig::from_toml(
            "[pki]\ncertificate_lifetime_s = 10\n[enroll]\nenabled = false\npublic_url = \"https://p.example:8443/\"",
        )
        .unwrap();
        assert_eq!(short.certificate_lifetime, Duration::from_secs(10));
        assert_eq!(short.enroll.listen, None);
        assert_eq!(
            short.enroll.public_url.as_deref(),
            Some("https://p.example:8443")
        );
    }

    #[tokio::test]
    async fn an_external_broker_is_named_by_host_and_port() {
        let external =
            PlatformConfig::from_toml("[broker]\nexternal_v5 = \"127.0.0.1:1883\"").unwrap();
        let (v5, v4) = external.broker.resolve().await.unwrap();
        assert_eq!((v5, v4), ("127.0.0.1:1883".parse().unwrap(), v5));
        let named = PlatformConfig::from_toml(
            "[broker]\nexternal_v5 = \"localhost:1883\"\nexternal_v4 = \"127.0.0.1:1884\"",
        )
        .unwrap();
        let (v5, v4) = named.broker.resolve().await.unwrap();
        assert!(v5.ip().is_loopback() && v5.port() == 1883, "{v5}");
        assert_eq!(v4, "127.0.0.1:1884".parse().unwrap());
        for bad in ["emqx", "emqx:", ":1883", "emqx:0", "emqx:99999"] {
            let error = PlatformConfig::from_toml(&format!("[broker]\nexternal_v5 = \"{bad}\""))
                .unwrap_err()
                .to_string();
            assert!(error.contains("broker.external_v5"), "{bad}: {error}");
        }
        let unknown =
            PlatformConfig::from_toml("[broker]\nexternal_v5 = \"no-such-broker.invalid:1883\"")
                .unwrap();
        let error = unknown.broker.resolve().await.unwrap_err().to_string();
        assert!(
            error.contains("cannot resolve no-such-broker.invalid:1883"),
            "{error}"
        );
    }
}
