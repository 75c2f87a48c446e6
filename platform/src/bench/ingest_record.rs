//! `beffroi bench ingest --json PATH`: the run's figures as one [`Record`] — every figure of
//! the printed table, named after its mode (`batched: committed`, `unbatched: committed`…),
//! with DESIGN.md's budgets and the same-run baselines (raw bulk load, integrator), and the
//! integrator consumer's committed rate second by second.

use super::integrator::IntegratorResult;
use super::record::{Goal, Record};
use super::report::{PhaseResult, FLOOR_MESSAGES_PER_S, GOAL_RATIO, GOAL_READINGS_PER_S};
use super::Mode;

/// Name of the integrator baseline in the record.
const INTEGRATOR: &str = "Mosquitto + Python COPY consumer";
/// Name of the raw bulk-load baseline in the record.
const RAW: &str = "raw bulk load";

/// The record of a run on `backend`.
pub(crate) fn record(backend: &str, context: &str, results: &[PhaseResult]) -> Record {
    let mut record = Record::new("ingest", format!("{backend}; {context}"));
    for r in results {
        let live = r
            .live
            .as_ref()
            .map_or_else(String::new, |l| format!(", {} live clients", l.clients));
        let name = |what: &str| format!("{}{live}: {what}", r.mode.as_str());
        add_rates(&mut record, r, &name);
        if let Some(integrator) = &r.integrator {
            add_integrator(&mut record, backend, r, integrator, &name);
        }
        let lost = r.published_readings.saturating_sub(r.stored_readings);
        record
            .figure(&name("lost"), lost as f64, "readings")
            .budget(Goal::AtMost, 0.0);
        record.figure(
            &name("gateways complete"),
            r.gateways_complete as f64,
            "gateways",
        );
        if let Some((p50, p99, max, _)) = r.latency_us {
            for (what, us) in [("p50", p50), ("p99", p99), ("max", max)] {
                record.figure(
                    &name(&format!("publish → commit ack {what}")),
                    f64::from(us) / 1000.0,
                    "ms",
                );
            }
        }
        record.figure(
            &name("CPU platform threads"),
            r.platform_cpu(),
            "% of a core",
        );
        record.figure(&name("CPU whole process"), r.cpu.process, "% of a core");
        if backend != "sqlite" {
            record.figure(&name("CPU PostgreSQL"), r.server_cpu, "% of a core");
        }
        if let Some(rss) = r.peak_rss {
            record.figure(&name("peak RSS"), rss as f64 / 1_048_576.0, "MiB");
        }
        record.figure(
            &name("generator max rate"),
            r.generator.max_rate().0,
            "messages/s",
        );
        record.figure(&name("commits"), r.commits_per_s, "commits/s");
        for (what, count) in [
            ("stalls", r.stalls),
            ("resends", r.resends),
            ("reconnects", r.reconnects),
            ("duplicates", r.duplicates),
            ("rejected", r.rejected),
            ("commit errors", r.commit_errors),
        ] {
            record.figure(&name(what), count as f64, "count");
        }
    }
    record
}

/// Committed rates with their budgets, the raw bulk load and the share of it.
fn add_rates(record: &mut Record, r: &PhaseResult, name: &dyn Fn(&str) -> String) {
    let raw = r.baseline.rate();
    match r.mode {
        Mode::Batched => {
            record
                .figure(&name("committed"), r.readings_per_s, "readings/s")
                .budget(Goal::AtLeast, GOAL_READINGS_PER_S)
                .baseline(RAW, raw);
            record
                .figure(&name("share of raw bulk load"), r.ratio(), "ratio")
                .budget(Goal::AtLeast, GOAL_RATIO);
            record.figure(&name("messages committed"), r.messages_per_s, "messages/s");
        }
        Mode::Unbatched => {
            record
                .figure(&name("committed"), r.messages_per_s, "messages/s")
                .budget(Goal::AtLeast, FLOOR_MESSAGES_PER_S);
            record
                .figure(&name("readings committed"), r.readings_per_s, "readings/s")
                .baseline(RAW, raw);
            record.figure(&name("share of raw bulk load"), r.ratio(), "ratio");
        }
    }
    record.figure(&name("raw bulk load"), raw, "readings/s");
}

/// The integrator baseline: its rate beside the ingest's, the ratio with its goal, its loss
/// and cost, and its rate over time.
fn add_integrator(
    record: &mut Record,
    backend: &str,
    r: &PhaseResult,
    i: &IntegratorResult,
    name: &dyn Fn(&str) -> String,
) {
    match r.mode {
        Mode::Batched => {
            record
                .figure(
                    &name("committed vs integrator"),
                    r.readings_per_s,
                    "readings/s",
                )
                .baseline(INTEGRATOR, i.readings_per_s);
            record.figure(&name("integrator"), i.readings_per_s, "readings/s");
        }
        Mode::Unbatched => {
            record
                .figure(
                    &name("committed vs integrator"),
                    r.messages_per_s,
                    "messages/s",
                )
                .baseline(INTEGRATOR, i.messages_per_s());
            record.figure(&name("integrator"), i.messages_per_s(), "messages/s");
        }
    }
    if let Some(ratio) = r.integrator_ratio() {
        record
            .figure(&name("ingest / integrator"), ratio, "ratio")
            .budget(Goal::AtLeast, r.integrator_goal());
    }
    record.figure(&name("integrator lost"), i.lost() as f64, "readings");
    record.figure(
        &name("integrator published"),
        i.published_readings as f64,
        "readings",
    );
    let mut cpu = vec![
        ("integrator consumer CPU", i.consumer_cpu),
        ("integrator Mosquitto CPU", i.mosquitto_cpu),
    ];
    if backend != "sqlite" {
        cpu.push(("integrator PostgreSQL CPU", i.server_cpu));
    }
    for (what, value) in cpu {
        record.figure(&name(what), value, "% of a core");
    }
    if let Some(rss) = i.consumer_rss {
        record.figure(
            &name("integrator consumer RSS"),
            rss as f64 / 1_048_576.0,
            "MiB",
        );
    }
    record.series(
        &name("integrator committed"),
        "s",
        "readings/s",
        i.rate_series.clone(),
    );
}
