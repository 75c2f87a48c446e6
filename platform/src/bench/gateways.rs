//! Simulated gateways: each one enrolled like a real one (own signing key, own TLS key and
//! client certificate from the platform CA) and connected through the gate with the agent's
//! own MQTT v5 connector over mutual TLS — the full path.
//!
//! A gateway publishes pre-signed envelopes (see `super::generator`) and keeps a window of
//! batches in flight like the agent's uplink:
//!
//! ```text
//!   fill   : resend timed-out batches, then publish new ones while in_flight < window
//!   ack    : a CommitAck on .../ack removes what it covers; latency = ack arrival − first
//!            publish, recorded while the measure window is open
//!   timeout: a batch in flight longer than ack_timeout is published again (counted)
//!   lost   : reconnect (counted); everything in flight is published again
//!   stop   : no new batches; return once every batch in flight is acknowledged
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use beffroi_agent::config::UplinkConfig;
use beffroi_agent::keys;
use beffroi_agent::uplink::mqtt::{MqttConnector, MqttLink};
use beffroi_agent::uplink::{Connector as _, Inbound, Link as _, TransportError};
use beffroi_protocol::{CommitAck, GatewayId, Signer, TenantId, Topic};
use beffroi_store::Store;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::generator::Envelope;
use super::histogram::Histogram;
use crate::admin;
use crate::config::PlatformConfig;
use crate::pki::Ca;
use crate::server::Running;

/// Delay before reconnecting after a lost connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(200);
/// Time allowed for TCP + TLS + CONNACK + SUBACK.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An enrolled gateway, ready to run.
pub(crate) struct SimGateway {
    /// Its id.
    pub gateway: GatewayId,
    tenant: TenantId,
    connector: MqttConnector,
    topic: Topic,
    window: usize,
    ack_timeout: Duration,
}

/// What a simulated gateway did.
#[derive(Debug, Default)]
pub(crate) struct GatewayReport {
    /// Batches published for the first time (seqs 1..=published).
    pub published: u64,
    /// Readings in them.
    pub published_readings: u64,
    /// Batches acknowledged by a commit ack.
    pub acked: u64,
    /// Publications of a batch already published (ack timeout or reconnection).
    pub resends: u64,
    /// Connections lost and made again.
    pub reconnects: u64,
    /// Times the window had room but no signed envelope was ready during the measure window
    /// (the generator was behind).
    pub stalls: u64,
    /// Batches still unacknowledged when the run was cut short.
    pub unacked: u64,
    /// Acks that could not be decoded or named another gateway.
    pub bad_acks: u64,
    /// Publish → commit ack latencies (µs) of batches acknowledged inside the measure window.
    pub latencies_us: Vec<u32>,
}

/// Flags the orchestrator flips for every gateway.
#[derive(Debug, Default)]
pub(crate) struct Phase {
    /// The measure window is open (latencies recorded, stalls counted).
    pub measuring: AtomicBool,
    /// Publish → commit ack latencies (µs) of every gateway while measuring, for sampling
    /// per interval (`bench soak` takes it every interval).
    pub ack_latency: Histogram,
}

/// What enrolling a simulated gateway needs: the store and CA it is registered with, and the
/// gate it connects to (a cluster's nodes share the store and CA, each has its gate).
#[derive(Clone, Copy)]
pub(crate) struct Registrar<'a> {
    /// The platform's store.
    pub store: &'a dyn Store,
    /// The platform's CA.
    pub ca: &'a Ca,
    /// The platform's configuration (certificate lifetime).
    pub config: &'a PlatformConfig,
    /// The gate's port on 127.0.0.1.
    pub gate_port: u16,
}

impl<'a> Registrar<'a> {
    /// Enrolls through a platform running in this process.
    pub(crate) fn of(running: &'a Running, config: &'a PlatformConfig) -> Self {
        Self {
            store: running.store.as_ref(),
            ca: &running.ca,
            config,
            gate_port: running.gate_addr.port(),
        }
    }

    /// Registers gateway `gateway` of `tenant` with fresh keys in `dir`, and builds its
    /// connector. Returns it with its signer (for the generator).
    pub(crate) async fn enroll(
        &self,
        tenant: &TenantId,
        gateway: GatewayId,
        dir: &Path,
        window: usize,
        ack_timeout: Duration,
    ) -> anyhow::Result<(SimGateway, Signer)> {
        let dir = dir.join(gateway.as_str());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let (signing_path, tls_path) = (dir.join("signing.key"), dir.join("tls.key"));
        keys::generate(&signing_path, true)?;
        keys::generate(&tls_path, true)?;
        let signing = keys::load_signing_key(&signing_path)?;
        let tls_public = std::fs::read_to_string(dir.join("tls.key.pub"))?;
        let registration = admin::register_gateway(
            self.store,
            self.ca,
            self.config,
            tenant,
            &gateway,
            &signing.verifying_key(),
            &tls_public,
        )
        .await?;
        let (cert_path, ca_path) = (dir.join("gateway.crt"), dir.join("platform-ca.pem"));
        std::fs::write(&cert_path, &registration.certificate.cert_pem)?;
        std::fs::write(&ca_path, self.ca.cert_pem())?;
        let uplink = UplinkConfig {
            host: "127.0.0.1".into(),
            port: self.gate_port,
            ca: ca_path,
            certificate: cert_path,
            private_key: tls_path,
            keep_alive: Duration::from_secs(30),
            connect_timeout: CONNECT_TIMEOUT,
            backoff_initial: RECONNECT_DELAY,
            backoff_max: RECONNECT_DELAY,
            ack_timeout,
            max_in_flight: window,
        };
        let tls = beffroi_agent::uplink::tls::client_config(&uplink)?;
        let connector = MqttConnector::new(
            uplink.host.clone(),
            uplink.port,
            gateway.to_string(),
            uplink.keep_alive,
            tls,
            &Topic::ack(tenant, &gateway),
            window,
        );
        Ok((
            SimGateway {
                topic: Topic::batch(tenant, &gateway),
                tenant: tenant.clone(),
                gateway,
                connector,
                window,
                ack_timeout,
            },
            Signer::new(signing),
        ))
    }
}

/// A batch published and not yet acknowledged.
struct InFlight {
    first_sent: Instant,
    last_sent: Instant,
    bytes: Vec<u8>,
}

/// Why a session ended.
enum SessionEnd {
    /// Every batch published was acknowledged after the stop (or the run was aborted).
    Done,
    /// The connection was lost.
    Lost(TransportError),
}

impl SimGateway {
    /// Publishes from `feed` until `stop` fires, then waits for the acks of what is in
    /// flight; `abort` ends it at once (what is in flight is reported unacked).
    pub(crate) async fn run(
        mut self,
        mut feed: mpsc::Receiver<Envelope>,
        phase: Arc<Phase>,
        stop: CancellationToken,
        abort: CancellationToken,
    ) -> GatewayReport {
        let mut state = State {
            in_flight: BTreeMap::new(),
            expired: Vec::new(),
            next: None,
            feed_open: true,
            report: GatewayReport::default(),
        };
        loop {
            let connect = tokio::time::timeout(CONNECT_TIMEOUT, self.connector.connect());
            let link = tokio::select! {
                () = abort.cancelled() => break,
                link = connect => link,
            };
            let end = match link {
                Ok(Ok(link)) => {
                    self.session(link, &mut state, &mut feed, &phase, &stop, &abort)
                        .await
                }
                Ok(Err(error)) => SessionEnd::Lost(error),
                Err(_) => SessionEnd::Lost(TransportError::Timeout),
            };
            match end {
                SessionEnd::Done => break,
                SessionEnd::Lost(error) => {
                    state.report.reconnects += 1;
                    tracing::warn!(gateway = %self.gateway, %error, "simulated gateway lost its connection");
                    // Everything in flight goes again on the next connection.
                    state.expired = state.in_flight.keys().copied().collect();
                    tokio::select! {
                        () = abort.cancelled() => break,
                        () = tokio::time::sleep(RECONNECT_DELAY) => {}
                    }
                }
            }
        }
        state.report.unacked = state.in_flight.len() as u64;
        state.report
    }

    async fn session(
        &mut self,
        mut link: MqttLink,
        state: &mut State,
        feed: &mut mpsc::Receiver<Envelope>,
        phase: &Phase,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) -> SessionEnd {
        loop {
            let stopping = stop.is_cancelled();
            if let Err(error) = self.fill(&mut link, state, feed, phase, stopping) {
                return SessionEnd::Lost(error);
            }
            if stopping && state.in_flight.is_empty() {
                link.close().await;
                return SessionEnd::Done;
            }
            let starving = !stopping
                && state.next.is_none()
                && state.feed_open
                && state.in_flight.len() < self.window;
            let deadline = state
                .in_flight
                .iter()
                .filter(|(seq, _)| !state.expired.contains(seq))
                .map(|(_, f)| f.last_sent + self.ack_timeout)
                .min();
            tokio::select! {
                () = abort.cancelled() => return SessionEnd::Done,
                () = stop.cancelled(), if !stopping => {}
                inbound = link.next() => match inbound {
                    Ok(Inbound::Ack(bytes)) => self.on_ack(&bytes, state, phase),
                    Ok(Inbound::Other) => {}
                    Err(error) => return SessionEnd::Lost(error),
                },
                envelope = feed.recv(), if starving => match envelope {
                    Some(envelope) => state.next = Some(envelope),
                    None => state.feed_open = false,
                },
                () = sleep_until(deadline) => {
                    let now = Instant::now();
                    for (&seq, f) in &state.in_flight {
                        if now >= f.last_sent + self.ack_timeout && !state.expired.contains(&seq) {
                            state.expired.push(seq);
                        }
                    }
                    state.expired.sort_unstable();
                }
            }
        }
    }

    /// Publishes timed-out batches again, then new ones while the window has room.
    fn fill(
        &self,
        link: &mut impl beffroi_agent::uplink::Link,
        state: &mut State,
        feed: &mut mpsc::Receiver<Envelope>,
        phase: &Phase,
        stopping: bool,
    ) -> Result<(), TransportError> {
        while let Some(&seq) = state.expired.first() {
            let Some(flight) = state.in_flight.get_mut(&seq) else {
                state.expired.remove(0);
                continue;
            };
            match link.publish(&self.topic, flight.bytes.clone()) {
                Ok(()) => {}
                Err(TransportError::QueueFull) => return Ok(()),
                Err(error) => return Err(error),
            }
            flight.last_sent = Instant::now();
            state.report.resends += 1;
            state.expired.remove(0);
        }
        while !stopping && state.in_flight.len() < self.window {
            let envelope = match state.next.take() {
                Some(envelope) => envelope,
                None => match feed.try_recv() {
                    Ok(envelope) => envelope,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if phase.measuring.load(Ordering::Relaxed) {
                            state.report.stalls += 1;
                        }
                        return Ok(());
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        state.feed_open = false;
                        return Ok(());
                    }
                },
            };
            match link.publish(&self.topic, envelope.bytes.clone()) {
                Ok(()) => {}
                Err(TransportError::QueueFull) => {
                    state.next = Some(envelope);
                    return Ok(());
                }
                Err(error) => {
                    state.next = Some(envelope);
                    return Err(error);
                }
            }
            let now = Instant::now();
            state.report.published += 1;
            state.report.published_readings += u64::from(envelope.readings);
            state.in_flight.insert(
                envelope.seq,
                InFlight {
                    first_sent: now,
                    last_sent: now,
                    bytes: envelope.bytes,
                },
            );
        }
        Ok(())
    }

    fn on_ack(&self, bytes: &[u8], state: &mut State, phase: &Phase) {
        let ack = match CommitAck::decode(bytes) {
            Ok(ack) if ack.tenant == self.tenant && ack.gateway == self.gateway => ack,
            _ => {
                state.report.bad_acks += 1;
                return;
            }
        };
        let now = Instant::now();
        let measuring = phase.measuring.load(Ordering::Relaxed);
        let report = &mut state.report;
        state.in_flight.retain(|&seq, flight| {
            if !ack.covers(seq) {
                return true;
            }
            report.acked += 1;
            if measuring {
                let us = now.duration_since(flight.first_sent).as_micros();
                phase
                    .ack_latency
                    .record(u64::try_from(us).unwrap_or(u64::MAX));
                report
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            false
        });
        state.expired.retain(|seq| !ack.covers(*seq));
    }
}

/// A gateway's delivery state, kept across reconnections.
struct State {
    in_flight: BTreeMap<u64, InFlight>,
    /// Timed out or cut by a reconnection: to publish again, in seq order.
    expired: Vec<u64>,
    /// An envelope taken from the feed and not yet published.
    next: Option<Envelope>,
    feed_open: bool,
    report: GatewayReport,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
