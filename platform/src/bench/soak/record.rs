//! `bench soak --json PATH`: the verdict figures with their budgets (baseline: the same
//! quantity after the warm-up, or the offered rate) and one series per sampled quantity —
//! memory of each process, each queue, the committed rate, frames received, publish → ack
//! p50/p99 per interval, CPU, the store's size — for `bench/report` to plot.

use super::report::SoakResult;
use super::sampler::Sample;
use super::verdict::{RATE_TOLERANCE, RSS_BAND_MIB, RSS_SLOPE_MIB_PER_H};
use super::SoakBenchArgs;
use crate::bench::record::{Goal, Record};

/// Bytes per MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// A sampled series: its name, its unit and how to read it from a sample.
type SeriesOf = (&'static str, &'static str, fn(&Sample) -> f64);

/// The record of one soak on `backend`.
pub(crate) fn of(backend: &str, args: &SoakBenchArgs, r: &SoakResult) -> Record {
    let v = r.verdicts(args);
    let mut record = Record::new(
        "soak",
        format!(
            "{backend}, {} min at {} readings/s from {} gateways, {} clients",
            args.minutes, args.rate, args.gateways, args.clients
        ),
    );
    record.figure("offered rate", f64::from(args.rate), "readings/s");
    let m = &v.memory;
    record
        .figure("platform RSS at the end", m.last_mib, "MiB")
        .baseline("after warm-up", m.first_mib);
    if let Some((slope, se)) = m.slope_mib_per_h {
        record
            .figure("platform RSS slope, 2nd half", slope, "MiB/h")
            .budget(Goal::AtMost, RSS_SLOPE_MIB_PER_H);
        record.figure("platform RSS slope standard error", se, "MiB/h");
    }
    record
        .figure("platform RSS max − min after warm-up", m.band_mib, "MiB")
        .budget(Goal::AtMost, RSS_BAND_MIB);
    record
        .figure("memory flat", f64::from(u8::from(m.flat())), "bool")
        .budget(Goal::AtLeast, 1.0);
    for (name, unit, q) in &v.queues {
        record
            .figure(&format!("{name} max after warm-up"), q.max, unit)
            .budget(Goal::AtMost, q.bound);
        if let Some((slope, _)) = q.slope_per_h {
            record.figure(
                &format!("{name} slope, 2nd half"),
                slope,
                &format!("{unit}/h"),
            );
        }
        record.figure(
            &format!("{name} not growing"),
            f64::from(u8::from(!q.growing())),
            "bool",
        );
    }
    let rate = &v.rate;
    record
        .figure("committed rate, slowest interval", rate.min, "readings/s")
        .budget(Goal::AtLeast, rate.target * (1.0 - RATE_TOLERANCE))
        .baseline("offered", rate.target);
    record
        .figure("committed rate, mean", rate.mean, "readings/s")
        .baseline("offered", rate.target);
    record.figure(
        "intervals outside the rate tolerance",
        rate.outside as f64,
        "intervals",
    );
    record
        .figure("clients connected", r.ready.connected as f64, "clients")
        .budget(Goal::AtLeast, args.clients as f64);
    let last = r.samples.last();
    record
        .figure(
            "clients closed early",
            last.map_or(0.0, |s| s.clients_closed as f64),
            "clients",
        )
        .budget(Goal::AtMost, 0.0);
    record
        .figure(
            "clients closed as too slow",
            last.map_or(0.0, |s| s.too_slow),
            "clients",
        )
        .budget(Goal::AtMost, 0.0);
    record
        .figure(
            "gateway connections, fewest sampled",
            r.fewest_gateways(),
            "connections",
        )
        .budget(Goal::AtLeast, args.gateways as f64);
    let check = &r.landed.check;
    record
        .figure("zero loss", f64::from(u8::from(check.zero_loss())), "bool")
        .budget(Goal::AtLeast, 1.0);
    record
        .figure("readings stored", check.stored_readings as f64, "readings")
        .baseline("published", check.published_readings as f64);
    let series: [SeriesOf; 16] = [
        ("platform RSS", "MiB", |s| s.platform_rss as f64 / MIB),
        ("websocket clients' RSS", "MiB", |s| {
            s.clients_rss as f64 / MIB
        }),
        ("simulated gateways' RSS", "MiB", |s| {
            s.gateways_rss as f64 / MIB
        }),
        ("platform CPU", "% of a core", |s| s.platform_cpu_pct),
        ("committed rate", "readings/s", |s| s.committed_per_s),
        ("offered rate", "readings/s", |s| s.made_per_s),
        ("pipeline backlog", "readings", |s| s.backlog),
        ("commit queue", "batches", |s| s.commit_queue),
        ("verify queue", "messages", |s| s.inbound),
        ("fan-out batches skipped", "batches", |s| s.lagged),
        ("frames received", "frames/s", |s| s.frames_received_per_s),
        ("values coalesced", "values/s", |s| s.coalesced_per_s),
        ("publish → ack p50", "ms", |s| {
            s.ack.p50_us as f64 / 1000.0
        }),
        ("publish → ack p99", "ms", |s| {
            s.ack.p99_us as f64 / 1000.0
        }),
        ("store size", "MiB", |s| s.store.database as f64 / MIB),
        ("SQLite WAL", "MiB", |s| {
            s.store.wal.map_or(f64::NAN, |w| w as f64 / MIB)
        }),
    ];
    for (name, unit, f) in series {
        let points = r.series(f);
        if points.iter().all(|p| p.1.is_finite()) {
            record.series(name, "s", unit, points);
        }
    }
    record
}
