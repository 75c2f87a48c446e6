//! The production [`Connector`]: MQTT v5 (rumqttc) over mutual TLS.
//!
//! Each connection gets a fresh client with a clean start: nothing is carried over from a
//! previous connection, since the spool resends everything unacknowledged. The rumqttc event
//! loop runs in its own task and forwards what arrives over a channel, because
//! `EventLoop::poll` is not documented as cancellation safe
//! (<https://github.com/bytebeamio/rumqtt/issues/601>) and the uplink selects over several
//! events at once.

use std::sync::Arc;
use std::time::Duration;

use beffroi_protocol::Topic;
use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ClientError, Event, EventLoop, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::{mpsc, watch};

use super::{Connector, Inbound, Link, TransportError};
use crate::abort_on_drop::AbortOnDrop;

/// Largest packet the agent accepts from the broker (acks and commands are small).
const MAX_INCOMING_PACKET: u32 = 64 * 1024;

/// Connects to the platform gate as one gateway.
pub struct MqttConnector {
    host: String,
    port: u16,
    client_id: String,
    keep_alive: Duration,
    tls: watch::Receiver<Arc<rustls::ClientConfig>>,
    ack_topic: String,
    max_in_flight: usize,
}

impl MqttConnector {
    /// A connector for `client_id` (the gateway id) at `host:port`, subscribing to
    /// `ack_topic` after each connect, always with the TLS configuration `tls` (see
    /// [`renewed_by`](Self::renewed_by)).
    pub fn new(
        host: String,
        port: u16,
        client_id: String,
        keep_alive: Duration,
        tls: Arc<rustls::ClientConfig>,
        ack_topic: &Topic,
        max_in_flight: usize,
    ) -> Self {
        Self {
            host,
            port,
            client_id,
            keep_alive,
            // No sender: the configuration never changes.
            tls: watch::channel(tls).1,
            ack_topic: ack_topic.to_string(),
            max_in_flight,
        }
    }
}

impl MqttConnector {
    /// Connects with the latest configuration published on `updates` from now on, and makes
    /// the uplink replace a live connection when a new one (a renewed certificate) arrives.
    pub fn renewed_by(mut self, updates: watch::Receiver<Arc<rustls::ClientConfig>>) -> Self {
        self.tls = updates;
        self
    }
}

/// A live MQTT connection and the task driving it.
pub struct MqttLink {
    client: AsyncClient,
    events: mpsc::Receiver<Result<Packet, TransportError>>,
    /// Stops the event-loop task when the connection is dropped.
    _driver: AbortOnDrop,
    ack_topic: String,
}

/// Batches and PUBACKs leave at once instead of waiting (Nagle's algorithm) for the TCP ACK of
/// what went before: the batch is durable in the spool already, the only point is latency.
fn no_delay() -> rumqttc::NetworkOptions {
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network
}

/// Polls the event loop until it fails, forwarding incoming packets.
async fn drive(mut eventloop: EventLoop, events: mpsc::Sender<Result<Packet, TransportError>>) {
    loop {
        let item = match eventloop.poll().await {
            Ok(Event::Incoming(packet)) => Ok(packet),
            Ok(Event::Outgoing(_)) => continue,
            Err(error) => Err(TransportError::Connection(error.to_string())),
        };
        let failed = item.is_err();
        if events.send(item).await.is_err() || failed {
            return;
        }
    }
}

impl Connector for MqttConnector {
    type Link = MqttLink;

    async fn connect(&mut self) -> Result<MqttLink, TransportError> {
        let mut options = MqttOptions::new(&self.client_id, &self.host, self.port);
        options
            .set_keep_alive(self.keep_alive)
            .set_clean_start(true)
            .set_max_packet_size(Some(MAX_INCOMING_PACKET))
            .set_outgoing_inflight_upper_limit(
                u16::try_from(self.max_in_flight).unwrap_or(u16::MAX),
            )
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                self.tls.borrow_and_update().clone(),
            )))
            .set_network_options(no_delay());
        let capacity = self.max_in_flight * 2 + 8;
        let (client, eventloop) = AsyncClient::new(options, capacity);
        let (tx, mut events) = mpsc::channel(capacity);
        let driver = AbortOnDrop(tokio::spawn(drive(eventloop, tx)));
        loop {
            match events.recv().await {
                Some(Ok(Packet::ConnAck(_))) => break,
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Err(error),
                None => return Err(TransportError::Connection("event loop ended".into())),
            }
        }
        client
            .try_subscribe(self.ack_topic.clone(), QoS::AtLeastOnce)
            .map_err(|e| TransportError::Connection(e.to_string()))?;
        Ok(MqttLink {
            client,
            events,
            _driver: driver,
            ack_topic: self.ack_topic.clone(),
        })
    }

    fn credentials_changed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut tls = self.tls.clone();
        async move {
            if tls.changed().await.is_err() {
                // No more renewals: keep the connection.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Link for MqttLink {
    fn publish(&mut self, topic: &Topic, payload: Vec<u8>) -> Result<(), TransportError> {
        self.client
            .try_publish(topic.to_string(), QoS::AtLeastOnce, false, payload)
            .map_err(|error| match error {
                ClientError::TryRequest(_) => TransportError::QueueFull,
                ClientError::Request(_) => TransportError::Connection("client closed".into()),
            })
    }

    async fn next(&mut self) -> Result<Inbound, TransportError> {
        match self.events.recv().await {
            Some(Ok(Packet::Publish(publish))) if publish.topic == self.ack_topic.as_bytes() => {
                Ok(Inbound::Ack(publish.payload.to_vec()))
            }
            Some(Ok(Packet::SubAck(suback))) => {
                match suback
                    .return_codes
                    .iter()
                    .find(|code| !matches!(code, SubscribeReasonCode::Success(_)))
                {
                    Some(code) => Err(TransportError::SubscriptionRefused(format!("{code:?}"))),
                    None => Ok(Inbound::Other),
                }
            }
            Some(Ok(Packet::Disconnect(disconnect))) => Err(TransportError::Connection(format!(
                "broker disconnected: {:?}",
                disconnect.reason_code
            ))),
            Some(Ok(_)) => Ok(Inbound::Other),
            Some(Err(error)) => Err(error),
            None => Err(TransportError::Connection("event loop ended".into())),
        }
    }

    async fn close(mut self) {
        if self.client.try_disconnect().is_ok() {
            // Let the driver flush the DISCONNECT; the loop ends when the broker closes.
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                while let Some(Ok(_)) = self.events.recv().await {}
            })
            .await;
        }
    }
}
