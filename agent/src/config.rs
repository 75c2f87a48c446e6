//! Agent configuration: raw TOML → validated [`Config`].
//!
//! The raw structs mirror the file (`deny_unknown_fields`, defaults as `const fn`); `validate`
//! is pure and names the offending field; opening files and sockets happens later, when the
//! pipeline is built. The annotated example is `deploy/agent/agent.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use beffroi_protocol::{GatewayId, TenantId, MAX_PAYLOAD_BYTES, MAX_READINGS_PER_BATCH};
use serde::Deserialize;

use crate::enroll::Endpoint;
use crate::source::{RawSource, SourceSpec};

/// A configuration problem, naming the field (`spool.max_bytes`) or the TOML location.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown field or a value of the wrong type.
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// A field has an invalid value.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// Why.
        reason: String,
    },
}

impl ConfigError {
    /// An invalid-field error.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

/// The configuration file as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Who this gateway is, as registered on the platform.
    identity: RawIdentity,
    /// How to reach the platform's MQTT gate (mutual TLS). `beffroi-agent enroll` writes the host,
    /// the port and the TLS files; renewals replace the files in place.
    uplink: RawUplink,
    /// The durable on-disk queue of signed batches: a batch leaves it only when the platform's
    /// commit ack covers it. When full, the oldest batches are dropped and the gap is reported.
    spool: RawSpool,
    /// When the batcher cuts a batch.
    #[serde(default)]
    batch: RawBatch,
    /// Signed health reports (spool depth, gaps, counters, RSS).
    #[serde(default)]
    health: RawHealth,
    /// Where readings come from: one `[[sources]]` table each; a gateway may run several. With
    /// none, the agent only keeps its certificate fresh and sends health reports (a freshly
    /// enrolled gateway).
    #[serde(default)]
    sources: Vec<RawSource>,
    /// Automatic certificate renewal with the platform's enrollment endpoint, written by
    /// `beffroi-agent enroll`. The agent renews over its current mutual-TLS identity, with a new
    /// TLS key each time, then reconnects with the new certificate; spooled batches are resent as
    /// after any reconnect. Without this table (a gateway provisioned by hand) the certificate is
    /// never renewed.
    #[serde(default)]
    enrollment: Option<RawEnrollment>,
}

/// `[enrollment]`: automatic certificate renewal.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawEnrollment {
    /// The platform's enrollment endpoint, `https://HOST[:PORT]` (https only).
    url: String,
    /// Renew after this fraction of the certificate's lifetime (0.1..=0.95).
    #[serde(default = "default_renew_at")]
    renew_at: f64,
    /// Rotate the signing key at the first renewal after it is this many days old (0..=3650); 0:
    /// only when `beffroi-agent rotate-key` prepared a new one.
    #[serde(default)]
    rotate_signing_key_days: u32,
    /// First wait after a failed renewal, in milliseconds (jittered, doubling; 10..=3600000).
    #[serde(default = "default_retry_initial_ms")]
    retry_initial_ms: u64,
    /// Longest wait between renewal attempts, in milliseconds (at least `retry_initial_ms`).
    #[serde(default = "default_retry_max_ms")]
    retry_max_ms: u64,
    /// Time allowed for one renewal request, connect included, in seconds (1..=600).
    #[serde(default = "default_request_timeout_s")]
    request_timeout_s: u64,
}

const fn default_renew_at() -> f64 {
    0.667
}
const fn default_retry_initial_ms() -> u64 {
    1000
}
const fn default_retry_max_ms() -> u64 {
    300_000
}
const fn default_request_timeout_s() -> u64 {
    30
}

/// `[identity]`: who this gateway is.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    /// The tenant (collectivity) the gateway belongs to, as registered on the platform: lowercase
    /// letters, digits and `-`, up to 63 characters.
    tenant: String,
    /// This gateway's id, as registered on the platform (same characters as `tenant`).
    gateway: String,
    /// The Ed25519 key that signs the batches, PKCS#8 PEM, created by `beffroi-agent enroll` (or
    /// `beffroi-agent keygen` for a gateway provisioned by hand). Must be mode 0600: the agent
    /// refuses a key readable by group or others.
    signing_key: PathBuf,
}

/// `[uplink]`: the platform's MQTT gate.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawUplink {
    /// The platform gate's host; must match a name in the gate's TLS certificate.
    host: String,
    /// The gate's port.
    #[serde(default = "default_port")]
    port: u16,
    /// The platform CA certificate (PEM): the only trust anchor.
    ca: PathBuf,
    /// This gateway's client certificate chain (PEM).
    certificate: PathBuf,
    /// The client certificate's private key (PEM, mode 0600).
    private_key: PathBuf,
    /// MQTT keep-alive, in seconds (5..=3600).
    #[serde(default = "default_keep_alive_s")]
    keep_alive_s: u64,
    /// Time allowed for TCP + TLS + CONNACK, in seconds (1..=300).
    #[serde(default = "default_connect_timeout_s")]
    connect_timeout_s: u64,
    /// First reconnect delay, in milliseconds (jittered, doubling after each failure; > 0).
    #[serde(default = "default_backoff_initial_ms")]
    backoff_initial_ms: u64,
    /// Longest reconnect delay, in milliseconds (at least `backoff_initial_ms`).
    #[serde(default = "default_backoff_max_ms")]
    backoff_max_ms: u64,
    /// A batch sent but not covered by the platform's commit ack within this many seconds is sent
    /// again (1..=86400).
    #[serde(default = "default_ack_timeout_s")]
    ack_timeout_s: u64,
    /// Batches sent and awaiting the platform's commit ack, at most (1..=1024).
    #[serde(default = "default_max_in_flight")]
    max_in_flight: usize,
}

const fn default_port() -> u16 {
    8883
}
const fn default_keep_alive_s() -> u64 {
    30
}
const fn default_connect_timeout_s() -> u64 {
    10
}
const fn default_backoff_initial_ms() -> u64 {
    500
}
const fn default_backoff_max_ms() -> u64 {
    60_000
}
const fn default_ack_timeout_s() -> u64 {
    30
}
const fn default_max_in_flight() -> usize {
    32
}

/// `[spool]`: the on-disk queue of signed batches.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawSpool {
    /// The spool directory.
    dir: PathBuf,
    /// Most bytes the spool keeps; it must hold at least two full batches. An integer (bytes) or
    /// text with a unit: `B`, `kB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`.
    #[serde(default = "default_max_bytes")]
    max_bytes: ByteSize,
    /// Size of one segment file: an integer (bytes) or text with a unit.
    #[serde(default = "default_segment_bytes")]
    segment_bytes: ByteSize,
    /// Group fsync period, in milliseconds: at most this much spooled data is at risk on power loss
    /// (1..=60000).
    #[serde(default = "default_fsync_interval_ms")]
    fsync_interval_ms: u64,
}

const fn default_max_bytes() -> ByteSize {
    ByteSize(256 << 20)
}
const fn default_segment_bytes() -> ByteSize {
    ByteSize(8 << 20)
}
const fn default_fsync_interval_ms() -> u64 {
    200
}

/// `[batch]`: when a batch is cut.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    /// Readings per batch, at most (1..=5000).
    #[serde(default = "default_max_readings")]
    max_readings: usize,
    /// Longest a reading waits for its batch to be cut, in milliseconds (1..=600000).
    #[serde(default = "default_max_linger_ms")]
    max_linger_ms: u64,
}

impl Default for RawBatch {
    fn default() -> Self {
        Self {
            max_readings: default_max_readings(),
            max_linger_ms: default_max_linger_ms(),
        }
    }
}

const fn default_max_readings() -> usize {
    1000
}
const fn default_max_linger_ms() -> u64 {
    1000
}

/// `[health]`: health reports.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    /// Period of the signed health report, in seconds (1..=86400).
    #[serde(default = "default_health_interval_s")]
    interval_s: u64,
}

impl Default for RawHealth {
    fn default() -> Self {
        Self {
            interval_s: default_health_interval_s(),
        }
    }
}

const fn default_health_interval_s() -> u64 {
    30
}

/// A byte count written as an integer or as text with a unit (`"256 MiB"`, `"64kB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(ByteSize(n)),
            Raw::Text(text) => ByteSize::parse(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size {text:?}: expected bytes or a number with B, kB, KiB, MB, MiB, GB or GiB"
                ))
            }),
        }
    }
}

/// Written back as text with the largest binary unit that divides it (`"256 MiB"`), as the
/// configuration reference shows defaults.
impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0;
        match [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
            .into_iter()
            .find(|(_, scale)| n >= *scale && n.is_multiple_of(*scale))
        {
            Some((unit, scale)) => s.serialize_str(&format!("{} {unit}", n / scale)),
            None => s.serialize_u64(n),
        }
    }
}

impl schemars::JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["integer", "string"] })
    }

    fn inline_schema() -> bool {
        true
    }
}

impl ByteSize {
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().ok()?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "kB" | "KB" => 1000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            _ => return None,
        };
        number.checked_mul(scale).map(ByteSize)
    }
}

/// Who this gateway is.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The tenant (collectivity) the gateway belongs to.
    pub tenant: TenantId,
    /// This gateway.
    pub gateway: GatewayId,
    /// The Ed25519 signing key (PKCS#8 PEM, mode 0600).
    pub signing_key: PathBuf,
}

/// How to reach the platform.
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    /// Broker host (the platform gate); also the name its TLS certificate must carry.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Platform CA certificate (PEM).
    pub ca: PathBuf,
    /// The gateway's client certificate chain (PEM).
    pub certificate: PathBuf,
    /// The client certificate's private key (PEM).
    pub private_key: PathBuf,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Time allowed for TCP + TLS + CONNACK.
    pub connect_timeout: Duration,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// A batch sent but not acknowledged for this long is sent again.
    pub ack_timeout: Duration,
    /// Batches sent and not yet acknowledged, at most.
    pub max_in_flight: usize,
}

/// Where and how the spool keeps batches.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    /// Spool directory.
    pub dir: PathBuf,
    /// Spool bounds and layout.
    pub spool: beffroi_spool::SpoolConfig,
    /// How often appended batches are fsynced.
    pub fsync_interval: Duration,
}

/// When the batcher cuts a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Most readings in a batch.
    pub max_readings: usize,
    /// Longest a reading waits before its batch is cut.
    pub max_linger: Duration,
}

/// Automatic renewal with the platform's enrollment endpoint (`[enrollment]`).
#[derive(Debug, Clone)]
pub struct EnrollmentConfig {
    /// The enrollment endpoint (renewals go to `/enroll/v1/renew` under it).
    pub endpoint: Endpoint,
    /// Renew after this fraction of the certificate's lifetime.
    pub renew_at: f64,
    /// Rotate the signing key at the first renewal after it is this old; `None`: only when
    /// `beffroi-agent rotate-key` asked for it.
    pub rotate_signing_key_after: Option<Duration>,
    /// First delay after a failed renewal (jittered, doubling).
    pub retry_initial: Duration,
    /// Longest delay between renewal attempts.
    pub retry_max: Duration,
    /// Time allowed for one renewal request (connect included).
    pub request_timeout: Duration,
}

/// A validated agent configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Who this gateway is.
    pub identity: Identity,
    /// How to reach the platform.
    pub uplink: UplinkConfig,
    /// The spool.
    pub spool: SpoolSettings,
    /// The batcher.
    pub batch: BatchConfig,
    /// How often a health report is sent.
    pub health_interval: Duration,
    /// Where readings come from (none: the agent only reports its health).
    pub sources: Vec<SourceSpec>,
    /// Automatic renewal, when the gateway was enrolled.
    pub enrollment: Option<EnrollmentConfig>,
}

impl Config {
    /// Reads and validates a config file; relative paths are taken from its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let raw: RawConfig = toml::from_str(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        raw.validate(base)
    }

    /// Parses and validates TOML text; relative paths are taken from `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text)?;
        raw.validate(base)
    }
}

fn nonzero(field: &str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(field, "must be greater than 0"));
    }
    Ok(value)
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::invalid(
            field,
            format!("{value} is outside {min}..={max}"),
        ));
    }
    Ok(value)
}

fn resolve(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

impl RawConfig {
    /// Checks every field; no IO. Relative paths are joined to `base`.
    pub fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        let identity = Identity {
            tenant: TenantId::new(self.identity.tenant)
                .map_err(|e| ConfigError::invalid("identity.tenant", e))?,
            gateway: GatewayId::new(self.identity.gateway)
                .map_err(|e| ConfigError::invalid("identity.gateway", e))?,
            signing_key: resolve(base, self.identity.signing_key),
        };

        let u = self.uplink;
        if u.host.trim().is_empty() {
            return Err(ConfigError::invalid("uplink.host", "must not be empty"));
        }
        nonzero("uplink.port", u64::from(u.port))?;
        in_range("uplink.keep_alive_s", u.keep_alive_s, 5, 3600)?;
        in_range("uplink.connect_timeout_s", u.connect_timeout_s, 1, 300)?;
        nonzero("uplink.backoff_initial_ms", u.backoff_initial_ms)?;
        if u.backoff_max_ms < u.backoff_initial_ms {
            return Err(ConfigError::invalid(
                "uplink.backoff_max_ms",
                "must be at least uplink.backoff_initial_ms",
            ));
        }
        in_range("uplink.ack_timeout_s", u.ack_timeout_s, 1, 86_400)?;
        in_range("uplink.max_in_flight", u.max_in_flight, 1, 1024)?;
        let uplink = UplinkConfig {
            host: u.host,
            port: u.port,
            ca: resolve(base, u.ca),
            certificate: resolve(base, u.certificate),
            private_key: resolve(base, u.private_key),
            keep_alive: Duration::from_secs(u.keep_alive_s),
            connect_timeout: Duration::from_secs(u.connect_timeout_s),
            backoff_initial: Duration::from_millis(u.backoff_initial_ms),
            backoff_max: Duration::from_millis(u.backoff_max_ms),
            ack_timeout: Duration::from_secs(u.ack_timeout_s),
            max_in_flight: u.max_in_flight,
        };

        let s = self.spool;
        let spool_config = beffroi_spool::SpoolConfig {
            max_bytes: s.max_bytes.0,
            segment_bytes: s.segment_bytes.0,
            ..beffroi_spool::SpoolConfig::default()
        };
        spool_config
            .validate()
            .map_err(|e| ConfigError::invalid("spool", e))?;
        if s.max_bytes.0 < 2 * MAX_PAYLOAD_BYTES as u64 + 4096 {
            return Err(ConfigError::invalid(
                "spool.max_bytes",
                format!(
                    "must hold at least two full batches ({} bytes)",
                    2 * MAX_PAYLOAD_BYTES
                ),
            ));
        }
        in_range("spool.fsync_interval_ms", s.fsync_interval_ms, 1, 60_000)?;
        let spool = SpoolSettings {
            dir: resolve(base, s.dir),
            spool: spool_config,
            fsync_interval: Duration::from_millis(s.fsync_interval_ms),
        };

        let batch = BatchConfig {
            max_readings: in_range(
                "batch.max_readings",
                self.batch.max_readings,
                1,
                MAX_READINGS_PER_BATCH,
            )?,
            max_linger: Duration::from_millis(in_range(
                "batch.max_linger_ms",
                self.batch.max_linger_ms,
                1,
                600_000,
            )?),
        };
        let health_interval = Duration::from_secs(in_range(
            "health.interval_s",
            self.health.interval_s,
            1,
            86_400,
        )?);

        let sources = self
            .sources
            .into_iter()
            .enumerate()
            .map(|(i, raw)| raw.validate(&format!("sources[{i}]"), base))
            .collect::<Result<Vec<_>, _>>()?;

        let enrollment = self.enrollment.map(RawEnrollment::validate).transpose()?;

        Ok(Config {
            identity,
            uplink,
            spool,
            batch,
            health_interval,
            sources,
            enrollment,
        })
    }
}

impl RawEnrollment {
    fn validate(self) -> Result<EnrollmentConfig, ConfigError> {
        let endpoint =
            Endpoint::parse(&self.url).map_err(|e| ConfigError::invalid("enrollment.url", e))?;
        if !(0.1..=0.95).contains(&self.renew_at) {
            return Err(ConfigError::invalid(
                "enrollment.renew_at",
                format!("{} is outside 0.1..=0.95", self.renew_at),
            ));
        }
        in_range(
            "enrollment.rotate_signing_key_days",
            self.rotate_signing_key_days,
            0,
            3650,
        )?;
        in_range(
            "enrollment.retry_initial_ms",
            self.retry_initial_ms,
            10,
            3_600_000,
        )?;
        if self.retry_max_ms < self.retry_initial_ms {
            return Err(ConfigError::invalid(
                "enrollment.retry_max_ms",
                "must be at least enrollment.retry_initial_ms",
            ));
        }
        in_range(
            "enrollment.request_timeout_s",
            self.request_timeout_s,
            1,
            600,
        )?;
        Ok(EnrollmentConfig {
            endpoint,
            renew_at: self.renew_at,
            rotate_signing_key_after: (self.rotate_signing_key_days > 0)
                .then(|| Duration::from_secs(u64::from(self.rotate_signing_key_days) * 86_400)),
            retry_initial: Duration::from_millis(self.retry_initial_ms),
            retry_max: Duration::from_millis(self.retry_max_ms),
            request_timeout: Duration::from_secs(self.request_timeout_s),
        })
    }
}
