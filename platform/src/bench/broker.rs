//! `beffroi bench broker`: the embedded broker's memory under load when its consumer stalls.
//!
//! The ingest's shared subscription is made, then stops reading: a stalled or dead platform
//! consumer, the worst case for the broker's memory. Publishers push `--megabytes` of
//! batch-sized payloads through the broker's MQTT 3.1.1 listener, as the gate forwards them,
//! and each publish is acknowledged by the broker. rumqttd keeps each subscribed filter's
//! messages in a commit log of at most `max_segment_size × max_segment_count` bytes, dropping
//! its oldest segment beyond that, plus at most `max_outgoing_packet_count` packets queued
//! for the stalled connection. So the process's resident memory must stop growing while the
//! bytes published grow far past that.
//!
//! Two rounds in one run: `--megabytes`, then twice as much again. Printed for each: bytes
//! published so far and resident memory growth (peak `VmRSS`, sampled every 20 ms, minus
//! `VmRSS` before the broker started; the publishers' client buffers live in the same
//! process), with growth / bytes published, whose baseline is a broker that keeps what it is
//! sent (1.0). PASS when the second round added less than 15 % to the first round's growth.
//! Then the consumer resumes and the benchmark counts what it still receives: the rest was
//! dropped by the broker (agents resend whatever was not committed).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttc::v5::mqttbytes::v5::Packet as V5Packet;
use rumqttc::v5::mqttbytes::QoS as V5QoS;

use super::free_port;
use super::usage::resident;
use crate::broker::{self, BrokerSettings};

/// `beffroi bench broker` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerBenchArgs {
    /// Megabytes (10^6 bytes) published while the consumer is stalled.
    #[arg(long, default_value_t = 1000)]
    pub megabytes: u64,
    /// Payload of one message, KiB (a 1,000-reading batch is about 48 KiB).
    #[arg(long, default_value_t = 48)]
    pub payload_kib: usize,
    /// Publishing connections (gateways behind the gate).
    #[arg(long, default_value_t = 20)]
    pub publishers: usize,
    /// Commit-log segment size, bytes (the platform's `broker.max_segment_size`).
    #[arg(long, default_value_t = 4 << 20)]
    pub segment_bytes: usize,
    /// Segments kept per filter (the platform's `broker.max_segment_count`).
    #[arg(long, default_value_t = 8)]
    pub segments: usize,
}

/// Packets rumqttd queues for one connection (`max_outgoing_packet_count`, set by
/// `crate::broker`).
const OUTGOING_PACKETS: u64 = 1000;
/// The consumer's topic filter: the ingest's batch subscription.
const FILTER: &str = "$share/beffroi-ingest-batch/beffroi/v1/+/+/batch";

/// Runs the benchmark on a runtime of its own.
pub(crate) fn run(args: BrokerBenchArgs) -> anyhow::Result<()> {
    if args.megabytes == 0 || args.payload_kib == 0 || args.publishers == 0 {
        anyhow::bail!("--megabytes, --payload-kib and --publishers must be at least 1");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?
        .block_on(measure(args))
}

async fn measure(args: BrokerBenchArgs) -> anyhow::Result<()> {
    let before = resident().context("cannot read VmRSS")?;
    let loopback = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let payload_bytes = args.payload_kib * 1024;
    let settings = BrokerSettings {
        listen_v4: loopback(free_port()?),
        listen_v5: loopback(free_port()?),
        max_connections: args.publishers + 10,
        max_segment_size: args.segment_bytes,
        max_segment_count: args.segments,
        max_payload_size: payload_bytes + 1024,
    };
    broker::start(&settings)?;

    let mut consumer = consumer(&settings).await?;
    let peak = Arc::new(AtomicU64::new(resident().unwrap_or(before)));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn(sample(peak.clone(), sampling.clone()));

    let messages = (args.megabytes * 1_000_000).div_ceil(payload_bytes as u64);
    let mut acked = 0;
    let mut rounds = Vec::new();
    let started = Instant::now();
    for round in [messages, 2 * messages] {
        acked += publish(&args, &settings, round, payload_bytes).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let growth = peak.load(Ordering::Relaxed).saturating_sub(before);
        rounds.push((acked * payload_bytes as u64, growth));
    }
    let elapsed = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.await?;
    let received = drain(&mut consumer).await;

    let log_bound = (args.segment_bytes * args.segments) as u64;
    let queue_bound = OUTGOING_PACKETS * payload_bytes as u64;
    let mb = |b: u64| b as f64 / 1e6;
    println!("\nEmbedded broker memory — rumqttd, consumer stalled on {FILTER}");
    println!("{:<44}{:>14}{:>14}", "figure", "round 1", "round 2");
    let (first, second) = (rounds[0], rounds[1]);
    println!(
        "{:<44}{:>11.0} MB{:>11.0} MB",
        "published so far (acked by the broker)",
        mb(first.0),
        mb(second.0)
    );
    println!(
        "{:<44}{:>11.1} MB{:>11.1} MB   {}",
        "resident memory growth (peak)",
        mb(first.1),
        mb(second.1),
        if second.1 <= first.1 + first.1 * 15 / 100 {
            "PASS (bounded)"
        } else {
            "FAIL (grows with traffic)"
        }
    );
    println!(
        "{:<44}{:>14.3}{:>14.3}",
        "growth / published (baseline: 1.0)",
        first.1 as f64 / first.0.max(1) as f64,
        second.1 as f64 / second.0.max(1) as f64
    );
    println!(
        "configured: commit log {:.1} MB ({} × {:.1} MB) + {OUTGOING_PACKETS} queued packets \
         ({:.1} MB); {} messages of {} KiB from {} connections in {:.1} s",
        mb(log_bound),
        args.segments,
        mb(args.segment_bytes as u64),
        mb(queue_bound),
        acked,
        args.payload_kib,
        args.publishers,
        elapsed.as_secs_f64()
    );
    println!(
        "received once the consumer resumed: {received} of {acked} ({} dropped by the \
         broker, to be resent by agents)",
        acked.saturating_sub(received)
    );
    Ok(())
}

/// The stalled consumer: subscribed, then not read until [`drain`].
struct Consumer {
    _client: rumqttc::v5::AsyncClient,
    events: rumqttc::v5::EventLoop,
}

async fn consumer(settings: &BrokerSettings) -> anyhow::Result<Consumer> {
    let address = settings.listen_v5;
    let mut options =
        rumqttc::v5::MqttOptions::new("bench-consumer", address.ip().to_string(), address.port());
    options.set_max_packet_size(Some(u32::try_from(settings.max_payload_size + 1024)?));
    options.set_keep_alive(Duration::from_secs(60));
    let (client, mut events) = rumqttc::v5::AsyncClient::new(options, 16);
    client.subscribe(FILTER, V5QoS::AtLeastOnce).await?;
    let subscribed = async {
        loop {
            if let rumqttc::v5::Event::Incoming(V5Packet::SubAck(_)) = events.poll().await? {
                return anyhow::Ok(());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .context("no SUBACK from the broker")??;
    Ok(Consumer {
        _client: client,
        events,
    })
}

/// Reads what the broker still delivers until it has been quiet for 2 s; returns the count.
async fn drain(consumer: &mut Consumer) -> u64 {
    let mut received = 0;
    while let Ok(Ok(event)) =
        tokio::time::timeout(Duration::from_secs(2), consumer.events.poll()).await
    {
        if let rumqttc::v5::Event::Incoming(V5Packet::Publish(_)) = event {
            received += 1;
        }
    }
    received
}

/// Publishes `messages` payloads over `--publishers` connections; returns how many the broker
/// acknowledged.
async fn publish(
    args: &BrokerBenchArgs,
    settings: &BrokerSettings,
    messages: u64,
    payload_bytes: usize,
) -> anyhow::Result<u64> {
    let payload = vec![0xa5u8; payload_bytes];
    let per_publisher = messages.div_ceil(args.publishers as u64);
    let mut tasks = Vec::with_capacity(args.publishers);
    for i in 0..args.publishers {
        let address = settings.listen_v4;
        let mut options = rumqttc::MqttOptions::new(
            format!("bench-gw-{i}"),
            address.ip().to_string(),
            address.port(),
        );
        options.set_max_packet_size(payload_bytes + 4096, payload_bytes + 4096);
        options.set_inflight(32);
        let (client, mut events) = rumqttc::AsyncClient::new(options, 32);
        let topic = format!("beffroi/v1/bench/gw-{i}/batch");
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let sender = tokio::spawn(async move {
                for _ in 0..per_publisher {
                    client
                        .publish(
                            topic.as_str(),
                            rumqttc::QoS::AtLeastOnce,
                            false,
                            payload.clone(),
                        )
                        .await?;
                }
                anyhow::Ok(client)
            });
            let mut acked = 0;
            while acked < per_publisher {
                if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) = events.poll().await? {
                    acked += 1;
                }
            }
            sender.await??;
            anyhow::Ok(acked)
        }));
    }
    let mut acked = 0;
    for task in tasks {
        acked += task.await??;
    }
    Ok(acked)
}

/// Keeps the peak of `VmRSS` while `running`.
async fn sample(peak: Arc<AtomicU64>, running: Arc<AtomicBool>) {
    while running.load(Ordering::Relaxed) {
        if let Some(rss) = resident() {
            peak.fetch_max(rss, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
