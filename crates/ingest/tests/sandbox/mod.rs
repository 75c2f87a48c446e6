//! The test sandbox: a real Mosquitto broker, a SQLite store, one or more ingest instances,
//! gateway publishers and an ack observer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use beffroi_ingest::{Ingest, IngestConfig, IngestError, KeyCacheHandle};
use beffroi_protocol::{
    Batch, CommitAck, Gap, GatewayId, Health, MetricName, Reading, SensorId, Signer, SigningKey,
    TenantId, Timestamp, Topic, Unit, Value,
};
use beffroi_store::{NewGateway, OpenOptions, QuarantineReason, ReadingFilter, Store};
use beffroi_telemetry::{Metrics, SecurityEvents};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The first gateway.
pub const GW1: &str = "gw-1";
/// The second gateway.
pub const GW2: &str = "gw-2";
/// How long any single wait may take.
const WAIT: Duration = Duration::from_secs(10);

pub fn tenant() -> TenantId {
    TenantId::new("lyon").expect("valid tenant")
}

pub fn gw(name: &str) -> GatewayId {
    GatewayId::new(name).expect("valid gateway")
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

/// A batch of `n` readings at `time`.
pub fn batch(gateway: &str, seq: u64, n: usize, time: Timestamp) -> Batch {
    let readings = (0..n)
        .map(|i| Reading {
            sensor: SensorId::new(format!("s-{i}")).expect("valid sensor"),
            metric: MetricName::new("air.pm25").expect("valid metric"),
            unit: Unit::new("ug/m3").expect("valid unit"),
            time,
            value: Value::Number(seq as f64 + i as f64 / 10.0),
        })
        .collect();
    Batch::new(tenant(), gw(gateway), seq, readings).expect("valid batch")
}

/// A health report with `gaps`.
pub fn health(gateway: &str, gaps: Vec<Gap>) -> Health {
    Health {
        tenant: tenant(),
        gateway: gw(gateway),
        time: now(),
        uptime_s: 1,
        agent_version: "test".into(),
        spool_batches: 0,
        spool_bytes: 0,
        oldest_unacked_age_s: None,
        batches_dropped: 0,
        readings_dropped: 0,
        rss_bytes: 0,
        next_seq: 1,
        gaps,
        counters: BTreeMap::new(),
    }
}

/// A Mosquitto process on a free loopback port, killed on drop.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn start() -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_inflight_messages 0\nmax_queued_messages 100000\n"
            ),
        )?;
        let child = Self::spawn(&dir, port)?;
        Ok(Self {
            child,
            port,
            _dir: dir,
        })
    }

    /// Starts the process and waits until it accepts connections.
    fn spawn(dir: &tempfile::TempDir, port: u16) -> anyhow::Result<Child> {
        let mut child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn mosquitto")?;
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if start.elapsed() > WAIT {
                let _ = child.kill();
                bail!("mosquitto did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(child)
    }

    /// Kills the broker (every connection drops) and starts it again on the same port.
    fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        std::thread::sleep(Duration::from_millis(200));
        self.resume()
    }

    /// Kills the broker; [`Mosquitto::resume`] starts it again on the same port.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn resume(&mut self) -> anyhow::Result<()> {
        self.child = Self::spawn(&self._dir, self.port)?;
        Ok(())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One running ingest instance.
pub struct Instance {
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    /// Its key cache, as the platform holds it.
    pub keys: KeyCacheHandle,
    config: IngestConfig,
    task: JoinHandle<Result<(), IngestError>>,
    _events: tokio::sync::mpsc::Receiver<beffroi_store::SecurityEvent>,
}

impl Instance {
    /// Starts an ingest node on `store`.
    fn spawn(config: IngestConfig, store: Arc<dyn Store>) -> Self {
        let metrics = Arc::new(Metrics::default());
        let (events, events_rx) = SecurityEvents::channel(metrics.clone());
        let shutdown = CancellationToken::new();
        let ingest = Ingest::new(config.clone(), store, events, metrics.clone());
        let keys = ingest.key_cache();
        let task = tokio::spawn(ingest.run(shutdown.clone()));
        Self {
            metrics,
            shutdown,
            keys,
            config,
            task,
            _events: events_rx,
        }
    }

    /// Asks the node to stop and waits until it stopped cleanly.
    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .context("ingest did not stop")??
            .map_err(Into::into)
    }
}

/// Acks seen, per gateway.
type Seen = Arc<Mutex<BTreeMap<String, Vec<CommitAck>>>>;

pub struct Sandbox {
    pub store: Arc<dyn Store>,
    pub ingests: Vec<Instance>,
    pub gw1: Signer,
    pub gw2: Signer,
    publisher: AsyncClient,
    acks: Seen,
    tasks: Vec<JoinHandle<()>>,
    _broker: Mosquitto,
    _dir: tempfile::TempDir,
}

impl Sandbox {
    /// A sandbox with `instances` ingest nodes sharing the subscription.
    pub async fn start(instances: usize) -> anyhow::Result<Self> {
        Self::start_with(instances, |_| {}).await
    }

    /// The same, adjusting each node's configuration.
    pub async fn start_with(
        instances: usize,
        adjust: impl Fn(&mut IngestConfig),
    ) -> anyhow::Result<Self> {
        let broker = Mosquitto::start()?;
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display());
        let store = beffroi_store::open(&url, OpenOptions::default()).await?;
        store.create_tenant(&tenant(), "Lyon").await?;
        let gw1 = Signer::new(SigningKey::from_bytes(&[1; 32]));
        let gw2 = Signer::new(SigningKey::from_bytes(&[2; 32]));
        for (name, signer) in [(GW1, &gw1), (GW2, &gw2)] {
            store
                .register_gateway(&NewGateway {
                    tenant: tenant(),
                    id: gw(name),
                    key_id: signer.key_id().clone(),
                    public_key: signer.verifying_key().to_bytes(),
                    cert_fingerprint: None,
                    cert_not_after: None,
                })
                .await?;
        }
        let mut ingests = Vec::new();
        for i in 0..instances {
            let mut config = IngestConfig {
                broker_port: broker.port,
                client_id: format!("ingest-{i}"),
                ..IngestConfig::default()
            };
            adjust(&mut config);
            ingests.push(Instance::spawn(config, store.clone()));
        }
        let acks: Seen = Arc::default();
        let (publisher, publisher_task) = client(broker.port, "publisher", None, acks.clone());
        let (_observer, observer_task) = client(
            broker.port,
            "observer",
            Some("beffroi/v1/+/+/ack"),
            acks.clone(),
        );
        let sandbox = Self {
            store,
            ingests,
            gw1,
            gw2,
            publisher,
            acks,
            tasks: vec![publisher_task, observer_task],
            _broker: broker,
            _dir: dir,
        };
        sandbox.wait_ready().await?;
        Ok(sandbox)
    }

    /// Kills the broker and starts it again on the same port.
    pub async fn restart_broker(&mut self) -> anyhow::Result<()> {
        self._broker.restart()?;
        self.wait_ready().await
    }

    /// Kills the broker (until [`Sandbox::resume_broker`]).
    pub fn kill_broker(&mut self) {
        self._broker.kill();
    }

    /// Starts the killed broker again on the same port.
    pub async fn resume_broker(&mut self) -> anyhow::Result<()> {
        self._broker.resume()?;
        self.wait_ready().await
    }

    /// Stops ingest node `i` and starts a new one with the same configuration on the same
    /// store: whatever the old node only kept in memory is gone.
    pub async fn restart_ingest(&mut self, i: usize) -> anyhow::Result<()> {
        let old = self.ingests.remove(i);
        let config = old.config.clone();
        old.stop().await?;
        self.ingests
            .insert(i, Instance::spawn(config, self.store.clone()));
        self.wait_ready().await
    }

    /// Sends health reports until every instance has recorded one more (all are subscribed)
    /// and the observer is subscribed.
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let before: Vec<u64> = self
            .ingests
            .iter()
            .map(|i| i.metrics.ingest_health.get())
            .collect();
        let start = Instant::now();
        loop {
            let (topic, envelope) = self.gw2.seal_health(&health(GW2, Vec::new()))?;
            self.publish(&topic, envelope).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let ready = self
                .ingests
                .iter()
                .zip(&before)
                .all(|(i, &b)| i.metrics.ingest_health.get() > b);
            if ready {
                // The observer subscribed before the publisher's first message was sent; a
                // short pause lets its SUBACK land.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Ok(());
            }
            if start.elapsed() > WAIT {
                bail!("ingest did not become ready");
            }
        }
    }

    pub async fn publish(&self, topic: &Topic, envelope: Vec<u8>) -> anyhow::Result<()> {
        self.publisher
            .publish(topic.to_string(), QoS::AtLeastOnce, false, envelope)
            .await?;
        Ok(())
    }

    pub async fn publish_batch(&self, signer: &Signer, batch: &Batch) -> anyhow::Result<()> {
        let topic = Topic::batch(batch.tenant(), batch.gateway());
        let envelope = signer.seal(&topic, batch.encode())?;
        self.publish(&topic, envelope).await
    }

    /// Publishes `batch` signed at `signed_at`, or with no signed time at all (as agents
    /// before the signed time sealed) when `None`; `key` must be `signer`'s key.
    pub async fn publish_batch_signed_at(
        &self,
        signer: &Signer,
        key: &SigningKey,
        batch: &Batch,
        signed_at: Option<Timestamp>,
    ) -> anyhow::Result<()> {
        let topic = Topic::batch(batch.tenant(), batch.gateway());
        let envelope = match signed_at {
            Some(at) => signer.seal_at(&topic, batch.encode(), at)?,
            None => seal_without_time(signer, key, &topic, batch.encode())?,
        };
        self.publish(&topic, envelope).await
    }

    /// Waits for an ack of `gateway` matching `accept`.
    pub async fn wait_ack(
        &self,
        gateway: &str,
        accept: impl Fn(&CommitAck) -> bool,
    ) -> anyhow::Result<CommitAck> {
        let start = Instant::now();
        loop {
            let found = self
                .acks
                .lock()
                .expect("ack lock")
                .get(gateway)
                .and_then(|acks| acks.iter().rev().find(|a| accept(a)).cloned());
            if let Some(ack) = found {
                return Ok(ack);
            }
            if start.elapsed() > WAIT {
                let seen = self.acks.lock().expect("ack lock").get(gateway).cloned();
                bail!("no matching ack for {gateway}; seen {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn ack_count(&self, gateway: &str) -> usize {
        self.acks
            .lock()
            .expect("ack lock")
            .get(gateway)
            .map_or(0, Vec::len)
    }

    /// Whether some ack of `gateway` covers `seq`.
    pub fn acked(&self, gateway: &str, seq: u64) -> bool {
        self.acks
            .lock()
            .expect("ack lock")
            .get(gateway)
            .is_some_and(|acks| acks.iter().any(|a| a.covers(seq)))
    }

    pub async fn wait_until(&self, what: &str, done: impl Fn() -> bool) -> anyhow::Result<()> {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > WAIT {
                bail!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Waits until instance `i` counted `count` rejections for `reason`.
    pub async fn wait_rejected(
        &self,
        i: usize,
        reason: QuarantineReason,
        count: u64,
    ) -> anyhow::Result<()> {
        let metrics = &self.ingests[i].metrics;
        self.wait_until(&format!("{count} × {}", reason.as_str()), || {
            metrics.ingest_rejected.get(reason.as_str()) >= count
        })
        .await?;
        assert_eq!(metrics.ingest_rejected.get(reason.as_str()), count);
        Ok(())
    }

    /// Quarantine records of `gateway` for `reason`.
    pub async fn quarantined(
        &self,
        gateway: &str,
        reason: QuarantineReason,
    ) -> anyhow::Result<usize> {
        let page = self.store.list_quarantine(&tenant(), 1000, 0).await?;
        Ok(page
            .items
            .iter()
            .filter(|r| {
                r.reason == reason && r.gateway.as_ref().map(GatewayId::as_str) == Some(gateway)
            })
            .count())
    }

    pub async fn wait_quarantined(
        &self,
        gateway: &str,
        reason: QuarantineReason,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        while self.quarantined(gateway, reason).await? == 0 {
            if start.elapsed() > WAIT {
                bail!("no {} quarantine record for {gateway}", reason.as_str());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Readings stored from `gateway`.
    pub async fn readings(&self, gateway: &str) -> anyhow::Result<usize> {
        let filter = ReadingFilter {
            tenant: tenant(),
            sensors: Vec::new(),
            metrics: Vec::new(),
            zone: None,
            from: Timestamp::from_unix_micros(0),
            to: Timestamp::from_unix_micros(i64::MAX / 2),
        };
        let page = self.store.readings(&filter, 100_000, None).await?;
        let stored: BTreeSet<(u64, String)> = page
            .readings
            .iter()
            .filter(|r| r.gateway.as_str() == gateway)
            .map(|r| (r.seq, r.sensor.to_string()))
            .collect();
        let count = page
            .readings
            .iter()
            .filter(|r| r.gateway.as_str() == gateway)
            .count();
        assert_eq!(stored.len(), count, "a reading is stored twice");
        Ok(count)
    }

    /// Stops every instance (each must stop cleanly) and the clients.
    pub async fn stop(self) -> anyhow::Result<()> {
        for instance in self.ingests {
            instance.stop().await?;
        }
        for task in self.tasks {
            task.abort();
        }
        Ok(())
    }
}

/// An envelope whose protected header holds only `alg` and `kid`.
fn seal_without_time(
    signer: &Signer,
    key: &SigningKey,
    topic: &Topic,
    payload: Vec<u8>,
) -> anyhow::Result<Vec<u8>> {
    use coset::{iana, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};
    use ed25519_dalek::Signer as _;
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(signer.key_id().as_str().as_bytes().to_vec())
        .build();
    CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(topic.to_string().as_bytes(), |tbs| {
            key.sign(tbs).to_bytes().to_vec()
        })
        .build()
        .to_tagged_vec()
        .map_err(|e| anyhow::anyhow!("seal: {e}"))
}

/// An MQTT client driven by its own task; with `filter`, it records the acks it receives.
fn client(port: u16, id: &str, filter: Option<&str>, acks: Seen) -> (AsyncClient, JoinHandle<()>) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(10))
        .set_max_packet_size(Some(1 << 20));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let filter = filter.map(|f| Filter::new(f, QoS::AtLeastOnce));
    let subscriber = client.clone();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(filter) = filter.clone() {
                        let subscriber = subscriber.clone();
                        tokio::spawn(async move { subscriber.subscribe_many([filter]).await });
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if let Ok(ack) = CommitAck::decode(&publish.payload) {
                        acks.lock()
                            .expect("ack lock")
                            .entry(ack.gateway.to_string())
                            .or_default()
                            .push(ack);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    (client, task)
}
