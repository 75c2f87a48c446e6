//! The paced load of `bench live` and `bench soak`: one tenant's gateways enrolled like real
//! ones, their sensors registered in the zones of a [`City`], one paced feed per gateway
//! (`super::paced`); once started, the gateways publish through the gate until stopped; once
//! landed, every ack has been awaited and each gateway's seqs checked in the store.
//!
//! ```text
//! enroll : gateways {prefix}-gw-001… (keys, certificates) + their sensors, spread over the
//!          zones → a SimGateway and a PacedFeed each (outside every measurement)
//! start  : each feed ticks every `period` (offset so the gateways spread over it) and hands
//!          signed batches to its gateway, which publishes them over mTLS and keeps a window
//! land   : stop → feeds end → every ack awaited (the run is cut after 2 ack timeouts + 30 s)
//!          → store check: each gateway's seqs 1..=published committed once, readings counted
//! ```
//! The gateways only need a [`Registrar`]: the platform may run in this process (`bench live`)
//! or in its own (`bench soak`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use beffroi_protocol::{GatewayId, MetricName, SensorId, TenantId, Unit};
use beffroi_store::Store;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::paced::{PacedFeed, PacedReport, SensorCounts, SeriesSpec};
use super::report::StoreCheck;
use super::scenario::sensors_per_gateway;
use crate::bench::city::City;
use crate::bench::count_readings;
use crate::bench::fleet::join_gateways;
use crate::bench::gateways::{GatewayReport, Phase, Registrar, SimGateway};
use crate::bench::generator::{self, SERIES};

/// Batches a simulated gateway may have in flight (a few are, at 10 batches/s).
const WINDOW: usize = 64;
/// Envelopes made ahead of the gateway's publish (it takes them at once).
const FEED_CAPACITY: usize = 64;
/// A batch unacknowledged this long is published again (the agent's default).
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// How much load, from how many gateways.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Readings per second, all gateways together.
    pub rate: u32,
    /// Simulated gateways over mTLS.
    pub gateways: usize,
    /// Readings per signed batch.
    pub readings_per_batch: u16,
    /// Zones the sensors are registered in.
    pub zones: usize,
}

impl Shape {
    /// Checks the shape against the gate's limits and a sane batch rate per gateway.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if !(1..=900).contains(&self.gateways) {
            anyhow::bail!(
                "--gateways must be 1..=900 (the gate allows 1000 connections per address)"
            );
        }
        if self.rate == 0 || self.zones == 0 || self.readings_per_batch == 0 {
            anyhow::bail!("--rate, --zones and --readings-per-batch must be at least 1");
        }
        let batches_per_s = 1.0 / self.period().as_secs_f64();
        if !(0.1..=1000.0).contains(&batches_per_s) {
            anyhow::bail!(
                "--rate / (--gateways × --readings-per-batch) = {batches_per_s:.2} batches/s per \
                 gateway; must be 0.1..=1000"
            );
        }
        Ok(())
    }

    /// Time between two batches of one gateway.
    pub(crate) fn period(&self) -> Duration {
        Duration::from_secs_f64(
            self.gateways as f64 * f64::from(self.readings_per_batch) / f64::from(self.rate.max(1)),
        )
    }
}

/// What a group of clients follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ViewKind {
    /// One zone each, spread over the zones.
    Zone,
    /// One sensor each, spread over the run's sensors.
    Sensor,
}

/// The run's sensors and where they are.
pub(crate) struct Layout {
    /// The zones.
    pub city: City,
    /// Sensor ids, by run-wide index.
    sensors: Vec<SensorId>,
    /// Run-wide sensor indexes, per zone.
    zone_sensors: Vec<Vec<usize>>,
}

impl Layout {
    /// The views of a group of `clients` (filters) and the sensors each covers.
    pub(crate) fn views(
        &self,
        kind: ViewKind,
        clients: usize,
    ) -> (Vec<serde_json::Value>, Vec<Vec<usize>>) {
        match kind {
            ViewKind::Zone => (0..self.city.zones.len())
                .map(|z| (self.city.zone_filter(z), self.zone_sensors[z].clone()))
                .unzip(),
            ViewKind::Sensor => {
                let step = (self.sensors.len() / clients.max(1)).max(1);
                (0..clients.min(self.sensors.len()))
                    .map(|j| {
                        let n = j * step;
                        (
                            serde_json::json!({ "sensors": [self.sensors[n].as_str()] }),
                            vec![n],
                        )
                    })
                    .unzip()
            }
        }
    }
}

/// Enrolled gateways with their feeds, ready to start.
pub(crate) struct PacedLoad {
    /// Where the sensors are.
    pub layout: Layout,
    /// Readings made per sensor while [`Phase::measuring`].
    pub counts: Arc<SensorCounts>,
    shape: Shape,
    gateways: Vec<(SimGateway, PacedFeed)>,
}

impl PacedLoad {
    /// Creates `tenant`'s zones, enrolls its gateways `{prefix}-gw-NNN` through `registrar`
    /// (keys under `keys_dir`) and registers their sensors in the zones.
    pub(crate) async fn enroll(
        registrar: Registrar<'_>,
        tenant: &TenantId,
        prefix: &str,
        shape: Shape,
        keys_dir: &Path,
    ) -> anyhow::Result<Self> {
        let store = registrar.store;
        let city = City::create(store, tenant, shape.zones).await?;
        let per_gateway = sensors_per_gateway(usize::from(shape.readings_per_batch));
        let counts = Arc::new(SensorCounts::new(shape.gateways * per_gateway));
        let mut layout = Layout {
            zone_sensors: vec![Vec::new(); city.zones.len()],
            city,
            sensors: Vec::new(),
        };
        let mut gateways = Vec::with_capacity(shape.gateways);
        for g in 0..shape.gateways {
            let gateway = GatewayId::new(format!("{prefix}-gw-{:03}", g + 1))?;
            let (sim, signer) = registrar
                .enroll(tenant, gateway.clone(), keys_dir, WINDOW, ACK_TIMEOUT)
                .await?;
            let mut series = Vec::with_capacity(per_gateway * SERIES.len());
            for i in 0..per_gateway {
                let n = g * per_gateway + i;
                let sensor = generator::sensor_id(&gateway, i)?;
                layout
                    .city
                    .register(store, tenant, &sensor, "bench", n)
                    .await?;
                layout.zone_sensors[layout.city.zone_of(n)].push(n);
                layout.sensors.push(sensor.clone());
                for (metric, unit) in SERIES {
                    series.push(SeriesSpec {
                        sensor: sensor.clone(),
                        metric: MetricName::new(metric)?,
                        unit: Unit::new(unit)?,
                        sensor_index: n,
                    });
                }
            }
            let feed = PacedFeed::new(
                signer,
                tenant.clone(),
                gateway,
                series,
                usize::from(shape.readings_per_batch),
                counts.clone(),
            );
            gateways.push((sim, feed));
        }
        Ok(Self {
            layout,
            counts,
            shape,
            gateways,
        })
    }

    /// Starts every gateway and its feed on `runtime`, spread over one period.
    pub(crate) fn start(self, runtime: &tokio::runtime::Handle, phase: &Arc<Phase>) -> Flying {
        let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
        let period = self.shape.period();
        let count = self.gateways.len();
        let mut flying = Flying {
            names: Vec::with_capacity(count),
            sims: Vec::with_capacity(count),
            feeds: Vec::with_capacity(count),
            stop,
            abort,
        };
        for (i, (sim, feed)) in self.gateways.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(FEED_CAPACITY);
            flying.names.push(sim.gateway.clone());
            flying.sims.push(runtime.spawn(sim.run(
                rx,
                phase.clone(),
                flying.stop.clone(),
                flying.abort.clone(),
            )));
            let offset = period.mul_f64(i as f64 / count as f64);
            flying.feeds.push(runtime.spawn(feed.run(
                tx,
                period,
                offset,
                phase.clone(),
                flying.stop.clone(),
            )));
        }
        flying
    }
}

/// Gateways publishing.
pub(crate) struct Flying {
    names: Vec<GatewayId>,
    sims: Vec<JoinHandle<GatewayReport>>,
    feeds: Vec<JoinHandle<anyhow::Result<PacedReport>>>,
    stop: CancellationToken,
    abort: CancellationToken,
}

/// What the gateways did, checked in the store.
#[derive(Debug)]
pub(crate) struct Landed {
    /// Zero loss.
    pub check: StoreCheck,
    /// Feed ticks that came more than a period late.
    pub feeds_late: u64,
    /// Publish → commit ack latencies (µs) of the batches acked while measuring.
    pub ack_latencies_us: Vec<u32>,
}

impl Flying {
    /// Stops publishing, waits for every ack (cut after two ack timeouts and 30 s) and checks
    /// each gateway's seqs and `tenant`'s readings in `store`.
    pub(crate) async fn land(self, store: &dyn Store, tenant: &TenantId) -> anyhow::Result<Landed> {
        self.stop.cancel();
        let mut feeds_late = 0;
        for task in self.feeds {
            feeds_late += task.await.context("paced feed")??.late_ticks;
        }
        let mut reports = join_gateways(self.sims, ACK_TIMEOUT, &self.abort).await?;
        let mut complete = 0;
        for (gateway, report) in self.names.iter().zip(&reports) {
            let state = store.seq_state(tenant, gateway).await?;
            if state.contiguous == report.published && state.above.is_empty() {
                complete += 1;
            }
        }
        let sum =
            |f: fn(&GatewayReport) -> u64| reports.iter().map(f).fold(0u64, u64::saturating_add);
        let check = StoreCheck {
            gateways: self.names.len(),
            complete,
            published: sum(|r| r.published),
            published_readings: sum(|r| r.published_readings),
            stored_readings: count_readings(store, tenant).await?,
            unacked: sum(|r| r.unacked),
            resends: sum(|r| r.resends),
            reconnects: sum(|r| r.reconnects),
        };
        let ack_latencies_us = reports
            .iter_mut()
            .flat_map(|r| std::mem::take(&mut r.latencies_us))
            .collect();
        Ok(Landed {
            check,
            feeds_late,
            ack_latencies_us,
        })
    }
}
