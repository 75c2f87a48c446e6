//! The figures of `bench cluster` and the printed tables: one line per node count (cluster
//! ingest, its ratio to one node, the relay's cost, each process's CPU), one line per node,
//! and the disk and write-ceiling figures the capacity model uses.

use std::fmt::Write as _;

use super::super::baseline::Baseline;
use super::super::report::{mib, pass, thousands};
use super::super::usage;
use super::disk::Disk;
use super::node::{ProcSample, Scrape};

/// What one node did in the window.
#[derive(Debug, Clone)]
pub(crate) struct NodeFigures {
    /// `node-1`…
    pub name: String,
    /// Readings it committed.
    pub readings: u64,
    /// Batches it committed.
    pub batches: u64,
    /// Relay events it sent, received, dropped.
    pub relay_sent: u64,
    /// Relay events received from the other nodes.
    pub relay_received: u64,
    /// Relay events not sent (fell behind, broker refused).
    pub relay_dropped: u64,
    /// Relay bytes sent.
    pub relay_bytes_sent: u64,
    /// Relay bytes received.
    pub relay_bytes_received: u64,
    /// Whether it ran the alert engine at the end of the window.
    pub alert_leader: bool,
    /// CPU, % of one core.
    pub cpu: f64,
    /// Resident set at the end of the window, bytes.
    pub rss: u64,
    /// Window length, s.
    pub seconds: f64,
}

impl NodeFigures {
    /// The differences between two scrapes and two process samples `seconds` apart.
    pub(crate) fn between(
        name: &str,
        (before, after): (&Scrape, &Scrape),
        (cpu_before, cpu_after): (ProcSample, ProcSample),
        seconds: f64,
    ) -> Self {
        let delta = |sample: &str| (after.get(sample) - before.get(sample)).max(0.0) as u64;
        let relayed = |direction: &str| {
            delta(&format!(
                "beffroi_cluster_relayed_total{{direction=\"{direction}\"}}"
            ))
        };
        let relayed_bytes = |direction: &str| {
            delta(&format!(
                "beffroi_cluster_relayed_bytes_total{{direction=\"{direction}\"}}"
            ))
        };
        Self {
            name: name.to_owned(),
            readings: delta("beffroi_ingest_readings_total"),
            batches: delta("beffroi_ingest_batches_total"),
            relay_sent: relayed("sent"),
            relay_received: relayed("received"),
            relay_dropped: relayed("dropped"),
            relay_bytes_sent: relayed_bytes("sent"),
            relay_bytes_received: relayed_bytes("received"),
            alert_leader: after.get("beffroi_alerts_leader") == 1.0,
            cpu: usage::ticks_pct(cpu_after.ticks.saturating_sub(cpu_before.ticks), seconds),
            rss: cpu_after.rss,
            seconds,
        }
    }

    fn per_s(&self, value: u64) -> f64 {
        value as f64 / self.seconds.max(1e-9)
    }
}

/// Everything one run (one node count) measured.
#[derive(Debug)]
pub(crate) struct RunResult {
    /// Simulated gateways.
    pub gateways: usize,
    /// Window length, s.
    pub seconds: f64,
    /// Each node.
    pub nodes: Vec<NodeFigures>,
    /// Readings committed in the window, all nodes.
    pub window_readings: u64,
    /// PostgreSQL's CPU in the window, % of one core.
    pub postgres_cpu: f64,
    /// Mosquitto's CPU in the window, % of one core.
    pub broker_cpu: f64,
    /// Publish → commit ack: p50, p99, max (µs) and the count.
    pub latency_us: Option<(u32, u32, u32, usize)>,
    /// Readings published over the whole run.
    pub published_readings: u64,
    /// Batches published again (ack timeout or reconnection).
    pub resends: u64,
    /// Batches never acknowledged (run cut short).
    pub unacked: u64,
    /// Gateways whose seqs are committed exactly once.
    pub gateways_complete: usize,
    /// Readings of the run found in the store.
    pub stored_readings: u64,
    /// Sizes on disk after the run.
    pub disk: Option<Disk>,
}

impl RunResult {
    fn readings_per_s(&self) -> f64 {
        self.window_readings as f64 / self.seconds.max(1e-9)
    }

    fn exactly_once(&self) -> bool {
        self.gateways_complete == self.gateways
            && self.unacked == 0
            && self.stored_readings == self.published_readings
    }

    /// Relay bytes each committed reading costs: sent once, received by every other node.
    fn relay_bytes_per_reading(&self) -> (f64, f64) {
        let readings = self.window_readings.max(1) as f64;
        let sent: u64 = self.nodes.iter().map(|n| n.relay_bytes_sent).sum();
        let received: u64 = self.nodes.iter().map(|n| n.relay_bytes_received).sum();
        (sent as f64 / readings, received as f64 / readings)
    }
}

fn ms(us: u32) -> String {
    format!("{:.1}", f64::from(us) / 1000.0)
}

fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

/// The report: clusters, nodes, disk, write ceiling.
pub(crate) fn render(context: &str, results: &[RunResult], ceiling: Option<&Baseline>) -> String {
    let mut out = String::new();
    let backend = if results
        .iter()
        .any(|r| r.disk.is_some_and(|d| d.compressed_bytes.is_some()))
    {
        "TimescaleDB"
    } else {
        "PostgreSQL"
    };
    let _ = writeln!(out, "\nCluster benchmark — {backend} ({context})");
    let one = results
        .iter()
        .find(|r| r.nodes.len() == 1)
        .map(RunResult::readings_per_s);
    let _ = writeln!(
        out,
        "\n| nodes | gateways | cluster readings/s | ratio to 1 node | per node (readings/s) | relay bytes/reading (sent → received) | ack p50 / p99 (ms) | node CPU % (each) | PostgreSQL CPU % | Mosquitto CPU % | stored once | resends |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let per_node: Vec<String> = r
            .nodes
            .iter()
            .map(|n| thousands(n.per_s(n.readings)))
            .collect();
        let cpu: Vec<String> = r.nodes.iter().map(|n| format!("{:.0}", n.cpu)).collect();
        let (sent, received) = r.relay_bytes_per_reading();
        let latency = r.latency_us.map_or_else(
            || "–".to_owned(),
            |(p50, p99, ..)| format!("{} / {}", ms(p50), ms(p99)),
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {sent:.0} → {received:.0} | {latency} | {} | {:.0} | {:.0} | {} ({} of {} readings) | {} |",
            r.nodes.len(),
            r.gateways,
            thousands(r.readings_per_s()),
            one.map_or_else(|| "–".to_owned(), |one| format!("{:.2}", r.readings_per_s() / one.max(1e-9))),
            per_node.join(" / "),
            cpu.join(" / "),
            r.postgres_cpu,
            r.broker_cpu,
            pass(r.exactly_once()),
            thousands(r.stored_readings as f64),
            thousands(r.published_readings as f64),
            r.resends,
        );
    }
    let _ = writeln!(
        out,
        "\n| nodes | node | readings/s | batches/s | relay sent/s | relay received/s | relay MB/s sent / received | relay dropped | alert engine | RSS |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        for n in &r.nodes {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.2} / {:.2} | {} | {} | {} |",
                r.nodes.len(),
                n.name,
                thousands(n.per_s(n.readings)),
                n.per_s(n.batches),
                n.per_s(n.relay_sent),
                n.per_s(n.relay_received),
                n.per_s(n.relay_bytes_sent) / 1e6,
                n.per_s(n.relay_bytes_received) / 1e6,
                n.relay_dropped,
                if n.alert_leader { "yes" } else { "no" },
                mib(Some(n.rss)),
            );
        }
    }
    let _ = writeln!(
        out,
        "\n| nodes | readings stored | readings table + indexes | per reading | per million readings | batch records per million | whole database | compressed (TimescaleDB) | compression ratio |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let Some(disk) = r.disk else { continue };
        let (compressed, ratio) = disk.compressed_bytes.map_or_else(
            || ("n/a (plain PostgreSQL)".to_owned(), "–".to_owned()),
            |c| {
                (
                    format!("{} ({:.1} B/reading)", mb(c as f64), disk.per_reading(c)),
                    format!("{:.1}×", disk.readings_bytes as f64 / c.max(1) as f64),
                )
            },
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} B | {} | {} | {} | {compressed} | {ratio} |",
            r.nodes.len(),
            thousands(disk.readings as f64),
            mb(disk.readings_bytes as f64),
            disk.per_reading(disk.readings_bytes),
            mb(disk.per_reading(disk.readings_bytes) * 1e6),
            mb(disk.per_reading(disk.batches_bytes) * 1e6),
            mb(disk.database_bytes as f64),
        );
    }
    if let Some(ceiling) = ceiling {
        let best = results
            .iter()
            .map(RunResult::readings_per_s)
            .fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "\nDatabase write ceiling (raw binary COPY on one connection, same table, same run): {} readings/s; best cluster ingest is {:.2} of it.",
            thousands(ceiling.rate()),
            best / ceiling.rate().max(1e-9)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_figures_are_window_differences() {
        let before = Scrape::parse(
            "# HELP x\nbeffroi_ingest_readings_total 1000\n\
             beffroi_cluster_relayed_bytes_total{direction=\"sent\"} 10\n",
        );
        let after = Scrape::parse(
            "beffroi_ingest_readings_total 21000\nbeffroi_alerts_leader 1\n\
             beffroi_cluster_relayed_bytes_total{direction=\"sent\"} 4010\n",
        );
        let cpu = (
            ProcSample { ticks: 100, rss: 0 },
            ProcSample {
                ticks: 300,
                rss: 1 << 20,
            },
        );
        let node = NodeFigures::between("node-1", (&before, &after), cpu, 2.0);
        assert_eq!(node.readings, 20_000);
        assert_eq!(node.relay_bytes_sent, 4000);
        assert_eq!(node.relay_received, 0);
        assert!(node.alert_leader);
        assert!((node.cpu - 100.0).abs() < 1e-9, "{}", node.cpu);
        assert!((node.per_s(node.readings) - 10_000.0).abs() < 1e-9);
    }
}
