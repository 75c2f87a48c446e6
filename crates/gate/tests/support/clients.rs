//! MQTT clients for the tests: rumqttc (v5 and v3.1.1) over mTLS through the gate, a plain
//! rumqttc observer on Mosquitto, and a raw TLS socket for hand-built packets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{TlsConfiguration, Transport};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::pki::{ClientCert, Pki};
use super::WAIT;

/// A TLS client configuration trusting the test CA, with `cert` as client certificate.
pub fn tls_config(pki: &Pki, cert: Option<&ClientCert>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der()).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = match cert {
        Some(cert) => builder
            .with_client_auth_cert(cert.chain.clone(), cert.key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// What a client's event loop reported.
#[derive(Debug)]
pub enum Seen<P> {
    Packet(P),
    Error(String),
}

/// An MQTT 5 client through the gate.
pub struct V5 {
    pub client: rumqttc::v5::AsyncClient,
    pub events: mpsc::UnboundedReceiver<Seen<rumqttc::v5::Incoming>>,
}

/// An MQTT 3.1.1 client (through the gate or directly on the broker).
pub struct V4 {
    pub client: rumqttc::AsyncClient,
    pub events: mpsc::UnboundedReceiver<Seen<rumqttc::Incoming>>,
}

pub fn v5_client(gate: SocketAddr, tls: Arc<ClientConfig>, client_id: &str) -> V5 {
    let mut options = rumqttc::v5::MqttOptions::new(client_id, "localhost", gate.port());
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 16);
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::v5::Event::Incoming(packet)) => {
                    let _ = tx.send(Seen::Packet(packet));
                }
                Ok(rumqttc::v5::Event::Outgoing(_)) => {}
                Err(error) => {
                    let _ = tx.send(Seen::Error(error.to_string()));
                    return;
                }
            }
        }
    });
    V5 { client, events }
}

fn v4_options(client_id: &str, port: u16, tls: Option<Arc<ClientConfig>>) -> rumqttc::MqttOptions {
    let mut options = rumqttc::MqttOptions::new(client_id, "localhost", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 20);
    if let Some(tls) = tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    options
}

fn v4_spawn(options: rumqttc::MqttOptions) -> V4 {
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 16);
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(packet)) => {
                    let _ = tx.send(Seen::Packet(packet));
                }
                Ok(rumqttc::Event::Outgoing(_)) => {}
                Err(error) => {
                    let _ = tx.send(Seen::Error(error.to_string()));
                    return;
                }
            }
        }
    });
    V4 { client, events }
}

/// An MQTT 3.1.1 client through the gate.
pub fn v4_client(gate: SocketAddr, tls: Arc<ClientConfig>, client_id: &str) -> V4 {
    v4_spawn(v4_options(client_id, gate.port(), Some(tls)))
}

/// A plain MQTT 3.1.1 client directly on the broker.
pub fn observer(broker_port: u16, client_id: &str) -> V4 {
    v4_spawn(v4_options(client_id, broker_port, None))
}

/// Waits for the first event matching `want`, panicking on an error or a timeout.
pub async fn wait_for<P: std::fmt::Debug, T>(
    events: &mut mpsc::UnboundedReceiver<Seen<P>>,
    mut want: impl FnMut(&P) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Seen::Packet(packet))) => {
                if let Some(found) = want(&packet) {
                    return found;
                }
            }
            other => panic!("expected packet not seen: {other:?}"),
        }
    }
}

/// Waits until the event loop reports an error (the connection is gone); returns it and
/// whatever packets came before.
pub async fn wait_for_error<P: std::fmt::Debug>(
    events: &mut mpsc::UnboundedReceiver<Seen<P>>,
) -> (String, Vec<P>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut packets = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Seen::Packet(packet))) => packets.push(packet),
            Ok(Some(Seen::Error(error))) => return (error, packets),
            other => panic!("connection not closed: {other:?} after {packets:?}"),
        }
    }
}

/// A raw TLS connection to the gate.
pub async fn raw_tls(
    gate: SocketAddr,
    tls: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(gate).await?;
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(tls).connect(name, tcp).await
}

/// Reads until the peer closes (or fails), returning what was read; panics if it stays open.
pub async fn read_until_closed<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    let result = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(result.is_ok(), "connection still open; read {out:?}");
    out
}

/// Writes bytes, ignoring errors (the gate may already have closed).
pub async fn send<S: tokio::io::AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) {
    let _ = stream.write_all(bytes).await;
    let _ = stream.flush().await;
}
