//! `bench live`'s figures, the budgets of DESIGN.md and issue #7, and the printed tables.
//!
//! Two latencies are printed for every group of clients, both receipt − reading time:
//! *per value* (every item of every frame: includes the wait for the next frame, up to
//! 1 / max_fps, when values arrive faster than frames may go) and *per frame* (the newest
//! item of each frame: how fresh the screen is when the frame lands). The budgets are judged
//! on both, and the table says which is which.

use std::fmt::Write as _;

use super::commit_latency::CommitLatency;
use super::scenario::Plan;
use super::LiveBenchArgs;
use crate::bench::histogram::Summary;
use crate::bench::report::{mib, pass, thousands};
use crate::bench::usage::CpuUsage;
use crate::bench::ws_clients::{ClientsReport, GroupReport, Ready};

/// DESIGN.md: publish → websocket frame at 10k readings/s, median.
pub(crate) const LATENCY_P50_MS: f64 = 5.0;
/// DESIGN.md: publish → websocket frame at 10k readings/s, 99th percentile.
pub(crate) const LATENCY_P99_MS: f64 = 25.0;
/// DESIGN.md: dashboard clients on one node.
pub(crate) const FANOUT_CLIENTS: usize = 1000;
/// DESIGN.md: frames/s each of them holds.
pub(crate) const FANOUT_FPS: f64 = 10.0;
/// DESIGN.md: their 99th percentile latency.
pub(crate) const FANOUT_P99_MS: f64 = 50.0;
/// The rate the latency budget is stated at.
pub(crate) const BUDGET_RATE: u32 = 10_000;

/// The platform's live counters at one instant (and their differences).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LiveCounts {
    /// Readings committed.
    pub readings: u64,
    /// Live frames sent.
    pub frames: u64,
    /// Values and buckets sent.
    pub values: u64,
    /// Values replaced by a newer one before a frame.
    pub coalesced: u64,
    /// Committed batches the fan-out skipped because it fell behind.
    pub lagged: u64,
    /// Connections the server closed.
    pub closed: u64,
}

impl LiveCounts {
    /// The platform's counters now.
    pub(crate) fn of(metrics: &beffroi_telemetry::Metrics) -> Self {
        Self {
            readings: metrics.ingest_readings.get(),
            frames: metrics.live_frames.get(),
            values: metrics.live_values.get(),
            coalesced: metrics.live_coalesced.get(),
            lagged: metrics.live_fanout_lagged.get(),
            closed: metrics.live_closed.snapshot().values().sum(),
        }
    }

    /// What happened between `earlier` and `self`.
    pub(crate) fn since(&self, earlier: &Self) -> Self {
        Self {
            readings: self.readings.saturating_sub(earlier.readings),
            frames: self.frames.saturating_sub(earlier.frames),
            values: self.values.saturating_sub(earlier.values),
            coalesced: self.coalesced.saturating_sub(earlier.coalesced),
            lagged: self.lagged.saturating_sub(earlier.lagged),
            closed: self.closed.saturating_sub(earlier.closed),
        }
    }
}

/// The store's view of what the gateways published.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StoreCheck {
    /// Gateways.
    pub gateways: usize,
    /// Gateways whose committed seqs are exactly 1..=published.
    pub complete: usize,
    /// Batches published.
    pub published: u64,
    /// Readings in them.
    pub published_readings: u64,
    /// Readings of the tenant in the store.
    pub stored_readings: u64,
    /// Batches never acknowledged.
    pub unacked: u64,
    /// Batches published again.
    pub resends: u64,
    /// Reconnections.
    pub reconnects: u64,
}

impl StoreCheck {
    /// Every batch committed once, every reading stored once.
    pub(crate) fn zero_loss(&self) -> bool {
        self.unacked == 0
            && self.complete == self.gateways
            && self.stored_readings == self.published_readings
    }

    /// The report's zero-loss row, `details` following the readings counts.
    pub(crate) fn zero_loss_row(&self, t: &mut Table, details: &str) {
        t.row(
            "zero loss (store: seqs 1..=n once, readings)",
            format!("{}/{} gw", self.complete, self.gateways),
            "all",
            format!(
                "{} ({} batches; {} of {} readings stored{details})",
                pass(self.zero_loss()),
                thousands(self.published as f64),
                thousands(self.stored_readings as f64),
                thousands(self.published_readings as f64),
            ),
        );
    }
}

/// Everything one scenario measured.
#[derive(Debug)]
pub(crate) struct ScenarioResult {
    /// `latency` or `fan-out`.
    pub name: &'static str,
    /// What was asked.
    pub plan: Plan,
    /// Length of the window, s.
    pub seconds: f64,
    /// Readings made by the paced gateways in the window, per second.
    pub published_per_s: f64,
    /// Readings committed in the window, per second.
    pub committed_per_s: f64,
    /// Gateway ticks that came more than a period late.
    pub feeds_late: u64,
    /// How connecting went.
    pub ready: Ready,
    /// The clients' figures.
    pub clients: ClientsReport,
    /// Per group: values its clients could have received (readings of their views' sensors
    /// made in the window, times the clients on each view).
    pub expected_values: Vec<u64>,
    /// Publish → queued for the hub probe.
    pub probe: Summary,
    /// Values the probe took in the window.
    pub probe_values: u64,
    /// Publish → delivery to the plain MQTT subscriber.
    pub baseline: Summary,
    /// Messages the baseline subscriber could not read.
    pub baseline_unreadable: u64,
    /// Publish → commit ack at the gateways: p50, p99, max (µs), samples.
    pub ack: Option<(u32, u32, u32, usize)>,
    /// Ingest receipt → commit, in the window.
    pub commit: CommitLatency,
    /// The platform's live counters in the window.
    pub live: LiveCounts,
    /// CPU of this process in the window.
    pub cpu: CpuUsage,
    /// CPU of local PostgreSQL processes, % of one core.
    pub postgres_cpu: f64,
    /// This process's RSS before the clients connected.
    pub rss_before_clients: Option<u64>,
    /// This process's RSS once they were connected and subscribed.
    pub rss_clients_connected: Option<u64>,
    /// Mean RSS in the window.
    pub rss_mean: Option<u64>,
    /// Largest RSS sample in the window.
    pub rss_peak: Option<u64>,
    /// Zero loss.
    pub check: StoreCheck,
}

impl ScenarioResult {
    /// Why the run itself broke (lost readings, clients that could not connect), if it did.
    pub(crate) fn broken(&self) -> Option<String> {
        let mut why = Vec::new();
        if !self.check.zero_loss() {
            why.push(format!(
                "readings lost ({} of {} stored, {} of {} gateways complete, {} unacked)",
                self.check.stored_readings,
                self.check.published_readings,
                self.check.complete,
                self.check.gateways,
                self.check.unacked
            ));
        }
        if self.ready.failed > 0 {
            why.push(format!(
                "{} websocket clients could not connect ({})",
                self.ready.failed,
                self.ready.first_error.as_deref().unwrap_or("?")
            ));
        }
        (!why.is_empty()).then(|| format!("{}: {}", self.name, why.join(", ")))
    }

    /// CPU of the platform's threads: everything but the benchmark's own (`bench-*`).
    fn platform_cpu(&self) -> f64 {
        (self.cpu.process - self.cpu.of(&["bench-"])).max(0.0)
    }
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

fn ratio(value: u64, baseline: u64) -> String {
    if baseline == 0 {
        "–".into()
    } else {
        format!("×{:.1}", value as f64 / baseline as f64)
    }
}

/// PASS/FAIL of a latency summary against (p50, p99) budgets in ms; `None` skips one.
fn latency_verdict(s: &Summary, p50: Option<f64>, p99: f64) -> String {
    let p99_ok = (s.p99_us as f64) <= p99 * 1000.0;
    match p50 {
        Some(p50) => format!(
            "{} / {}",
            pass((s.p50_us as f64) <= p50 * 1000.0),
            pass(p99_ok)
        ),
        None => pass(p99_ok).to_owned(),
    }
}

/// A printed table: figure, measured, budget, result (also `bench soak`'s).
pub(crate) struct Table(pub(crate) String);

impl Table {
    /// One figure.
    pub(crate) fn row(&mut self, name: &str, measured: String, budget: &str, result: String) {
        let _ = writeln!(self.0, "{name:<50} {measured:>22} {budget:>15}  {result}");
    }

    /// A line of text (a heading, a note).
    pub(crate) fn line(&mut self, text: String) {
        let _ = writeln!(self.0, "{text}");
    }
}

/// The tables of every scenario.
pub(crate) fn render(
    backend: &str,
    context: &str,
    args: &LiveBenchArgs,
    results: &[ScenarioResult],
) -> String {
    let mut t = Table(String::new());
    t.line(format!("\nLive views benchmark — {backend} ({context})"));
    let per_gateway = super::scenario::sensors_per_gateway(usize::from(args.readings_per_batch));
    t.line(format!(
        "load: {} gateways over mTLS × {:.1} batches/s × {} readings = {} readings/s; {} zones, \
         {} sensors, {} series; budgets stated at {} readings/s",
        args.gateways,
        1.0 / args.period().as_secs_f64(),
        args.readings_per_batch,
        thousands(f64::from(args.rate)),
        args.zones,
        args.gateways * per_gateway,
        args.gateways * per_gateway * crate::bench::generator::SERIES.len(),
        thousands(f64::from(BUDGET_RATE)),
    ));
    if let Some(ms) = args.commit_interval_ms {
        t.line(format!(
            "what-if: ingest.commit_interval_ms = {ms} (platform default: 0)"
        ));
    }
    if let Some(fps) = args.max_fps {
        t.line(format!(
            "what-if: live.max_fps = {fps} (platform default: 50)"
        ));
    }
    t.row("figure", "measured".into(), "budget", "result".into());
    for r in results {
        render_scenario(&mut t, r);
    }
    t.0
}

#[allow(clippy::too_many_lines)]
fn render_scenario(t: &mut Table, r: &ScenarioResult) {
    let groups: Vec<String> = r
        .plan
        .groups
        .iter()
        .map(|g| {
            format!(
                "{} clients on {} (max_fps {})",
                g.clients,
                g.name,
                g.max_fps
                    .map_or_else(|| "server default".to_owned(), |f| f.to_string())
            )
        })
        .collect();
    t.line(format!(
        "-- {}: {}; {:.1} s window",
        r.name,
        groups.join(", "),
        r.seconds
    ));
    let rate_ok = r.committed_per_s >= r.published_per_s * 0.98 && r.live.lagged == 0;
    t.row(
        "readings/s published / committed",
        format!(
            "{} / {}",
            thousands(r.published_per_s),
            thousands(r.committed_per_s)
        ),
        "",
        format!(
            "{} ({} late gateway ticks, {} batches skipped by the fan-out)",
            if rate_ok { "held" } else { "NOT HELD" },
            r.feeds_late,
            r.live.lagged
        ),
    );
    let baseline = &r.baseline;
    for ((group, plan), expected) in r
        .clients
        .groups
        .iter()
        .zip(&r.plan.groups)
        .zip(&r.expected_values)
    {
        render_group(t, r, group, plan.max_fps, *expected);
    }
    t.row(
        "baseline: publish → MQTT delivery p50 / p99 ms",
        format!("{} / {}", ms(baseline.p50_us), ms(baseline.p99_us)),
        "",
        format!(
            "max {} ms, {} messages; plain v5 subscriber on the broker's loopback listener{}",
            ms(baseline.max_us),
            thousands(baseline.count as f64),
            if r.baseline_unreadable > 0 {
                format!(", {} unreadable", r.baseline_unreadable)
            } else {
                String::new()
            }
        ),
    );
    t.line("   where the time goes (p50 / p99 ms, mean):".into());
    t.row(
        "   ingest receipt → commit (platform histogram)",
        format!(
            "{} / {}",
            opt_ms(r.commit.quantile_ms(0.5)),
            opt_ms(r.commit.quantile_ms(0.99))
        ),
        "",
        format!(
            "mean {} ms over {} batches; interpolated in buckets 0.5/1/2.5/5/10/25 ms",
            opt_ms(r.commit.mean_ms()),
            thousands(r.commit.count() as f64)
        ),
    );
    match r.ack {
        Some((p50, p99, max, n)) => t.row(
            "   publish → commit ack at the gateway",
            format!("{} / {}", ms(u64::from(p50)), ms(u64::from(p99))),
            "",
            format!(
                "max {} ms, {} batches (ack back through broker and gate)",
                ms(u64::from(max)),
                thousands(n as f64)
            ),
        ),
        None => t.row(
            "   publish → commit ack at the gateway",
            "no samples".into(),
            "",
            String::new(),
        ),
    }
    t.row(
        "   publish → queued for a client (hub probe)",
        format!("{} / {}", ms(r.probe.p50_us), ms(r.probe.p99_us)),
        "",
        format!(
            "mean {} ms, max {} ms, {} values (zone-01, in-process, no pacing)",
            ms(r.probe.mean_us as u64),
            ms(r.probe.max_us),
            thousands(r.probe_values as f64)
        ),
    );
    t.row(
        "CPU: platform threads / process / clients / PG",
        format!(
            "{:.0} / {:.0} / {:.0} / {:.0} %",
            r.platform_cpu(),
            r.cpu.process,
            r.clients.cpu_pct,
            r.postgres_cpu
        ),
        "",
        "% of one core; 2 cores = 200 %; clients in their own process".into(),
    );
    let clients: usize = r.clients.groups.iter().map(|g| g.connected).sum();
    let per_client = |after: Option<u64>| match (after, r.rss_before_clients) {
        (Some(after), Some(before)) if clients > 0 => format!(
            "{:.0}",
            after.saturating_sub(before) as f64 / 1024.0 / clients as f64
        ),
        _ => "?".into(),
    };
    t.row(
        "server RSS: no clients / connected / window mean / peak",
        format!(
            "{} / {} / {} / {}",
            mib(r.rss_before_clients),
            mib(r.rss_clients_connected),
            mib(r.rss_mean),
            mib(r.rss_peak)
        ),
        "",
        format!(
            "growth per client {} KiB connected, {} KiB in the window (upper bound: includes the \
             ingest's own growth); platform + gateways process (clients' process: {})",
            per_client(r.rss_clients_connected),
            per_client(r.rss_mean),
            mib(r.clients.rss_bytes)
        ),
    );
    t.row(
        "server: frames / values sent, coalesced",
        format!(
            "{} / {}",
            thousands(r.live.frames as f64),
            thousands(r.live.values as f64)
        ),
        "",
        format!(
            "{} values replaced before their frame; {} connections closed by the server",
            thousands(r.live.coalesced as f64),
            r.live.closed
        ),
    );
    let c = &r.check;
    c.zero_loss_row(
        t,
        &format!("; {} resends, {} reconnects", c.resends, c.reconnects),
    );
    let top: Vec<String> = r
        .cpu
        .groups
        .iter()
        .take(8)
        .map(|(name, pct)| format!("{name} {pct:.0}%"))
        .collect();
    t.line(format!("   CPU by thread: {}", top.join(", ")));
}

/// Whether a group of `clients` asking for `max_fps` is judged by the fan-out budget: this
/// many clients, each asking for at least the budget's rate.
fn is_fan_out(clients: usize, max_fps: Option<u32>) -> bool {
    clients >= FANOUT_CLIENTS && max_fps.is_some_and(|f| f64::from(f) >= FANOUT_FPS)
}

/// The publish → frame budget a group is judged by, as (p50 ms, p99 ms, label): the latency
/// budget for clients at the server's default frame rate, the fan-out budget for 1,000
/// clients at 10 frames/s; other groups get none.
pub(crate) fn latency_budget(
    clients: usize,
    max_fps: Option<u32>,
) -> Option<(Option<f64>, f64, &'static str)> {
    if is_fan_out(clients, max_fps) {
        Some((None, FANOUT_P99_MS, "p99 ≤ 50"))
    } else if max_fps.is_none() {
        Some((Some(LATENCY_P50_MS), LATENCY_P99_MS, "≤ 5 / ≤ 25"))
    } else {
        None
    }
}

fn opt_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "?".to_owned(), |v| format!("{v:.1}"))
}

fn render_group(
    t: &mut Table,
    r: &ScenarioResult,
    g: &GroupReport,
    max_fps: Option<u32>,
    expected: u64,
) {
    let name = |what: &str| format!("[{}] {what}", g.name);
    let fan_out = is_fan_out(g.clients, max_fps);
    let closed: u64 = g.closed.values().sum();
    t.row(
        &name("clients connected / closed early"),
        format!("{} / {}", g.connected, closed),
        if fan_out { "≥ 1 000 / 0" } else { "" },
        if closed > 0 {
            format!("{:?}", g.closed)
        } else {
            String::new()
        },
    );
    let target = max_fps.map_or(0.0, f64::from);
    let held = g.connected >= FANOUT_CLIENTS
        && closed == 0
        && g.fps.p50 >= target * 0.95
        && g.fps.min >= target * 0.9;
    t.row(
        &name("frames/s per client: min / median / max"),
        format!("{:.1} / {:.1} / {:.1}", g.fps.min, g.fps.p50, g.fps.max),
        if fan_out { "≥ 10 held" } else { "" },
        if fan_out {
            format!(
                "{} (median ≥ 95 %, slowest ≥ 90 % of {target:.0})",
                pass(held)
            )
        } else {
            String::new()
        },
    );
    let connected = g.connected.max(1) as f64;
    t.row(
        &name("values/s per client; items per frame; KB/s"),
        format!(
            "{}; {:.1}; {:.0}",
            thousands(g.values as f64 / connected / r.seconds),
            g.values as f64 / g.frames.max(1) as f64,
            g.bytes as f64 / connected / r.seconds / 1000.0
        ),
        "",
        format!("{} errors", g.errors),
    );
    t.row(
        &name("share of the view's values that arrived"),
        format!("{:.1} %", g.values as f64 / expected.max(1) as f64 * 100.0),
        "",
        "coalescing keeps the latest per series: not a loss".into(),
    );
    let budget = latency_budget(g.clients, max_fps);
    for (what, s) in [
        ("publish → frame, per value p50 / p99 ms", &g.value_latency),
        ("publish → frame, newest of frame p50/p99", &g.frame_latency),
    ] {
        let verdict = budget.map_or_else(
            || "no budget".to_owned(),
            |(p50, p99, _)| latency_verdict(s, p50, p99),
        );
        t.row(
            &name(what),
            format!("{} / {}", ms(s.p50_us), ms(s.p99_us)),
            budget.map_or("", |(_, _, label)| label),
            format!(
                "{verdict}; max {} ms; {} / {} × baseline",
                ms(s.max_us),
                ratio(s.p50_us, r.baseline.p50_us),
                ratio(s.p99_us, r.baseline.p99_us)
            ),
        );
    }
}
