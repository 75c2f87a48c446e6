//! The live gateway of `bench gate`: one simulated gateway (the agent's own MQTT connector,
//! `bench::gateways`) publishing signed batches at a modest fixed rate (`bench::live::paced`)
//! through the node's gate, its publish → commit ack latency recorded in the window. The
//! benchmark runs it once with no idle connection held (the baseline) and once while they are
//! held, each time as a new gateway.
//!
//! ```text
//! enroll ─► connect + publish every 1/rate s ─► warm-up ─► window (latencies) ─► stop:
//! no new batch, every batch in flight acknowledged (bounded) ─► report
//! ```

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use beffroi_protocol::{GatewayId, MetricName, TenantId, Unit};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bench::gateways::{Phase, Registrar};
use crate::bench::generator::{self, SENSORS, SERIES};
use crate::bench::live::paced::{PacedFeed, SensorCounts, SeriesSpec};
use crate::bench::report::percentiles;

/// Batches in flight at most (a few are, at a few batches a second).
const WINDOW: usize = 64;
/// A batch unacknowledged this long is published again (the agent's default).
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// How the live gateway publishes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LivePlan {
    /// Batches per second.
    pub rate: u32,
    /// Readings per batch.
    pub readings_per_batch: usize,
    /// Before the window.
    pub warmup: Duration,
    /// The window.
    pub window: Duration,
}

/// What one live run measured and checked.
#[derive(Debug, Clone)]
pub(crate) struct LiveRun {
    /// Publish → commit ack in the window, µs: p50, p99, max and the sample count.
    pub latency_us: Option<(u32, u32, u32, usize)>,
    /// Batches published (seqs 1..=published).
    pub published: u64,
    /// Readings in them.
    pub published_readings: u64,
    /// Batches published again (ack timeout or reconnection).
    pub resends: u64,
    /// Connections lost and made again.
    pub reconnects: u64,
    /// Batches never acknowledged.
    pub unacked: u64,
    /// The store holds exactly seqs 1..=published for this gateway.
    pub complete: bool,
}

impl LiveRun {
    /// Nothing lost: every batch acknowledged and stored once, seqs without a gap.
    pub(crate) fn lossless(&self) -> bool {
        self.unacked == 0 && self.complete
    }
}

/// Enrolls `gateway` of `tenant` through `registrar`, publishes as `plan` says on `runtime`,
/// then checks its seqs in the store.
pub(crate) async fn run(
    registrar: Registrar<'_>,
    tenant: &TenantId,
    gateway: GatewayId,
    keys_dir: &Path,
    plan: LivePlan,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<LiveRun> {
    let (sim, signer) = registrar
        .enroll(tenant, gateway.clone(), keys_dir, WINDOW, ACK_TIMEOUT)
        .await?;
    let mut series = Vec::with_capacity(SENSORS * SERIES.len());
    for i in 0..SENSORS {
        let sensor = generator::sensor_id(&gateway, i)?;
        for (metric, unit) in SERIES {
            series.push(SeriesSpec {
                sensor: sensor.clone(),
                metric: MetricName::new(metric)?,
                unit: Unit::new(unit)?,
                sensor_index: i,
            });
        }
    }
    let feed = PacedFeed::new(
        signer,
        tenant.clone(),
        gateway.clone(),
        series,
        plan.readings_per_batch,
        Arc::new(SensorCounts::new(SENSORS)),
    );
    let phase = Arc::new(Phase::default());
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    let (tx, rx) = mpsc::channel(WINDOW);
    let sim = runtime.spawn(sim.run(rx, phase.clone(), stop.clone(), abort.clone()));
    let period = Duration::from_secs(1) / plan.rate.max(1);
    let feed = runtime.spawn(feed.run(tx, period, Duration::ZERO, phase.clone(), stop.clone()));
    tokio::time::sleep(plan.warmup).await;
    phase.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(plan.window).await;
    phase.measuring.store(false, Ordering::Relaxed);
    stop.cancel();
    feed.await.context("the paced feed")??;
    let mut report = match tokio::time::timeout(ACK_TIMEOUT * 2, sim).await {
        Ok(joined) => joined.context("the live gateway")?,
        Err(_) => {
            abort.cancel();
            anyhow::bail!(
                "{gateway}: batches still unacknowledged after {:?}",
                ACK_TIMEOUT * 2
            );
        }
    };
    let state = registrar.store.seq_state(tenant, &gateway).await?;
    Ok(LiveRun {
        latency_us: percentiles(&mut report.latencies_us),
        published: report.published,
        published_readings: report.published_readings,
        resends: report.resends,
        reconnects: report.reconnects,
        unacked: report.unacked,
        complete: state.contiguous == report.published && state.above.is_empty(),
    })
}
