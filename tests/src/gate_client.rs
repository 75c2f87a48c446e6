//! A hand-driven gateway for negative tests: an MQTT 5 client (rumqttc) over TLS to the gate,
//! with a registered gateway's certificate, another CA's, or none, and any client id. It
//! publishes what the scenario gives it (e.g. envelopes sealed with
//! [`beffroi_protocol::Signer`]) and reports what the gate does: CONNACK, DISCONNECT with its
//! reason, or the connection closing.
//!
//! Unlike the agent it never reconnects: one [`GateClient`] is one connection attempt, and
//! its event loop task ends with the connection.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions, StateError};
use rumqttc::{TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a gate client saw.
#[derive(Debug)]
pub enum GateEvent {
    /// A packet from the broker (through the gate).
    Packet(Box<Packet>),
    /// The connection ended or could not be made; the text says how (e.g.
    /// `ServerDisconnect { reason_code: NotAuthorized, .. }`, `ConnectionRefused(...)`, an
    /// IO or TLS error).
    Closed(String),
}

/// A TLS client configuration trusting `ca_pem`, presenting `identity` (certificate PEM and
/// private key PEM) if given.
pub fn tls_config(
    ca_pem: &Path,
    identity: Option<(&Path, &Path)>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem)
        .with_context(|| format!("reading {}", ca_pem.display()))?
    {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("reading {}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading {}", key.display()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// One MQTT 5 connection attempt through the gate.
pub struct GateClient {
    /// The client handle (publish, subscribe).
    pub client: AsyncClient,
    events: mpsc::UnboundedReceiver<GateEvent>,
    driver: JoinHandle<()>,
}

impl std::fmt::Debug for GateClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateClient").finish_non_exhaustive()
    }
}

impl GateClient {
    /// Starts connecting to the gate on `localhost:port` as `client_id`; see
    /// [`GateClient::connected`] for the outcome.
    pub fn connect(port: u16, tls: Arc<rustls::ClientConfig>, client_id: &str) -> Self {
        let mut options = MqttOptions::new(client_id, "localhost", port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_start(true)
            .set_connection_timeout(5)
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (tx, events) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(packet)) => {
                        if tx.send(GateEvent::Packet(Box::new(packet))).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Outgoing(_)) => {}
                    Err(error) => {
                        let _ = tx.send(GateEvent::Closed(describe(&error)));
                        return;
                    }
                }
            }
        });
        Self {
            client,
            events,
            driver,
        }
    }

    /// The next event, waiting at most `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<GateEvent> {
        match tokio::time::timeout(timeout, self.events.recv()).await {
            Ok(Some(event)) => Ok(event),
            Ok(None) => anyhow::bail!("the client's event loop ended"),
            Err(_) => anyhow::bail!("no event from the gate within {timeout:?}"),
        }
    }

    /// Waits for the CONNACK: `Ok(Ok(()))` if accepted, `Ok(Err(how))` if the connection was
    /// refused or closed first.
    pub async fn connected(&mut self, timeout: Duration) -> anyhow::Result<Result<(), String>> {
        loop {
            match self.next(timeout).await? {
                GateEvent::Packet(packet) => {
                    if let Packet::ConnAck(ack) = *packet {
                        return Ok(match ack.code {
                            rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success => Ok(()),
                            code => Err(format!("CONNACK {code:?}")),
                        });
                    }
                }
                GateEvent::Closed(how) => return Ok(Err(how)),
            }
        }
    }

    /// Waits until the connection closes, skipping packets; returns how it closed.
    pub async fn closed(&mut self, timeout: Duration) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(GateEvent::Closed(how)) => return Ok(how),
                Ok(GateEvent::Packet(_)) => {}
                Err(error) => {
                    return Err(error.context(format!("the connection stayed open for {timeout:?}")))
                }
            }
        }
    }

    /// Publishes at QoS 1 and waits for the PUBACK; `Err` if the connection closes first.
    pub async fn publish_acked(&mut self, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await?;
        loop {
            match self.next(Duration::from_secs(10)).await? {
                GateEvent::Packet(packet) if matches!(*packet, Packet::PubAck(_)) => return Ok(()),
                GateEvent::Packet(_) => {}
                GateEvent::Closed(how) => anyhow::bail!("closed before PUBACK: {how}"),
            }
        }
    }
}

impl Drop for GateClient {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn describe(error: &ConnectionError) -> String {
    match error {
        ConnectionError::MqttState(StateError::ServerDisconnect { reason_code, .. }) => {
            format!("DISCONNECT {reason_code:?}")
        }
        ConnectionError::ConnectionRefused(code) => format!("CONNACK {code:?}"),
        other => other.to_string(),
    }
}
