//! The platform's stand-in: an MQTT v5 client (rumqttc, mutual TLS) that receives what agents
//! publish, verifies it, records it per gateway and sends commit acks.
//!
//! ```text
//! broker ──► event-loop task ──mpsc──► processing task: Topic::parse → Opened::parse →
//!            (resubscribes on            verify_batch / verify_health with the registered key →
//!             every CONNACK)             record (seqs, payload hashes, duplicates, gaps) →
//!                                        "commit" in memory → CommitAck on .../ack (if acking)
//! ```
//! The event loop is polled in its own task because `EventLoop::poll` is not documented as
//! cancel safe. `contiguous` in an ack is the highest seq such that every seq at or below it
//! was received or lies in a gap the gateway reported in a health message; `above` lists the
//! received seqs beyond it (at most [`MAX_ACK_ABOVE`](crate::record::MAX_ACK_ABOVE)). Acking can be switched off to model a
//! platform that receives but does not commit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use beffroi_protocol::{
    CommitAck, GatewayId, Health, Opened, TenantId, Topic, TopicKind, VerifyingKey,
    MAX_ENVELOPE_BYTES,
};
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::pki::Pki;
pub use crate::record::{GatewayRecord, ReceivedBatch, Snapshot};

/// Topics the consumer subscribes to.
const SUBSCRIPTIONS: [&str; 2] = ["beffroi/v1/+/+/batch", "beffroi/v1/+/+/health"];

struct Shared {
    state: Mutex<Snapshot>,
    keys: Mutex<HashMap<(TenantId, GatewayId), VerifyingKey>>,
    changed: watch::Sender<u64>,
    acking: AtomicBool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, Snapshot> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update<T>(&self, f: impl FnOnce(&mut Snapshot) -> T) -> T {
        let result = f(&mut self.state());
        self.changed.send_modify(|version| *version += 1);
        result
    }
}

/// A running consumer; its tasks stop when it is dropped.
pub struct Consumer {
    client: AsyncClient,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").finish_non_exhaustive()
    }
}

fn tls_config(pki: &Pki) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let identity = pki.consumer()?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(pki.ca.cert_der.clone()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from(identity.cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der)),
        )?;
    Ok(Arc::new(config))
}

impl Consumer {
    /// Connects to the broker on `127.0.0.1:port` (as `localhost`) and waits until it is
    /// subscribed.
    pub async fn start(pki: &Pki, port: u16) -> anyhow::Result<Self> {
        let mut options = MqttOptions::new("beffroi-test-consumer", "localhost", port);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_clean_start(true)
            .set_max_packet_size(Some(u32::try_from(MAX_ENVELOPE_BYTES)? + 4096))
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls_config(pki)?,
            )));
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(Snapshot::default()),
            keys: Mutex::new(HashMap::new()),
            changed,
            acking: AtomicBool::new(true),
        });
        let (tx, mut rx) = mpsc::unbounded_channel::<Publish>();

        let driver = {
            let shared = shared.clone();
            let client = client.clone();
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::Publish(publish))) => {
                            if tx.send(publish).is_err() {
                                return;
                            }
                        }
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            shared.update(|s| {
                                s.connections += 1;
                                s.subscribed = false;
                            });
                            for topic in SUBSCRIPTIONS {
                                let _ = client.try_subscribe(topic, QoS::AtLeastOnce);
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            shared.update(|s| s.subscribed = true);
                        }
                        Ok(_) => {}
                        Err(_) => {
                            shared.update(|s| {
                                s.connection_errors += 1;
                                s.subscribed = false;
                            });
                            // The broker is down or restarting: retry soon.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
        };
        let processor = {
            let shared = shared.clone();
            let client = client.clone();
            tokio::spawn(async move {
                while let Some(publish) = rx.recv().await {
                    if let Some(ack) = process(&shared, &publish) {
                        publish_ack(&client, &ack).await;
                    }
                }
            })
        };
        let consumer = Self {
            client,
            shared,
            tasks: vec![driver, processor],
        };
        consumer
            .wait_until(
                "the consumer to connect and subscribe",
                crate::DEFAULT_TIMEOUT,
                |s| s.subscribed,
            )
            .await?;
        Ok(consumer)
    }

    /// Registers the verifying key of a gateway.
    pub fn register_key(
        &self,
        tenant: &str,
        gateway: &str,
        key: VerifyingKey,
    ) -> anyhow::Result<()> {
        let id = (TenantId::new(tenant)?, GatewayId::new(gateway)?);
        self.shared
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, key);
        Ok(())
    }

    /// Switches commit acks on or off. Switching on acks every known gateway at once.
    pub async fn set_acking(&self, on: bool) -> anyhow::Result<()> {
        self.shared.acking.store(on, Ordering::SeqCst);
        if on {
            let acks = self.shared.update(|s| {
                s.gateways
                    .iter_mut()
                    .filter_map(|((t, g), record)| {
                        let (tenant, gateway) = (TenantId::new(t).ok()?, GatewayId::new(g).ok()?);
                        Some(record.commit(&tenant, &gateway))
                    })
                    .collect::<Vec<_>>()
            });
            for ack in acks {
                publish_ack(&self.client, &ack).await;
            }
        }
        Ok(())
    }

    /// A copy of everything recorded.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.state().clone()
    }

    /// Runs `f` on the live state, without copying it.
    pub fn with<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        f(&self.shared.state())
    }

    /// Waits until `check` returns `Some` (re-checked after every recorded event), for at
    /// most `timeout`; the error describes what was awaited and the state.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Snapshot) -> Option<T>,
    ) -> anyhow::Result<T> {
        let mut changes = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            if let Some(value) = check(&self.shared.state()) {
                return Ok(value);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => anyhow::bail!("the consumer stopped while waiting for {what}"),
                Err(_) => anyhow::bail!(
                    "timed out after {timeout:?} waiting for {what}; consumer state: {}",
                    self.shared.state().describe()
                ),
            }
        }
    }

    /// Waits until `check` holds; see [`Consumer::wait_for`].
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Snapshot) -> bool,
    ) -> anyhow::Result<()> {
        self.wait_for(what, timeout, |s| check(s).then_some(()))
            .await
    }

    /// Waits until `count` distinct readings arrived from a gateway.
    pub async fn wait_readings(
        &self,
        tenant: &str,
        gateway: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        self.wait_until(
            &format!("{count} readings from {tenant}/{gateway}"),
            timeout,
            |s| s.reading_count(tenant, gateway) >= count,
        )
        .await
    }

    /// Waits for a health report from a gateway, received after this call, that satisfies
    /// `check`.
    pub async fn wait_health(
        &self,
        tenant: &str,
        gateway: &str,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Health) -> bool,
    ) -> anyhow::Result<Health> {
        let seen = self.with(|s| s.gateway(tenant, gateway).map_or(0, |r| r.health.len()));
        self.wait_for(
            &format!("a health report from {tenant}/{gateway} with {what}"),
            timeout,
            |s| {
                s.gateway(tenant, gateway)?
                    .health
                    .iter()
                    .skip(seen)
                    .rev()
                    .find(|h| check(h))
                    .cloned()
            },
        )
        .await
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- consumer state ----\n{}",
                self.shared.state().describe()
            );
        }
    }
}

async fn publish_ack(client: &AsyncClient, ack: &CommitAck) {
    let topic = Topic::ack(&ack.tenant, &ack.gateway).to_string();
    match ack.encode() {
        Ok(bytes) => {
            // Best effort, like a platform whose broker connection may be down: the agent
            // resends what is not acked and a later ack covers it.
            let _ = client.publish(topic, QoS::AtLeastOnce, false, bytes).await;
        }
        Err(error) => eprintln!("consumer: cannot encode {ack:?}: {error}"),
    }
}

/// Parses, verifies and records one message; returns the ack to send, if any.
fn process(shared: &Shared, publish: &Publish) -> Option<CommitAck> {
    let topic_text = String::from_utf8_lossy(&publish.topic).into_owned();
    let topic = match Topic::parse(&topic_text) {
        Ok(topic) => topic,
        Err(error) => {
            shared.update(|s| {
                s.unattributed_failures
                    .push(format!("{topic_text}: {error}"))
            });
            return None;
        }
    };
    let key = shared
        .keys
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&(topic.tenant.clone(), topic.gateway.clone()))
        .copied();
    let id = (topic.tenant.to_string(), topic.gateway.to_string());
    let verified = key
        .context("no key registered for this gateway")
        .and_then(|key| {
            let opened = Opened::parse(&publish.payload)?;
            Ok(match topic.kind {
                TopicKind::Batch => {
                    let batch = opened.verify_batch(&topic, &key)?;
                    // Authenticated by verify_batch just above.
                    let payload_hash = Sha256::digest(opened.payload_unverified()).into();
                    Message::Batch(batch, payload_hash)
                }
                TopicKind::Health => Message::Health(opened.verify_health(&topic, &key)?),
                _ => anyhow::bail!("unexpected topic kind"),
            })
        });
    let acking = shared.acking.load(Ordering::SeqCst);
    shared.update(|s| {
        let record = s.gateways.entry(id).or_default();
        match verified {
            Err(error) => {
                record.failures.push(format!("{topic_text}: {error:#}"));
                return None;
            }
            Ok(Message::Batch(batch, payload_hash)) => {
                let seq = batch.seq();
                match record.batches.get(&seq) {
                    Some(first) if first.payload_hash == payload_hash => record.duplicates += 1,
                    Some(_) => record.conflicts.push(seq),
                    None => {
                        record.arrival_order.push(seq);
                        record.batches.insert(
                            seq,
                            ReceivedBatch {
                                payload_hash,
                                readings: batch.into_readings(),
                            },
                        );
                    }
                }
            }
            Ok(Message::Health(health)) => {
                for gap in &health.gaps {
                    if !record.gaps.contains(gap) {
                        record.gaps.push(*gap);
                    }
                }
                record.health.push(health);
            }
        }
        if !acking {
            return None;
        }
        record.acks_sent += 1;
        Some(record.commit(&topic.tenant, &topic.gateway))
    })
}

enum Message {
    Batch(beffroi_protocol::Batch, [u8; 32]),
    Health(Health),
}
