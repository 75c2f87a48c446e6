//! One scenario of `bench live`: its own tenant, zones, gateways and clients, then one
//! measure window (see the module doc of `super`).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::{GatewayId, MetricName, TenantId, Unit};
use beffroi_store::Role;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::commit_latency::CommitLatency;
use super::mqtt_baseline::MqttBaseline;
use super::paced::{PacedFeed, SensorCounts, SeriesSpec};
use super::report::{LiveCounts, ScenarioResult, StoreCheck};
use super::{hub_probe, LiveBenchArgs};
use crate::admin;
use crate::bench::city::City;
use crate::bench::gateways::{self, GatewayReport, Phase};
use crate::bench::generator::{self, SENSORS, SERIES};
use crate::bench::histogram::Histogram;
use crate::bench::usage::{self, CpuSample};
use crate::bench::ws_client_process::ClientProcess;
use crate::bench::ws_clients::{ClientsSpec, GroupSpec};
use crate::bench::{count_readings, report as ingest_report};
use crate::config::PlatformConfig;
use crate::server::Running;

/// Batches a simulated gateway may have in flight (a few are, at 10 batches/s).
const WINDOW: usize = 64;
/// Envelopes made ahead of the gateway's publish (it takes them at once).
const FEED_CAPACITY: usize = 64;
/// A batch unacknowledged this long is published again (the agent's default).
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the platform's resident memory is sampled in the window.
const RSS_PERIOD: Duration = Duration::from_millis(250);

/// Where the load and the observers run (the platform has the current runtime).
pub(crate) struct Runtimes {
    /// The simulated gateways and their paced feeds.
    pub gateways: tokio::runtime::Handle,
    /// The MQTT baseline subscriber and the hub probe.
    pub probes: tokio::runtime::Handle,
}

/// What a group of clients follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ViewKind {
    /// One zone each, spread over the zones.
    Zone,
    /// One sensor each, spread over the run's sensors.
    Sensor,
}

/// A group of clients to connect.
#[derive(Debug, Clone)]
pub(crate) struct GroupPlan {
    /// Its label.
    pub name: &'static str,
    /// How many.
    pub clients: usize,
    /// `options.max_fps`, or the server's default.
    pub max_fps: Option<u32>,
    /// What each follows.
    pub views: ViewKind,
}

/// A scenario to run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// `latency` or `fan-out`.
    pub name: &'static str,
    /// First letter of its gateways' ids.
    prefix: &'static str,
    /// Its clients.
    pub groups: Vec<GroupPlan>,
}

impl Plan {
    /// A few clients per kind of view, at the server's default frame rate.
    pub(crate) fn latency(args: &LiveBenchArgs) -> Self {
        let groups = [
            GroupPlan {
                name: "zone views",
                clients: args.latency_clients,
                max_fps: None,
                views: ViewKind::Zone,
            },
            GroupPlan {
                name: "sensor views",
                clients: args.sensor_clients,
                max_fps: None,
                views: ViewKind::Sensor,
            },
        ];
        Self {
            name: "latency",
            prefix: "l",
            groups: groups.into_iter().filter(|g| g.clients > 0).collect(),
        }
    }

    /// Many clients on zone views at a low frame rate.
    pub(crate) fn fan_out(args: &LiveBenchArgs) -> Self {
        Self {
            name: "fan-out",
            prefix: "f",
            groups: vec![GroupPlan {
                name: "zone views",
                clients: args.fanout_clients,
                max_fps: Some(args.fanout_fps),
                views: ViewKind::Zone,
            }]
            .into_iter()
            .filter(|g| g.clients > 0)
            .collect(),
        }
    }
}

/// The run's sensors and where they are.
struct Layout {
    city: City,
    /// Sensor ids, by run-wide index.
    sensors: Vec<beffroi_protocol::SensorId>,
    /// Run-wide sensor indexes, per zone.
    zone_sensors: Vec<Vec<usize>>,
}

impl Layout {
    /// The views of a group (filters) and the sensors each covers.
    fn views(&self, kind: ViewKind, clients: usize) -> (Vec<serde_json::Value>, Vec<Vec<usize>>) {
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

/// Sensors each gateway reports: enough series for a batch never to repeat one.
pub(crate) fn sensors_per_gateway(readings_per_batch: usize) -> usize {
    SENSORS.max(readings_per_batch.div_ceil(SERIES.len()))
}

/// Runs one scenario.
#[allow(clippy::too_many_lines)]
pub(crate) async fn run(
    args: &LiveBenchArgs,
    plan: Plan,
    running: &Running,
    config: &PlatformConfig,
    scratch: &Path,
    runtimes: &Runtimes,
) -> anyhow::Result<ScenarioResult> {
    let store = running.store.clone();
    let tenant = TenantId::new(format!("live-{}", plan.name))?;
    admin::create_tenant(store.as_ref(), &tenant, "Live benchmark").await?;
    let city = City::create(store.as_ref(), &tenant, args.zones).await?;
    let per_gateway = sensors_per_gateway(usize::from(args.readings_per_batch));
    let counts = Arc::new(SensorCounts::new(args.gateways * per_gateway));
    let mut layout = Layout {
        zone_sensors: vec![Vec::new(); city.zones.len()],
        city,
        sensors: Vec::new(),
    };

    // Enrollment and registry: outside every measurement.
    let keys_dir = scratch.join("gateways").join(plan.name);
    let mut sims = Vec::with_capacity(args.gateways);
    let mut feeds = Vec::with_capacity(args.gateways);
    for g in 0..args.gateways {
        let gateway = GatewayId::new(format!("{}-gw-{:03}", plan.prefix, g + 1))?;
        let (sim, signer) = gateways::Registrar::of(running, config)
            .enroll(&tenant, gateway.clone(), &keys_dir, WINDOW, ACK_TIMEOUT)
            .await?;
        let mut series = Vec::with_capacity(per_gateway * SERIES.len());
        for i in 0..per_gateway {
            let n = g * per_gateway + i;
            let sensor = generator::sensor_id(&gateway, i)?;
            layout
                .city
                .register(store.as_ref(), &tenant, &sensor, "bench", n)
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
        feeds.push(PacedFeed::new(
            signer,
            tenant.clone(),
            gateway,
            series,
            usize::from(args.readings_per_batch),
            counts.clone(),
        ));
        sims.push(sim);
    }
    let token = admin::create_token(&store, &tenant, Role::Viewer, "bench live").await?;
    let mut groups = Vec::with_capacity(plan.groups.len());
    let mut view_sensors = Vec::with_capacity(plan.groups.len());
    for group in &plan.groups {
        let (views, sensors) = layout.views(group.views, group.clients);
        groups.push(GroupSpec {
            name: group.name.to_owned(),
            clients: group.clients,
            max_fps: group.max_fps,
            views,
        });
        view_sensors.push(sensors);
    }
    let spec = ClientsSpec {
        url: format!("ws://{}/api/v1/live", running.api_addr),
        token,
        groups,
    };

    // Observers: the MQTT baseline and the hub probe, before anything is published.
    let phase = Arc::new(Phase::default());
    let stop_observers = CancellationToken::new();
    let baseline_latency = Arc::new(Histogram::default());
    let (subscribed_tx, subscribed_rx) = oneshot::channel();
    let baseline = runtimes.probes.spawn({
        let (broker, tenant) = (running.broker_v5, tenant.clone());
        let (latency, phase, stop) = (
            baseline_latency.clone(),
            phase.clone(),
            stop_observers.clone(),
        );
        async move {
            let subscriber = MqttBaseline::subscribe(broker, &tenant).await?;
            let _ = subscribed_tx.send(());
            subscriber.run(latency, phase, stop).await
        }
    });
    if subscribed_rx.await.is_err() {
        baseline.await.context("baseline subscriber")??;
        anyhow::bail!("the baseline subscriber ended before subscribing");
    }
    let probe_latency = Arc::new(Histogram::default());
    let probe = runtimes.probes.spawn(hub_probe::run(
        running.live.clone(),
        tenant.clone(),
        layout.city.zone_filter(0),
        probe_latency.clone(),
        phase.clone(),
        stop_observers.clone(),
    ));

    // Load.
    let stop = CancellationToken::new();
    let abort = CancellationToken::new();
    let period = args.period();
    let names: Vec<GatewayId> = sims.iter().map(|s| s.gateway.clone()).collect();
    let mut sim_tasks = Vec::with_capacity(sims.len());
    let mut feed_tasks = Vec::with_capacity(feeds.len());
    for (i, (sim, feed)) in sims.into_iter().zip(feeds).enumerate() {
        let (tx, rx) = mpsc::channel(FEED_CAPACITY);
        sim_tasks.push(runtimes.gateways.spawn(sim.run(
            rx,
            phase.clone(),
            stop.clone(),
            abort.clone(),
        )));
        let offset = period.mul_f64(i as f64 / args.gateways as f64);
        feed_tasks.push(runtimes.gateways.spawn(feed.run(
            tx,
            period,
            offset,
            phase.clone(),
            stop.clone(),
        )));
    }
    eprintln!(
        "bench live {}: {} gateways publishing {} readings/s; connecting {} websocket clients…",
        plan.name,
        args.gateways,
        args.rate,
        spec.groups.iter().map(|g| g.clients).sum::<usize>()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_clients = usage::resident();
    let mut clients = ClientProcess::spawn(&spec, args.client_threads).await?;
    let rss_clients_connected = usage::resident();
    let ready = clients.ready.clone();
    eprintln!(
        "bench live {}: {} clients connected, {} failed in {:.1} s{}; warming up {} s",
        plan.name,
        ready.connected,
        ready.failed,
        ready.seconds,
        ready
            .first_error
            .as_deref()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default(),
        args.warmup
    );
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;

    // Window.
    let metrics = running.metrics.clone();
    let (live_before, commit_before) = (LiveCounts::of(&metrics), CommitLatency::read(&metrics));
    let pg_before = usage::ticks_of_processes("postgres");
    let rss_stop = CancellationToken::new();
    let rss = tokio::spawn(sample_rss(rss_stop.clone()));
    let (cpu_before, opened) = (CpuSample::now(), Instant::now());
    phase.measuring.store(true, Ordering::Relaxed);
    clients.start().await?;
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    phase.measuring.store(false, Ordering::Relaxed);
    clients.close_window().await?;
    let (cpu_after, seconds) = (CpuSample::now(), opened.elapsed().as_secs_f64());
    let (live_after, commit_after) = (LiveCounts::of(&metrics), CommitLatency::read(&metrics));
    let pg_cpu = usage::ticks_pct(
        usage::ticks_of_processes("postgres").saturating_sub(pg_before),
        seconds,
    );
    rss_stop.cancel();
    let rss_samples = rss.await.context("RSS sampler")?;
    let clients_report = clients.stop().await?;
    eprintln!(
        "bench live {}: window closed; waiting for every ack…",
        plan.name
    );

    // Drain and verify.
    stop.cancel();
    let mut feeds_late = 0;
    for task in feed_tasks {
        feeds_late += task.await.context("paced feed")??.late_ticks;
    }
    let drain_deadline = tokio::time::Instant::now() + ACK_TIMEOUT * 2 + Duration::from_secs(30);
    let mut reports = Vec::with_capacity(sim_tasks.len());
    for task in sim_tasks {
        let report = match tokio::time::timeout_at(drain_deadline, task).await {
            Ok(joined) => joined.context("simulated gateway task")?,
            Err(_) => {
                abort.cancel();
                GatewayReport {
                    unacked: u64::MAX,
                    ..GatewayReport::default()
                }
            }
        };
        reports.push(report);
    }
    stop_observers.cancel();
    let baseline_counts = baseline.await.context("baseline subscriber")??;
    let probe_values = probe.await.context("hub probe")??;
    let mut complete = 0;
    for (gateway, report) in names.iter().zip(&reports) {
        let state = store.seq_state(&tenant, gateway).await?;
        if state.contiguous == report.published && state.above.is_empty() {
            complete += 1;
        }
    }
    let sum = |f: fn(&GatewayReport) -> u64| reports.iter().map(f).fold(0u64, u64::saturating_add);
    let check = StoreCheck {
        gateways: names.len(),
        complete,
        published: sum(|r| r.published),
        published_readings: sum(|r| r.published_readings),
        stored_readings: count_readings(store.as_ref(), &tenant).await?,
        unacked: sum(|r| r.unacked),
        resends: sum(|r| r.resends),
        reconnects: sum(|r| r.reconnects),
    };
    let mut ack_latencies: Vec<u32> = reports
        .iter_mut()
        .flat_map(|r| std::mem::take(&mut r.latencies_us))
        .collect();

    let expected: Vec<u64> = clients_report
        .groups
        .iter()
        .zip(&view_sensors)
        .map(|(group, views)| {
            group
                .views
                .iter()
                .zip(views)
                .map(|(count, sensors)| {
                    count.clients as u64 * sensors.iter().map(|&n| counts.get(n)).sum::<u64>()
                })
                .sum()
        })
        .collect();
    let rss_mean = (!rss_samples.is_empty())
        .then(|| rss_samples.iter().sum::<u64>() / rss_samples.len() as u64);
    Ok(ScenarioResult {
        name: plan.name,
        plan,
        seconds,
        published_per_s: counts.total() as f64 / seconds,
        committed_per_s: live_after.readings.saturating_sub(live_before.readings) as f64 / seconds,
        feeds_late,
        ready,
        clients: clients_report,
        expected_values: expected,
        probe: probe_latency.summary(),
        probe_values,
        baseline: baseline_latency.summary(),
        baseline_unreadable: baseline_counts.unreadable,
        ack: ingest_report::percentiles(&mut ack_latencies),
        commit: commit_after.since(&commit_before),
        live: live_after.since(&live_before),
        cpu: cpu_before.usage_until(&cpu_after),
        postgres_cpu: pg_cpu,
        rss_before_clients,
        rss_clients_connected,
        rss_mean,
        rss_peak: rss_samples.iter().copied().max(),
        check,
    })
}

/// Samples the process's resident memory until `stop`.
async fn sample_rss(stop: CancellationToken) -> Vec<u64> {
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(RSS_PERIOD);
    loop {
        tokio::select! {
            () = stop.cancelled() => return samples,
            _ = ticker.tick() => samples.extend(usage::resident()),
        }
    }
}
