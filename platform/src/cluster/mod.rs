//! The cluster relay: the nodes of one deployment (external broker, one database) tell each
//! other what they made durable or changed, so that live views and the alert engine on every
//! node see the whole deployment, not only what this node's share of the ingest committed.
//!
//! ```text
//! this node: ingest events ─┐                                   ┌─► hub (live views)
//!            security events ├─► relay ─► broker ─► other nodes ─┤
//!            hub notices ────┘   beffroi/cluster/v1/{node}/events └─► alerts (run by the
//!                                                                    lease holder only)
//! ```
//! The relay is a reader of the same broadcast channels as the fan-out: it never slows ingest.
//! Publishing never waits either: when the client's queue is full the event is dropped for the
//! other nodes (it is stored) and counted in `beffroi_cluster_relayed_total{direction="dropped"}`.
//! Delivery is MQTT QoS 1 while connected; a node that was disconnected does not get what it
//! missed (its live views read stored values when a client subscribes, its alert engine —
//! if it holds the lease — reloads from the store). Nodes subscribe with MQTT 5 "No Local",
//! so a node never hears its own events back. Only relayed events reach the other nodes'
//! hubs and engines; what they apply is never relayed again.
//!
//! Each node has a random name ([`node_name`]) used in its topic, its MQTT client ids and the
//! alert engine's lease.

mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beffroi_alerts::Alerts;
use beffroi_ingest::IngestEvent;
use beffroi_live::{Hub, Notice};
use beffroi_store::{CommitBatch, SecurityEvent};
use beffroi_telemetry::Metrics;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use wire::{Relayed, RelayedBatch};

/// Requests the relay's MQTT client may queue before events are dropped.
const REQUESTS: usize = 4096;
/// Largest relayed message (a committed batch of the largest envelope, as JSON).
const MAX_PACKET: u32 = 16 << 20;
/// Reconnection backoff.
const RECONNECT: Duration = Duration::from_millis(500);
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// A random name for this node: 8 hex digits (prefixed to tell them apart in logs).
pub fn node_name() -> String {
    let mut bytes = [0u8; 4];
    // The name only has to differ between the nodes of one deployment; without the OS's
    // randomness (which never fails on Linux), the process id and time still do.
    if getrandom::getrandom(&mut bytes).is_err() {
        let seed = u64::from(std::process::id())
            ^ beffroi_protocol::Timestamp::now()
                .unix_micros()
                .unsigned_abs();
        bytes = (seed as u32).to_le_bytes();
    }
    hex::encode(bytes)
}

/// Where the relay runs and what it feeds.
pub struct RelayParts {
    /// This node's name.
    pub node: String,
    /// The external broker (MQTT 5).
    pub broker: SocketAddr,
    /// This node's committed batches and health reports.
    pub ingest: broadcast::Receiver<IngestEvent>,
    /// This node's security events.
    pub security: broadcast::Receiver<Arc<SecurityEvent>>,
    /// Live views (and their notices).
    pub hub: Hub,
    /// The alert engine.
    pub alerts: Alerts,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// Starts the relay; it stops when `shutdown` fires.
pub fn spawn(parts: RelayParts, shutdown: CancellationToken) -> JoinHandle<()> {
    let mut options = MqttOptions::new(
        format!("beffroi-relay-{}", parts.node),
        parts.broker.ip().to_string(),
        parts.broker.port(),
    );
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_clean_start(true)
        .set_max_packet_size(Some(MAX_PACKET));
    let (client, eventloop) = AsyncClient::new(options, REQUESTS);
    let receive = tokio::spawn(receive(
        eventloop,
        client.clone(),
        parts.hub.clone(),
        parts.alerts.clone(),
        parts.metrics.clone(),
    ));
    tokio::spawn(async move {
        send(parts, &client, shutdown).await;
        let _ = tokio::time::timeout(Duration::from_millis(500), client.disconnect()).await;
        receive.abort();
    })
}

/// Publishes this node's events until shutdown.
async fn send(parts: RelayParts, client: &AsyncClient, shutdown: CancellationToken) {
    let RelayParts {
        node,
        mut ingest,
        mut security,
        hub,
        metrics,
        ..
    } = parts;
    let mut notices = hub.notices();
    let topic = wire::topic(&node);
    let (mut ingest_open, mut security_open) = (true, true);
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = ingest.recv(), if ingest_open => match event {
                Ok(IngestEvent::Committed(batch)) => Relayed::Committed {
                    batch: Box::new(RelayedBatch::from(&*batch)),
                },
                Ok(IngestEvent::Health(health)) => Relayed::Health {
                    health: Box::new((*health).clone()),
                },
                Err(error) => {
                    ingest_open = still_open(&metrics, error);
                    continue;
                }
            },
            event = security.recv(), if security_open => match event {
                Ok(event) => Relayed::Security { event: Box::new((*event).clone()) },
                Err(error) => {
                    security_open = still_open(&metrics, error);
                    continue;
                }
            },
            notice = notices.recv() => match notice {
                Ok(notice) => Relayed::Notice { notice },
                Err(error) => {
                    still_open(&metrics, error);
                    continue;
                }
            },
        };
        let payload = match serde_json::to_vec(&event) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "cannot encode a relayed event");
                metrics.cluster_relayed.incr("dropped");
                continue;
            }
        };
        let bytes = payload.len() as u64;
        match client.try_publish(&topic, QoS::AtLeastOnce, false, payload) {
            Ok(()) => {
                metrics.cluster_relayed.incr("sent");
                metrics.cluster_relayed_bytes.add("sent", bytes);
            }
            Err(_) => metrics.cluster_relayed.incr("dropped"),
        }
    }
}

/// A source lagged (events skipped for the other nodes: counted; it stays open) or closed
/// (this node is stopping).
fn still_open(metrics: &Metrics, error: RecvError) -> bool {
    match error {
        RecvError::Lagged(n) => {
            metrics.cluster_relayed.add("dropped", n);
            true
        }
        RecvError::Closed => false,
    }
}

/// Drives the connection and applies what other nodes relay.
async fn receive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    hub: Hub,
    alerts: Alerts,
    metrics: Arc<Metrics>,
) {
    let connected = &metrics.cluster_relay_connected;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                metrics.cluster_relayed.incr("received");
                metrics
                    .cluster_relayed_bytes
                    .add("received", publish.payload.len() as u64);
                match serde_json::from_slice::<Relayed>(&publish.payload) {
                    Ok(event) => apply(event, &hub, &alerts),
                    Err(error) => tracing::warn!(%error, "ignored a malformed relayed event"),
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let client = client.clone();
                // This task drives the event loop: the request goes through another task.
                tokio::spawn(async move {
                    let mut filter = Filter::new(wire::filter(), QoS::AtLeastOnce);
                    filter.nolocal = true;
                    if let Err(error) = client.subscribe_many([filter]).await {
                        tracing::error!(%error, "cannot queue the cluster relay subscription");
                    }
                });
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                connected.set(1);
                tracing::info!("cluster relay subscribed");
            }
            Ok(_) => {}
            Err(error) => {
                if connected.get() == 1 {
                    tracing::warn!(%error, "cluster relay disconnected; reconnecting");
                }
                connected.set(0);
                tokio::time::sleep(RECONNECT).await;
            }
        }
    }
}

/// Applies another node's event to this node's live views and alert engine.
fn apply(event: Relayed, hub: &Hub, alerts: &Alerts) {
    match event {
        Relayed::Committed { batch } => match CommitBatch::try_from(*batch) {
            Ok(batch) => {
                hub.batch_committed(&batch);
                alerts.batch_committed(Arc::new(batch));
            }
            Err(error) => tracing::warn!(%error, "ignored a malformed relayed batch"),
        },
        Relayed::Health { health } => {
            hub.health_recorded(&health.tenant, &health.gateway);
            alerts.health_recorded(Arc::new(*health));
        }
        Relayed::Security { event } => {
            hub.security_event(&event);
            alerts.security_event(Arc::new(*event));
        }
        Relayed::Notice { notice } => {
            hub.apply_notice(&notice);
            match notice {
                Notice::Registry { tenant } => alerts.registry_changed(tenant),
                Notice::Rules { tenant } => alerts.rules_changed(tenant),
                Notice::Alarm { .. } | Notice::Gateway { .. } => {}
            }
        }
    }
}
