//! The idle gateways of `bench gate`: each one a minimal client doing on connect what the
//! agent does — TCP, TLS 1.3 with its own client certificate, an MQTT v5 CONNECT encoded by
//! the agent's MQTT library (rumqttc) with the agent's options, CONNACK, SUBSCRIBE to its ack
//! topic, SUBACK — and then nothing but a PINGREQ every keep-alive, as the agent's client
//! sends when it has nothing to publish. One small task per connection instead of one
//! rumqttc event loop each, so that the client side stays light enough to hold 10,000.
//!
//! ```text
//! register: N identities (P-256 TLS key, Ed25519 signing key, certificate from the CA,
//!           gateway row) — before any clock
//! connect : C workers take the next gateway: connect from its source address (a few hundred
//!           gateways per 127.0.0.x: the gate limits connections per address, as from a
//!           real fleet) → TLS → CONNECT → CONNACK → SUBSCRIBE → SUBACK; the connection is
//!           then handed to its hold task; a sampler records the node's RSS every `step`
//! hold    : PINGREQ every keep-alive, PINGRESP read; a close by the gate or an error is a drop
//! close   : DISCONNECT, TLS close_notify, socket closed
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::{GatewayId, TenantId, Topic};
use beffroi_store::Store;
use rumqttc::v5::mqttbytes::v5::{Connect, Filter, Packet, Subscribe};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::MqttOptions;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::bench::histogram::{Histogram, Summary};
use crate::bench::identity::clients::{Failures, Identity, Target};
use crate::bench::usage;
use crate::config::PlatformConfig;
use crate::pki::Ca;

/// The agent's default `uplink.keep_alive_s`.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// The agent's largest incoming packet, sent in its CONNECT (`uplink::mqtt`).
const MAX_INCOMING_PACKET: u32 = 64 * 1024;
/// Gateways connecting from one source address (the gate allows 1,000 per address).
const PER_SOURCE_ADDRESS: usize = 500;
/// Time allowed for one connection, CONNACK and SUBACK included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to say goodbye on close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest packet expected from the broker on these connections (CONNACK, SUBACK, PINGRESP).
const MAX_REPLY: usize = 4096;
/// MQTT PINGREQ (MQTT 5 §3.12): type 12, no remaining length.
const PINGREQ: [u8; 2] = [0xC0, 0x00];
/// MQTT 5 DISCONNECT with reason "normal disconnection" (§3.14.2.1: remaining length 0).
const DISCONNECT: [u8; 2] = [0xE0, 0x00];
/// How often the sampler looks at the number held.
const SAMPLE_PERIOD: Duration = Duration::from_millis(20);

/// One idle gateway, ready to connect.
pub(crate) struct IdleGateway {
    tls: Arc<ClientConfig>,
    source: IpAddr,
    connect: Vec<u8>,
    subscribe: Vec<u8>,
}

/// The idle gateways and some of their identities (for the bare handshake baseline).
pub(crate) struct Registered {
    /// Every gateway.
    pub gateways: Vec<IdleGateway>,
    /// The first identities, at most `keep`.
    pub identities: Vec<Identity>,
}

/// Registers `n` gateways `idle-00000`… of `tenant` in `store` with certificates from `ca`,
/// each with its client configuration and its CONNECT and SUBSCRIBE bytes; keeps `keep` of the
/// identities.
pub(crate) async fn register(
    store: &dyn Store,
    ca: &Ca,
    config: &PlatformConfig,
    tenant: &TenantId,
    target: &Target,
    n: usize,
    keep: usize,
) -> anyhow::Result<Registered> {
    let mut gateways = Vec::with_capacity(n);
    let mut identities = Vec::with_capacity(keep.min(n));
    let started = Instant::now();
    for i in 0..n {
        let gateway = GatewayId::new(format!("idle-{i:05}"))?;
        let tls_key = rcgen::KeyPair::generate().context("generating a TLS key")?;
        let signing = beffroi_agent::keys::random_signing_key()?;
        let registration = admin::register_gateway(
            store,
            ca,
            config,
            tenant,
            &gateway,
            &signing.verifying_key(),
            &tls_key.public_key_pem(),
        )
        .await
        .with_context(|| format!("registering {gateway}"))?;
        let identity = Identity::new(registration.certificate.cert_pem, tls_key.serialize_pem());
        let octet = u8::try_from(2 + i / PER_SOURCE_ADDRESS).context("too many gateways")?;
        gateways.push(IdleGateway {
            tls: target.mutual(&identity)?,
            source: IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet)),
            connect: connect_packet(&gateway)?,
            subscribe: encode(&Packet::Subscribe(Subscribe {
                pkid: 1,
                filters: vec![Filter::new(
                    Topic::ack(tenant, &gateway).to_string(),
                    QoS::AtLeastOnce,
                )],
                properties: None,
            }))?,
        });
        if identities.len() < keep {
            identities.push(identity);
        }
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "bench gate: {} gateways registered in {:.0} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(Registered {
        gateways,
        identities,
    })
}

/// The CONNECT the agent sends: built from `MqttOptions` set as `uplink::mqtt` sets them,
/// the way rumqttc's event loop builds it.
fn connect_packet(gateway: &GatewayId) -> anyhow::Result<Vec<u8>> {
    let mut options = MqttOptions::new(gateway.as_str(), "localhost", 0);
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_clean_start(true)
        .set_max_packet_size(Some(MAX_INCOMING_PACKET));
    encode(&Packet::Connect(
        Connect {
            client_id: options.client_id(),
            keep_alive: u16::try_from(options.keep_alive().as_secs()).unwrap_or(u16::MAX),
            clean_start: options.clean_start(),
            properties: options.connect_properties(),
        },
        options.last_will(),
        options.credentials(),
    ))
}

/// A packet's bytes, as rumqttc writes them.
fn encode(packet: &Packet) -> anyhow::Result<Vec<u8>> {
    let mut buffer = Default::default();
    packet
        .write(&mut buffer, None)
        .map_err(|e| anyhow::anyhow!("encoding an MQTT packet: {e:?}"))?;
    Ok(buffer.to_vec())
}

/// The connections held, and how they ended.
#[derive(Default)]
pub(crate) struct Holder {
    stop: CancellationToken,
    alive: AtomicU64,
    dropped: AtomicU64,
    first_drop: Mutex<Option<String>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Holder {
    /// Connections open now.
    pub(crate) fn alive(&self) -> u64 {
        self.alive.load(Ordering::Relaxed)
    }

    /// Connections the gate closed or that failed while held, and the first reason.
    pub(crate) fn dropped(&self) -> (u64, Option<String>) {
        let first = self
            .first_drop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (self.dropped.load(Ordering::Relaxed), first)
    }

    /// Closes every connection (DISCONNECT, then TLS close); returns how many tasks had to
    /// be aborted after `deadline`.
    pub(crate) async fn close(&self, deadline: Duration) -> usize {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let until = tokio::time::Instant::now() + deadline;
        let mut aborted = 0;
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(until, task).await.is_err() {
                abort.abort();
                aborted += 1;
            }
        }
        aborted
    }

    /// Holds `tls` open and idle until [`Holder::close`].
    async fn hold(self: Arc<Self>, mut tls: TlsStream<TcpStream>) {
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
        let mut scratch = [0u8; 64];
        let dropped = loop {
            tokio::select! {
                () = self.stop.cancelled() => {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                        tls.write_all(&DISCONNECT).await?;
                        tls.shutdown().await
                    })
                    .await;
                    break None;
                }
                _ = ping.tick() => {
                    if let Err(error) = tls.write_all(&PINGREQ).await {
                        break Some(format!("PINGREQ: {error}"));
                    }
                }
                read = tls.read(&mut scratch) => match read {
                    Ok(0) => break Some("closed by the gate".to_owned()),
                    Ok(_) => {}
                    Err(error) => break Some(error.to_string()),
                },
            }
        };
        self.alive.fetch_sub(1, Ordering::Relaxed);
        if let Some(reason) = dropped {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.first_drop
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(reason);
        }
    }
}

/// What connecting the idle gateways measured.
#[derive(Debug, Clone)]
pub(crate) struct Ramp {
    /// Connections established (SUBACK received).
    pub connected: u64,
    /// Connections that failed.
    pub failed: u64,
    /// The first failure.
    pub first_failure: Option<String>,
    /// From the first connect to the last SUBACK.
    pub elapsed: Duration,
    /// Per connection: TCP + TLS + CONNECT/CONNACK + SUBSCRIBE/SUBACK.
    pub latency: Summary,
    /// (connections held, node RSS MiB), every `step` connections.
    pub node_rss: Vec<(f64, f64)>,
}

impl Ramp {
    /// Connections established per second.
    pub(crate) fn rate(&self) -> f64 {
        self.connected as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Connects every gateway to `gate` with `concurrency` workers, hands each connection to
/// `holder`, and samples the RSS of process `node` every `step` connections.
pub(crate) async fn connect_all(
    gateways: Vec<IdleGateway>,
    gate: SocketAddr,
    concurrency: usize,
    holder: Arc<Holder>,
    node: u32,
    step: u64,
) -> anyhow::Result<Ramp> {
    let gateways = Arc::new(gateways);
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Failures::default());
    let histogram = Arc::new(Histogram::default());
    let sampling = CancellationToken::new();
    let sampler = tokio::spawn(sample(holder.clone(), node, step, sampling.clone()));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (gateways, next, failures) = (gateways.clone(), next.clone(), failures.clone());
        let (histogram, holder) = (histogram.clone(), holder.clone());
        workers.push(tokio::spawn(async move {
            while let Some(gateway) = gateways.get(next.fetch_add(1, Ordering::Relaxed)) {
                let one = Instant::now();
                match tokio::time::timeout(CONNECT_TIMEOUT, connect(gateway, gate)).await {
                    Ok(Ok(tls)) => {
                        histogram.record(one.elapsed().as_micros() as u64);
                        holder.alive.fetch_add(1, Ordering::Relaxed);
                        let task = tokio::spawn(holder.clone().hold(tls));
                        holder
                            .tasks
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(task);
                    }
                    Ok(Err(error)) => failures.record(Some(&error)),
                    Err(_) => failures.record(None),
                }
            }
        }));
    }
    for worker in workers {
        worker.await.context("a connecting worker")?;
    }
    let elapsed = started.elapsed();
    sampling.cancel();
    let node_rss = sampler.await.context("the RSS sampler")?;
    let (failed, first_failure) = failures.take();
    Ok(Ramp {
        connected: histogram.summary().count,
        failed,
        first_failure,
        elapsed,
        latency: histogram.summary(),
        node_rss,
    })
}

/// Node RSS (MiB) each time another `step` connections are held, until `stop`; the first
/// point at the start, the last at the end.
async fn sample(
    holder: Arc<Holder>,
    node: u32,
    step: u64,
    stop: CancellationToken,
) -> Vec<(f64, f64)> {
    let rss_mib = || usage::resident_of(node).unwrap_or(0) as f64 / (1024.0 * 1024.0);
    let mut points = vec![(holder.alive() as f64, rss_mib())];
    let mut next = step.max(1);
    let mut ticker = tokio::time::interval(SAMPLE_PERIOD);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {
                let held = holder.alive();
                if held >= next {
                    points.push((held as f64, rss_mib()));
                    next = (held / step.max(1) + 1) * step.max(1);
                }
            }
        }
    }
    let held = holder.alive() as f64;
    if points.last().is_none_or(|&(x, _)| x < held) {
        points.push((held, rss_mib()));
    }
    points
}

/// One gateway's connection, up to its SUBACK.
async fn connect(gateway: &IdleGateway, gate: SocketAddr) -> anyhow::Result<TlsStream<TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::new(gateway.source, 0))
        .with_context(|| format!("binding to {}", gateway.source))?;
    let tcp = socket.connect(gate).await.context("TCP connect")?;
    tcp.set_nodelay(true)?;
    let mut tls = TlsConnector::from(gateway.tls.clone())
        .connect(ServerName::try_from("localhost")?, tcp)
        .await
        .context("TLS handshake")?;
    tls.write_all(&gateway.connect).await.context("CONNECT")?;
    let (kind, body) = read_packet(&mut tls).await.context("waiting for CONNACK")?;
    anyhow::ensure!(kind == 2, "expected CONNACK, got packet type {kind}");
    // CONNACK: acknowledge flags, then the reason code (0: success).
    match body.get(1) {
        Some(0) => {}
        code => anyhow::bail!("CONNACK refused: reason code {code:?}"),
    }
    tls.write_all(&gateway.subscribe)
        .await
        .context("SUBSCRIBE")?;
    let (kind, body) = read_packet(&mut tls).await.context("waiting for SUBACK")?;
    anyhow::ensure!(kind == 9, "expected SUBACK, got packet type {kind}");
    // SUBACK: packet id (2), properties (length-prefixed), then one reason code per filter.
    let mut rest = body.get(2..).unwrap_or_default();
    let properties = variable_int(&mut rest).context("SUBACK properties")?;
    match rest.get(properties) {
        Some(code) if *code < 0x80 => Ok(tls),
        code => anyhow::bail!("SUBSCRIBE refused: reason code {code:?}"),
    }
}

/// Reads one MQTT packet: its type (the fixed header's high nibble) and its body.
async fn read_packet(stream: &mut (impl AsyncRead + Unpin)) -> anyhow::Result<(u8, Vec<u8>)> {
    let first = stream.read_u8().await?;
    let mut length = 0usize;
    for shift in (0..28).step_by(7) {
        let byte = stream.read_u8().await?;
        length |= usize::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            anyhow::ensure!(length <= MAX_REPLY, "a {length}-byte reply");
            let mut body = vec![0; length];
            stream.read_exact(&mut body).await?;
            return Ok((first >> 4, body));
        }
    }
    anyhow::bail!("malformed remaining length")
}

/// Takes an MQTT variable byte integer off the front of `bytes`.
fn variable_int(bytes: &mut &[u8]) -> anyhow::Result<usize> {
    let mut value = 0usize;
    for shift in (0..28).step_by(7) {
        let (&byte, rest) = bytes.split_first().context("truncated")?;
        *bytes = rest;
        value |= usize::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    anyhow::bail!("malformed variable byte integer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_is_the_agents() {
        let gateway = GatewayId::new("gw-1").unwrap();
        let bytes = connect_packet(&gateway).unwrap();
        let mut buffer = Default::default();
        // Nothing to read yet (this also gives the buffer rumqttc's type).
        assert!(Packet::read(&mut buffer, None).is_err());
        buffer.extend_from_slice(&bytes);
        match Packet::read(&mut buffer, None).unwrap() {
            Packet::Connect(connect, None, None) => {
                assert_eq!(connect.client_id, "gw-1");
                assert_eq!(connect.keep_alive, 30);
                assert!(connect.clean_start);
                let properties = connect.properties.unwrap();
                assert_eq!(properties.max_packet_size, Some(MAX_INCOMING_PACKET));
            }
            other => panic!("not a CONNECT: {other:?}"),
        }
    }

    #[test]
    fn reads_variable_ints() {
        let mut bytes: &[u8] = &[0x00, 0xC1, 0x02, 9];
        assert_eq!(variable_int(&mut bytes).unwrap(), 0);
        assert_eq!(variable_int(&mut bytes).unwrap(), 0x41 + (2 << 7));
        assert_eq!(bytes, &[9]);
        assert!(variable_int(&mut &[0x80u8][..]).is_err());
    }
}
