//! The integrator baseline's devices: plain MQTT 3.1.1 connections (rumqttc, QoS 1, no TLS)
//! to its Mosquitto, each publishing JSON messages of one or N readings — the same series and
//! the same kind of values as the raw bulk load (`super::super::baseline::SERIES`), with times
//! that advance like real readings.
//!
//! Flow control: a publisher waits while the messages published by all of them run more than
//! `ahead` past what the consumer reports received. Below Mosquitto's per-client queue (1000
//! messages by default) that keeps the consumer busy and nothing is dropped, so the rate is
//! what the consumer can take; above it Mosquitto drops QoS 1 messages past its queue without
//! telling anyone, which the loss figure shows.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use beffroi_protocol::Timestamp;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::task::JoinHandle;

use super::super::baseline::SERIES;
use super::consumer::Progress;

/// Sensors per publisher (each with every metric of [`SERIES`]).
const SENSORS: usize = 16;
/// Time allowed for CONNACK.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed, once publishing stops, for Mosquitto to acknowledge what is in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JSON message (100 readings take about 12 KB).
const MAX_PACKET_BYTES: usize = 1 << 20;

/// What the publishers share.
#[derive(Default)]
struct Shared {
    /// Messages handed to the clients.
    sent: AtomicU64,
    /// Messages Mosquitto acknowledged (PUBACK).
    acked: AtomicU64,
    /// Publishing stops.
    stop: AtomicBool,
}

/// The running publishers.
pub(crate) struct Publishers {
    shared: Arc<Shared>,
    clients: Vec<AsyncClient>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    per_message: usize,
}

/// Their totals, once stopped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Published {
    /// Messages Mosquitto acknowledged.
    pub messages: u64,
    /// Readings in them.
    pub readings: u64,
}

impl Publishers {
    /// Connects `count` publishers to Mosquitto on `port` (each waits for its CONNACK) and
    /// starts them on `runtime`, publishing messages of `per_message` readings to `topic`.
    pub(crate) async fn start(
        runtime: &tokio::runtime::Handle,
        port: u16,
        topic: &str,
        count: usize,
        per_message: usize,
        ahead: u64,
        progress: Arc<Progress>,
    ) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::default());
        let mut clients = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(2 * count);
        for n in 0..count {
            let mut options = MqttOptions::new(format!("integrator-device-{n}"), "127.0.0.1", port);
            options
                .set_keep_alive(Duration::from_secs(30))
                .set_clean_session(true)
                .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
            let (client, mut events) = AsyncClient::new(options, 64);
            let (connected_tx, connected) = tokio::sync::oneshot::channel();
            let acks = shared.clone();
            tasks.push(runtime.spawn(async move {
                let mut connected_tx = Some(connected_tx);
                loop {
                    match events.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            if let Some(tx) = connected_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            acks.acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        // Disconnected on purpose at the end of the run.
                        Err(_) if acks.stop.load(Ordering::Relaxed) => return Ok(()),
                        Err(error) => {
                            return Err(anyhow::Error::new(error)
                                .context(format!("integrator publisher {n}")))
                        }
                    }
                }
            }));
            tokio::time::timeout(CONNECT_TIMEOUT, connected)
                .await
                .ok()
                .and_then(Result::ok)
                .with_context(|| format!("integrator publisher {n} cannot connect to Mosquitto"))?;
            let payloads = Payloads::new(n, per_message);
            tasks.push(runtime.spawn(publish(
                client.clone(),
                topic.to_owned(),
                payloads,
                shared.clone(),
                progress.clone(),
                ahead,
            )));
            clients.push(client);
        }
        Ok(Self {
            shared,
            clients,
            tasks,
            per_message,
        })
    }

    /// Stops publishing, waits (a bounded time) for Mosquitto to acknowledge what is in flight
    /// and disconnects; returns what Mosquitto acknowledged.
    pub(crate) async fn stop(self) -> anyhow::Result<Published> {
        self.shared.stop.store(true, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while self.shared.acked.load(Ordering::Relaxed) < self.shared.sent.load(Ordering::Relaxed)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for client in &self.clients {
            let _ = client.try_disconnect();
        }
        for task in self.tasks {
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(joined) => joined.context("integrator publisher task")??,
                Err(_) => anyhow::bail!("an integrator publisher does not stop"),
            }
        }
        let messages = self.shared.acked.load(Ordering::Relaxed);
        Ok(Published {
            messages,
            readings: messages * self.per_message as u64,
        })
    }
}

/// One publisher's loop: the next message whenever the flow control allows it.
async fn publish(
    client: AsyncClient,
    topic: String,
    mut payloads: Payloads,
    shared: Arc<Shared>,
    progress: Arc<Progress>,
    ahead: u64,
) -> anyhow::Result<()> {
    while !shared.stop.load(Ordering::Relaxed) {
        let sent = shared.sent.load(Ordering::Relaxed);
        if sent.saturating_sub(progress.messages()) >= ahead {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        shared.sent.fetch_add(1, Ordering::Relaxed);
        client
            .publish(topic.as_str(), QoS::AtLeastOnce, false, payloads.next())
            .await
            .context("integrator publish")?;
    }
    Ok(())
}

/// A publisher's messages: JSON, one reading (an object) or N (a list), each
/// `{"sensor", "metric", "unit", "time", "value"}`, times one microsecond apart from now on.
struct Payloads {
    sensors: Vec<String>,
    per_message: usize,
    next_reading: usize,
    time: i64,
}

impl Payloads {
    fn new(publisher: usize, per_message: usize) -> Self {
        Self {
            sensors: (0..SENSORS)
                .map(|s| format!("integrator-{publisher:02}-s{s:02}"))
                .collect(),
            per_message,
            next_reading: 0,
            time: Timestamp::now().unix_micros(),
        }
    }

    fn next(&mut self) -> Vec<u8> {
        let mut json = String::with_capacity(self.per_message * 128 + 2);
        if self.per_message > 1 {
            json.push('[');
        }
        for k in 0..self.per_message {
            let i = self.next_reading;
            let (metric, unit) = SERIES[i % SERIES.len()];
            let sensor = &self.sensors[(i / SERIES.len()) % SENSORS];
            let time = Timestamp::from_unix_micros(self.time);
            let value = (i % 1000) as f64 / 10.0;
            if k > 0 {
                json.push(',');
            }
            // Names and units are plain ASCII identifiers: nothing to escape.
            let _ = write!(
                json,
                r#"{{"sensor":"{sensor}","metric":"{metric}","unit":"{unit}","time":"{time}","value":{value}}}"#
            );
            self.next_reading += 1;
            self.time += 1;
        }
        if self.per_message > 1 {
            json.push(']');
        }
        json.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_json_readings() {
        let mut single = Payloads::new(3, 1);
        let one: serde_json::Value = serde_json::from_slice(&single.next()).unwrap();
        assert_eq!(one["sensor"], "integrator-03-s00");
        assert!(one["time"].as_str().unwrap().ends_with('Z'));
        let mut batched = Payloads::new(0, 100);
        let list: serde_json::Value = serde_json::from_slice(&batched.next()).unwrap();
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 100);
        assert_ne!(list[0]["time"], list[1]["time"]);
        assert_eq!(list[0]["metric"], SERIES[0].0);
        assert_eq!(list[1]["metric"], SERIES[1].0);
    }
}
