//! Plain MQTT traffic around the gateways compared: a [`Publisher`] that plays the local
//! sensors (one JSON reading per message at a fixed rate, on one topic per metric), which
//! both the agent and the baseline gateway forward, and a [`ThingsBoardStandIn`] on the
//! baseline's upstream broker that answers its session-limits request the way a ThingsBoard
//! server does and counts the data points it forwards.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// The topic filter of the sensors' messages: `sensors/data/<metric>`.
pub const SENSOR_TOPICS: &str = "sensors/data/+";

/// Pacing tick of the publisher: several messages per tick at high rates, no drift.
const TICK: Duration = Duration::from_millis(10);

/// Simulated sensors, metrics and units, like the agent's simulator defaults (24 sensors of
/// four kinds).
const SENSORS: usize = 24;
pub const METRICS: [(&str, &str); 4] = [
    ("air.pm25", "ug/m3"),
    ("noise.laeq", "dB"),
    ("traffic.count", "count"),
    ("parking.occupied", "%"),
];

const RPC_REQUESTS: &str = "v1/devices/me/rpc/request/+";
const RPC_RESPONSE_PREFIX: &str = "v1/devices/me/rpc/response/";
const GATEWAY_TELEMETRY: &str = "v1/gateway/telemetry";

/// What a ThingsBoard server without rate limits answers to `getSessionLimits`.
fn session_limits() -> Value {
    json!({
        "rateLimits": {},
        "gatewayRateLimits": {},
        "maxInflightMessages": 100,
        "maxPayloadSize": 65536,
    })
}

fn client(id: &str, port: u16) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(1 << 20, 1 << 20);
    AsyncClient::new(options, 4096)
}

/// The topic of `metric`'s messages.
pub fn sensor_topic(metric: &str) -> String {
    format!("sensors/data/{metric}")
}

/// One sensor message, numbered `n`: its topic and payload.
fn reading(n: u64) -> (String, Vec<u8>) {
    let kind = (n as usize / SENSORS) % METRICS.len();
    let (metric, unit) = METRICS[kind];
    let payload = json!({
        "sensor": format!("sim-{:03}", n as usize % SENSORS),
        "metric": metric,
        "unit": unit,
        "value": (n * 7919 % 1000) as f64 / 10.0,
    });
    (sensor_topic(metric), payload.to_string().into_bytes())
}

/// Publishes one reading per message (QoS 1) at a fixed rate until stopped or dropped.
#[derive(Debug)]
pub struct Publisher {
    published: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    pacer: JoinHandle<()>,
    driver: JoinHandle<()>,
}

impl Publisher {
    /// Connects to the broker on `port` and starts publishing `rate_per_s` messages a second
    /// under [`SENSOR_TOPICS`].
    pub fn start(port: u16, rate_per_s: f64) -> Self {
        let (client, mut eventloop) = client("bench-sensors", port);
        let published = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(AtomicU64::new(0));
        let driver = {
            let acked = acked.clone();
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        };
        let pacer = {
            let published = published.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let mut ticker = tokio::time::interval(TICK);
                loop {
                    ticker.tick().await;
                    let due = (started.elapsed().as_secs_f64() * rate_per_s) as u64;
                    while published.load(Ordering::Relaxed) < due {
                        let (topic, payload) = reading(published.load(Ordering::Relaxed));
                        if client
                            .publish(topic, QoS::AtLeastOnce, false, payload)
                            .await
                            .is_err()
                        {
                            return;
                        }
                        published.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        Self {
            published,
            acked,
            pacer,
            driver,
        }
    }

    /// Stops publishing and waits at most `timeout` for the broker to acknowledge what was
    /// queued; returns how many messages the broker acknowledged (accepted).
    pub async fn stop(self, timeout: Duration) -> u64 {
        self.pacer.abort();
        let published = self.published.load(Ordering::Relaxed);
        let deadline = Instant::now() + timeout;
        while self.acked.load(Ordering::Relaxed) < published && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.acked.load(Ordering::Relaxed)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.pacer.abort();
        self.driver.abort();
    }
}

/// What the ThingsBoard stand-in has seen.
#[derive(Debug, Default)]
struct Seen {
    limits_answered: AtomicBool,
    datapoints: AtomicU64,
}

/// The gateway's upstream: answers `getSessionLimits` (no limits) and counts the data points
/// published on `v1/gateway/telemetry`.
#[derive(Debug)]
pub struct ThingsBoardStandIn {
    seen: Arc<Seen>,
    task: JoinHandle<()>,
}

impl ThingsBoardStandIn {
    /// Connects to the upstream broker on `port` and waits until it is subscribed.
    pub async fn start(port: u16) -> anyhow::Result<Self> {
        let (client, mut eventloop) = client("bench-thingsboard", port);
        let seen = Arc::new(Seen::default());
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut subscribed_tx = Some(subscribed_tx);
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            for topic in [RPC_REQUESTS, GATEWAY_TELEMETRY] {
                                let _ = client.try_subscribe(topic, QoS::AtLeastOnce);
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(tx) = subscribed_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(publish))) => {
                            handle(&client, &seen, &publish.topic, &publish.payload);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .map_err(|_| anyhow::anyhow!("the ThingsBoard stand-in did not subscribe in 10 s"))??;
        Ok(Self { seen, task })
    }

    /// Whether the gateway asked for its session limits and got an answer.
    pub fn limits_answered(&self) -> bool {
        self.seen.limits_answered.load(Ordering::Relaxed)
    }

    /// Data points received on `v1/gateway/telemetry` so far.
    pub fn datapoints(&self) -> u64 {
        self.seen.datapoints.load(Ordering::Relaxed)
    }
}

impl Drop for ThingsBoardStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn handle(client: &AsyncClient, seen: &Seen, topic: &str, payload: &[u8]) {
    if topic == GATEWAY_TELEMETRY {
        let points = serde_json::from_slice::<Value>(payload)
            .map_or(0, |telemetry| count_datapoints(&telemetry));
        seen.datapoints.fetch_add(points, Ordering::Relaxed);
    } else if let Some(id) = topic.rsplit('/').next() {
        let method = serde_json::from_slice::<Value>(payload)
            .ok()
            .and_then(|request| Some(request.get("method")?.as_str()?.to_owned()));
        if method.as_deref() == Some("getSessionLimits") {
            let response = session_limits().to_string();
            let topic = format!("{RPC_RESPONSE_PREFIX}{id}");
            if client
                .try_publish(topic, QoS::AtLeastOnce, false, response)
                .is_ok()
            {
                seen.limits_answered.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Data points in a gateway telemetry message: `{"device": [{"ts": …, "values": {…}}, …], …}`.
fn count_datapoints(telemetry: &Value) -> u64 {
    let Some(devices) = telemetry.as_object() else {
        return 0;
    };
    devices
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|entry| entry.get("values")?.as_object())
        .map(|values| values.len() as u64)
        .sum()
}
