//! Store-and-forward uplink: delivers spooled batches to the platform until commit acks
//! cover them.
//!
//! ```text
//!              ┌──────────── wait backoff (jittered, exponential) ◄─────────────┐
//!              ▼                                                                 │
//!       Disconnected ──connect: TCP + mTLS + CONNACK + SUBSCRIBE ack──► Connected ┘ on error
//!                                                                       │
//!   Connected: in_flight := {} ; cursor := 0
//!     fill   : publish (QoS 1) unacked spool records above cursor, oldest first, while
//!              in_flight < max_in_flight; after a reconnect this resends everything unacked
//!     ack    : CommitAck on .../ack → spool.ack() deletes covered batches; in_flight shrinks
//!     timeout: a batch in flight longer than ack_timeout is published again
//!     sealed : the batcher appended a batch → fill
//!     health : the latest sealed health report is published on connect and when it changes
//!     renewed: the certificate was renewed → disconnect, reconnect at once with it (the
//!              new session resends everything unacked, as after any reconnect)
//!     stop   : disconnect and return (the spool keeps everything not acked)
//! ```
//!
//! A batch leaves the spool only when a commit ack covers it, never on PUBACK: PUBACK only
//! means the broker holds it in RAM, and rumqttc drops queued publishes on reconnect, so the
//! spool, not the MQTT client, owns delivery. The network sits behind [`Connector`] and
//! [`Link`] so tests can make it slow or dead.

mod backoff;
pub mod mqtt;
pub mod tls;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use beffroi_protocol::{CommitAck, GatewayId, TenantId, Topic};
use beffroi_spool::Spool;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use backoff::Backoff;

use crate::status::StatusBoard;
use crate::telemetry::{Counter, Telemetry};

/// A network failure; the uplink reconnects after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Connecting, TLS or the MQTT handshake failed, or the connection dropped.
    #[error("connection: {0}")]
    Connection(String),
    /// The connect attempt took longer than the configured timeout.
    #[error("connect timed out")]
    Timeout,
    /// The broker refused the ack subscription.
    #[error("subscription refused: {0}")]
    SubscriptionRefused(String),
    /// The client's outgoing queue is full; try again after the next event.
    #[error("outgoing queue full")]
    QueueFull,
}

/// What the link received.
#[derive(Debug)]
pub enum Inbound {
    /// A message on the gateway's ack topic.
    Ack(Vec<u8>),
    /// Anything else (PUBACK, SUBACK, PINGRESP…): the link made progress.
    Other,
}

/// Opens connections to the platform.
pub trait Connector: Send {
    /// The connection type.
    type Link: Link;
    /// Connects and subscribes to the ack topic.
    fn connect(&mut self) -> impl Future<Output = Result<Self::Link, TransportError>> + Send;

    /// Resolves once the credentials changed since the last [`connect`](Self::connect) (a
    /// renewed certificate): the uplink then replaces its connection. Default: never.
    fn credentials_changed(&self) -> impl Future<Output = ()> + Send + 'static {
        std::future::pending()
    }
}

/// One established connection.
pub trait Link: Send {
    /// Queues a QoS 1 publish without waiting.
    fn publish(&mut self, topic: &Topic, payload: Vec<u8>) -> Result<(), TransportError>;
    /// Drives the connection until something arrives.
    fn next(&mut self) -> impl Future<Output = Result<Inbound, TransportError>> + Send;
    /// Says goodbye (best effort).
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// Timing and window settings of the uplink.
#[derive(Debug, Clone, Copy)]
pub struct UplinkTiming {
    /// Time allowed for a connection attempt.
    pub connect_timeout: Duration,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// In flight longer than this without an ack: send again.
    pub ack_timeout: Duration,
    /// Most batches in flight.
    pub max_in_flight: usize,
}

/// The uplink task's state.
pub struct Uplink<C: Connector> {
    connector: C,
    timing: UplinkTiming,
    tenant: TenantId,
    gateway: GatewayId,
    batch_topic: Topic,
    health_topic: Topic,
    spool: Arc<Mutex<Spool>>,
    telemetry: Arc<Telemetry>,
    sealed: Arc<Notify>,
    health: watch::Receiver<Option<Vec<u8>>>,
    /// Highest seq ever published, to tell first sends from resends.
    highest_sent: u64,
    /// Where the connection state and the last ack are reported.
    status: Arc<StatusBoard>,
}

/// Why a connected session ended.
enum SessionEnd {
    Stopped,
    Lost(TransportError),
    /// New credentials: reconnect at once with them.
    Renewed,
}

impl<C: Connector> Uplink<C> {
    /// An uplink for one gateway.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        connector: C,
        timing: UplinkTiming,
        tenant: TenantId,
        gateway: GatewayId,
        spool: Arc<Mutex<Spool>>,
        telemetry: Arc<Telemetry>,
        sealed: Arc<Notify>,
        health: watch::Receiver<Option<Vec<u8>>>,
    ) -> Self {
        Self {
            batch_topic: Topic::batch(&tenant, &gateway),
            health_topic: Topic::health(&tenant, &gateway),
            connector,
            timing,
            tenant,
            gateway,
            spool,
            telemetry,
            sealed,
            health,
            highest_sent: 0,
            status: Arc::default(),
        }
    }

    /// Reports the connection state and the last ack on `board` (for the status file).
    pub fn reporting_to(mut self, board: Arc<StatusBoard>) -> Self {
        self.status = board;
        self
    }

    fn spool(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connects, delivers and reconnects until `stop` is cancelled.
    pub async fn run(mut self, stop: CancellationToken) {
        let seed = std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64;
        let mut backoff = Backoff::new(
            self.timing.backoff_initial,
            self.timing.backoff_max,
            seed ^ hash(self.gateway.as_str()),
        );
        loop {
            let attempt =
                tokio::time::timeout(self.timing.connect_timeout, self.connector.connect());
            let result = tokio::select! {
                () = stop.cancelled() => return,
                result = attempt => result.unwrap_or(Err(TransportError::Timeout)),
            };
            match result {
                Ok(link) => {
                    self.telemetry.incr(Counter::Connects);
                    self.status.connected();
                    backoff.reset();
                    tracing::info!(gateway = %self.gateway, "connected to the platform");
                    match self.session(link, &stop).await {
                        SessionEnd::Stopped => {
                            self.status.disconnected(&"the agent is stopping");
                            return;
                        }
                        SessionEnd::Renewed => {
                            self.telemetry.incr(Counter::CredentialReconnects);
                            self.status.reconnecting();
                            tracing::info!("reconnecting with the renewed certificate");
                            continue;
                        }
                        SessionEnd::Lost(error) => {
                            self.telemetry.incr(Counter::Disconnects);
                            self.status.disconnected(&error);
                            tracing::warn!(%error, "lost the platform connection");
                        }
                    }
                }
                Err(error) => {
                    self.telemetry.incr(Counter::ConnectFailures);
                    self.status.disconnected(&error);
                    tracing::warn!(%error, "cannot connect to the platform");
                }
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn session(&mut self, mut link: C::Link, stop: &CancellationToken) -> SessionEnd {
        let mut window = Window::default();
        let mut health_open = true;
        let renewed = self.connector.credentials_changed();
        tokio::pin!(renewed);
        let report = self.health.borrow_and_update().clone();
        if let Some(report) = report {
            self.publish_health(&mut link, report);
        }
        loop {
            if let Err(error) = self.fill(&mut link, &mut window) {
                return SessionEnd::Lost(error);
            }
            let deadline = window.oldest().map(|sent| sent + self.timing.ack_timeout);
            tokio::select! {
                () = stop.cancelled() => {
                    link.close().await;
                    return SessionEnd::Stopped;
                }
                inbound = link.next() => match inbound {
                    Ok(Inbound::Ack(bytes)) => self.on_ack(&bytes, &mut window),
                    Ok(Inbound::Other) => {}
                    Err(error) => return SessionEnd::Lost(error),
                },
                () = self.sealed.notified() => {}
                () = &mut renewed => {
                    link.close().await;
                    return SessionEnd::Renewed;
                }
                changed = self.health.changed(), if health_open => {
                    health_open = changed.is_ok();
                    let report = self.health.borrow_and_update().clone();
                    if let (true, Some(report)) = (health_open, report) {
                        self.publish_health(&mut link, report);
                    }
                }
                () = sleep_until(deadline) => window.expire(Instant::now(), self.timing.ack_timeout),
            }
        }
    }

    fn publish_health(&self, link: &mut C::Link, report: Vec<u8>) {
        match link.publish(&self.health_topic, report) {
            Ok(()) => self.telemetry.incr(Counter::HealthSent),
            Err(error) => {
                self.telemetry.incr(Counter::HealthErrors);
                tracing::debug!(%error, "health report not sent");
            }
        }
    }

    /// Publishes what the window allows: expired batches first, then unacked ones above the
    /// cursor, in seq order.
    fn fill(&mut self, link: &mut C::Link, window: &mut Window) -> Result<(), TransportError> {
        let room = self
            .timing
            .max_in_flight
            .saturating_sub(window.in_flight.len());
        if room == 0 && window.expired.is_empty() {
            return Ok(());
        }
        let due: Vec<u64> = {
            let spool = self.spool();
            let mut due: Vec<u64> = window.expired.to_vec();
            due.extend(
                spool
                    .unacked()
                    .map(|record| record.seq)
                    .filter(|&seq| seq > window.cursor)
                    .take(room),
            );
            due
        };
        for seq in due {
            let payload = match self.spool().read(seq) {
                Ok(Some(payload)) => payload,
                // Acked or dropped for room since it was listed: nothing to send.
                Ok(None) => {
                    window.forget(seq);
                    continue;
                }
                Err(error) => {
                    tracing::error!(%error, seq, "cannot read a spooled batch");
                    window.forget(seq);
                    continue;
                }
            };
            match link.publish(&self.batch_topic, payload) {
                Ok(()) => {}
                Err(TransportError::QueueFull) => return Ok(()),
                Err(error) => return Err(error),
            }
            if seq <= self.highest_sent {
                self.telemetry.incr(Counter::BatchesResent);
            } else {
                self.telemetry.incr(Counter::BatchesSent);
                self.highest_sent = seq;
            }
            window.sent(seq, Instant::now());
        }
        Ok(())
    }

    fn on_ack(&mut self, bytes: &[u8], window: &mut Window) {
        let ack = match CommitAck::decode(bytes) {
            Ok(ack) if ack.tenant == self.tenant && ack.gateway == self.gateway => ack,
            Ok(ack) => {
                self.telemetry.incr(Counter::AcksRejected);
                tracing::warn!(tenant = %ack.tenant, gateway = %ack.gateway, "ack for another gateway ignored");
                return;
            }
            Err(error) => {
                self.telemetry.incr(Counter::AcksRejected);
                tracing::warn!(%error, "malformed commit ack ignored");
                return;
            }
        };
        self.telemetry.incr(Counter::AcksReceived);
        self.status.acked(&ack);
        match self.spool().ack(ack.contiguous, &ack.above) {
            Ok(outcome) => self
                .telemetry
                .add(Counter::BatchesAcked, outcome.removed_batches),
            Err(error) => tracing::error!(%error, "spool could not apply a commit ack"),
        }
        window.acked(&ack);
    }
}

/// Batches sent on the current connection and not yet acknowledged.
#[derive(Default)]
struct Window {
    /// seq → when it was last published.
    in_flight: BTreeMap<u64, Instant>,
    /// Timed out: to publish again.
    expired: Vec<u64>,
    /// Highest seq published on this connection.
    cursor: u64,
}

impl Window {
    fn sent(&mut self, seq: u64, at: Instant) {
        self.expired.retain(|&s| s != seq);
        self.in_flight.insert(seq, at);
        self.cursor = self.cursor.max(seq);
    }

    fn forget(&mut self, seq: u64) {
        self.expired.retain(|&s| s != seq);
        self.in_flight.remove(&seq);
        self.cursor = self.cursor.max(seq);
    }

    fn acked(&mut self, ack: &CommitAck) {
        self.in_flight.retain(|&seq, _| !ack.covers(seq));
        self.expired.retain(|&seq| !ack.covers(seq));
    }

    fn oldest(&self) -> Option<Instant> {
        self.in_flight
            .iter()
            .filter(|(seq, _)| !self.expired.contains(seq))
            .map(|(_, &at)| at)
            .min()
    }

    fn expire(&mut self, now: Instant, timeout: Duration) {
        for (&seq, &at) in &self.in_flight {
            if now.duration_since(at) >= timeout && !self.expired.contains(&seq) {
                self.expired.push(seq);
            }
        }
        self.expired.sort_unstable();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
