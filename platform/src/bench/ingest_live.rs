//! `bench ingest --live-clients N [--compare-live]` (issue #7): the ingest path must keep its
//! throughput with the fan-out on. N websocket clients (a child process, see
//! `super::ws_clients`), each on one zone of the run's tenant at `--live-fps`, are attached
//! through the measure window; with `--compare-live` every mode runs without them and then
//! with them, in the same run, and the table compares the two.
//!
//! ```text
//! per run with clients: zones created, the gateways' sensors registered in them (also in the
//!                       comparison run without clients, so both do the same work)
//!                       → clients connect before the gateways start → window: start/stop
//!                       → frames/s, values/s, the fan-out's skipped batches and closes
//! ```
//! The generator stamps readings a microsecond apart ahead of time, so their times say
//! nothing about latency here: `bench live` measures latency.

use std::fmt::Write as _;

use beffroi_protocol::{GatewayId, TenantId};
use beffroi_store::Role;

use super::city::City;
use super::generator::{self, SENSORS};
use super::live::LiveCounts;
use super::report::{thousands, PhaseResult};
use super::ws_client_process::ClientProcess;
use super::ws_clients::{ClientsReport, ClientsSpec, GroupSpec};
use super::IngestBenchArgs;
use crate::admin;
use crate::server::Running;

/// The clients attached to one ingest run, and what they and the hub did in the window.
#[derive(Debug)]
pub(crate) struct IngestLive {
    /// Clients asked for.
    pub clients: usize,
    /// Their `max_fps`.
    pub max_fps: u32,
    /// The clients' figures.
    pub report: ClientsReport,
    /// The platform's live counters in the window.
    pub counts: LiveCounts,
}

/// Registers the sensors of `gateways` in `zones` zones of `tenant` (the generator's sensors:
/// [`SENSORS`] per gateway); returns the city.
pub(crate) async fn register(
    running: &Running,
    tenant: &TenantId,
    gateways: &[GatewayId],
    zones: usize,
) -> anyhow::Result<City> {
    let store = running.store.as_ref();
    let city = City::create(store, tenant, zones).await?;
    for (g, gateway) in gateways.iter().enumerate() {
        for i in 0..SENSORS {
            let sensor = generator::sensor_id(gateway, i)?;
            city.register(store, tenant, &sensor, "bench", g * SENSORS + i)
                .await?;
        }
    }
    Ok(city)
}

/// Connects `clients` websocket clients of `tenant`, one zone of `city` each.
pub(crate) async fn connect(
    args: &IngestBenchArgs,
    running: &Running,
    tenant: &TenantId,
    city: &City,
    clients: usize,
) -> anyhow::Result<ClientProcess> {
    super::fd_limit::raise_open_files(clients as u64 + 1024);
    let token = admin::create_token(&running.store, tenant, Role::Viewer, "bench ingest").await?;
    let spec = ClientsSpec {
        url: format!("ws://{}/api/v1/live", running.api_addr),
        token,
        groups: vec![GroupSpec {
            name: "zone views".into(),
            clients,
            max_fps: Some(args.live_fps),
            views: (0..city.zones.len()).map(|z| city.zone_filter(z)).collect(),
        }],
    };
    let process = ClientProcess::spawn(&spec, args.client_threads).await?;
    let ready = &process.ready;
    eprintln!(
        "bench: {} live clients connected, {} failed in {:.1} s",
        ready.connected, ready.failed, ready.seconds
    );
    if ready.failed > 0 {
        anyhow::bail!(
            "{} live clients could not connect: {}",
            ready.failed,
            ready.first_error.as_deref().unwrap_or("?")
        );
    }
    Ok(process)
}

/// The rows of one run's live clients.
pub(crate) fn render_rows(out: &mut String, live: &IngestLive, seconds: f64) {
    let Some(group) = live.report.groups.first() else {
        return;
    };
    let closed: u64 = group.closed.values().sum();
    let connected = group.connected.max(1) as f64;
    let mut row = |name: &str, measured: String, result: String| {
        let _ = writeln!(
            out,
            "{name:<44} {measured:>14} {:>12} {:>12}  {result}",
            "", ""
        );
    };
    row(
        "live clients: frames/s min / median / max",
        format!(
            "{:.1}/{:.1}/{:.1}",
            group.fps.min, group.fps.p50, group.fps.max
        ),
        format!(
            "{} clients on {} zone views at max_fps {}; {} closed early {:?}",
            group.connected,
            group.views.len(),
            live.max_fps,
            closed,
            group.closed
        ),
    );
    row(
        "  values/s per client; items per frame",
        format!(
            "{}; {:.0}",
            thousands(group.values as f64 / connected / seconds),
            group.values as f64 / group.frames.max(1) as f64
        ),
        format!(
            "{:.0} KB/s per client; client process CPU {:.0} %",
            group.bytes as f64 / connected / seconds / 1000.0,
            live.report.cpu_pct
        ),
    );
    row(
        "  fan-out: batches skipped / values coalesced",
        format!(
            "{} / {}",
            live.counts.lagged,
            thousands(live.counts.coalesced as f64)
        ),
        format!(
            "{} frames and {} values sent; {} closed by the server",
            thousands(live.counts.frames as f64),
            thousands(live.counts.values as f64),
            live.counts.closed
        ),
    );
}

/// Without and with clients, side by side, for every mode run both ways.
pub(crate) fn render_comparison(out: &mut String, results: &[PhaseResult]) {
    let pairs: Vec<(&PhaseResult, &PhaseResult)> = results
        .iter()
        .filter(|r| r.live.is_none())
        .filter_map(|without| {
            results
                .iter()
                .find(|r| r.mode == without.mode && r.live.is_some())
                .map(|with| (without, with))
        })
        .collect();
    if pairs.is_empty() {
        return;
    }
    let live_first = results
        .iter()
        .position(|r| r.live.is_some())
        .zip(results.iter().position(|r| r.live.is_none()))
        .is_some_and(|(with, without)| with < without);
    let _ = writeln!(
        out,
        "\nIngest with and without live clients (same run, {} first; ratio = with / without)",
        if live_first {
            "with clients"
        } else {
            "without clients"
        }
    );
    let _ = writeln!(
        out,
        "{:<11} {:>18} {:>18} {:>7} {:>14} {:>16} {:>16} {:>15}",
        "mode",
        "readings/s without",
        "readings/s with",
        "ratio",
        "share of raw",
        "p50 ack without",
        "p50 ack with",
        "platform CPU"
    );
    for (without, with) in pairs {
        let clients = with.live.as_ref().map_or(0, |l| l.clients);
        let p50 = |r: &PhaseResult| {
            r.latency_us.map_or_else(
                || "?".into(),
                |(p50, ..)| format!("{:.0} ms", f64::from(p50) / 1000.0),
            )
        };
        let (rate_without, rate_with) = match without.mode {
            super::Mode::Batched => (without.readings_per_s, with.readings_per_s),
            super::Mode::Unbatched => (without.messages_per_s, with.messages_per_s),
        };
        let _ = writeln!(
            out,
            "{:<11} {:>18} {:>18} {:>7.3} {:>14} {:>16} {:>16} {:>15}",
            without.mode.as_str(),
            thousands(rate_without),
            format!("{} ({clients} cl.)", thousands(rate_with)),
            rate_with / rate_without.max(1e-9),
            format!(
                "{:.0} → {:.0} %",
                without.ratio() * 100.0,
                with.ratio() * 100.0
            ),
            p50(without),
            p50(with),
            format!(
                "{:.0} → {:.0} %",
                without.platform_cpu(),
                with.platform_cpu()
            )
        );
    }
    let _ = writeln!(
        out,
        "(unbatched: messages/s, one reading each; share of raw: readings/s over the raw bulk load \
         measured after each run, which corrects for the second run's larger table; CPU in % of \
         one core, 2 cores = 200 %)"
    );
}
