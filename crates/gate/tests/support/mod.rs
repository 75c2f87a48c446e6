//! Test support: a throwaway PKI, a real Mosquitto broker, the gate, and MQTT clients.

pub mod broker;
pub mod clients;
pub mod mqtt;
pub mod pki;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beffroi_gate::{serve, server_tls_config, GateConfig, Revocations};
use beffroi_store::{SecurityEvent, SecurityEventKind};
use beffroi_telemetry::{Metrics, SecurityEvents};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::broker::Mosquitto;
use self::pki::Pki;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// A running gate in front of a real Mosquitto.
pub struct Harness {
    pub pki: Pki,
    pub broker: Mosquitto,
    pub gate: SocketAddr,
    pub revocations: Revocations,
    pub metrics: Arc<Metrics>,
    pub events: mpsc::Receiver<SecurityEvent>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Harness {
    /// Starts Mosquitto and the gate; `tune` adjusts the gate configuration.
    pub async fn start(tune: impl FnOnce(&mut GateConfig)) -> Self {
        let pki = Pki::new();
        let broker = Mosquitto::start().await;
        let mut config = GateConfig::new(broker.address());
        tune(&mut config);
        config.validate().unwrap();
        let tls = server_tls_config(
            pki.ca_pem.as_bytes(),
            pki.server_cert_pem.as_bytes(),
            pki.server_key_pem.as_bytes(),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gate = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        let (events_tx, events) = SecurityEvents::channel(metrics.clone());
        let revocations = Revocations::new();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            listener,
            tls,
            config,
            revocations.clone(),
            events_tx,
            metrics.clone(),
            shutdown.clone(),
        ));
        Self {
            pki,
            broker,
            gate,
            revocations,
            metrics,
            events,
            shutdown,
            task,
        }
    }

    /// Waits for a security event of `kind` whose detail contains `detail`, skipping others.
    pub async fn expect_event(&mut self, kind: SecurityEventKind, detail: &str) -> SecurityEvent {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) if event.kind == kind && event.detail.contains(detail) => {
                    return event
                }
                Ok(Some(event)) => seen.push(event),
                _ => panic!("no {kind:?} event with {detail:?}; seen: {seen:#?}"),
            }
        }
    }

    /// The `gate_refused` count for `reason`.
    pub fn refused(&self, reason: &str) -> u64 {
        self.metrics.gate_refused.get(reason)
    }
}
