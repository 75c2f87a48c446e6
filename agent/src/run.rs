//! The agent's pipeline and its ordered shutdown.
//!
//! ```text
//! sources ──mpsc──► batcher ──seal──► spool ◄──ack── uplink ──mTLS MQTT──► platform
//!                                       ▲               ▲
//!                             syncer (group fsync)   health reporter
//!          ▲ signer slot                                ▲ TLS config (watch)
//!          └──────────────── renewal (when `[enrollment]` is set) ─┘
//!   status writer: spool depth + uplink's connection state and last ack → status.json
//! ```
//! Shutdown, within [`SHUTDOWN_DEADLINE`]: stop the sources → the batcher seals what it holds
//! → fsync the spool → stop the uplink and the health reporter → last status write (stopped)
//! → close the spool (which records the exact next seq, so a clean restart leaves no gap).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use beffroi_protocol::{Reading, Signer, Topic};
use beffroi_spool::Spool;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::batcher::{Batcher, Sealer};
use crate::config::Config;
use crate::enroll::files::FileError;
use crate::enroll::renewal::{self, Renewal};
use crate::health::HealthReporter;
use crate::keys::{self, KeyError};
use crate::signer_slot::SignerSlot;
use crate::source::{ReadingSink, Source, SourceError};
use crate::status::{self, StatusBoard, StatusWriter};
use crate::telemetry::{Counter, Telemetry};
use crate::uplink::mqtt::MqttConnector;
use crate::uplink::tls::{self, TlsError};
use crate::uplink::{Uplink, UplinkTiming};

/// Longest an orderly shutdown may take.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// Why the agent could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The signing key could not be loaded.
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    /// The TLS material could not be loaded.
    #[error("uplink TLS: {0}")]
    Tls(#[from] TlsError),
    /// An interrupted renewal could not be completed.
    #[error("finishing an interrupted renewal: {0}")]
    Recover(#[from] FileError),
    /// The spool could not be opened, synced or closed.
    #[error("spool: {0}")]
    Spool(#[from] beffroi_spool::Error),
    /// A source could not be set up.
    #[error("{0}")]
    Source(#[from] SourceError),
    /// Shutdown took longer than [`SHUTDOWN_DEADLINE`]; the spool was synced anyway.
    #[error("shutdown exceeded {SHUTDOWN_DEADLINE:?}")]
    ShutdownDeadline,
}

/// Everything the pipeline needs, opened and checked: the `build` step after validation.
pub struct Agent {
    config: Config,
    signer: Arc<SignerSlot>,
    tls: Arc<rustls::ClientConfig>,
    spool: Spool,
    sources: Vec<Box<dyn Source>>,
}

impl Agent {
    /// Opens the key, TLS material, spool and sources named by `config`.
    /// A renewal the agent stopped in the middle of is finished (or undone) first.
    pub fn build(config: Config) -> Result<Self, RunError> {
        if renewal::identity_files(&config).tls.recover()? {
            tracing::warn!("finished installing a certificate renewed before the last stop");
        }
        let signer = Arc::new(SignerSlot::new(Signer::new(keys::load_signing_key(
            &config.identity.signing_key,
        )?)));
        let tls = tls::client_config(&config.uplink)?;
        let sources = config
            .sources
            .iter()
            .map(|spec| spec.build())
            .collect::<Result<Vec<_>, _>>()?;
        let (spool, recovery) = Spool::open(&config.spool.dir, config.spool.spool)?;
        tracing::info!(?recovery, "spool opened");
        Ok(Self {
            config,
            signer,
            tls,
            spool,
            sources,
        })
    }

    /// Runs until `shutdown` completes, then stops in order.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
        let Agent {
            config,
            signer,
            tls,
            spool,
            sources,
        } = self;
        let started = Instant::now();
        let started_at = beffroi_protocol::Timestamp::now();
        let tenant = config.identity.tenant.clone();
        let gateway = config.identity.gateway.clone();
        tracing::info!(%tenant, %gateway, key_id = %signer.current().key_id(), "agent starting");
        if sources.is_empty() {
            tracing::warn!("no [[sources]] configured: only health reports are sent");
        }
        let spool = Arc::new(Mutex::new(spool));
        let telemetry = Arc::new(Telemetry::default());
        let sealed = Arc::new(Notify::new());

        let stop_sources = CancellationToken::new();
        let stop_rest = CancellationToken::new();
        let (readings_tx, readings_rx) =
            mpsc::channel::<Reading>(config.batch.max_readings.max(64) * 2);
        let mut source_tasks = JoinSet::new();
        for source in sources {
            let sink = ReadingSink::new(readings_tx.clone(), telemetry.clone(), source.name());
            let name = source.name().to_owned();
            let stop = stop_sources.clone();
            let telemetry = telemetry.clone();
            source_tasks.spawn(async move {
                if let Err(error) = source.run(sink, stop).await {
                    telemetry.incr(Counter::SourceErrors);
                    tracing::error!(source = %name, %error, "source stopped");
                }
            });
        }
        drop(readings_tx);

        let sealer = Sealer::new(
            tenant.clone(),
            gateway.clone(),
            signer.clone(),
            spool.clone(),
            telemetry.clone(),
            sealed.clone(),
        );
        let batcher =
            tokio::spawn(Batcher::new(config.batch, sealer).run(readings_rx, stop_sources.clone()));

        let (health_tx, health_rx) = watch::channel(None);
        let reporter = HealthReporter {
            tenant: tenant.clone(),
            gateway: gateway.clone(),
            signer: signer.clone(),
            spool: spool.clone(),
            telemetry: telemetry.clone(),
            started,
        };
        let mut background = JoinSet::new();
        background.spawn(reporter.run(config.health_interval, health_tx, stop_rest.clone()));
        let board = Arc::new(StatusBoard::default());
        let status_writer = StatusWriter {
            path: status::file_path(&config),
            board: board.clone(),
            spool: spool.clone(),
            certificate: config.uplink.certificate.clone(),
            tenant: tenant.clone(),
            gateway: gateway.clone(),
            started_at,
            telemetry: telemetry.clone(),
        };
        background.spawn(sync_periodically(
            spool.clone(),
            telemetry.clone(),
            config.spool.fsync_interval,
            stop_rest.clone(),
        ));
        let (tls_updates, tls_latest) = watch::channel(tls.clone());
        match config.enrollment.clone() {
            Some(settings) => {
                let renewal = Renewal::new(
                    &config,
                    settings,
                    signer.clone(),
                    tls_updates,
                    telemetry.clone(),
                );
                background.spawn(renewal.run(stop_rest.clone()));
            }
            None => drop(tls_updates),
        }
        let u = &config.uplink;
        let connector = MqttConnector::new(
            u.host.clone(),
            u.port,
            gateway.to_string(),
            u.keep_alive,
            tls,
            &Topic::ack(&tenant, &gateway),
            u.max_in_flight,
        )
        .renewed_by(tls_latest);
        let timing = UplinkTiming {
            connect_timeout: u.connect_timeout,
            backoff_initial: u.backoff_initial,
            backoff_max: u.backoff_max,
            ack_timeout: u.ack_timeout,
            max_in_flight: u.max_in_flight,
        };
        let uplink = Uplink::new(
            connector,
            timing,
            tenant,
            gateway,
            spool.clone(),
            telemetry.clone(),
            sealed,
            health_rx,
        )
        .reporting_to(board);
        background.spawn(uplink.run(stop_rest.clone()));
        let stop_status = CancellationToken::new();
        let status_task = tokio::spawn(status_writer.run(stop_status.clone()));

        shutdown.await;
        tracing::info!("shutting down");
        let ordered = async {
            stop_sources.cancel();
            while source_tasks.join_next().await.is_some() {}
            if let Err(error) = batcher.await {
                tracing::error!(%error, "batcher task failed");
            }
            stop_rest.cancel();
            while background.join_next().await.is_some() {}
            stop_status.cancel();
            if let Err(error) = status_task.await {
                tracing::error!(%error, "status writer task failed");
            }
        };
        let in_time = tokio::time::timeout(SHUTDOWN_DEADLINE, ordered)
            .await
            .is_ok();
        let spool = match Arc::try_unwrap(spool) {
            Ok(spool) => spool.into_inner().unwrap_or_else(PoisonError::into_inner),
            Err(shared) => {
                // A task is still stuck holding the spool: sync what is there and leave.
                shared
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .sync()?;
                return Err(RunError::ShutdownDeadline);
            }
        };
        spool.close()?;
        tracing::info!(counters = ?telemetry.snapshot(), "agent stopped");
        if in_time {
            Ok(())
        } else {
            Err(RunError::ShutdownDeadline)
        }
    }
}

/// Group fsync: syncs the spool every `interval` off the async threads.
async fn sync_periodically(
    spool: Arc<Mutex<Spool>>,
    telemetry: Arc<Telemetry>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let spool = spool.clone();
        let result = tokio::task::spawn_blocking(move || {
            spool.lock().unwrap_or_else(PoisonError::into_inner).sync()
        })
        .await;
        if !matches!(result, Ok(Ok(()))) {
            telemetry.incr(Counter::SpoolSyncErrors);
            tracing::error!(?result, "spool fsync failed");
        }
    }
}
