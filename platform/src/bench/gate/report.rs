//! The gate benchmark's figures: the printed table (each figure with its budget or its
//! baseline measured in the same run) and the machine-readable record written with `--json`.

use std::fmt::Write as _;

use super::hold::Ramp;
use super::live::LiveRun;
use super::{BrokerArg, GateBenchArgs, Memory};
use crate::bench::histogram::Summary;
use crate::bench::identity::clients::Handshakes;
use crate::bench::record::{Goal, Record};
use crate::bench::report::{pass, thousands};

/// DESIGN.md: gateways connected over TLS to one node, at least.
pub(crate) const GOAL_HELD: f64 = 10_000.0;
/// DESIGN.md: memory per held connection, at most (KiB).
pub(crate) const GOAL_KIB_PER_CONNECTION: f64 = 50.0;

/// Everything one run measured.
#[derive(Debug, Clone)]
pub(crate) struct GateResult {
    /// `--gateways`.
    pub wanted: usize,
    /// The open-file soft limit in force (`None`: unlimited).
    pub fd_limit: Option<u64>,
    /// Time to register the idle gateways (outside every measurement), s.
    pub registered_s: f64,
    /// Connecting the idle gateways.
    pub ramp: Ramp,
    /// The bare rustls server's handshakes (the baseline).
    pub bare: Handshakes,
    /// Before the idle gateways connected.
    pub before: Memory,
    /// Once they were connected and settled.
    pub after: Memory,
    /// Idle connections open once settled (client side).
    pub held_settled: u64,
    /// Idle connections open after the second live run (client side).
    pub held_at_end: u64,
    /// The gate's open-connection gauge after the second live run.
    pub gate_open: f64,
    /// The gate's open-connection gauge once settled.
    pub gate_open_settled: f64,
    /// Connections the gate refused or cut over the whole run.
    pub gate_refused: f64,
    /// Idle connections closed by the gate or failed while held, and the first reason.
    pub dropped: u64,
    /// The first reason of a drop.
    pub first_drop: Option<String>,
    /// Hold tasks aborted because they did not close in time.
    pub aborted_on_close: usize,
    /// The live gateway with no idle connection held.
    pub alone: LiveRun,
    /// The live gateway while they were held.
    pub held: LiveRun,
    /// Readings of the run's tenant in the store.
    pub stored_readings: u64,
    /// Batches the ingest saw again after commit.
    pub duplicates: f64,
}

impl GateResult {
    /// Node memory per idle connection held, KiB.
    pub(crate) fn kib_per_connection(&self) -> f64 {
        self.per_connection_kib(self.before.node_rss, self.after.node_rss)
    }

    /// Client memory per idle connection held, KiB.
    fn client_kib_per_connection(&self) -> f64 {
        self.per_connection_kib(self.before.client_rss, self.after.client_rss)
    }

    /// The external broker's memory per idle connection held, KiB (`None`: embedded).
    fn broker_kib_per_connection(&self) -> Option<f64> {
        Some(self.per_connection_kib(self.before.broker_rss?, self.after.broker_rss?))
    }

    /// `after − before` bytes per idle connection held, KiB.
    fn per_connection_kib(&self, before: u64, after: u64) -> f64 {
        after.saturating_sub(before) as f64 / 1024.0 / self.held_settled.max(1) as f64
    }

    /// Node open files per idle connection held.
    fn fds_per_connection(&self) -> f64 {
        self.after.node_fds.saturating_sub(self.before.node_fds) as f64
            / self.held_settled.max(1) as f64
    }

    /// Batches published by both live gateways and not acknowledged or not stored once.
    fn lost(&self) -> bool {
        !(self.alone.lossless() && self.held.lossless())
            || self.stored_readings != self.alone.published_readings + self.held.published_readings
    }

    /// Fails the run when nothing connected or a live batch was lost.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.ramp.connected == 0 {
            anyhow::bail!(
                "no idle gateway connected: {}",
                self.ramp.first_failure.as_deref().unwrap_or("?")
            );
        }
        if self.lost() {
            anyhow::bail!(
                "live batches lost: alone {:?}, held {:?}, {} readings stored",
                self.alone,
                self.held,
                self.stored_readings
            );
        }
        Ok(())
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn summary_ms(s: &Summary) -> String {
    format!(
        "{:.1} / {:.1} / {:.1}",
        ms(s.p50_us),
        ms(s.p99_us),
        ms(s.max_us)
    )
}

/// (p50, p99, max) of a live run, ms.
fn live_ms(run: &LiveRun) -> Option<(f64, f64, f64)> {
    run.latency_us
        .map(|(p50, p99, max, _)| (ms(p50.into()), ms(p99.into()), ms(max.into())))
}

fn ratio(value: f64, baseline: f64) -> String {
    if baseline > 0.0 {
        format!("{:.2}×", value / baseline)
    } else {
        "–".to_owned()
    }
}

/// The printed report.
pub(crate) fn render(context: &str, args: &GateBenchArgs, r: &GateResult) -> String {
    let mut out = String::new();
    let limit = r
        .fd_limit
        .map_or_else(|| "unlimited".to_owned(), |l| l.to_string());
    let _ = writeln!(
        out,
        "beffroi bench gate — {}; {} idle mutual-TLS gateways wanted, {} connected, {} \
         at once; open-file limit {limit}; a live gateway at {} batches/s × {} readings, {} s \
         windows\n{context}\n",
        args.broker.label(),
        args.gateways,
        r.ramp.connected,
        args.concurrency,
        args.rate,
        args.readings_per_batch,
        args.seconds
    );
    let _ = writeln!(
        out,
        "{:<52} {:>14} {:>22} {:>8}  note",
        "figure", "value", "budget / baseline", "verdict"
    );
    let mut row = |name: &str, value: String, against: String, verdict: String, note: String| {
        let _ = writeln!(
            out,
            "{name:<52} {value:>14} {against:>22} {verdict:>8}  {note}"
        );
    };
    let held = r.held_settled as f64;
    row(
        "idle gateways held by one node",
        thousands(held),
        format!("≥ {}", thousands(GOAL_HELD)),
        pass(held >= GOAL_HELD).to_owned(),
        if (r.wanted as f64) < GOAL_HELD {
            format!("{} wanted (reduced run)", thousands(r.wanted as f64))
        } else if r.ramp.connected < r.wanted as u64 && r.ramp.failed == 0 {
            format!(
                "the open-file limit ({limit}) allows no more: the node holds {:.1} files per \
                 gateway",
                r.fds_per_connection()
            )
        } else {
            format!("{} connections failed", r.ramp.failed)
        },
    );
    let kib = r.kib_per_connection();
    row(
        "node memory per held connection (RSS delta / held)",
        format!("{kib:.1} KiB"),
        format!("≤ {GOAL_KIB_PER_CONNECTION:.0} KiB"),
        pass(kib <= GOAL_KIB_PER_CONNECTION).to_owned(),
        format!(
            "node RSS {:.1} → {:.1} MiB; {}",
            r.before.node_rss as f64 / 1048576.0,
            r.after.node_rss as f64 / 1048576.0,
            match args.broker {
                BrokerArg::Embedded => "gate, TLS and embedded broker state together",
                BrokerArg::Mosquitto => "gate and TLS state (the broker is apart)",
            }
        ),
    );
    if let Some(kib) = r.broker_kib_per_connection() {
        row(
            "external broker memory per held connection",
            format!("{kib:.1} KiB"),
            "–".to_owned(),
            String::new(),
            "Mosquitto's RSS delta / held, for information".to_owned(),
        );
    }
    row(
        "baseline: mutual-TLS handshakes, bare rustls server",
        format!("{}/s", thousands(r.bare.rate())),
        "–".to_owned(),
        String::new(),
        format!(
            "TCP + TLS only, the gate's rustls config; p50/p99/max {} ms",
            summary_ms(&r.bare.latency)
        ),
    );
    row(
        "connects at the gate (TLS 1.3 + CONNECT + SUBSCRIBE)",
        format!("{}/s", thousands(r.ramp.rate())),
        format!("bare {}/s", thousands(r.bare.rate())),
        ratio(r.ramp.rate(), r.bare.rate()),
        format!(
            "p50/p99/max {} ms; {} in {:.1} s{}",
            summary_ms(&r.ramp.latency),
            r.ramp.connected,
            r.ramp.elapsed.as_secs_f64(),
            r.ramp
                .first_failure
                .as_ref()
                .map_or_else(String::new, |f| format!("; first failure: {f}"))
        ),
    );
    row(
        "client memory per held connection (this process)",
        format!("{:.1} KiB", r.client_kib_per_connection()),
        "–".to_owned(),
        String::new(),
        format!(
            "for information: tokio-rustls client, one task each; RSS {:.1} → {:.1} MiB",
            r.before.client_rss as f64 / 1048576.0,
            r.after.client_rss as f64 / 1048576.0
        ),
    );
    row(
        "node open files per held connection",
        format!("{:.2}", r.fds_per_connection()),
        "–".to_owned(),
        String::new(),
        format!("{} → {}", r.before.node_fds, r.after.node_fds),
    );
    row(
        "still held after the live run (client / gate gauge)",
        format!("{} / {:.0}", r.held_at_end, r.gate_open),
        format!("{}", r.held_settled),
        pass(r.dropped == 0 && r.held_at_end == r.held_settled).to_owned(),
        format!(
            "{} dropped{}; gate gauge {:.0} once settled, {:.0} refused or cut in the run",
            r.dropped,
            r.first_drop
                .as_ref()
                .map_or_else(String::new, |f| format!(" (first: {f})")),
            r.gate_open_settled,
            r.gate_refused
        ),
    );
    for (i, name) in ["p50", "p99", "max"].iter().enumerate() {
        let pick = |run: &LiveRun| live_ms(run).map(|t| [t.0, t.1, t.2][i]);
        let (alone, held) = (pick(&r.alone), pick(&r.held));
        row(
            &format!("live publish → ack {name} while held"),
            held.map_or_else(|| "–".to_owned(), |v| format!("{v:.1} ms")),
            alone.map_or_else(|| "–".to_owned(), |v| format!("alone {v:.1} ms")),
            match (held, alone) {
                (Some(h), Some(a)) => ratio(h, a),
                _ => "–".to_owned(),
            },
            String::new(),
        );
    }
    row(
        "live batches (alone + held): lost",
        format!("{}", r.alone.unacked + r.held.unacked),
        "0".to_owned(),
        pass(!r.lost()).to_owned(),
        format!(
            "{} + {} published, {} resent, {} reconnections, {:.0} duplicates; {} readings \
             stored of {}",
            r.alone.published,
            r.held.published,
            r.alone.resends + r.held.resends,
            r.alone.reconnects + r.held.reconnects,
            r.duplicates,
            r.stored_readings,
            r.alone.published_readings + r.held.published_readings
        ),
    );
    let _ = writeln!(
        out,
        "\nnode RSS against connections held: {}",
        r.ramp
            .node_rss
            .iter()
            .map(|(n, mib)| format!("{n:.0}: {mib:.1} MiB"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "registering the idle gateways took {:.1} s (outside the measurements); {} hold \
         task(s) aborted on close",
        r.registered_s, r.aborted_on_close
    );
    out
}

/// The record written with `--json`: every figure of the table, and the RSS series.
pub(crate) fn record(context: &str, r: &GateResult) -> Record {
    let mut record = Record::new("gate", context);
    record
        .figure("idle gateways held", r.held_settled as f64, "connections")
        .budget(Goal::AtLeast, GOAL_HELD);
    record
        .figure("node memory per connection", r.kib_per_connection(), "KiB")
        .budget(Goal::AtMost, GOAL_KIB_PER_CONNECTION);
    record
        .figure("connects at the gate", r.ramp.rate(), "connections/s")
        .baseline("bare rustls mutual-TLS handshakes", r.bare.rate());
    record.figure("connect p50", ms(r.ramp.latency.p50_us), "ms");
    record.figure("connect p99", ms(r.ramp.latency.p99_us), "ms");
    if let Some(kib) = r.broker_kib_per_connection() {
        record.figure("external broker memory per connection", kib, "KiB");
    }
    record.figure(
        "client memory per connection",
        r.client_kib_per_connection(),
        "KiB",
    );
    record.figure(
        "node open files per connection",
        r.fds_per_connection(),
        "files",
    );
    record.figure("idle connections dropped", r.dropped as f64, "connections");
    record.figure(
        "idle connections failed",
        r.ramp.failed as f64,
        "connections",
    );
    if let (Some(alone), Some(held)) = (live_ms(&r.alone), live_ms(&r.held)) {
        for (name, a, h) in [
            ("p50", alone.0, held.0),
            ("p99", alone.1, held.1),
            ("max", alone.2, held.2),
        ] {
            record
                .figure(&format!("live publish → ack {name} while held"), h, "ms")
                .baseline("no idle connection held", a);
        }
    }
    record.figure(
        "live batches lost",
        (r.alone.unacked + r.held.unacked) as f64,
        "batches",
    );
    record.figure("live duplicates", r.duplicates, "batches");
    record.series(
        "node RSS",
        "connections held",
        "MiB",
        r.ramp.node_rss.clone(),
    );
    record
}
