//! The running platform: store, CA, broker, gate, ingest and HTTP API, started in order and
//! stopped in order.
//!
//! ```text
//! start: PKI (CA + gate certificate + audit key) → store → broker → live hub, alerts and the
//!        fan-out after commit → security-event writer → audit checkpointer → retention task
//!        → ingest → gate → enrollment endpoint → API (with the dashboard)
//! stop (deadline 5 s): retention task stops (a purge batch in flight rolls back with its
//!                      receipt) → enrollment endpoint stops (requests in flight finish)
//!                      → gate stops accepting and closes clients → ingest drains
//!                      and commits → live views closed (1001) → HTTP stops → last audit
//!                      checkpoint round →
//!                      security events flushed → fan-out drained → alerts apply what they
//!                      were handed
//! ```
//! Tests and the demo call [`start`] with port 0 listeners and stop with [`Running::stop`];
//! `main` does the same with the configured ports and a signal.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beffroi_alerts::Alerts;
use beffroi_api::enrollment::EnrollmentSettings;
use beffroi_gate::{Fingerprint, GateConfig, Revocations};
use beffroi_ingest::{Ingest, IngestConfig};
use beffroi_live::Hub;
use beffroi_protocol::{GatewayId, TenantId};
use beffroi_store::Store;
use beffroi_telemetry::{Metrics, SecurityEvents};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::audit::Checkpointer;
use crate::config::{BrokerMode, PlatformConfig};
use crate::cutoff::Cutoff;
use crate::enroll::{EnrollState, GateEndpoint};
use crate::node_pki::NodePki;
use crate::pki::Ca;

/// The platform CA's common name.
pub const CA_NAME: &str = "Beffroi platform CA";
/// Longest an ordered shutdown may take.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// Longest the shutdown waits for live views to send their close frames (a healthy client
/// takes milliseconds; one that does not read is dropped).
const LIVE_CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How often the revoked set is reloaded from the store (revocations made by another
/// process, e.g. the admin CLI): the gate cuts such a gateway within a second.
const REVOCATION_REFRESH: Duration = Duration::from_millis(500);

/// Why the platform could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] beffroi_store::Error),
    /// The key-encryption key of the pseudonym keys could not be loaded or created.
    #[error("{0}")]
    Kek(#[from] crate::kek::KekFileError),
    /// The CA, the gate certificate or the audit key could not be set up.
    #[error("{0}")]
    Pki(#[from] crate::node_pki::NodePkiError),
    /// The enrollment pin could not be computed from the gate certificate.
    #[error("PKI: {0}")]
    Pin(#[from] crate::pki::PkiError),
    /// The gate's TLS configuration failed.
    #[error("gate: {0}")]
    Gate(#[from] beffroi_gate::Error),
    /// The embedded broker did not start.
    #[error("broker: {0}")]
    Broker(#[from] crate::broker::BrokerError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The ingest configuration is invalid.
    #[error("ingest: {0}")]
    Ingest(#[from] beffroi_ingest::IngestError),
    /// The external broker's address could not be resolved.
    #[error("{0}")]
    BrokerAddress(#[from] crate::config::ConfigError),
}

/// A started platform.
pub struct Running {
    /// Where the gate accepts gateways.
    pub gate_addr: SocketAddr,
    /// Where the HTTP API listens.
    pub api_addr: SocketAddr,
    /// Where the enrollment endpoint listens (HTTPS); `None` when disabled.
    pub enroll_addr: Option<SocketAddr>,
    /// The enrollment pin: SHA-256 (hex) of the gate certificate, which the enrollment
    /// endpoint serves.
    pub enroll_pin: String,
    /// The MQTT v5 broker address (loopback) the ingest uses.
    pub broker_v5: SocketAddr,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The platform CA.
    pub ca: Arc<Ca>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The revoked-certificate set the gate checks.
    pub revocations: Revocations,
    /// Live views.
    pub live: Hub,
    /// The alert engine's handle (tell it when rules change behind the API's back).
    pub alerts: Alerts,
    ready: Arc<AtomicBool>,
    stop_gate: CancellationToken,
    stop_ingest: CancellationToken,
    stop_api: CancellationToken,
    stop_enroll: CancellationToken,
    enroll: Option<JoinHandle<()>>,
    gate: JoinHandle<()>,
    ingest: JoinHandle<Result<(), beffroi_ingest::IngestError>>,
    api: JoinHandle<std::io::Result<()>>,
    events_writer: JoinHandle<()>,
    revocation_refresher: JoinHandle<()>,
    fanout: JoinHandle<()>,
    stop_background: CancellationToken,
    alert_task: JoinHandle<()>,
    relay: Option<JoinHandle<()>>,
    hub_maintenance: JoinHandle<()>,
    stop_checkpointer: CancellationToken,
    checkpointer: JoinHandle<()>,
    stop_retention: CancellationToken,
    retention: JoinHandle<()>,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Starts every part; listeners on port 0 get a free port (see the returned addresses).
pub async fn start(config: PlatformConfig) -> Result<Running, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    // The PKI first: a provisioned directory missing a file is refused before anything opens.
    let NodePki {
        ca,
        gate_cert,
        gate_key,
        audit_key,
    } = crate::node_pki::load(&config)?;
    let ca = Arc::new(ca);
    let store = beffroi_store::open(&config.database, crate::kek::store_options(&config)?).await?;
    tracing::info!(backend = ?store.backend(), "store open");

    let tls = beffroi_gate::server_tls_config(
        ca.cert_pem().as_bytes(),
        gate_cert.as_bytes(),
        gate_key.as_bytes(),
    )?;
    let enroll_tls = beffroi_gate::enrollment_tls_config(
        ca.cert_pem().as_bytes(),
        gate_cert.as_bytes(),
        gate_key.as_bytes(),
    )?;
    let enroll_pin = crate::enroll::pin_of(&gate_cert)?;
    let audit_key = Arc::new(audit_key);
    tracing::info!(key_id = %audit_key.key_id(), "audit signing key loaded");

    if let BrokerMode::Embedded(settings) = &config.broker {
        crate::broker::start(settings)?;
    }
    let (broker_v5, broker_v4) = config.broker.resolve().await?;

    // Names this node in its MQTT client ids, its cluster relay topic and the alert lease.
    let node = crate::cluster::node_name();
    let clustered = matches!(config.broker, BrokerMode::External { .. });
    let metrics = Arc::new(Metrics::default());
    let live = Hub::new(config.live.clone(), store.clone(), metrics.clone());
    let (alerts, alert_task) = Alerts::new(store.clone(), live.clone(), metrics.clone());
    // Governed reads and pooled alarm rules decide against the same agreements and clock.
    let agreements = beffroi_api::governed::AgreementCache::new(store.clone());
    let clock = beffroi_api::clock::Clock::system();
    let alert_task = alert_task.pooling(Arc::new(beffroi_api::governed::PoolAlarms::new(
        store.clone(),
        agreements.clone(),
        clock.clone(),
    )));
    let (ingest_events, _) = broadcast::channel(crate::fanout::INGEST_EVENTS);
    let (security_events, _) = broadcast::channel(crate::fanout::SECURITY_EVENTS);
    let fanout = tokio::spawn(crate::fanout::run(
        ingest_events.subscribe(),
        security_events.subscribe(),
        live.clone(),
        alerts.clone(),
        metrics.clone(),
    ));
    let stop_background = CancellationToken::new();
    // With an external broker, other nodes may share the database: the one holding the lease
    // runs the alert engine, and every node relays what it commits to the others.
    let alert_task = if clustered {
        alert_task.leased(node.clone())
    } else {
        alert_task
    };
    let alert_task = tokio::spawn(alert_task.run(stop_background.clone()));
    let relay = clustered.then(|| {
        crate::cluster::spawn(
            crate::cluster::RelayParts {
                node: node.clone(),
                broker: broker_v5,
                ingest: ingest_events.subscribe(),
                security: security_events.subscribe(),
                hub: live.clone(),
                alerts: alerts.clone(),
                metrics: metrics.clone(),
            },
            stop_background.clone(),
        )
    });
    let hub_maintenance = tokio::spawn(live.clone().maintain(stop_background.clone()));

    let (events, events_rx) = SecurityEvents::channel(metrics.clone());
    let events_writer = tokio::spawn(SecurityEvents::write_to(
        store.clone(),
        events_rx,
        Some(security_events),
    ));

    let stop_checkpointer = CancellationToken::new();
    let checkpointer = tokio::spawn(
        Checkpointer::new(
            store.clone(),
            audit_key.clone(),
            metrics.clone(),
            Some(events.clone()),
        )
        .run(config.audit_checkpoint_interval, stop_checkpointer.clone()),
    );

    let stop_retention = CancellationToken::new();
    let retention = tokio::spawn(
        crate::retention::Retention::new(store.clone(), metrics.clone(), config.retention.max_raw)
            .run(config.retention.interval, stop_retention.clone()),
    );

    let revocations = Revocations::new();
    refresh_revocations(store.as_ref(), &revocations).await?;

    let ingest_config = IngestConfig {
        broker_host: broker_v5.ip().to_string(),
        broker_port: broker_v5.port(),
        client_id: format!("beffroi-ingest-{node}"),
        max_future_skew: config.ingest.max_future_skew,
        max_age: config.ingest.max_age,
        commit_interval: config.ingest.commit_interval,
        commit_max_readings: config.ingest.commit_max_readings,
        commit_lanes: config.ingest.commit_lanes,
        ..IngestConfig::default()
    };
    ingest_config.validate()?;
    let stop_ingest = CancellationToken::new();
    let ingest = Ingest::new(
        ingest_config,
        store.clone(),
        events.clone(),
        metrics.clone(),
    )
    .with_events(ingest_events);
    let cutoff = Cutoff::new(revocations.clone(), ingest.key_cache());
    let ingest = tokio::spawn(ingest.run(stop_ingest.clone()));
    let revocation_refresher = tokio::spawn(keep_revocations_fresh(
        store.clone(),
        revocations.clone(),
        cutoff.clone(),
    ));

    let gate_listener = bind(config.gate.listen).await?;
    let gate_addr = local_addr(&gate_listener, config.gate.listen);
    let gate_config = GateConfig {
        upstream: broker_v5,
        upstream_v311: Some(broker_v4),
        handshake_timeout: config.gate.handshake_timeout,
        max_connections_per_address: config.gate.max_connections_per_address,
        max_connections_per_tenant: config.gate.max_connections_per_tenant,
        max_packet_bytes: config.gate.max_packet_bytes,
        ..GateConfig::default()
    };
    let stop_gate = CancellationToken::new();
    let gate = tokio::spawn(beffroi_gate::serve(
        gate_listener,
        tls,
        gate_config,
        revocations.clone(),
        events.clone(),
        metrics.clone(),
        stop_gate.clone(),
    ));

    let stop_enroll = CancellationToken::new();
    let (enroll, enroll_addr) = match config.enroll.listen {
        Some(listen) => {
            let listener = bind(listen).await?;
            let addr = local_addr(&listener, listen);
            let router = crate::enroll::router(EnrollState {
                store: store.clone(),
                ca: ca.clone(),
                certificate_lifetime: config.certificate_lifetime,
                gate: GateEndpoint {
                    names: config.gate.names.clone(),
                    port: gate_addr.port(),
                },
                metrics: metrics.clone(),
                events,
                revocations: revocations.clone(),
                cutoff: cutoff.clone(),
            });
            let task = tokio::spawn(crate::enroll::serve(
                listener,
                enroll_tls,
                router,
                stop_enroll.clone(),
            ));
            (Some(task), Some(addr))
        }
        None => (None, None),
    };

    let ready = Arc::new(AtomicBool::new(true));
    let api_listener = bind(config.api_listen).await?;
    let api_addr = local_addr(&api_listener, config.api_listen);
    let router = beffroi_api::router(beffroi_api::ApiState {
        store: store.clone(),
        metrics: metrics.clone(),
        ready: ready.clone(),
        live: live.clone(),
        alerts: alerts.clone(),
        dashboard: Arc::new(config.dashboard.clone()),
        audit_keys: Arc::new(audit_key.keys().clone()),
        clock,
        agreements,
        enrollment: Arc::new(EnrollmentSettings {
            pin: enroll_pin.clone(),
            default_ttl: config.enroll.token_ttl,
            public_url: config.enroll.public_url.clone(),
        }),
        revocation: Arc::new(cutoff),
    });
    let stop_api = CancellationToken::new();
    let api = tokio::spawn(beffroi_api::serve(api_listener, router, stop_api.clone()));
    tracing::info!(%node, %gate_addr, %api_addr, ?enroll_addr, %broker_v5, "platform started");

    Ok(Running {
        gate_addr,
        api_addr,
        enroll_addr,
        enroll_pin,
        broker_v5,
        store,
        ca,
        metrics,
        revocations,
        live,
        alerts,
        ready,
        stop_gate,
        stop_ingest,
        stop_api,
        stop_enroll,
        enroll,
        gate,
        ingest,
        api,
        events_writer,
        revocation_refresher,
        fanout,
        stop_background,
        alert_task,
        relay,
        hub_maintenance,
        stop_checkpointer,
        checkpointer,
        stop_retention,
        retention,
    })
}

fn local_addr(listener: &TcpListener, fallback: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(fallback)
}

/// Loads the revoked sets into `revocations` (cutting what they cover); returns the revoked
/// gateways.
async fn refresh_revocations(
    store: &dyn Store,
    revocations: &Revocations,
) -> Result<HashSet<(TenantId, GatewayId)>, beffroi_store::Error> {
    let revoked = store.revoked_gateways().await?;
    let gateways: HashSet<_> = revoked
        .iter()
        .map(|r| (r.tenant.clone(), r.gateway.clone()))
        .collect();
    revocations.replace(
        revoked
            .iter()
            .filter_map(|r| Fingerprint::parse(r.cert_fingerprint.as_deref()?).ok()),
        gateways.iter().cloned(),
    );
    Ok(gateways)
}

/// Reloads the revoked sets every [`REVOCATION_REFRESH`]; a gateway revoked since the last
/// round (by another process) also loses its keys from the ingest's cache.
async fn keep_revocations_fresh(store: Arc<dyn Store>, revocations: Revocations, cutoff: Cutoff) {
    let mut known: Option<HashSet<(TenantId, GatewayId)>> = None;
    let mut ticker = tokio::time::interval(REVOCATION_REFRESH);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match refresh_revocations(store.as_ref(), &revocations).await {
            Ok(revoked) => {
                if let Some(known) = &known {
                    for (tenant, gateway) in revoked.difference(known) {
                        cutoff.keys_changed(tenant, gateway);
                    }
                }
                known = Some(revoked);
            }
            Err(error) => tracing::warn!(%error, "cannot reload revoked certificates"),
        }
    }
}

impl Running {
    /// Stops in order within [`SHUTDOWN_DEADLINE`]: gate, then ingest (drained and committed),
    /// then HTTP. Returns whether everything stopped in time.
    pub async fn stop(self) -> bool {
        let ordered = async {
            self.ready.store(false, Ordering::SeqCst);
            // A purge batch in flight is dropped: its delete and receipt roll back together.
            self.stop_retention.cancel();
            let _ = self.retention.await;
            self.stop_enroll.cancel();
            if let Some(enroll) = self.enroll {
                let _ = enroll.await;
            }
            self.stop_gate.cancel();
            if let Err(error) = self.gate.await {
                tracing::error!(%error, "gate task failed");
            }
            self.stop_ingest.cancel();
            match self.ingest.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "ingest stopped with an error"),
                Err(error) => tracing::error!(%error, "ingest task failed"),
            }
            // Live views hear 1001 and reconnect elsewhere; then HTTP stops. Their sessions
            // are detached from the HTTP server (upgraded connections): wait for them to send
            // the close frame, or a process about to exit would drop the sockets without one.
            self.live.close_all();
            if !self.live.all_closed(LIVE_CLOSE_GRACE).await {
                tracing::warn!(
                    left = self.live.client_count(),
                    "live views not closed within {LIVE_CLOSE_GRACE:?}; their sockets are dropped"
                );
            }
            self.stop_api.cancel();
            if let Ok(Err(error)) = self.api.await {
                tracing::error!(%error, "HTTP server stopped with an error");
            }
            // A last round signs what the API recorded before it stopped; the checkpointer
            // then drops its security-event handle.
            self.stop_checkpointer.cancel();
            let _ = self.checkpointer.await;
            // The gate and the ingest held the last event handles: the writer now drains
            // what is buffered and ends, then the fan-out (both of its sources closed).
            let _ = self.events_writer.await;
            let _ = self.fanout.await;
            // The alert task applies what it was handed, then ends.
            self.stop_background.cancel();
            let _ = self.alert_task.await;
            if let Some(relay) = self.relay {
                let _ = relay.await;
            }
            let _ = self.hub_maintenance.await;
        };
        self.revocation_refresher.abort();
        let in_time = tokio::time::timeout(SHUTDOWN_DEADLINE, ordered)
            .await
            .is_ok();
        if in_time {
            tracing::info!("platform stopped");
        } else {
            tracing::error!("platform shutdown exceeded {SHUTDOWN_DEADLINE:?}");
        }
        in_time
    }
}
