//! `bench live --json PATH`: the scenarios' figures as one [`Record`] — per client group the
//! publish → frame latency per value and per frame (its newest item), p50, p99 and max, with
//! the budget its group is judged by and the plain MQTT subscriber's latency as the same-run
//! baseline, frames/s per client and clients connected; per scenario the committed rate, the server's memory and zero loss. The offered
//! rate is a figure and group figures are named `<scenario> [<group>] …`, so `bench/report`
//! can plot latency against rate across runs.

use super::report::{latency_budget, ScenarioResult};
use super::LiveBenchArgs;
use crate::bench::record::{Goal, Record};

/// Microseconds to milliseconds.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The record of one `bench live` run on `backend`.
pub(crate) fn of(backend: &str, args: &LiveBenchArgs, results: &[ScenarioResult]) -> Record {
    let mut record = Record::new(
        "live",
        format!(
            "{backend}, {} readings/s from {} gateways",
            args.rate, args.gateways
        ),
    );
    record.figure("offered rate", f64::from(args.rate), "readings/s");
    for r in results {
        let scenario = r.name;
        record
            .figure(
                &format!("{scenario} committed"),
                r.committed_per_s,
                "readings/s",
            )
            .budget(Goal::AtLeast, f64::from(args.rate) * 0.95);
        record.figure(
            &format!("{scenario} zero loss"),
            f64::from(u8::from(r.check.zero_loss())),
            "bool",
        );
        if let Some(rss) = r.rss_peak {
            record.figure(
                &format!("{scenario} server RSS peak"),
                rss as f64 / 1024.0 / 1024.0,
                "MiB",
            );
        }
        for (g, plan) in r.clients.groups.iter().zip(&r.plan.groups) {
            let name = |what: &str| format!("{scenario} [{}] {what}", g.name);
            record.figure(&name("clients connected"), g.connected as f64, "clients");
            record.figure(&name("frames/s per client, median"), g.fps.p50, "frames/s");
            // As the printed table: the latency budget judges both latencies; the fan-out
            // budget the frame's newest item only, since at 10 frames/s a value waits up to
            // 100 ms for its frame by design.
            let budget = latency_budget(g.clients, plan.max_fps);
            let fan_out = budget.is_some_and(|(p50, _, _)| p50.is_none());
            for (what, s, judged) in [
                ("publish → frame", &g.value_latency, !fan_out),
                ("publish → newest of frame", &g.frame_latency, true),
            ] {
                let budget = budget.filter(|_| judged);
                record
                    .figure(&name(&format!("{what} p50")), ms(s.p50_us), "ms")
                    .baseline("MQTT subscriber", ms(r.baseline.p50_us));
                if let Some((Some(p50), _, _)) = budget {
                    record.budget(Goal::AtMost, p50);
                }
                record
                    .figure(&name(&format!("{what} p99")), ms(s.p99_us), "ms")
                    .baseline("MQTT subscriber", ms(r.baseline.p99_us));
                if let Some((_, p99, _)) = budget {
                    record.budget(Goal::AtMost, p99);
                }
                record
                    .figure(&name(&format!("{what} max")), ms(s.max_us), "ms")
                    .baseline("MQTT subscriber", ms(r.baseline.max_us));
            }
        }
    }
    record
}
