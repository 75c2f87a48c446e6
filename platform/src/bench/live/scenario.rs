//! One scenario of `bench live`: its own tenant, zones, gateways and clients, then one
//! measure window (see the module doc of `super`).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::TenantId;
use beffroi_store::Role;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::commit_latency::CommitLatency;
use super::load::{Landed, PacedLoad, ViewKind};
use super::mqtt_baseline::MqttBaseline;
use super::report::{LiveCounts, ScenarioResult};
use super::{hub_probe, LiveBenchArgs};
use crate::admin;
use crate::bench::gateways::{Phase, Registrar};
use crate::bench::generator::{SENSORS, SERIES};
use crate::bench::histogram::Histogram;
use crate::bench::report as ingest_report;
use crate::bench::usage::{self, CpuSample};
use crate::bench::ws_client_process::ClientProcess;
use crate::bench::ws_clients::{ClientsSpec, GroupSpec};
use crate::config::PlatformConfig;
use crate::server::Running;

/// How often the platform's resident memory is sampled in the window.
const RSS_PERIOD: Duration = Duration::from_millis(250);

/// Where the load and the observers run (the platform has the current runtime).
pub(crate) struct Runtimes {
    /// The simulated gateways and their paced feeds.
    pub gateways: tokio::runtime::Handle,
    /// The MQTT baseline subscriber and the hub probe.
    pub probes: tokio::runtime::Handle,
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
    // Enrollment and registry: outside every measurement.
    let keys_dir = scratch.join("gateways").join(plan.name);
    let load = PacedLoad::enroll(
        Registrar::of(running, config),
        &tenant,
        plan.prefix,
        args.shape(),
        &keys_dir,
    )
    .await?;
    let (layout, counts) = (&load.layout, load.counts.clone());
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
    let flying = load.start(&runtimes.gateways, &phase);
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
        "bench live {}: {}; warming up {} s",
        plan.name,
        ready.describe(),
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
    let Landed {
        check,
        feeds_late,
        ack_latencies_us: mut ack_latencies,
    } = flying.land(store.as_ref(), &tenant).await?;
    stop_observers.cancel();
    let baseline_counts = baseline.await.context("baseline subscriber")??;
    let probe_values = probe.await.context("hub probe")??;

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
