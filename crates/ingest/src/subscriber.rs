//! The MQTT v5 client (rumqttc, plain TCP to the broker on loopback or a cluster): shared
//! subscriptions to every gateway's `batch` and `health` topics, and the publisher of acks.
//!
//! The rumqttc event loop runs in its own task, because `EventLoop::poll` is not documented
//! as cancellation safe (<https://github.com/bytebeamio/rumqtt/issues/601>); it forwards
//! incoming publishes over a bounded channel. When the channel is full the task waits, so the
//! event loop stops reading and the broker holds the messages back (TCP backpressure):
//! nothing is dropped here.
//!
//! ```text
//!   connect ──► ConnAck ──► subscribe ($share/{group}-batch/…, -health/…) ──► publishes ───┐
//!      ▲                                                                                   │
//!      └──── connection error: wait (50 ms, doubling up to reconnect_max), poll again ◄────┘
//! ```
//! Each connection starts clean and subscribes again after every ConnAck, so a broker
//! restart is survived. rumqttc acknowledges (PUBACK) a message as soon as it is read: the
//! gateway's spool, not the broker, owns delivery, and a message lost in a crash after its
//! PUBACK is sent again by the gateway because no commit ack covers it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use beffroi_protocol::{Timestamp, MAX_ENVELOPE_BYTES};
use beffroi_telemetry::Metrics;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::Outgoing;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::IngestConfig;

/// Requests (acks, subscriptions) queued for the event loop.
const REQUEST_CAPACITY: usize = 1024;
/// First wait before reconnecting.
const RECONNECT_MIN: Duration = Duration::from_millis(50);

/// A message as received from the broker.
#[derive(Debug, Clone)]
pub(crate) struct Inbound {
    /// The MQTT publish (topic and payload are reference-counted bytes).
    pub publish: Publish,
    /// When it arrived (wall clock, stored with the batch).
    pub received_at: Timestamp,
    /// When it arrived (monotonic, for the commit latency metric).
    pub arrived: Instant,
}

/// The connection: a client handle and the task driving its event loop.
pub(crate) struct Subscriber {
    client: AsyncClient,
    filters: [String; 2],
    driver: JoinHandle<()>,
}

/// Small packets (commit acks, PUBACKs) leave at once: with Nagle's algorithm on, an ack
/// written while an earlier packet waits for its TCP ACK is held until the broker's delayed ACK
/// (40 ms on Linux), and every gateway waits that much longer to free its spool.
fn no_delay() -> rumqttc::NetworkOptions {
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network
}

impl Subscriber {
    /// Starts connecting; messages arrive on the returned channel.
    pub(crate) fn start(
        config: &IngestConfig,
        metrics: Arc<Metrics>,
    ) -> (Self, mpsc::Receiver<Inbound>) {
        let mut options = MqttOptions::new(
            config.client_id.clone(),
            config.broker_host.clone(),
            config.broker_port,
        );
        options
            .set_keep_alive(config.keep_alive)
            .set_clean_start(true)
            .set_max_packet_size(Some(max_packet_size()))
            .set_request_channel_capacity(REQUEST_CAPACITY)
            .set_network_options(no_delay());
        let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
        let (tx, rx) = mpsc::channel(config.inbound_capacity);
        let filters = config.subscriptions();
        let driver = tokio::spawn(drive(
            eventloop,
            client.clone(),
            filters.clone(),
            tx,
            config.reconnect_max,
            metrics,
        ));
        (
            Self {
                client,
                filters,
                driver,
            },
            rx,
        )
    }

    /// The client handle, to publish acks.
    pub(crate) fn client(&self) -> AsyncClient {
        self.client.clone()
    }

    /// Asks the broker to stop sending (first step of shutdown), without waiting.
    pub(crate) fn unsubscribe(&self) {
        for filter in &self.filters {
            // The request queue may be full of acks; a failed unsubscribe only means a few
            // more messages arrive and are not acknowledged (gateways send them again).
            let _ = self.client.try_unsubscribe(filter.clone());
        }
    }

    /// Sends DISCONNECT after everything queued (acks) and waits up to `wait` for the event
    /// loop to write it; then stops the event loop.
    pub(crate) async fn disconnect(mut self, wait: Duration) {
        let client = self.client.clone();
        let queued = tokio::time::timeout(wait, client.disconnect()).await;
        if matches!(queued, Ok(Ok(()))) {
            let _ = tokio::time::timeout(wait, &mut self.driver).await;
        }
        self.driver.abort();
    }
}

/// Largest MQTT packet accepted: the largest envelope plus room for the topic and properties.
fn max_packet_size() -> u32 {
    u32::try_from(MAX_ENVELOPE_BYTES + 4096).unwrap_or(u32::MAX)
}

/// Polls the event loop until the broker closes the connection after our DISCONNECT,
/// reconnecting with backoff before that.
async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filters: [String; 2],
    tx: mpsc::Sender<Inbound>,
    reconnect_max: Duration,
    metrics: Arc<Metrics>,
) {
    let connected = &metrics.ingest_broker_connected;
    let mut backoff = RECONNECT_MIN;
    let mut intake_open = true;
    let mut failures: u64 = 0;
    let mut disconnecting = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if intake_open {
                    let inbound = Inbound {
                        publish,
                        received_at: Timestamp::now(),
                        arrived: Instant::now(),
                    };
                    // Closed receiver: ingest is shutting down; keep polling to flush acks.
                    intake_open = tx.send(inbound).await.is_ok();
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = RECONNECT_MIN;
                if failures > 0 {
                    tracing::info!(failures, "reconnected to the broker");
                }
                failures = 0;
                resubscribe(&client, &filters);
            }
            Ok(Event::Incoming(Packet::SubAck(suback))) => {
                let refused: Vec<_> = suback
                    .return_codes
                    .iter()
                    .filter(|code| !matches!(code, SubscribeReasonCode::Success(_)))
                    .collect();
                if refused.is_empty() {
                    connected.set(1);
                } else {
                    connected.set(0);
                    tracing::error!(codes = ?refused, "broker refused the ingest subscription");
                }
            }
            Ok(Event::Incoming(Packet::Disconnect(disconnect))) => {
                connected.set(0);
                tracing::warn!(reason = ?disconnect.reason_code, "broker disconnected ingest");
            }
            // Keep reading until the broker closes: closing with unread bytes (an UNSUBACK,
            // a PUBACK) would send a TCP reset, and the broker could discard the acks and the
            // DISCONNECT still in its receive buffer.
            Ok(Event::Outgoing(Outgoing::Disconnect)) => disconnecting = true,
            Ok(_) => {}
            Err(_) if disconnecting => {
                connected.set(0);
                return;
            }
            Err(error) => {
                connected.set(0);
                failures += 1;
                // One line per failure streak step, not per message: the backoff bounds it.
                tracing::warn!(%error, retry_in = ?backoff, "broker connection failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(reconnect_max);
            }
        }
    }
}

/// Subscribes again after a (re)connection. The request goes through a separate task: this
/// task drives the event loop, so it must not wait on the request queue itself.
fn resubscribe(client: &AsyncClient, filters: &[String; 2]) {
    let client = client.clone();
    let filters: Vec<Filter> = filters
        .iter()
        .map(|f| Filter::new(f.clone(), QoS::AtLeastOnce))
        .collect();
    tokio::spawn(async move {
        if let Err(error) = client.subscribe_many(filters).await {
            tracing::error!(%error, "cannot queue the ingest subscription");
        }
    });
}
