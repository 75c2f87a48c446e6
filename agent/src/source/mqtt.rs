//! A subscription to the gateway's local MQTT broker, with mapping rules from JSON messages to
//! readings, including ChirpStack v4 LoRaWAN uplink events.
//!
//! ```toml
//! [[sources]]
//! kind = "mqtt"
//! host = "127.0.0.1"          # default; plain TCP (a local broker)
//! port = 1883                 # default
//! client_id = "beffroi-gw-1"  # default beffroi-agent-<8 random hex digits>
//! username = "agent"          # optional
//! password_file = "mqtt.pass" # optional, needs username; first line is the password
//! keep_alive_s = 30           # default
//! backoff_initial_ms = 500    # first reconnect delay, doubled up to backoff_max_ms
//! backoff_max_ms = 30000
//! max_message_bytes = "256 KiB"   # larger packets break the connection (counted, reconnected)
//!
//! [sources.chirpstack]        # optional: ChirpStack v4 uplinks, see `chirpstack` below
//! [[sources.mappings]]        # optional: custom JSON messages, see `mapping` below
//! ```
//!
//! At least one of `chirpstack` and `mappings` is required. Every mapping's filter (and the
//! ChirpStack topic) is subscribed to with QoS 1, again after each reconnect (clean session).
//! A message is parsed as JSON once, then every rule whose filter matches its topic is
//! applied: the ChirpStack mapping ([`Chirpstack`]) and custom mappings ([`Mapping`]). A
//! message that is not JSON, or where a rule finds a missing pointer or a value of the wrong
//! type, counts once as malformed ([`ReadingSink::malformed`]); the readings the other rules
//! produced are still sent. Overlapping filters may make the broker deliver a message twice:
//! prefer disjoint filters.
//!
//! Losing the broker (or failing to reach it) counts a source error ([`ReadingSink::error`])
//! and the source reconnects after a doubling delay. Messages are acknowledged when received:
//! a message is lost only if the agent dies between receipt and spooling, or while the
//! connection is down (clean session). While the batcher applies backpressure the connection
//! is not polled; a stall longer than 1.5 × `keep_alive_s` makes the broker drop it.

mod chirpstack;
mod filter;
mod mapping;

use std::path::{Path, PathBuf};
use std::time::Duration;

use beffroi_protocol::{Reading, Timestamp};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, SubscribeFilter,
    SubscribeReasonCode,
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

pub use chirpstack::{Chirpstack, FieldMapping, RawChirpstack, Unmapped, DEFAULT_UP_TOPIC};
pub use filter::TopicFilter;
pub use mapping::{EpochUnit, JsonPointer, Mapping, RawMapping, SensorRule, UnitRule, ValueRule};

use super::{ReadingSink, Source, SourceError, SourceFuture};
use crate::config::{ByteSize, ConfigError};

/// Requests queued from the source to the MQTT event loop (subscribe, disconnect).
const REQUEST_CHANNEL_CAPACITY: usize = 16;
/// Time allowed to send DISCONNECT when stopping.
const DISCONNECT_GRACE: Duration = Duration::from_millis(200);

/// The `kind = "mqtt"` fields as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    /// Name of the source in logs (1 to 64 printable characters). Unset: the kind.
    name: Option<String>,
    /// Host of the gateway's local MQTT broker (plain TCP, on the gateway itself).
    #[serde(default = "default_host")]
    host: String,
    /// Its port.
    #[serde(default = "default_port")]
    port: u16,
    /// MQTT client id (1 to 128 printable characters). Unset: `beffroi-agent-<random>`.
    client_id: Option<String>,
    /// User name, if the broker wants one.
    username: Option<String>,
    /// File holding the password (its first line); needs `username`. Never inline passwords.
    password_file: Option<PathBuf>,
    /// MQTT keep-alive, in seconds (5..=3600).
    #[serde(default = "default_keep_alive_s")]
    keep_alive_s: u64,
    /// First reconnect delay, in milliseconds (> 0).
    #[serde(default = "default_backoff_initial_ms")]
    backoff_initial_ms: u64,
    /// Longest reconnect delay, in milliseconds (at least `backoff_initial_ms`).
    #[serde(default = "default_backoff_max_ms")]
    backoff_max_ms: u64,
    /// Largest MQTT message accepted (1 KiB..=16 MiB): an integer (bytes) or text with a unit.
    #[serde(default = "default_max_message_bytes")]
    max_message_bytes: ByteSize,
    /// ChirpStack v4 uplink events (JSON marshaler): every decoded `object` field is a reading. A
    /// source needs this table or at least one `[[sources.mappings]]`.
    chirpstack: Option<RawChirpstack>,
    /// Custom JSON messages from other local publishers: a topic filter and JSON pointers (RFC
    /// 6901) from a message to readings.
    #[serde(default)]
    mappings: Vec<RawMapping>,
}

fn default_host() -> String {
    "127.0.0.1".to_owned()
}
const fn default_port() -> u16 {
    1883
}
const fn default_keep_alive_s() -> u64 {
    30
}
const fn default_backoff_initial_ms() -> u64 {
    500
}
const fn default_backoff_max_ms() -> u64 {
    30_000
}
const fn default_max_message_bytes() -> ByteSize {
    ByteSize(256 << 10)
}

/// A validated MQTT source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSpec {
    /// Name for logs.
    pub name: String,
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client id; `None`: `beffroi-agent-<random>`.
    pub client_id: Option<String>,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// File holding the password (first line).
    pub password_file: Option<PathBuf>,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Largest MQTT packet accepted.
    pub max_message_bytes: usize,
    /// ChirpStack v4 uplinks.
    pub chirpstack: Option<Chirpstack>,
    /// Custom mappings.
    pub mappings: Vec<Mapping>,
}

impl RawMqtt {
    /// Checks every field; no IO. A relative `password_file` is joined to `base`.
    pub fn validate(self, field: &str, base: &Path) -> Result<MqttSpec, ConfigError> {
        let invalid =
            |name: &str, reason: &str| ConfigError::invalid(format!("{field}.{name}"), reason);
        let name = self.name.unwrap_or_else(|| "mqtt".to_owned());
        super::spec::check_name(field, &name)?;
        if self.host.trim().is_empty() {
            return Err(invalid("host", "must not be empty"));
        }
        if self.port == 0 {
            return Err(invalid("port", "must be greater than 0"));
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
                return Err(invalid(
                    "client_id",
                    "must be 1 to 128 printable characters",
                ));
            }
        }
        if let Some(user) = &self.username {
            if user.is_empty() || user.chars().any(char::is_control) {
                return Err(invalid("username", "must be non-empty printable text"));
            }
        }
        if self.password_file.is_some() && self.username.is_none() {
            return Err(invalid("password_file", "needs `username`"));
        }
        if !(5..=3600).contains(&self.keep_alive_s) {
            return Err(invalid("keep_alive_s", "must be within 5..=3600"));
        }
        if self.backoff_initial_ms == 0 {
            return Err(invalid("backoff_initial_ms", "must be greater than 0"));
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(invalid(
                "backoff_max_ms",
                "must be at least backoff_initial_ms",
            ));
        }
        if !(1 << 10..=16 << 20).contains(&self.max_message_bytes.0) {
            return Err(invalid(
                "max_message_bytes",
                "must be within 1 KiB..=16 MiB",
            ));
        }
        if self.chirpstack.is_none() && self.mappings.is_empty() {
            return Err(invalid(
                "mappings",
                "set [sources.chirpstack] or at least one [[sources.mappings]]",
            ));
        }
        let chirpstack = self
            .chirpstack
            .map(|raw| raw.validate(&format!("{field}.chirpstack")))
            .transpose()?;
        let mappings = self
            .mappings
            .into_iter()
            .enumerate()
            .map(|(i, raw)| raw.validate(&format!("{field}.mappings[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MqttSpec {
            name,
            host: self.host,
            port: self.port,
            client_id: self.client_id,
            username: self.username,
            password_file: self
                .password_file
                .map(|p| if p.is_absolute() { p } else { base.join(p) }),
            keep_alive: Duration::from_secs(self.keep_alive_s),
            backoff_initial: Duration::from_millis(self.backoff_initial_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            max_message_bytes: usize::try_from(self.max_message_bytes.0)
                .map_err(|_| invalid("max_message_bytes", "too large for this platform"))?,
            chirpstack,
            mappings,
        })
    }
}

/// Applies the mapping rules to messages: pure, no IO.
#[derive(Debug, Clone)]
pub struct Router {
    chirpstack: Option<Chirpstack>,
    mappings: Vec<Mapping>,
}

impl Router {
    /// The rules of `spec`.
    pub fn new(spec: &MqttSpec) -> Self {
        Self {
            chirpstack: spec.chirpstack.clone(),
            mappings: spec.mappings.clone(),
        }
    }

    /// The distinct filters to subscribe to.
    pub fn filters(&self) -> Vec<TopicFilter> {
        let mut filters: Vec<TopicFilter> = Vec::new();
        let all = self
            .chirpstack
            .iter()
            .map(|c| &c.topic)
            .chain(self.mappings.iter().map(|m| &m.filter));
        for filter in all {
            if !filters.contains(filter) {
                filters.push(filter.clone());
            }
        }
        filters
    }

    /// Maps a message on `topic` to readings in `out`. `Err` says why (part of) the message
    /// was dropped; the readings in `out` are good either way.
    pub fn route(
        &self,
        topic: &str,
        payload: &[u8],
        received: Timestamp,
        out: &mut Vec<Reading>,
    ) -> Result<(), String> {
        let doc: serde_json::Value = serde_json::from_slice(payload)
            .map_err(|e| format!("message on {topic:?} is not JSON: {e}"))?;
        let mut problems = Vec::new();
        let mut matched = false;
        if let Some(chirpstack) = self.chirpstack.as_ref().filter(|c| c.topic.matches(topic)) {
            matched = true;
            chirpstack.apply(&doc, received, out, &mut problems);
        }
        for mapping in self.mappings.iter().filter(|m| m.filter.matches(topic)) {
            matched = true;
            mapping.apply(topic, &doc, received, out, &mut problems);
        }
        if !matched {
            return Err(format!("no mapping for topic {topic:?}"));
        }
        match problems.len() {
            0 => Ok(()),
            1 => Err(format!("message on {topic:?}: {}", problems[0])),
            n => Err(format!(
                "message on {topic:?}: {} (and {} more)",
                problems[0],
                n - 1
            )),
        }
    }
}

/// The MQTT source, ready to connect.
pub struct MqttSource {
    name: String,
    spec: MqttSpec,
    client_id: String,
    password: Option<String>,
    router: Router,
}

impl std::fmt::Debug for MqttSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("MqttSource")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field(
                "broker",
                &format_args!("{}:{}", self.spec.host, self.spec.port),
            )
            .finish_non_exhaustive()
    }
}

impl MqttSource {
    /// Reads the password file, if any, and picks the client id; connects when run.
    pub fn new(spec: &MqttSpec) -> Result<Self, SourceError> {
        let password = match &spec.password_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| SourceError::Io {
                    source_name: spec.name.clone(),
                    what: format!("reading password file {}", path.display()),
                    error,
                })?;
                Some(text.lines().next().unwrap_or("").to_owned())
            }
        };
        let client_id = spec.client_id.clone().unwrap_or_else(random_client_id);
        Ok(Self {
            name: spec.name.clone(),
            spec: spec.clone(),
            client_id,
            password,
            router: Router::new(spec),
        })
    }

    fn options(&self) -> MqttOptions {
        let mut options = MqttOptions::new(&self.client_id, &self.spec.host, self.spec.port);
        options
            .set_keep_alive(self.spec.keep_alive)
            .set_clean_session(true)
            .set_max_packet_size(self.spec.max_message_bytes, self.spec.max_message_bytes);
        if let Some(username) = &self.spec.username {
            options.set_credentials(username, self.password.as_deref().unwrap_or(""));
        }
        options
    }

    async fn run_loop(self, sink: ReadingSink, stop: CancellationToken) -> Result<(), SourceError> {
        let (client, mut events) = AsyncClient::new(self.options(), REQUEST_CHANNEL_CAPACITY);
        let broker = format!("{}:{}", self.spec.host, self.spec.port);
        let subscriptions: Vec<SubscribeFilter> = self
            .router
            .filters()
            .iter()
            .map(|f| SubscribeFilter::new(f.as_str().to_owned(), QoS::AtLeastOnce))
            .collect();
        let mut backoff = self.spec.backoff_initial;
        let mut readings = Vec::new();
        loop {
            let event = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                event = events.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = self.spec.backoff_initial;
                    tracing::info!(source = %self.name, %broker, client_id = %self.client_id, "connected to broker");
                    if let Err(e) = client.try_subscribe_many(subscriptions.iter().cloned()) {
                        sink.error(format_args!("cannot subscribe: {e}"));
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .filter(|code| matches!(code, SubscribeReasonCode::Failure))
                        .count();
                    if refused > 0 {
                        sink.error(format_args!(
                            "broker {broker} refused {refused} of {} subscriptions",
                            subscriptions.len()
                        ));
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let received = Timestamp::now();
                    if let Err(reason) =
                        self.router
                            .route(&publish.topic, &publish.payload, received, &mut readings)
                    {
                        sink.malformed(reason);
                    }
                    for reading in readings.drain(..) {
                        tokio::select! {
                            biased;
                            () = stop.cancelled() => return Ok(()),
                            sent = sink.send(reading) => if sent.is_err() {
                                return Ok(());
                            },
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    sink.error(format_args!(
                        "broker {broker}: {e}; retrying in {backoff:?}"
                    ));
                    tokio::select! {
                        biased;
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.spec.backoff_max);
                }
            }
        }
        disconnect(&client, &mut events).await;
        Ok(())
    }
}

/// Sends DISCONNECT, best effort, so the broker does not wait for the keep-alive.
async fn disconnect(client: &AsyncClient, events: &mut EventLoop) {
    if client.try_disconnect().is_err() || events.network.is_none() {
        return;
    }
    let _ = tokio::time::timeout(DISCONNECT_GRACE, async {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// `beffroi-agent-` and 8 random hex digits (22 characters: within MQTT 3.1.1's guaranteed
/// 23), so two agents on one broker do not take over each other's session.
fn random_client_id() -> String {
    let mut bytes = [0u8; 4];
    if getrandom::getrandom(&mut bytes).is_err() {
        bytes = std::process::id().to_le_bytes();
    }
    format!("beffroi-agent-{:08x}", u32::from_le_bytes(bytes))
}

impl Source for MqttSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, sink: ReadingSink, stop: CancellationToken) -> SourceFuture {
        Box::pin(self.run_loop(sink, stop))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use super::*;
    use crate::telemetry::{Counter, Telemetry};

    const CONFIG: &str = r#"
        host = "127.0.0.1"
        username = "agent"
        password_file = "secrets/mqtt.pass"
        [chirpstack]
        fields = { pm25 = { metric = "air.pm25", unit = "ug/m3" } }
        [[mappings]]
        filter = "city/+/noise"
        sensor = { topic_level = 1 }
        values = [{ metric = "noise.laeq", value = "/laeq", unit = "dB" }]
        [[mappings]]
        filter = "city/+/noise"
        sensor = { topic_level = 1 }
        values = [{ metric = "noise.lmax", value = "/lmax", unit = "dB", optional = true }]
    "#;

    fn spec(text: &str) -> Result<MqttSpec, String> {
        toml::from_str::<RawMqtt>(text)
            .map_err(|e| e.to_string())?
            .validate("sources[2]", Path::new("/etc/beffroi"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn validates_with_defaults() {
        let spec = spec(CONFIG).unwrap();
        assert_eq!((spec.host.as_str(), spec.port), ("127.0.0.1", 1883));
        assert_eq!(
            spec.password_file,
            Some(PathBuf::from("/etc/beffroi/secrets/mqtt.pass"))
        );
        assert_eq!(spec.keep_alive, Duration::from_secs(30));
        assert_eq!(spec.max_message_bytes, 256 << 10);
        assert_eq!(spec.mappings.len(), 2);
        let router = Router::new(&spec);
        let filters: Vec<String> = router.filters().iter().map(ToString::to_string).collect();
        assert_eq!(filters, [DEFAULT_UP_TOPIC, "city/+/noise"]);
    }

    #[test]
    fn validation_names_fields() {
        let cases = [
            ("host = \"\"\nmappings = []", "sources[2].host"),
            ("port = 0", "sources[2].port"),
            ("password_file = \"p\"", "sources[2].password_file"),
            ("keep_alive_s = 1", "sources[2].keep_alive_s"),
            ("backoff_initial_ms = 0", "sources[2].backoff_initial_ms"),
            ("backoff_max_ms = 1", "sources[2].backoff_max_ms"),
            (
                "max_message_bytes = \"1 GiB\"",
                "sources[2].max_message_bytes",
            ),
            ("client_id = \"\"", "sources[2].client_id"),
        ];
        let mapping = "\n[chirpstack]\n";
        for (text, field) in cases {
            let err = spec(&format!("{text}{mapping}")).unwrap_err();
            assert!(err.contains(field), "{field}: {err}");
        }
        let err = spec("host = \"h\"").unwrap_err();
        assert!(err.contains("sources[2].mappings"), "{err}");
        let err = spec(&CONFIG.replace("city/+/noise", "city/#/noise")).unwrap_err();
        assert!(err.contains("sources[2].mappings[0].filter"), "{err}");
        let err = spec(&CONFIG.replace("\"air.pm25\"", "\"PM\"")).unwrap_err();
        assert!(
            err.contains("sources[2].chirpstack.fields.pm25.metric"),
            "{err}"
        );
        let err = spec("password = \"secret\"\n[chirpstack]").unwrap_err();
        assert!(err.contains("unknown field `password`"), "{err}");
    }

    #[test]
    fn routes_messages() {
        let router = Router::new(&spec(CONFIG).unwrap());
        let now = Timestamp::from_unix_micros(5);
        let mut out = Vec::new();
        // Both noise mappings apply to the same message.
        router
            .route(
                "city/Place-Bellecour/noise",
                br#"{"laeq": 61.5, "lmax": 80}"#,
                now,
                &mut out,
            )
            .unwrap();
        let got: Vec<String> = out
            .iter()
            .map(|r| format!("{} {} {:?}", r.sensor, r.metric, r.value))
            .collect();
        assert_eq!(
            got,
            [
                "place-bellecour noise.laeq Number(61.5)",
                "place-bellecour noise.lmax Number(80.0)"
            ]
        );
        out.clear();
        let err = router
            .route("city/a/noise", b"\xff\x00binary", now, &mut out)
            .unwrap_err();
        assert!(err.contains("not JSON"), "{err}");
        let err = router
            .route("city/a/noise", br#"{"lmax": 1}"#, now, &mut out)
            .unwrap_err();
        assert!(err.contains("no value at \"/laeq\""), "{err}");
        assert_eq!(out.len(), 1, "the optional value is still mapped");
        let err = router.route("elsewhere", b"{}", now, &mut out).unwrap_err();
        assert!(err.contains("no mapping"), "{err}");
        out.clear();
        router
            .route(
                "application/17c82e96/device/a81758fffe03b4c1/event/up",
                br#"{"deviceInfo": {"devEui": "A81758FFFE03B4C1"}, "object": {"pm25": 3}}"#,
                now,
                &mut out,
            )
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sensor.as_str(), "a81758fffe03b4c1");
    }

    #[test]
    fn password_file_is_read_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pass"), "s3cret\nignored\n").unwrap();
        let spec =
            toml::from_str::<RawMqtt>("username = \"u\"\npassword_file = \"pass\"\n[chirpstack]")
                .unwrap()
                .validate("sources[0]", dir.path())
                .unwrap();
        let source = MqttSource::new(&spec).unwrap();
        assert_eq!(source.password.as_deref(), Some("s3cret"));
        assert!(!format!("{source:?}").contains("s3cret"));
        assert!(source.client_id.starts_with("beffroi-agent-"));
        assert_eq!(source.client_id.len(), 22);
        std::fs::remove_file(dir.path().join("pass")).unwrap();
        let err = MqttSource::new(&spec).unwrap_err().to_string();
        assert!(err.contains("password file"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_broker_is_retried_and_counted() {
        // Port 9 (discard) on loopback: connection refused at once.
        let spec =
            spec("port = 9\nbackoff_initial_ms = 10\nbackoff_max_ms = 20\n[chirpstack]").unwrap();
        let telemetry = Arc::new(Telemetry::default());
        let (tx, _rx) = mpsc::channel(1);
        let sink = ReadingSink::new(tx, telemetry.clone(), "mqtt");
        let stop = CancellationToken::new();
        let task = tokio::spawn(Box::new(MqttSource::new(&spec).unwrap()).run(sink, stop.clone()));
        tokio::time::timeout(Duration::from_secs(5), async {
            while telemetry.get(Counter::SourceErrors) < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
