//! The embedded broker's memory under a gateway's acks (issue #11, found by the soak): rumqttd
//! keeps every subscribed filter's log until its bound, read or not, and each gateway has a
//! filter of its own (its ack topic). Acks published to a subscribed ack topic must not
//! accumulate in the broker: the platform's resident memory may not grow by more than a small
//! margin after 16 MB of them went through, where the general per-filter bound (32 MiB) would
//! have kept them all.

use std::time::Duration;

use anyhow::Context as _;
use beffroi_tests::{Platform, PlatformSpec, DEFAULT_TIMEOUT};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};

use crate::common::Scenario;

/// The ack topic the test's subscriber follows, as a gateway does.
const ACK_TOPIC: &str = "beffroi/v1/lyon/gw-1/ack";
/// Publishes sent to it before the first measure (the connections' buffers and the
/// allocator's pages reach their working size), then between the two measures, and the size
/// of each. Together they stay under the general per-filter bound (32 MiB of payload).
const WARM_UP: usize = 8_000;
const PUBLISHES: usize = 16_000;
const PAYLOAD_BYTES: usize = 1024;
/// The most the platform's RSS may grow while they go through: they weigh 16 MB, and the
/// broker kept them all (+22 MB) before ack filters had a log of their own; since, the growth
/// measured is 0 to 4 MB (allocator pages, the subscriber's outgoing queue).
const GROWTH_LIMIT_BYTES: u64 = 8 << 20;

/// A client of the embedded broker's MQTT 5 listener, with its event loop.
fn client(platform: &Platform, id: &str) -> (AsyncClient, EventLoop) {
    let port = platform.broker_v5_port.expect("the embedded broker");
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(Some(64 * 1024));
    AsyncClient::new(options, 100)
}

/// The resident memory of process `pid`, from `/proc/<pid>/status`.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .context("no VmRSS line")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

/// Runs `events` until a publish whose payload starts with `marker` arrives.
async fn receive_until(events: &mut EventLoop, marker: u8) -> anyhow::Result<usize> {
    let mut received = 0;
    loop {
        if let Event::Incoming(Packet::Publish(publish)) = events.poll().await? {
            received += 1;
            if publish.payload.first() == Some(&marker) {
                return Ok(received);
            }
        }
    }
}

/// Publishes `count` payloads of [`PAYLOAD_BYTES`] to [`ACK_TOPIC`], the last one starting
/// with `marker`, while `subscriber` reads them; returns how many the subscriber saw.
async fn send_acks(
    publisher: &AsyncClient,
    subscriber: &mut EventLoop,
    count: usize,
    marker: u8,
) -> anyhow::Result<usize> {
    let sender = publisher.clone();
    let sending = tokio::spawn(async move {
        for i in 0..count {
            let first = if i + 1 == count { marker } else { 0 };
            let mut payload = vec![0x55_u8; PAYLOAD_BYTES];
            payload[0] = first;
            sender
                .publish(ACK_TOPIC, QoS::AtMostOnce, false, payload)
                .await?;
        }
        anyhow::Ok(())
    });
    let received = tokio::time::timeout(DEFAULT_TIMEOUT, receive_until(subscriber, marker))
        .await
        .context("the last publish did not arrive")??;
    sending.await??;
    Ok(received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_do_not_accumulate_in_the_embedded_broker() -> anyhow::Result<()> {
    let scenario = Scenario::new("broker-memory")?;
    let mut platform = scenario.platform("platform", &PlatformSpec::default())?;
    platform.start().await?;
    let pid = platform.pid().context("the platform's pid")?;

    let (subscriber, mut subscription) = client(&platform, "gw-1");
    subscriber.subscribe(ACK_TOPIC, QoS::AtLeastOnce).await?;
    let (publisher, mut publishing) = client(&platform, "ingest");
    let publisher_loop = tokio::spawn(async move {
        loop {
            if let Err(error) = publishing.poll().await {
                return error;
            }
        }
    });
    tokio::time::timeout(DEFAULT_TIMEOUT, async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = subscription.poll().await? {
                return anyhow::Ok(());
            }
        }
    })
    .await
    .context("no SUBACK for the ack topic")??;

    send_acks(&publisher, &mut subscription, WARM_UP, 1).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes(pid)?;
    let received = send_acks(&publisher, &mut subscription, PUBLISHES, 2).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes(pid)?;
    let growth = after.saturating_sub(before);
    eprintln!(
        "broker-memory: RSS {} -> {} KiB (+{} KiB) after {PUBLISHES} acks of {PAYLOAD_BYTES} \
         bytes, {received} received",
        before >> 10,
        after >> 10,
        growth >> 10
    );
    assert!(
        growth <= GROWTH_LIMIT_BYTES,
        "the platform grew by {} KiB while {} KiB of acks went through one ack topic",
        growth >> 10,
        (PUBLISHES * PAYLOAD_BYTES) >> 10
    );
    publisher_loop.abort();
    scenario.pass();
    Ok(())
}
