//! The uplink state machine against a scripted network: the test plays the platform, and can
//! refuse connections, drop them, or stay silent, with paused time for the timeouts.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beffroi_agent::telemetry::{Counter, Telemetry};
use beffroi_agent::uplink::{Connector, Inbound, Link, TransportError, Uplink, UplinkTiming};
use beffroi_protocol::{CommitAck, GatewayId, TenantId, Topic, TopicKind};
use beffroi_spool::{Spool, SpoolConfig};
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

/// What the fake platform sees.
#[derive(Debug)]
enum Seen {
    Connected,
    Published(Topic, Vec<u8>),
}

/// A connector whose outcomes the test scripts: `false` refuses a connection.
struct ScriptedConnector {
    outcomes: Arc<Mutex<VecDeque<bool>>>,
    seen: mpsc::UnboundedSender<Seen>,
    /// The test sends inbound messages (acks) or `None` to cut the current connection.
    inbound: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Option<Vec<u8>>>>>,
    /// Bumped by the test to play a certificate renewal.
    credentials: watch::Receiver<u32>,
}

struct ScriptedLink {
    seen: mpsc::UnboundedSender<Seen>,
    inbound: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Option<Vec<u8>>>>>,
}

impl Connector for ScriptedConnector {
    type Link = ScriptedLink;

    async fn connect(&mut self) -> Result<ScriptedLink, TransportError> {
        let accept = self.outcomes.lock().unwrap().pop_front().unwrap_or(true);
        self.credentials.mark_unchanged();
        if !accept {
            return Err(TransportError::Connection("refused by the script".into()));
        }
        self.seen.send(Seen::Connected).unwrap();
        Ok(ScriptedLink {
            seen: self.seen.clone(),
            inbound: self.inbound.clone(),
        })
    }

    fn credentials_changed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut credentials = self.credentials.clone();
        async move {
            let _ = credentials.changed().await;
        }
    }
}

impl Link for ScriptedLink {
    fn publish(&mut self, topic: &Topic, payload: Vec<u8>) -> Result<(), TransportError> {
        self.seen
            .send(Seen::Published(topic.clone(), payload))
            .map_err(|_| TransportError::Connection("test ended".into()))
    }

    async fn next(&mut self) -> Result<Inbound, TransportError> {
        match self.inbound.lock().await.recv().await {
            Some(Some(bytes)) => Ok(Inbound::Ack(bytes)),
            Some(None) => Err(TransportError::Connection("cut by the script".into())),
            None => std::future::pending().await,
        }
    }

    async fn close(self) {}
}

struct Harness {
    spool: Arc<Mutex<Spool>>,
    telemetry: Arc<Telemetry>,
    sealed: Arc<Notify>,
    seen: mpsc::UnboundedReceiver<Seen>,
    inbound: mpsc::UnboundedSender<Option<Vec<u8>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    credentials: watch::Sender<u32>,
    _health: watch::Sender<Option<Vec<u8>>>,
    _dir: tempfile::TempDir,
}

fn tenant() -> TenantId {
    TenantId::new("lyon").unwrap()
}

fn gateway() -> GatewayId {
    GatewayId::new("gw-1").unwrap()
}

const TIMING: UplinkTiming = UplinkTiming {
    connect_timeout: Duration::from_secs(5),
    backoff_initial: Duration::from_millis(100),
    backoff_max: Duration::from_secs(2),
    ack_timeout: Duration::from_secs(30),
    max_in_flight: 4,
};

fn start(timing: UplinkTiming, outcomes: &[bool], batches: usize) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    for i in 0..batches {
        let seq = spool.allocate_seq().unwrap();
        spool
            .append(seq, 1, format!("batch {i}").as_bytes())
            .unwrap();
    }
    let spool = Arc::new(Mutex::new(spool));
    let telemetry = Arc::new(Telemetry::default());
    let sealed = Arc::new(Notify::new());
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let (inbound, inbound_rx) = mpsc::unbounded_channel();
    let (credentials, credentials_rx) = watch::channel(0);
    let connector = ScriptedConnector {
        outcomes: Arc::new(Mutex::new(outcomes.iter().copied().collect())),
        seen: seen_tx,
        inbound: Arc::new(tokio::sync::Mutex::new(inbound_rx)),
        credentials: credentials_rx,
    };
    let (health, health_rx) = watch::channel(None);
    let stop = CancellationToken::new();
    let uplink = Uplink::new(
        connector,
        timing,
        tenant(),
        gateway(),
        spool.clone(),
        telemetry.clone(),
        sealed.clone(),
        health_rx,
    );
    let task = tokio::spawn(uplink.run(stop.clone()));
    Harness {
        spool,
        telemetry,
        sealed,
        seen,
        inbound,
        stop,
        task,
        credentials,
        _health: health,
        _dir: dir,
    }
}

impl Harness {
    async fn next_seen(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(60), self.seen.recv())
            .await
            .expect("the uplink did nothing for 60 s")
            .expect("uplink gone")
    }

    async fn expect_connect(&mut self) {
        assert!(matches!(self.next_seen().await, Seen::Connected));
    }

    /// The payloads of the next `n` publishes, which must be batches.
    async fn expect_batches(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            match self.next_seen().await {
                Seen::Published(topic, payload) => {
                    assert_eq!(topic.kind, TopicKind::Batch);
                    out.push(String::from_utf8(payload).unwrap());
                }
                other => panic!("expected a publish, got {other:?}"),
            }
        }
        out
    }

    fn ack(&self, contiguous: u64, above: &[u64]) {
        let ack = CommitAck {
            tenant: tenant(),
            gateway: gateway(),
            contiguous,
            above: above.to_vec(),
        };
        self.inbound.send(Some(ack.encode().unwrap())).unwrap();
    }

    fn spooled(&self) -> Vec<u64> {
        self.spool
            .lock()
            .unwrap()
            .unacked()
            .map(|r| r.seq)
            .collect()
    }

    async fn settle(&self) {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("uplink did not stop")
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn delivers_in_order_and_deletes_only_on_commit_ack() {
    let mut h = start(TIMING, &[], 6);
    h.expect_connect().await;
    assert_eq!(
        h.expect_batches(4).await,
        ["batch 0", "batch 1", "batch 2", "batch 3"],
        "window of 4, oldest first"
    );
    h.settle().await;
    assert_eq!(
        h.spooled(),
        [1, 2, 3, 4, 5, 6],
        "nothing leaves before an ack"
    );

    h.ack(2, &[4]);
    assert_eq!(h.expect_batches(2).await, ["batch 4", "batch 5"]);
    assert_eq!(h.spooled(), [3, 5, 6]);
    assert_eq!(h.telemetry.get(Counter::BatchesAcked), 3);

    h.ack(6, &[]);
    h.settle().await;
    assert!(h.spooled().is_empty());
    assert_eq!(h.telemetry.get(Counter::BatchesSent), 6);
    assert_eq!(h.telemetry.get(Counter::BatchesResent), 0);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn resends_everything_unacked_after_a_reconnect() {
    let mut h = start(TIMING, &[true, false, false, true], 3);
    h.expect_connect().await;
    h.expect_batches(3).await;
    h.ack(1, &[]);
    h.settle().await;
    h.inbound.send(None).unwrap();
    // Two refused attempts, then a connection: batches 2 and 3 again, not 1.
    h.expect_connect().await;
    assert_eq!(h.expect_batches(2).await, ["batch 1", "batch 2"]);
    assert_eq!(h.telemetry.get(Counter::BatchesResent), 2);
    assert_eq!(h.telemetry.get(Counter::ConnectFailures), 2);
    assert_eq!(h.telemetry.get(Counter::Disconnects), 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn resends_after_ack_timeout_on_the_same_connection() {
    let mut h = start(TIMING, &[], 1);
    h.expect_connect().await;
    h.expect_batches(1).await;
    // Nobody acks: after ack_timeout the batch goes out again, without reconnecting.
    assert_eq!(h.expect_batches(1).await, ["batch 0"]);
    assert_eq!(h.telemetry.get(Counter::BatchesResent), 1);
    assert_eq!(h.telemetry.get(Counter::Connects), 1);
    h.ack(1, &[]);
    h.settle().await;
    assert!(h.spooled().is_empty());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn new_batches_are_sent_when_sealed() {
    let mut h = start(TIMING, &[], 0);
    h.expect_connect().await;
    {
        let mut spool = h.spool.lock().unwrap();
        let seq = spool.allocate_seq().unwrap();
        spool.append(seq, 1, b"late batch").unwrap();
    }
    h.sealed.notify_one();
    assert_eq!(h.expect_batches(1).await, ["late batch"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn rejects_foreign_and_malformed_acks() {
    let mut h = start(TIMING, &[], 2);
    h.expect_connect().await;
    h.expect_batches(2).await;
    let foreign = CommitAck {
        tenant: tenant(),
        gateway: GatewayId::new("gw-other").unwrap(),
        contiguous: 2,
        above: vec![],
    };
    h.inbound.send(Some(foreign.encode().unwrap())).unwrap();
    h.inbound.send(Some(b"\xff\x00 not cbor".to_vec())).unwrap();
    h.settle().await;
    assert_eq!(h.telemetry.get(Counter::AcksRejected), 2);
    assert_eq!(
        h.spooled(),
        [1, 2],
        "a foreign or malformed ack deletes nothing"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn dead_network_keeps_everything_and_stops_promptly() {
    let mut h = start(TIMING, &[false; 50], 3);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let failures = h.telemetry.get(Counter::ConnectFailures);
    // Backoff from 100 ms doubling to 2 s: about a dozen attempts in 20 s, not hundreds.
    assert!((5..=25).contains(&failures), "{failures} attempts");
    assert_eq!(h.spooled(), [1, 2, 3]);
    assert!(h.seen.try_recv().is_err(), "nothing was published");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn renewed_credentials_replace_the_connection_without_losing_batches() {
    let mut h = start(TIMING, &[], 3);
    h.expect_connect().await;
    h.expect_batches(3).await;
    h.ack(1, &[]);
    h.settle().await;
    h.credentials.send_modify(|generation| *generation += 1);
    // At once (no backoff): a new connection, and what was not acked goes out on it.
    h.expect_connect().await;
    assert_eq!(h.expect_batches(2).await, ["batch 1", "batch 2"]);
    assert_eq!(h.telemetry.get(Counter::CredentialReconnects), 1);
    assert_eq!(h.telemetry.get(Counter::Disconnects), 0);
    h.ack(3, &[]);
    h.settle().await;
    assert!(h.spooled().is_empty());
    // The new connection is kept until the next renewal.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.telemetry.get(Counter::Connects), 2);
    h.stop().await;
}
