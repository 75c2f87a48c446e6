//! One client's connection: handshake, identity, revocation and tenant checks, then the
//! proxy between the client and the broker.
//!
//! ```text
//! accept ─► TLS handshake (timeout) ─► identity ─► not revoked ─► tenant slot
//!        ─► CONNECT (timeout, ACL) ─► connect upstream
//!        ─► forward CONNECT with client id `{tenant}:{gateway}`
//!        ─► client→broker: read packet (idle timeout) ─► ACL ─► forward exact bytes
//!           broker→client: bytes copied through
//!        ─► end: violation │ revocation │ certificate expired │ shutdown │ either side closed
//! ```
//! A connection lives no longer than the client certificate it was opened with: at the
//! certificate's notAfter the gate closes it (counted as `certificate_expired`, not a security
//! event: a renewing gateway reconnects with its new certificate before that).
//! On a violation, an MQTT 5 client receives a CONNACK or DISCONNECT with a reason code
//! (an MQTT 3.1.1 client a CONNACK return code when refused at CONNECT), then both sockets
//! close; the broker sees the client disconnect.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use beffroi_protocol::Timestamp;
use beffroi_store::{SecurityEvent, SecurityEventKind};
use beffroi_telemetry::{Metrics, SecurityEvents};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::acl::{self, AclDecision, Denial};
use crate::codec::{DecodeError, PacketReader, PacketType, ProtocolVersion, ReadError};
use crate::config::GateConfig;
use crate::identity::Identity;
use crate::limits::{AddressCounts, Slot, TenantCounts};
use crate::revocation::Revocations;

/// The longest the gate waits to send a refusal and close the TLS session.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest CONNECT accepted: wills and credentials are refused, so a CONNECT is a client
/// id and a few properties.
const MAX_CONNECT_BYTES: usize = 16 * 1024;
/// Bytes read at once from the broker; allocated only while data is waiting.
const BROKER_READ_BYTES: usize = 4096;

/// What every connection task shares.
pub(crate) struct Shared {
    pub(crate) config: GateConfig,
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) revocations: Revocations,
    pub(crate) events: SecurityEvents,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) addresses: Arc<AddressCounts>,
    pub(crate) tenants: Arc<TenantCounts>,
}

impl Shared {
    /// Counts a refused or cut connection.
    pub(crate) fn refused(&self, reason: &'static str) {
        self.metrics.gate_refused.incr(reason);
    }

    /// Records a security event.
    pub(crate) fn event(
        &self,
        identity: Option<&Identity>,
        peer: SocketAddr,
        kind: SecurityEventKind,
        detail: String,
    ) {
        self.events.record(SecurityEvent {
            time: Timestamp::now(),
            tenant: identity.map(|i| i.tenant.clone()),
            gateway: identity.map(|i| i.gateway.clone()),
            address: Some(peer.to_string()),
            kind,
            detail,
        });
    }
}

/// Keeps the open-connection gauge up to date.
struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    fn new(metrics: &Arc<Metrics>) -> Self {
        metrics.gate_connections.add(1);
        Self(Arc::clone(metrics))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.gate_connections.add(-1);
    }
}

/// Serves one accepted socket until it closes; `_address` is its source-address slot.
pub(crate) async fn run(
    shared: Arc<Shared>,
    socket: TcpStream,
    peer: SocketAddr,
    _address: Slot<IpAddr>,
    shutdown: CancellationToken,
) {
    let _ = socket.set_nodelay(true);
    let handshake = tokio::select! {
        biased;
        () = shutdown.cancelled() => return,
        result = tokio::time::timeout(
            shared.config.handshake_timeout,
            shared.acceptor.accept(socket),
        ) => result,
    };
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => return handshake_failed(&shared, peer, &error),
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return shared.refused("handshake_timeout");
        }
    };

    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first());
    let identity = match leaf.map(|der| Identity::from_certificate(der)) {
        Some(Ok(identity)) => identity,
        Some(Err(error)) => {
            shared.refused("no_identity");
            let detail = format!("verified certificate without a gateway identity: {error}");
            return shared.event(None, peer, SecurityEventKind::TlsRejected, detail);
        }
        None => {
            shared.refused("no_identity");
            let detail = "no client certificate after the handshake".to_owned();
            return shared.event(None, peer, SecurityEventKind::TlsRejected, detail);
        }
    };

    let token = shutdown.child_token();
    let _live = match shared.revocations.register(&identity, token.clone()) {
        Ok(live) => live,
        Err(revoked) => {
            shared.refused("revoked");
            let detail = format!(
                "refused at handshake: {revoked} (certificate {})",
                identity.fingerprint
            );
            return shared.event(
                Some(&identity),
                peer,
                SecurityEventKind::RevokedCertificate,
                detail,
            );
        }
    };
    let Some(_tenant) = shared.tenants.acquire(&identity.tenant) else {
        shared.refused("connection_limit");
        let detail = format!(
            "more than {} connections for tenant {}",
            shared.tenants.max(),
            identity.tenant
        );
        return shared.event(
            Some(&identity),
            peer,
            SecurityEventKind::ConnectionLimit,
            detail,
        );
    };
    shared.metrics.gate_accepted.incr();
    let _open = OpenConnection::new(&shared.metrics);
    tracing::debug!(%peer, tenant = %identity.tenant, gateway = %identity.gateway, "gateway connected");

    Session {
        shared: &shared,
        identity: &identity,
        peer,
    }
    .run(tls, token)
    .await;
}

/// Records a failed handshake: a certificate or protocol error is a security event, a
/// connection dropped mid-handshake (port scans, load-balancer probes) only a count.
fn handshake_failed(shared: &Shared, peer: SocketAddr, error: &io::Error) {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls_error) => {
            shared.refused("tls_rejected");
            let detail = format!("TLS handshake refused: {tls_error}");
            shared.event(None, peer, SecurityEventKind::TlsRejected, detail);
        }
        None => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            shared.refused("handshake_failed");
        }
    }
}

/// How far the MQTT session got, which decides how a refusal is told to the client.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// No CONNECT yet.
    AwaitingConnect,
    /// CONNECT read, not yet forwarded: a refusal is a CONNACK.
    Connecting(ProtocolVersion),
    /// CONNECT forwarded: a refusal is a DISCONNECT (MQTT 5 only).
    Connected(ProtocolVersion),
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    /// The client closed, or its connection failed.
    ClientClosed(Option<ReadError>),
    /// The broker closed the connection.
    BrokerClosed,
    /// The client broke a rule; the code tells an MQTT client why.
    Violation(Denial, Code),
    /// Revoked, or the gate is shutting down.
    Cancelled,
    /// The client certificate the connection was opened with expired.
    CertificateExpired,
    /// No CONNECT in time, or no packet within the idle timeout.
    Timeout(&'static str),
    /// The broker could not be reached.
    UpstreamUnavailable(io::Error),
}

/// One established gateway session.
struct Session<'a> {
    shared: &'a Shared,
    identity: &'a Identity,
    peer: SocketAddr,
}

impl Session<'_> {
    async fn run(&self, tls: TlsStream<TcpStream>, token: CancellationToken) {
        let (client_rx, mut client_tx) = tokio::io::split(tls);
        let max_connect = MAX_CONNECT_BYTES.min(self.shared.config.max_packet_bytes);
        let mut packets = PacketReader::new(client_rx, max_connect);
        let mut stage = Stage::AwaitingConnect;
        let end = tokio::select! {
            biased;
            () = token.cancelled() => End::Cancelled,
            () = tokio::time::sleep(until(self.identity.not_after)) => End::CertificateExpired,
            end = self.relay(&mut packets, &mut client_tx, &mut stage) => end,
        };
        let reply = self.report(&end, stage);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if let Some(bytes) = reply {
                client_tx.write_all(&bytes).await?;
            }
            client_tx.shutdown().await
        })
        .await;
    }

    /// Reads CONNECT, opens the broker connection, then relays both ways until one ends.
    async fn relay<R, W>(
        &self,
        packets: &mut PacketReader<R>,
        client_tx: &mut W,
        stage: &mut Stage,
    ) -> End
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let config = &self.shared.config;
        let raw = match tokio::time::timeout(config.connect_timeout, packets.next_packet()).await {
            Err(_) => return End::Timeout("connect_timeout"),
            Ok(Ok(Some(raw))) => raw,
            Ok(Ok(None)) => return End::ClientClosed(None),
            Ok(Err(error)) => return read_failed(error),
        };
        self.shared.metrics.gate_packets.incr();
        if raw.packet_type() != PacketType::Connect {
            return violation(
                SecurityEventKind::ProtocolViolation,
                format!("first packet is {}, not CONNECT", raw.packet_type().name()),
            );
        }
        let connect = match raw.parse_connect() {
            Ok(connect) => connect,
            Err(error) => return malformed(&error),
        };
        *stage = Stage::Connecting(connect.version);
        if let AclDecision::Deny(denial) = acl::check_connect(self.identity, &connect) {
            return denied(denial);
        }
        let idle = idle_timeout(config.idle_timeout, connect.keep_alive);
        let version = connect.version;
        // Gateway ids are unique within a tenant only: the broker sees `{tenant}:{gateway}`,
        // so that one tenant's `gw-1` cannot take over another tenant's `gw-1` session.
        let broker_client_id = format!("{}:{}", self.identity.tenant, self.identity.gateway);
        let forwarded = match connect.with_client_id(&raw, &broker_client_id) {
            Ok(bytes) => bytes,
            Err(error) => return malformed(&error),
        };
        packets.set_max_packet_bytes(config.max_packet_bytes);

        let upstream = match tokio::time::timeout(
            config.connect_timeout,
            TcpStream::connect(config.upstream_for(version)),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return End::UpstreamUnavailable(error),
            Err(_) => {
                return End::UpstreamUnavailable(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connecting to the broker timed out",
                ))
            }
        };
        let _ = upstream.set_nodelay(true);
        let (mut broker_rx, mut broker_tx) = upstream.into_split();
        if broker_tx.write_all(&forwarded).await.is_err() {
            return End::BrokerClosed;
        }
        drop(forwarded);
        *stage = Stage::Connected(version);

        tokio::select! {
            end = self.client_to_broker(packets, &mut broker_tx, version, idle) => end,
            end = broker_to_client(&mut broker_rx, client_tx) => end,
        }
    }

    /// Reads, checks and forwards client packets until the client stops or breaks a rule.
    async fn client_to_broker<R: AsyncRead + Unpin>(
        &self,
        packets: &mut PacketReader<R>,
        broker_tx: &mut OwnedWriteHalf,
        version: ProtocolVersion,
        idle: Duration,
    ) -> End {
        loop {
            let raw = match tokio::time::timeout(idle, packets.next_packet()).await {
                Err(_) => return End::Timeout("idle_timeout"),
                Ok(Ok(Some(raw))) => raw,
                Ok(Ok(None)) => return End::ClientClosed(None),
                Ok(Err(error)) => return read_failed(error),
            };
            self.shared.metrics.gate_packets.incr();
            let packet = match raw.parse(version) {
                Ok(packet) => packet,
                Err(error) => return malformed(&error),
            };
            if let AclDecision::Deny(denial) = acl::check_packet(self.identity, &packet, true) {
                return denied(denial);
            }
            if broker_tx.write_all(raw.bytes()).await.is_err() {
                return End::BrokerClosed;
            }
        }
    }

    /// Counts and records how the session ended; returns what to tell the client.
    fn report(&self, end: &End, stage: Stage) -> Option<Vec<u8>> {
        let shared = self.shared;
        let (tenant, gateway, peer) = (&self.identity.tenant, &self.identity.gateway, self.peer);
        match end {
            End::ClientClosed(error) => {
                tracing::debug!(%peer, %tenant, %gateway, error = ?error, "gateway disconnected");
                None
            }
            End::BrokerClosed => {
                tracing::debug!(%peer, %tenant, %gateway, "broker closed the connection");
                None
            }
            End::Violation(denial, code) => {
                shared.refused(denial.kind.as_str());
                shared.event(
                    Some(self.identity),
                    peer,
                    denial.kind,
                    denial.detail.clone(),
                );
                refusal(stage, *code)
            }
            End::Cancelled => {
                if let Some(revoked) = shared.revocations.check(self.identity) {
                    shared.refused("revoked");
                    let detail = format!(
                        "live connection cut: {revoked} (certificate {})",
                        self.identity.fingerprint
                    );
                    shared.event(
                        Some(self.identity),
                        peer,
                        SecurityEventKind::RevokedCertificate,
                        detail,
                    );
                    refusal(stage, Code::NOT_AUTHORIZED)
                } else {
                    refusal(stage, Code::SHUTTING_DOWN)
                }
            }
            End::CertificateExpired => {
                tracing::debug!(%peer, %tenant, %gateway, "client certificate expired");
                shared.refused("certificate_expired");
                refusal(stage, Code::NOT_AUTHORIZED)
            }
            End::Timeout(reason) => {
                tracing::debug!(%peer, %tenant, %gateway, reason, "gateway timed out");
                shared.refused(reason);
                refusal(stage, Code::KEEP_ALIVE_TIMEOUT)
            }
            End::UpstreamUnavailable(error) => {
                tracing::error!(%error, upstream = %shared.config.upstream, "cannot reach the broker");
                shared.refused("upstream_unavailable");
                refusal(stage, Code::SERVER_UNAVAILABLE)
            }
        }
    }
}

/// Copies broker bytes to the client; the read buffer exists only while data is waiting.
async fn broker_to_client<W: AsyncWrite + Unpin>(
    broker_rx: &mut OwnedReadHalf,
    client_tx: &mut W,
) -> End {
    loop {
        if broker_rx.readable().await.is_err() {
            return End::BrokerClosed;
        }
        let mut buffer = vec![0; BROKER_READ_BYTES];
        let read = match broker_rx.try_read(&mut buffer) {
            Ok(0) => return End::BrokerClosed,
            Ok(read) => {
                ack_at_once(broker_rx);
                read
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return End::BrokerClosed,
        };
        if client_tx.write_all(&buffer[..read]).await.is_err() || client_tx.flush().await.is_err() {
            return End::ClientClosed(None);
        }
    }
}

/// Asks the kernel to acknowledge what the broker sent without delay. The embedded broker
/// leaves Nagle's algorithm on: its next small write to this gateway (the commit ack, after
/// the PUBACK of the batch) would wait for the TCP ACK of the previous one, which Linux delays
/// up to 40 ms while we have nothing to send back. Quick-ack mode does not stick, hence after
/// every read; failing to set it only costs latency.
fn ack_at_once(broker_rx: &OwnedReadHalf) {
    #[cfg(target_os = "linux")]
    let _ = socket2::SockRef::from(broker_rx.as_ref()).set_tcp_quickack(true);
}

/// How long from now until `instant` (zero once it has passed).
fn until(instant: Timestamp) -> Duration {
    let micros = instant
        .unix_micros()
        .saturating_sub(Timestamp::now().unix_micros());
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// The idle limit: the configured one, or 1.5 × the client's keep-alive if shorter.
fn idle_timeout(configured: Duration, keep_alive_secs: u16) -> Duration {
    if keep_alive_secs == 0 {
        return configured;
    }
    configured.min(Duration::from_millis(u64::from(keep_alive_secs) * 1500))
}

fn violation(kind: SecurityEventKind, detail: String) -> End {
    denied(Denial { kind, detail })
}

/// An ACL denial, with the reason code that matches its kind.
fn denied(denial: Denial) -> End {
    let code = match denial.kind {
        SecurityEventKind::ClientIdMismatch => Code::CLIENT_ID_INVALID,
        SecurityEventKind::ProtocolViolation => Code::PROTOCOL_ERROR,
        _ => Code::NOT_AUTHORIZED,
    };
    End::Violation(denial, code)
}

/// Bytes that are not valid MQTT.
fn malformed(error: &DecodeError) -> End {
    let code = match error {
        DecodeError::Oversize { .. } => Code::PACKET_TOO_LARGE,
        _ => Code::MALFORMED,
    };
    let denial = Denial {
        kind: SecurityEventKind::ProtocolViolation,
        detail: error.to_string(),
    };
    End::Violation(denial, code)
}

/// A read error is a violation when the bytes were invalid, a plain close otherwise.
fn read_failed(error: ReadError) -> End {
    match error {
        ReadError::Decode(error) => malformed(&error),
        other => End::ClientClosed(Some(other)),
    }
}

/// MQTT 5 reason codes (and their MQTT 3.1.1 CONNACK equivalents) the gate sends.
#[derive(Debug, Clone, Copy)]
struct Code {
    v5: u8,
    v311: u8,
}

impl Code {
    const MALFORMED: Code = Code {
        v5: 0x81,
        v311: 0x05,
    };
    const PROTOCOL_ERROR: Code = Code {
        v5: 0x82,
        v311: 0x05,
    };
    const CLIENT_ID_INVALID: Code = Code {
        v5: 0x85,
        v311: 0x02,
    };
    const NOT_AUTHORIZED: Code = Code {
        v5: 0x87,
        v311: 0x05,
    };
    const SERVER_UNAVAILABLE: Code = Code {
        v5: 0x88,
        v311: 0x03,
    };
    const SHUTTING_DOWN: Code = Code {
        v5: 0x8b,
        v311: 0x03,
    };
    const KEEP_ALIVE_TIMEOUT: Code = Code {
        v5: 0x8d,
        v311: 0x05,
    };
    const PACKET_TOO_LARGE: Code = Code {
        v5: 0x95,
        v311: 0x05,
    };
}

/// The bytes that tell the client why it is disconnected: a CONNACK while connecting, a
/// DISCONNECT once connected (MQTT 5 only; MQTT 3.1.1 has no server DISCONNECT).
fn refusal(stage: Stage, code: Code) -> Option<Vec<u8>> {
    match stage {
        Stage::AwaitingConnect => None,
        Stage::Connecting(ProtocolVersion::V5) => Some(vec![0x20, 0x03, 0x00, code.v5, 0x00]),
        Stage::Connecting(ProtocolVersion::V311) => Some(vec![0x20, 0x02, 0x00, code.v311]),
        Stage::Connected(ProtocolVersion::V5) => Some(vec![0xe0, 0x02, code.v5, 0x00]),
        Stage::Connected(ProtocolVersion::V311) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_is_zero_in_the_past() {
        assert_eq!(until(Timestamp::from_unix_micros(0)), Duration::ZERO);
        let later = Timestamp::from_unix_micros(Timestamp::now().unix_micros() + 60_000_000);
        assert!(until(later) > Duration::from_secs(59));
    }

    #[test]
    fn idle_timeout_follows_keep_alive() {
        let five_min = Duration::from_secs(300);
        assert_eq!(idle_timeout(five_min, 0), five_min);
        assert_eq!(idle_timeout(five_min, 10), Duration::from_secs(15));
        assert_eq!(idle_timeout(five_min, 3600), five_min);
    }

    #[test]
    fn refusals_match_the_stage() {
        assert_eq!(refusal(Stage::AwaitingConnect, Code::NOT_AUTHORIZED), None);
        assert_eq!(
            refusal(
                Stage::Connecting(ProtocolVersion::V311),
                Code::CLIENT_ID_INVALID
            ),
            Some(vec![0x20, 0x02, 0x00, 0x02])
        );
        assert_eq!(
            refusal(Stage::Connected(ProtocolVersion::V5), Code::NOT_AUTHORIZED),
            Some(vec![0xe0, 0x02, 0x87, 0x00])
        );
        assert_eq!(
            refusal(Stage::Connected(ProtocolVersion::V311), Code::MALFORMED),
            None
        );
    }
}
