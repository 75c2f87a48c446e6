//! The baseline of the latency figures, measured in the same run: the same signed batches,
//! delivered by the embedded broker's loopback MQTT v5 listener to a plain subscriber
//! (rumqttc, QoS 1, not shared), with no verification, no commit and no fan-out. Its latency
//! publish → delivery is what the gate and the broker cost; whatever the live figures add to
//! it is the ingest, the commit and the fan-out.
//!
//! The subscriber reads each batch's reading time without verifying the signature (`Opened`
//! then the unverified payload), and records one latency per message: every reading of a
//! batch carries the same stamp.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use beffroi_protocol::{Batch, Opened, TenantId, Timestamp, MAX_ENVELOPE_BYTES, TOPIC_PREFIX};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio_util::sync::CancellationToken;

use crate::bench::gateways::Phase;
use crate::bench::histogram::Histogram;

/// A subscriber connected and subscribed to one tenant's batches.
pub(crate) struct MqttBaseline {
    _client: AsyncClient,
    events: EventLoop,
}

/// What the subscriber saw.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BaselineCounts {
    /// Messages delivered while the window was open.
    pub messages: u64,
    /// Messages whose batch could not be read.
    pub unreadable: u64,
}

impl MqttBaseline {
    /// Connects to `broker` and subscribes to every batch of `tenant`; returns once the
    /// broker acknowledged the subscription.
    pub(crate) async fn subscribe(broker: SocketAddr, tenant: &TenantId) -> anyhow::Result<Self> {
        let mut options = MqttOptions::new(
            format!("bench-baseline-{tenant}"),
            broker.ip().to_string(),
            broker.port(),
        );
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_start(true)
            .set_max_packet_size(Some(u32::try_from(MAX_ENVELOPE_BYTES + 4096)?));
        let (client, mut events) = AsyncClient::new(options, 64);
        client
            .subscribe(format!("{TOPIC_PREFIX}/{tenant}/+/batch"), QoS::AtLeastOnce)
            .await?;
        let subscribed = async {
            loop {
                if let Event::Incoming(Packet::SubAck(_)) = events.poll().await? {
                    return anyhow::Ok(());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .context("baseline subscriber: no SUBACK from the broker")??;
        Ok(Self {
            _client: client,
            events,
        })
    }

    /// Records publish → delivery latencies into `latency` while the window is open, until
    /// `stop`.
    pub(crate) async fn run(
        mut self,
        latency: Arc<Histogram>,
        phase: Arc<Phase>,
        stop: CancellationToken,
    ) -> anyhow::Result<BaselineCounts> {
        let mut counts = BaselineCounts::default();
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => return Ok(counts),
                event = self.events.poll() => event.context("baseline subscriber")?,
            };
            let Event::Incoming(Packet::Publish(publish)) = event else {
                continue;
            };
            let now = Timestamp::now().unix_micros();
            if !phase.measuring.load(Ordering::Relaxed) {
                continue;
            }
            let stamp = Opened::parse(&publish.payload)
                .ok()
                .and_then(|opened| Batch::decode(opened.payload_unverified()).ok())
                .and_then(|batch| batch.readings().first().map(|r| r.time.unix_micros()));
            match stamp {
                Some(time) => {
                    counts.messages += 1;
                    latency.record_signed(now - time);
                }
                None => counts.unreadable += 1,
            }
        }
    }
}
