//! The benchmark's figures, their budgets (issue #3's floor and DESIGN.md's goal) and the
//! printed table.

use std::fmt::Write as _;

use super::baseline::Baseline;
use super::generator::GeneratorStats;
use super::ingest_live::{self, IngestLive};
use super::integrator::IntegratorResult;
use super::usage::CpuUsage;
use super::Mode;

/// Issue #3: readings/s, batched.
pub(crate) const FLOOR_READINGS_PER_S: f64 = 100_000.0;
/// DESIGN.md: readings/s, batched.
pub(crate) const GOAL_READINGS_PER_S: f64 = 250_000.0;
/// Issue #3: share of the raw bulk load.
pub(crate) const FLOOR_RATIO: f64 = 0.40;
/// DESIGN.md: share of the raw bulk load.
pub(crate) const GOAL_RATIO: f64 = 0.65;
/// Issue #3 and DESIGN.md: signed messages/s at one reading per message.
pub(crate) const FLOOR_MESSAGES_PER_S: f64 = 20_000.0;
/// DESIGN.md: batched ingest over the integrator baseline's readings/s (Mosquitto + Python).
pub(crate) const GOAL_INTEGRATOR_RATIO: f64 = 1.25;
/// DESIGN.md ("Beffroi must be ahead of all of these"): unbatched signed messages/s over the
/// integrator baseline's messages/s at one reading per message.
pub(crate) const GOAL_INTEGRATOR_RATIO_UNBATCHED: f64 = 1.0;

/// Thread-name prefixes of the load generator (not the platform).
pub(crate) const GENERATOR_THREADS: [&str; 2] = [super::GATEWAY_THREAD, super::SIGNER_THREAD];

/// Everything one run (one mode) measured.
#[derive(Debug)]
pub(crate) struct PhaseResult {
    /// Batched or unbatched.
    pub mode: Mode,
    /// Readings per message.
    pub readings_per_message: usize,
    /// Simulated gateways.
    pub gateways: usize,
    /// Batches in flight per gateway.
    pub window: usize,
    /// Length of the measure window, s.
    pub seconds: f64,
    /// Readings committed per second in the window (ingest metrics).
    pub readings_per_s: f64,
    /// Batches (messages) committed per second in the window.
    pub messages_per_s: f64,
    /// Group commits per second in the window.
    pub commits_per_s: f64,
    /// Publish → commit ack latency percentiles (µs): p50, p99, max, and the sample count.
    pub latency_us: Option<(u32, u32, u32, usize)>,
    /// CPU in the window.
    pub cpu: CpuUsage,
    /// CPU of local `postgres` processes in the window, % of one core.
    pub server_cpu: f64,
    /// Peak RSS of the process at the end of the run, bytes.
    pub peak_rss: Option<u64>,
    /// The generator.
    pub generator: GeneratorStats,
    /// Times a gateway had room in its window but no envelope ready (in the window).
    pub stalls: u64,
    /// Batches published again (ack timeout or reconnection).
    pub resends: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Batches the platform saw again after commit.
    pub duplicates: u64,
    /// Messages the platform rejected (quarantined).
    pub rejected: u64,
    /// Group commits that failed and were retried.
    pub commit_errors: u64,
    /// Batches published (distinct seqs) over the whole run.
    pub published: u64,
    /// Readings in them.
    pub published_readings: u64,
    /// Readings found in the store for this run's tenant.
    pub stored_readings: u64,
    /// Gateways whose committed seqs in the store are exactly 1..=published.
    pub gateways_complete: usize,
    /// Batches never acknowledged (run cut short).
    pub unacked: u64,
    /// The raw bulk-load baseline.
    pub baseline: Baseline,
    /// The integrator baseline (Mosquitto + Python consumer), when it ran.
    pub integrator: Option<IntegratorResult>,
    /// The live-view clients attached through the window, if any.
    pub live: Option<IngestLive>,
}

impl PhaseResult {
    /// Every published seq committed exactly once, and every reading stored exactly once.
    pub(crate) fn zero_loss(&self) -> bool {
        self.unacked == 0
            && self.gateways_complete == self.gateways
            && self.stored_readings == self.published_readings
    }

    /// Ingest rate over the raw bulk-load rate.
    pub(crate) fn ratio(&self) -> f64 {
        self.readings_per_s / self.baseline.rate().max(1e-9)
    }

    /// Ingest over the integrator baseline: readings/s batched, messages/s unbatched.
    pub(crate) fn integrator_ratio(&self) -> Option<f64> {
        let integrator = self.integrator.as_ref()?;
        Some(match self.mode {
            Mode::Batched => self.readings_per_s / integrator.readings_per_s.max(1e-9),
            Mode::Unbatched => self.messages_per_s / integrator.messages_per_s().max(1e-9),
        })
    }

    /// The goal of [`PhaseResult::integrator_ratio`].
    pub(crate) fn integrator_goal(&self) -> f64 {
        match self.mode {
            Mode::Batched => GOAL_INTEGRATOR_RATIO,
            Mode::Unbatched => GOAL_INTEGRATOR_RATIO_UNBATCHED,
        }
    }

    /// CPU of the platform's own threads (everything but the simulated gateways and the
    /// signer), % of one core.
    pub(crate) fn platform_cpu(&self) -> f64 {
        (self.cpu.process - self.cpu.of(&GENERATOR_THREADS)).max(0.0)
    }
}

pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

pub(crate) fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn verdict(value: f64, floor: f64, goal: f64) -> String {
    if (floor - goal).abs() < f64::EPSILON {
        pass(value >= floor).to_owned()
    } else {
        format!(
            "{} floor, {} goal",
            pass(value >= floor),
            pass(value >= goal)
        )
    }
}

fn ms(us: u32) -> String {
    format!("{:.1} ms", f64::from(us) / 1000.0)
}

pub(crate) fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "?".to_owned(),
        |b| format!("{:.0} MiB", b as f64 / 1048576.0),
    )
}

/// The table for one backend: one block per mode.
pub(crate) fn render(backend: &str, context: &str, results: &[PhaseResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nPlatform ingest benchmark — {backend} ({context})");
    let _ = writeln!(
        out,
        "{:<44} {:>14} {:>12} {:>12}  result",
        "figure", "measured", "floor (#3)", "goal"
    );
    for r in results {
        let _ = writeln!(
            out,
            "-- {} : {} reading(s)/message, {} gateways over mTLS, {} batches in flight each, {:.1} s window{}",
            r.mode.as_str(),
            r.readings_per_message,
            r.gateways,
            r.window,
            r.seconds,
            r.live.as_ref().map_or_else(String::new, |l| format!(
                ", {} live-view clients attached",
                l.clients
            ))
        );
        let mut row = |name: &str, measured: String, floor: &str, goal: &str, result: String| {
            let _ = writeln!(
                out,
                "{name:<44} {measured:>14} {floor:>12} {goal:>12}  {result}"
            );
        };
        match r.mode {
            Mode::Batched => {
                row(
                    "readings/s committed",
                    thousands(r.readings_per_s),
                    "≥ 100 000",
                    "≥ 250 000",
                    verdict(r.readings_per_s, FLOOR_READINGS_PER_S, GOAL_READINGS_PER_S),
                );
                row(
                    "  share of raw bulk load",
                    format!("{:.0} %", r.ratio() * 100.0),
                    "≥ 40 %",
                    "≥ 65 %",
                    verdict(r.ratio(), FLOOR_RATIO, GOAL_RATIO),
                );
                row(
                    "messages/s committed",
                    thousands(r.messages_per_s),
                    "",
                    "",
                    String::new(),
                );
            }
            Mode::Unbatched => {
                row(
                    "signed messages/s committed",
                    thousands(r.messages_per_s),
                    "≥ 20 000",
                    "≥ 20 000",
                    verdict(r.messages_per_s, FLOOR_MESSAGES_PER_S, FLOOR_MESSAGES_PER_S),
                );
                row(
                    "  readings/s; share of raw bulk load",
                    format!(
                        "{}; {:.0} %",
                        thousands(r.readings_per_s),
                        r.ratio() * 100.0
                    ),
                    "",
                    "",
                    String::new(),
                );
            }
        }
        row(
            "raw bulk load (same table/run, best of 2) rows/s",
            thousands(r.baseline.rate()),
            "",
            "",
            format!(
                "{} rows in {:.2} s",
                thousands(r.baseline.rows as f64),
                r.baseline.elapsed.as_secs_f64()
            ),
        );
        integrator_rows(&mut row, backend, r);
        row(
            "zero loss (store: seqs 1..=n once, readings)",
            format!("{}/{} gw", r.gateways_complete, r.gateways),
            "all",
            "all",
            format!(
                "{} ({} batches; {} of {} readings stored, {} unacked)",
                pass(r.zero_loss()),
                thousands(r.published as f64),
                thousands(r.stored_readings as f64),
                thousands(r.published_readings as f64),
                r.unacked
            ),
        );
        match r.latency_us {
            Some((p50, p99, max, n)) => row(
                "publish → commit ack p50 / p99",
                format!("{} / {}", ms(p50), ms(p99)),
                "",
                "",
                format!(
                    "max {}, {} samples (at saturation)",
                    ms(max),
                    thousands(n as f64)
                ),
            ),
            None => row(
                "publish → commit ack",
                "no samples".into(),
                "",
                "",
                String::new(),
            ),
        }
        row(
            "CPU: platform threads / whole process",
            format!("{:.0} % / {:.0} %", r.platform_cpu(), r.cpu.process),
            "",
            "",
            "% of one core; 2 cores = 200 %".into(),
        );
        if backend != "sqlite" {
            row(
                "CPU: local PostgreSQL server processes",
                format!("{:.0} %", r.server_cpu),
                "",
                "",
                "backends, WAL writer, checkpointer".into(),
            );
        }
        row(
            "peak RSS (process, incl. generator)",
            mib(r.peak_rss),
            "",
            "",
            String::new(),
        );
        let (gen_msgs, gen_readings) = r.generator.max_rate();
        let generator_ok = gen_msgs > r.messages_per_s && r.stalls == 0;
        row(
            "generator max rate (messages/s)",
            thousands(gen_msgs),
            "> ingest",
            "",
            format!(
                "{} ({} readings/s on {} threads; {} stalls, {} signed live)",
                pass(generator_ok),
                thousands(gen_readings),
                r.generator.threads,
                r.stalls,
                r.generator.signed_live
            ),
        );
        row(
            "resends / reconnects / duplicates / rejected",
            format!(
                "{} / {} / {} / {}",
                r.resends, r.reconnects, r.duplicates, r.rejected
            ),
            "",
            "",
            format!(
                "{} commit errors, {:.0} commits/s",
                r.commit_errors, r.commits_per_s
            ),
        );
        let top: Vec<String> = r
            .cpu
            .groups
            .iter()
            .take(8)
            .map(|(name, pct)| format!("{name} {pct:.0}%"))
            .collect();
        let _ = writeln!(out, "   CPU by thread: {}", top.join(", "));
        if let Some(live) = &r.live {
            ingest_live::render_rows(&mut out, live, r.seconds);
        }
    }
    ingest_live::render_comparison(&mut out, results);
    out
}

/// The integrator baseline's rows: its rate, the ratio of ingest to it with DESIGN.md's goal,
/// what it lost and what it cost.
fn integrator_rows(
    row: &mut impl FnMut(&str, String, &str, &str, String),
    backend: &str,
    r: &PhaseResult,
) {
    let (Some(i), Some(ratio)) = (&r.integrator, r.integrator_ratio()) else {
        row(
            "integrator baseline (Mosquitto + Python)",
            "not run".into(),
            "",
            "",
            "--integrator off, or Mosquitto / python3 / its venv unavailable".into(),
        );
        return;
    };
    let goal = r.integrator_goal();
    let (name, measured, ratio_name) = match r.mode {
        Mode::Batched => (
            "integrator baseline readings/s committed",
            thousands(i.readings_per_s),
            "  ingest / integrator (readings/s)",
        ),
        Mode::Unbatched => (
            "integrator baseline messages/s committed",
            thousands(i.messages_per_s()),
            "  ingest / integrator (messages/s)",
        ),
    };
    row(
        name,
        measured,
        "",
        "",
        format!(
            "{} reading(s)/JSON message, {} publishers, {:.1} s window, no TLS, same table",
            i.readings_per_message, i.publishers, i.seconds
        ),
    );
    row(
        ratio_name,
        format!("{ratio:.2}×"),
        "",
        &format!("≥ {goal:.2}×"),
        pass(ratio >= goal).to_owned(),
    );
    row(
        "  integrator loss (published − stored)",
        thousands(i.lost() as f64),
        "",
        "",
        format!(
            "{} of {} readings ({} messages) stored; {} received by the consumer",
            thousands(i.stored_readings as f64),
            thousands(i.published_readings as f64),
            thousands(i.published_messages as f64),
            thousands(i.received_readings as f64)
        ),
    );
    let (cpu_name, cpu) = if backend == "sqlite" {
        (
            "  integrator CPU: consumer / Mosquitto",
            format!("{:.0} % / {:.0} %", i.consumer_cpu, i.mosquitto_cpu),
        )
    } else {
        (
            "  integrator CPU: consumer / Mosquitto / PG",
            format!(
                "{:.0} % / {:.0} % / {:.0} %",
                i.consumer_cpu, i.mosquitto_cpu, i.server_cpu
            ),
        )
    };
    row(
        cpu_name,
        cpu,
        "",
        "",
        format!("% of one core; consumer RSS {}", mib(i.consumer_rss)),
    );
}

/// p50, p99 and max of `samples` (sorted in place), with the count.
pub(crate) fn percentiles(samples: &mut [u32]) -> Option<(u32, u32, u32, usize)> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i]
    };
    Some((
        at(0.50),
        at(0.99),
        samples[samples.len() - 1],
        samples.len(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_percentiles() {
        assert_eq!(thousands(1234567.4), "1 234 567");
        assert_eq!(thousands(12.0), "12");
        let mut samples: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(percentiles(&mut samples), Some((50, 99, 100, 100)));
        assert_eq!(percentiles(&mut []), None);
        assert_eq!(
            verdict(150_000.0, 100_000.0, 250_000.0),
            "PASS floor, FAIL goal"
        );
    }
}
