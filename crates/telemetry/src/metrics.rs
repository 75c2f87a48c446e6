//! The platform's metrics and their Prometheus rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::allocator::AllocatorFigures;
use crate::process::ProcessFigures;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn incr(&self) {
        self.add(1);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds `n` (may be negative).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Sets the value.
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters keyed by one label value (a reason, a status class).
#[derive(Debug, Default)]
pub struct Labeled(Mutex<BTreeMap<&'static str, u64>>);

impl Labeled {
    /// Adds one for `label`.
    pub fn incr(&self, label: &'static str) {
        self.add(label, 1);
    }
    /// Adds `n` for `label`.
    pub fn add(&self, label: &'static str, n: u64) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(label)
            .or_default() += n;
    }
    /// The count for `label`.
    pub fn get(&self, label: &str) -> u64 {
        self.snapshot().get(label).copied().unwrap_or(0)
    }
    /// Every label and its count.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Counters keyed by two label values (a route and an outcome); the metric's label key
/// names both, comma-separated (`"route,outcome"`).
#[derive(Debug, Default)]
pub struct LabeledPair(Mutex<BTreeMap<(&'static str, &'static str), u64>>);

impl LabeledPair {
    /// Adds one for the pair `(first, second)`.
    pub fn incr(&self, first: &'static str, second: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((first, second))
            .or_default() += 1;
    }
    /// The count for the pair `(first, second)`.
    pub fn get(&self, first: &str, second: &str) -> u64 {
        self.snapshot()
            .iter()
            .find(|((a, b), _)| *a == first && *b == second)
            .map_or(0, |(_, n)| *n)
    }
    /// Every pair and its count.
    pub fn snapshot(&self) -> BTreeMap<(&'static str, &'static str), u64> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            u64::try_from(value.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// The label of a [`Labeled`] metric: `reason` unless the metric names another.
macro_rules! label_key {
    () => {
        "reason"
    };
    ($label:literal) => {
        $label
    };
}

macro_rules! metrics {
    ($($field:ident: $kind:ident $([$label:literal])? => $name:literal, $help:literal;)*) => {
        /// Every platform metric. Names follow Prometheus conventions with a `beffroi_` prefix.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(#[doc = $help] pub $field: $kind,)*
        }

        impl Metrics {
            /// The Prometheus text exposition of every metric, then of the heap allocator's and
            /// the process's own figures.
            pub fn render(&self) -> String {
                let mut out = String::with_capacity(4096);
                $(render_one(&mut out, $name, $help, label_key!($($label)?), &self.$field);)*
                if let Some(allocator) = AllocatorFigures::read() {
                    allocator.render(&mut out);
                }
                if let Some(process) = ProcessFigures::read() {
                    process.render(&mut out);
                }
                out
            }
        }
    };
}

metrics! {
    ingest_batches: Counter => "beffroi_ingest_batches_total", "Batches committed.";
    ingest_readings: Counter => "beffroi_ingest_readings_total", "Readings committed.";
    ingest_duplicates: Counter => "beffroi_ingest_duplicate_batches_total", "Batches received again after commit (acked again, not stored again).";
    ingest_rejected: Labeled => "beffroi_ingest_rejected_total", "Messages rejected and quarantined, by reason.";
    ingest_health: Counter => "beffroi_ingest_health_reports_total", "Health reports recorded.";
    ingest_commits: Counter => "beffroi_ingest_commits_total", "Group commits.";
    ingest_commit_errors: Counter => "beffroi_ingest_commit_errors_total", "Group commits that failed (retried).";
    ingest_commit_latency: Histogram => "beffroi_ingest_commit_latency_seconds", "Time from receipt of a batch to its commit.";
    ingest_acks: Counter => "beffroi_ingest_acks_total", "Commit acks published.";
    ingest_queue: Gauge => "beffroi_ingest_queue_batches", "Verified batches waiting for a commit.";
    ingest_broker_connected: Gauge => "beffroi_ingest_broker_connected", "1 while this node's ingest is connected and subscribed to the broker, else 0 (readiness).";
    quarantine_errors: Counter => "beffroi_quarantine_write_errors_total", "Quarantine records that could not be written.";
    gate_connections: Gauge => "beffroi_gate_connections", "Open gateway connections.";
    gate_accepted: Counter => "beffroi_gate_connections_total", "Gateway connections accepted (TLS verified).";
    gate_refused: Labeled => "beffroi_gate_refused_total", "Connections refused or cut, by reason.";
    gate_packets: Counter => "beffroi_gate_packets_total", "MQTT packets inspected from gateways.";
    ingest_inbound: Gauge => "beffroi_ingest_inbound_messages", "Messages the broker delivered to this ingest, waiting for verification (sampled per chunk).";
    security_events: Counter => "beffroi_security_events_total", "Security events recorded.";
    security_events_dropped: Counter => "beffroi_security_events_dropped_total", "Security events dropped because the writer was behind.";
    http_requests: Labeled ["class"] => "beffroi_http_requests_total", "HTTP requests, by status class.";
    live_clients: Gauge => "beffroi_live_clients", "Open live-view websocket connections.";
    live_subscriptions: Gauge => "beffroi_live_subscriptions", "Live-view subscriptions held.";
    live_frames: Counter => "beffroi_live_frames_total", "Live-view frames sent.";
    live_values: Counter => "beffroi_live_values_total", "Values and buckets sent in live-view frames.";
    live_coalesced: Counter => "beffroi_live_coalesced_total", "Live values replaced by a newer one of the same series before a client's next frame.";
    live_closed: Labeled => "beffroi_live_closed_total", "Live-view connections closed by the server, by reason.";
    live_fanout_lagged: Counter => "beffroi_live_fanout_lagged_total", "Committed batches or events the fan-out missed because it fell behind (live views and alerts did not see them; they are stored).";
    live_delayed_errors: Counter => "beffroi_live_delayed_errors_total", "Reads of the stored values of a delayed (embargoed) grantee view that failed (logged; read again at the next tick).";
    live_late_readings: Counter => "beffroi_live_late_readings_total", "Readings for a bucket that live views no longer track (older than the last closed bucket); in history, not re-sent live.";
    alarms_raised: Counter => "beffroi_alarms_raised_total", "Alarms opened.";
    alarms_resolved: Counter => "beffroi_alarms_resolved_total", "Alarms cleared automatically because their condition ended.";
    alert_errors: Counter => "beffroi_alert_store_errors_total", "Alarm writes that failed (retried at the next evaluation).";
    alerts_pooled_watches: Gauge => "beffroi_alerts_pooled_watches", "Pooled alarm rules' watches in force: one per rule and operator whose pooling agreements permit it.";
    alerts_pooled_refused: Counter => "beffroi_alerts_pooled_refused_total", "Alarm changes on pooled sensors not shown because the policy engine refused them when they were to be written (the agreement ended or changed meanwhile).";
    alerts_leader: Gauge => "beffroi_alerts_leader", "1 while this node runs the alert engine (the one node holding the cluster's alerts lease; always 1 on a single node), else 0.";
    cluster_relayed: Labeled ["direction"] => "beffroi_cluster_relayed_total", "Events relayed between the nodes of a cluster, by direction (sent, received, dropped: not sent because the relay fell behind or the broker refused).";
    cluster_relayed_bytes: Labeled ["direction"] => "beffroi_cluster_relayed_bytes_total", "Bytes of the events relayed between the nodes of a cluster (their JSON payloads), by direction (sent, received).";
    cluster_relay_connected: Gauge => "beffroi_cluster_relay_connected", "1 while this node's cluster relay is connected and subscribed to the broker, else 0 (0 on a single node).";
    audit_write_failures: Counter => "beffroi_audit_write_failures_total", "Audit entries that could not be written after the fact (the end of a grantee's live view); reads that need an entry first fail closed instead.";
    audit_checkpoints: Counter => "beffroi_audit_checkpoints_total", "Audit checkpoints signed and stored.";
    audit_tampering_detected: Counter => "beffroi_audit_tampering_detected_total", "Checkpoint rounds that found a tenant's audit log damaged (nothing signed for it).";
    audit_checkpoint_errors: Counter => "beffroi_audit_checkpoint_errors_total", "Checkpoint rounds that failed on a store error (retried at the next round).";
    retention_purged_rows: Labeled ["kind"] => "beffroi_retention_purged_rows_total", "Rows deleted by retention purges, by kind (raw, aggregate); every batch has its receipt in the tenant's audit log.";
    retention_errors: Counter => "beffroi_retention_errors_total", "Retention purges that failed (retried at the next round).";
    enroll_requests: LabeledPair ["route,outcome"] => "beffroi_enroll_requests_total", "Enrollment endpoint requests, by route (enroll, renew, trust) and outcome (ok or the error code).";
}

/// How a metric kind renders itself.
trait Render {
    fn kind(&self) -> &'static str;
    fn write(&self, out: &mut String, name: &str, label: &str);
}

impl Render for Counter {
    fn kind(&self) -> &'static str {
        "counter"
    }
    fn write(&self, out: &mut String, name: &str, _label: &str) {
        let _ = writeln!(out, "{name} {}", self.get());
    }
}

impl Render for Gauge {
    fn kind(&self) -> &'static str {
        "gauge"
    }
    fn write(&self, out: &mut String, name: &str, _label: &str) {
        let _ = writeln!(out, "{name} {}", self.get());
    }
}

impl Render for Labeled {
    fn kind(&self) -> &'static str {
        "counter"
    }
    fn write(&self, out: &mut String, name: &str, label: &str) {
        for (value_label, value) in self.snapshot() {
            let _ = writeln!(out, "{name}{{{label}=\"{value_label}\"}} {value}");
        }
    }
}

impl Render for LabeledPair {
    fn kind(&self) -> &'static str {
        "counter"
    }
    fn write(&self, out: &mut String, name: &str, label: &str) {
        let (first_key, second_key) = label.split_once(',').unwrap_or((label, "label"));
        for ((first, second), value) in self.snapshot() {
            let _ = writeln!(
                out,
                "{name}{{{first_key}=\"{first}\",{second_key}=\"{second}\"}} {value}"
            );
        }
    }
}

impl Render for Histogram {
    fn kind(&self) -> &'static str {
        "histogram"
    }
    fn write(&self, out: &mut String, name: &str, _label: &str) {
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {total}");
    }
}

fn render_one(out: &mut String, name: &str, help: &str, label: &str, metric: &impl Render) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {}", metric.kind());
    metric.write(out, name, label);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.ingest_batches.add(3);
        m.ingest_rejected.incr("bad_signature");
        m.ingest_commit_latency.observe(Duration::from_millis(3));
        m.gate_connections.add(2);
        m.http_requests.incr("2xx");
        m.enroll_requests.incr("enroll", "token_used");
        let text = m.render();
        assert!(
            text.contains(
                "beffroi_enroll_requests_total{route=\"enroll\",outcome=\"token_used\"} 1\n"
            ),
            "{text}"
        );
        assert_eq!(m.enroll_requests.get("enroll", "token_used"), 1);
        assert!(text.contains("beffroi_ingest_batches_total 3\n"), "{text}");
        assert!(text.contains("beffroi_ingest_rejected_total{reason=\"bad_signature\"} 1\n"));
        assert!(text.contains("beffroi_ingest_commit_latency_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("beffroi_ingest_commit_latency_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("beffroi_gate_connections 2\n"));
        assert!(
            text.contains("beffroi_http_requests_total{class=\"2xx\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE beffroi_ingest_commit_latency_seconds histogram\n"));
    }
}
