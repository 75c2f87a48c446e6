//! `bench soak`'s result, its verdicts and the printed table (the layout of `bench live`'s):
//! memory, queues, rate, clients, latency, zero loss. Each series is also a list of points
//! `(s, value)` for the verdicts and the `--json` record.

use super::sampler::Sample;
use super::verdict::{
    MemoryVerdict, QueueVerdict, RateVerdict, HORIZON_H, RATE_TOLERANCE, RSS_BAND_MIB,
    RSS_SLOPE_MIB_PER_H,
};
use super::SoakBenchArgs;
use crate::bench::live::load::Landed;
use crate::bench::live::Table;
use crate::bench::report::{pass, percentiles, thousands};
use crate::bench::ws_clients::{ClientsReport, Ready};

/// Bytes per MiB.
const MIB: f64 = 1024.0 * 1024.0;
/// Messages the ingest buffers between the broker and verification (`ingest.inbound_capacity`
/// default): past it the broker is pushed back.
const INBOUND_CAPACITY: f64 = 4096.0;
/// SQLite checkpoints its WAL every 1,000 pages (~4 MiB); one 16 times larger means the
/// checkpoints are starved.
const WAL_BOUND_MIB: f64 = 64.0;

/// Everything a soak measured.
#[derive(Debug)]
pub(crate) struct SoakResult {
    /// The platform process's id.
    pub pid: u32,
    /// How connecting the clients went.
    pub ready: Ready,
    /// One per interval.
    pub samples: Vec<Sample>,
    /// The clients' own figures over the whole run.
    pub clients: ClientsReport,
    /// The gateways' landing and the store check.
    pub landed: Landed,
}

/// The verdicts of a run.
pub(crate) struct Verdicts {
    /// The platform process's memory.
    pub memory: MemoryVerdict,
    /// Each queue: its name, unit, and verdict.
    pub queues: Vec<(&'static str, &'static str, QueueVerdict)>,
    /// The committed rate per interval.
    pub rate: RateVerdict,
    /// No client closed early, none as too slow, every one connected.
    pub clients_kept: bool,
}

impl SoakResult {
    /// The points `(s, f(sample))`.
    pub(crate) fn series(&self, f: impl Fn(&Sample) -> f64) -> Vec<(f64, f64)> {
        self.samples.iter().map(|s| (s.t_s, f(s))).collect()
    }

    /// The run's length, s (the last sample's time).
    pub(crate) fn seconds(&self) -> f64 {
        self.samples.last().map_or(0.0, |s| s.t_s)
    }

    /// Judges the run.
    pub(crate) fn verdicts(&self, args: &SoakBenchArgs) -> Verdicts {
        let (seconds, warmup) = (self.seconds(), args.warmup() as f64);
        let rate = f64::from(args.rate);
        let queue =
            |points: Vec<(f64, f64)>, bound: f64| QueueVerdict::of(&points, seconds, warmup, bound);
        let mut queues = vec![
            (
                "pipeline backlog (made − committed)",
                "readings",
                queue(self.series(|s| s.backlog), rate),
            ),
            (
                "commit queue (ingest_queue_batches)",
                "batches",
                queue(
                    self.series(|s| s.commit_queue),
                    rate / f64::from(args.readings_per_batch),
                ),
            ),
            (
                "verify queue (ingest_inbound_messages)",
                "messages",
                queue(self.series(|s| s.inbound), INBOUND_CAPACITY),
            ),
            (
                "fan-out batches skipped (live_fanout_lagged)",
                "batches",
                queue(self.series(|s| s.lagged), 0.0),
            ),
        ];
        if self.samples.iter().any(|s| s.store.wal.is_some()) {
            queues.push((
                "SQLite WAL",
                "MiB",
                queue(
                    self.series(|s| s.store.wal.unwrap_or(0) as f64 / MIB),
                    WAL_BOUND_MIB,
                ),
            ));
        }
        let last = self.samples.last();
        Verdicts {
            memory: MemoryVerdict::of(
                &self.series(|s| s.platform_rss as f64 / MIB),
                seconds,
                warmup,
            ),
            queues,
            rate: RateVerdict::of(&self.series(|s| s.committed_per_s), warmup, rate),
            clients_kept: self.ready.failed == 0
                && last.is_some_and(|s| s.clients_closed == 0 && s.too_slow == 0.0)
                && self
                    .samples
                    .iter()
                    .all(|s| s.live_clients >= self.ready.connected as f64),
        }
    }

    /// The fewest gateway connections the gate held at a sample.
    pub(crate) fn fewest_gateways(&self) -> f64 {
        self.samples
            .iter()
            .map(|s| s.gate_connections)
            .fold(f64::INFINITY, f64::min)
    }

    /// Why the run itself broke (readings lost, clients that could not connect), if it did.
    pub(crate) fn broken(&self) -> Option<String> {
        let check = &self.landed.check;
        let mut why = Vec::new();
        if !check.zero_loss() {
            why.push(format!(
                "readings lost ({} of {} stored, {} of {} gateways complete, {} unacked)",
                check.stored_readings,
                check.published_readings,
                check.complete,
                check.gateways,
                check.unacked
            ));
        }
        if self.ready.failed > 0 {
            why.push(format!(
                "{} websocket clients could not connect ({})",
                self.ready.failed,
                self.ready.first_error.as_deref().unwrap_or("?")
            ));
        }
        (!why.is_empty()).then(|| why.join(", "))
    }
}

/// One line per sample on stderr while the run goes.
pub(crate) fn progress(s: &Sample) -> String {
    format!(
        "bench soak {:>5.0} s: platform {:.0} MiB, {:.0} % CPU; committed {}/s; backlog {}; \
         commit queue {}, inbound {}; clients {:.0} frames/s; ack p99 {:.1} ms",
        s.t_s,
        s.platform_rss as f64 / MIB,
        s.platform_cpu_pct,
        thousands(s.committed_per_s),
        thousands(s.backlog),
        s.commit_queue,
        s.inbound,
        s.frames_received_per_s,
        s.ack.p99_us as f64 / 1000.0
    )
}

/// `slope ± se unit/h`.
fn slope(fit: Option<(f64, f64)>, unit: &str) -> String {
    fit.map_or_else(
        || "?".to_owned(),
        |(slope, se)| format!("{slope:+.1} ± {se:.1} {unit}/h"),
    )
}

/// Mean of `f` over the samples after the warm-up.
fn mean_after(r: &SoakResult, warmup: f64, f: impl Fn(&Sample) -> f64) -> f64 {
    let values: Vec<f64> = r
        .samples
        .iter()
        .filter(|s| s.t_s >= warmup)
        .map(f)
        .collect();
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// The table.
#[allow(clippy::too_many_lines)]
pub(crate) fn render(backend: &str, context: &str, args: &SoakBenchArgs, r: &SoakResult) -> String {
    let v = r.verdicts(args);
    let warmup = args.warmup() as f64;
    let mut t = Table(String::new());
    t.line(format!("\nSoak benchmark — {backend} ({context})"));
    t.line(format!(
        "load: {} gateways over mTLS × {:.1} batches/s × {} readings = {} readings/s; {} \
         clients on {} zone views at max_fps {}; {:.0} s sampled every {} s, warm-up {} s; \
         platform pid {} (`beffroi serve`, embedded broker)",
        args.gateways,
        1.0 / args.shape().period().as_secs_f64(),
        args.readings_per_batch,
        thousands(f64::from(args.rate)),
        args.clients,
        args.zones,
        args.fps,
        r.seconds(),
        args.sample_s,
        args.warmup(),
        r.pid
    ));
    t.row("figure", "measured".into(), "budget", "result".into());

    t.line("-- memory (resident set from /proc, per process)".into());
    let m = &v.memory;
    t.row(
        "platform RSS after warm-up → end",
        format!("{:.1} → {:.1} MiB", m.first_mib, m.last_mib),
        "",
        format!(
            "×{:.2} of after warm-up",
            m.last_mib / m.first_mib.max(1e-9)
        ),
    );
    t.row(
        "  slope over the 2nd half",
        slope(m.slope_mib_per_h, "MiB"),
        &format!("≤ {RSS_SLOPE_MIB_PER_H:.0} MiB/h"),
        pass(
            m.slope_mib_per_h
                .is_some_and(|(s, _)| s <= RSS_SLOPE_MIB_PER_H),
        )
        .into(),
    );
    t.row(
        "  max − min after warm-up",
        format!("{:.1} MiB", m.band_mib),
        &format!("≤ {RSS_BAND_MIB:.0} MiB"),
        pass(m.band_mib <= RSS_BAND_MIB).into(),
    );
    for (name, f) in [
        (
            "websocket clients' process RSS",
            (|s: &Sample| s.clients_rss as f64 / MIB) as fn(&Sample) -> f64,
        ),
        ("simulated gateways' process RSS", |s: &Sample| {
            s.gateways_rss as f64 / MIB
        }),
    ] {
        let other = MemoryVerdict::of(&r.series(f), r.seconds(), warmup);
        t.row(
            &format!("{name} after warm-up → end"),
            format!("{:.1} → {:.1} MiB", other.first_mib, other.last_mib),
            "",
            format!(
                "slope {}, band {:.1} MiB (not the platform's)",
                slope(other.slope_mib_per_h, "MiB"),
                other.band_mib
            ),
        );
    }

    t.line(format!(
        "-- queues (max after warm-up, last; growing = slope > 2 s.e. reaching the bound within \
         {HORIZON_H:.0} h)"
    ));
    for (name, unit, q) in &v.queues {
        t.row(
            name,
            format!("max {}, last {}", short(q.max), short(q.last)),
            &format!("≤ {} {unit}", short(q.bound)),
            format!(
                "{} (slope {}{})",
                pass(q.ok()),
                slope(q.slope_per_h, unit),
                if q.growing() { ", GROWING" } else { "" }
            ),
        );
    }
    t.line(
        "   per-client live queues have no gauge: they hold the latest value per series (bounded \
         by the view) and events up to a cap, past which the client is closed as too slow"
            .into(),
    );

    t.line("-- rate".into());
    let rate = &v.rate;
    t.row(
        "committed readings/s per interval min / mean / max",
        format!(
            "{} / {} / {}",
            thousands(rate.min),
            thousands(rate.mean),
            thousands(rate.max)
        ),
        &format!("±{:.0} % of target", RATE_TOLERANCE * 100.0),
        format!(
            "{} ({} of {} intervals outside; ×{:.3} of the offered {})",
            pass(rate.held()),
            rate.outside,
            rate.intervals,
            rate.mean / rate.target.max(1e-9),
            thousands(rate.target)
        ),
    );
    t.row(
        "platform CPU, mean after warm-up",
        format!("{:.0} %", mean_after(r, warmup, |s| s.platform_cpu_pct)),
        "",
        "% of one core; 2 cores = 200 %".into(),
    );

    t.line("-- dashboard clients".into());
    let last = r.samples.last();
    t.row(
        "clients connected / closed early / too slow",
        format!(
            "{} / {} / {}",
            r.ready.connected,
            last.map_or(0, |s| s.clients_closed),
            last.map_or(0.0, |s| s.too_slow)
        ),
        &format!("{} / 0 / 0", args.clients),
        format!(
            "{} ({} could not connect)",
            pass(v.clients_kept),
            r.ready.failed
        ),
    );
    t.row(
        "frames/s received (all clients), mean",
        thousands(mean_after(r, warmup, |s| s.frames_received_per_s)),
        "",
        format!(
            "{} values/s; server sent {} frames/s, coalesced {} values/s",
            thousands(mean_after(r, warmup, |s| s.values_received_per_s)),
            thousands(mean_after(r, warmup, |s| s.frames_sent_per_s)),
            thousands(mean_after(r, warmup, |s| s.coalesced_per_s))
        ),
    );
    if let Some(group) = r.clients.groups.first() {
        let s = &group.value_latency;
        t.row(
            "publish → frame per value p50 / p99 (whole run)",
            format!(
                "{:.1} / {:.1} ms",
                s.p50_us as f64 / 1000.0,
                s.p99_us as f64 / 1000.0
            ),
            "",
            format!(
                "max {:.1} ms; frames/s per client {:.1}–{:.1}",
                s.max_us as f64 / 1000.0,
                group.fps.min,
                group.fps.max
            ),
        );
    }

    t.line("-- latency at the gateways".into());
    let mut all = r.landed.ack_latencies_us.clone();
    if let Some((p50, p99, max, n)) = percentiles(&mut all) {
        t.row(
            "publish → commit ack p50 / p99 (whole run)",
            format!(
                "{:.1} / {:.1} ms",
                f64::from(p50) / 1000.0,
                f64::from(p99) / 1000.0
            ),
            "",
            format!(
                "max {:.1} ms, {} batches",
                f64::from(max) / 1000.0,
                thousands(n as f64)
            ),
        );
    }
    let p99 = r.series(|s| s.ack.p99_us as f64 / 1000.0);
    let p99_warm: Vec<f64> = p99.iter().filter(|p| p.0 >= warmup).map(|p| p.1).collect();
    t.row(
        "  p99 per interval: first after warm-up → last",
        format!(
            "{:.1} → {:.1} ms",
            p99_warm.first().copied().unwrap_or(0.0),
            p99_warm.last().copied().unwrap_or(0.0)
        ),
        "",
        format!(
            "worst {:.1} ms; slope over the 2nd half {}",
            p99_warm.iter().copied().fold(0.0, f64::max),
            slope(
                super::verdict::Fit::of(&super::verdict::second_half(&p99, r.seconds()))
                    .map(|f| (f.slope * 3600.0, f.slope_se * 3600.0)),
                "ms"
            )
        ),
    );

    t.line("-- zero loss and the store".into());
    let c = &r.landed.check;
    c.zero_loss_row(&mut t, &format!(", {} unacked", c.unacked));
    t.row(
        "resends / reconnects / duplicates / commit errors",
        format!(
            "{} / {} / {} / {}",
            c.resends,
            c.reconnects,
            last.map_or(0.0, |s| s.duplicates),
            last.map_or(0.0, |s| s.commit_errors)
        ),
        "",
        format!("{} late feed ticks", r.landed.feeds_late),
    );
    t.row(
        "gateway connections held, fewest sampled",
        short(r.fewest_gateways()),
        &short(args.gateways as f64),
        pass(r.fewest_gateways() >= args.gateways as f64).into(),
    );
    if let (Some(first), Some(last)) = (r.samples.first(), r.samples.last()) {
        let grown = last.store.database.saturating_sub(first.store.database) as f64;
        let hours = (last.t_s - first.t_s).max(1e-9) / 3600.0;
        t.row(
            "store on disk: first → last sample",
            format!(
                "{:.0} → {:.0} MiB",
                first.store.database as f64 / MIB,
                last.store.database as f64 / MIB
            ),
            "",
            format!(
                "{:.0} MiB/h, {:.0} bytes per reading committed (grows with the data: no verdict)",
                grown / MIB / hours,
                grown / (rate.mean * (last.t_s - first.t_s)).max(1.0)
            ),
        );
    }
    t.0
}

/// A queue figure: integers as such, fractions with one decimal.
fn short(value: f64) -> String {
    if value.fract() == 0.0 {
        thousands(value)
    } else {
        format!("{value:.1}")
    }
}
