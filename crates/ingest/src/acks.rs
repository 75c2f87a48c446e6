//! Commit acks to gateways, published on `beffroi/v1/{tenant}/{gateway}/ack` (QoS 0).
//!
//! Producers (the committer after each commit round, the health writer when a gap moves the
//! contiguous mark, the quarantine writer for acknowledged rejections, the pipeline for
//! duplicates) only mark a gateway as due; the publisher task then reads the gateway's
//! tracker and publishes its current ack. Marks coalesce, so a gateway gets at most one ack
//! per round however many of its batches were committed, and the pipeline never waits on
//! the MQTT request queue. An ack lost in transit is harmless: the gateway sends the batch
//! again, it is recognised as a duplicate and acknowledged again.
//!
//! That is why acks go at QoS 0: each ack states the whole committed range and supersedes the
//! one before, so the broker's retransmission adds nothing, and its PUBACKs would cost latency.
//! An embedded broker does not disable Nagle's algorithm on its sockets: a PUBACK to this
//! client, never answered by data, holds the broker's next write to it (the next batch) until
//! our delayed TCP ACK, up to 40 ms on Linux.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use beffroi_protocol::{CommitAck, Topic};
use beffroi_telemetry::Metrics;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;
use tokio::sync::Notify;

use crate::sequence::{GatewayKey, Trackers};

/// Gateways due for an ack, and the publisher's wake-up.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    due: Mutex<HashSet<GatewayKey>>,
    wake: Notify,
    closed: AtomicBool,
}

impl Acks {
    /// Marks a gateway as due for an ack; never waits.
    pub(crate) fn schedule(&self, gateway: GatewayKey) {
        self.due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(gateway);
        self.wake.notify_one();
    }

    /// Asks the publisher to publish what is due, then stop.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Publishes due acks until closed and drained.
    pub(crate) async fn run(
        self: Arc<Self>,
        client: AsyncClient,
        trackers: Arc<Trackers>,
        metrics: Arc<Metrics>,
    ) {
        loop {
            let due: Vec<GatewayKey> = self
                .due
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain()
                .collect();
            if due.is_empty() {
                if self.closed.load(Ordering::Acquire) {
                    return;
                }
                self.wake.notified().await;
                continue;
            }
            for gateway in due {
                let Some((contiguous, above)) = trackers.with(&gateway, |t| t.ack()) else {
                    continue;
                };
                let topic = Topic::ack(&gateway.0, &gateway.1).to_string();
                let (tenant, gateway) = gateway;
                let ack = CommitAck {
                    tenant,
                    gateway,
                    contiguous,
                    above,
                };
                let payload = match ack.encode() {
                    Ok(payload) => payload,
                    Err(error) => {
                        // The tracker keeps `above` sorted, unique and capped: a bug if reached.
                        tracing::error!(%error, "cannot encode a commit ack");
                        continue;
                    }
                };
                match client.publish(topic, QoS::AtMostOnce, false, payload).await {
                    Ok(()) => metrics.ingest_acks.incr(),
                    Err(error) => {
                        tracing::warn!(%error, "cannot queue a commit ack");
                        return;
                    }
                }
            }
        }
    }
}
