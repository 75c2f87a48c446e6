//! One sample of the soak per interval, read from outside the platform the way an operator's
//! monitoring reads it: its `/metrics` (committed readings, queue gauges, live counters),
//! `/proc/<pid>` of the platform process (RSS, CPU), the client process's own report (frames
//! received, RSS), the store's size on disk, and on the gateways' side the readings made and
//! the publish → commit ack latencies of the interval.
//!
//! ```text
//! every --sample-s:  scrape /metrics ─┐
//!                    /proc/<node pid> ├─► Sample { rates over the interval, gauges now,
//!                    client "sample"  │            RSS now, ack p50/p99 of the interval }
//!                    store size       │
//!                    readings made, ack histogram taken (reset)
//! ```
//! The pipeline backlog — readings made by the feeds and not yet committed — is everything in
//! flight between a gateway's feed and the database (feed channel, gateway window, gate,
//! broker, ingest inbound, commit queue); the platform has no gauge for the broker's own
//! queues, so this difference is how they are seen.

use std::time::Instant;

use anyhow::Context as _;

use super::store_size::{Sizes, StoreSize};
use crate::bench::cluster::node::{Node, Scrape};
use crate::bench::gateways::Phase;
use crate::bench::histogram::Summary;
use crate::bench::live::paced::SensorCounts;
use crate::bench::usage;
use crate::bench::ws_client_process::ClientProcess;

/// `/metrics` sample names read.
mod metric {
    pub const READINGS: &str = "beffroi_ingest_readings_total";
    pub const QUEUE: &str = "beffroi_ingest_queue_batches";
    pub const INBOUND: &str = "beffroi_ingest_inbound_messages";
    pub const FRAMES: &str = "beffroi_live_frames_total";
    pub const COALESCED: &str = "beffroi_live_coalesced_total";
    pub const LAGGED: &str = "beffroi_live_fanout_lagged_total";
    pub const TOO_SLOW: &str = "beffroi_live_closed_total{reason=\"too_slow\"}";
    pub const GATE_CONNECTIONS: &str = "beffroi_gate_connections";
    pub const LIVE_CLIENTS: &str = "beffroi_live_clients";
    pub const DUPLICATES: &str = "beffroi_ingest_duplicate_batches_total";
    pub const COMMIT_ERRORS: &str = "beffroi_ingest_commit_errors_total";
}

/// What the soak read at the end of one interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Seconds since the run started.
    pub t_s: f64,
    /// The platform process's resident set, bytes.
    pub platform_rss: u64,
    /// This process's (simulated gateways and feeds) resident set, bytes.
    pub gateways_rss: u64,
    /// The websocket client process's resident set, bytes.
    pub clients_rss: u64,
    /// The platform process's CPU over the interval, % of one core.
    pub platform_cpu_pct: f64,
    /// Readings committed per second over the interval.
    pub committed_per_s: f64,
    /// Readings made by the feeds per second over the interval.
    pub made_per_s: f64,
    /// Readings made and not yet committed.
    pub backlog: f64,
    /// `beffroi_ingest_queue_batches`: verified batches waiting for a commit lane.
    pub commit_queue: f64,
    /// `beffroi_ingest_inbound_messages`: messages from the broker waiting for verification.
    pub inbound: f64,
    /// Readings frames received by the clients per second over the interval.
    pub frames_received_per_s: f64,
    /// Values in them per second.
    pub values_received_per_s: f64,
    /// Live frames the platform sent per second over the interval.
    pub frames_sent_per_s: f64,
    /// Live values coalesced (replaced by a newer one before a frame) per second.
    pub coalesced_per_s: f64,
    /// Committed batches the fan-out skipped so far.
    pub lagged: f64,
    /// Live connections closed as too slow so far.
    pub too_slow: f64,
    /// Client connections ended early so far (client side).
    pub clients_closed: u64,
    /// Open gateway connections.
    pub gate_connections: f64,
    /// Open live-view connections.
    pub live_clients: f64,
    /// Batches committed again (duplicates) so far.
    pub duplicates: f64,
    /// Group commits failed and retried so far.
    pub commit_errors: f64,
    /// The store on disk.
    pub store: Sizes,
    /// Publish → commit ack of the batches acked in the interval.
    pub ack: Summary,
}

/// Cumulative figures at the previous sample.
#[derive(Debug, Clone, Copy)]
struct Totals {
    at: Instant,
    committed: f64,
    made: u64,
    frames_received: u64,
    values_received: u64,
    frames_sent: f64,
    coalesced: f64,
    ticks: u64,
}

/// Reads the samples of one run.
pub(crate) struct Sampler<'a> {
    node: &'a Node,
    store: StoreSize,
    started: Instant,
    last: Totals,
}

/// What the sampler reads on the gateways' side and in the client process.
pub(crate) struct Sources<'a> {
    /// The client process, its window open.
    pub clients: &'a mut ClientProcess,
    /// Readings made per sensor (the feeds count while measuring).
    pub counts: &'a SensorCounts,
    /// The gateways' shared phase (its ack histogram is taken every sample).
    pub phase: &'a Phase,
}

impl<'a> Sampler<'a> {
    /// Starts the run's clock: the totals now are the first interval's base, and the acks
    /// so far are dropped.
    pub(crate) async fn start(
        node: &'a Node,
        store: StoreSize,
        sources: Sources<'_>,
    ) -> anyhow::Result<Self> {
        let scrape = node.scrape().await.context("first /metrics scrape")?;
        let clients = sources.clients.sample().await?;
        sources.phase.ack_latency.take();
        let now = Instant::now();
        Ok(Self {
            node,
            store,
            started: now,
            last: Totals {
                at: now,
                committed: scrape.get(metric::READINGS),
                made: sources.counts.total(),
                frames_received: clients.frames,
                values_received: clients.values,
                frames_sent: scrape.get(metric::FRAMES),
                coalesced: scrape.get(metric::COALESCED),
                ticks: usage::ticks_of_pid(node.pid()),
            },
        })
    }

    /// Reads one sample: rates over the interval since the last one, gauges now.
    pub(crate) async fn sample(&mut self, sources: Sources<'_>) -> anyhow::Result<Sample> {
        let scrape: Scrape = self.node.scrape().await.context("/metrics scrape")?;
        let made = sources.counts.total();
        let clients = sources.clients.sample().await?;
        let ack = sources.phase.ack_latency.take();
        let store = self.store.read().await?;
        let now = Instant::now();
        let pid = self.node.pid();
        let totals = Totals {
            at: now,
            committed: scrape.get(metric::READINGS),
            made,
            frames_received: clients.frames,
            values_received: clients.values,
            frames_sent: scrape.get(metric::FRAMES),
            coalesced: scrape.get(metric::COALESCED),
            ticks: usage::ticks_of_pid(pid),
        };
        let last = std::mem::replace(&mut self.last, totals);
        let seconds = now.duration_since(last.at).as_secs_f64().max(1e-9);
        let per_s = |now: f64, before: f64| (now - before).max(0.0) / seconds;
        let count_per_s = |now: u64, before: u64| now.saturating_sub(before) as f64 / seconds;
        Ok(Sample {
            t_s: now.duration_since(self.started).as_secs_f64(),
            platform_rss: usage::resident_of(pid).unwrap_or(0),
            gateways_rss: usage::resident().unwrap_or(0),
            clients_rss: clients.rss_bytes.unwrap_or(0),
            platform_cpu_pct: usage::ticks_pct(totals.ticks.saturating_sub(last.ticks), seconds),
            committed_per_s: per_s(totals.committed, last.committed),
            made_per_s: count_per_s(made, last.made),
            backlog: (made as f64 - totals.committed).max(0.0),
            commit_queue: scrape.get(metric::QUEUE),
            inbound: scrape.get(metric::INBOUND),
            frames_received_per_s: count_per_s(clients.frames, last.frames_received),
            values_received_per_s: count_per_s(clients.values, last.values_received),
            frames_sent_per_s: per_s(totals.frames_sent, last.frames_sent),
            coalesced_per_s: per_s(totals.coalesced, last.coalesced),
            lagged: scrape.get(metric::LAGGED),
            too_slow: scrape.get(metric::TOO_SLOW),
            clients_closed: clients.closed,
            gate_connections: scrape.get(metric::GATE_CONNECTIONS),
            live_clients: scrape.get(metric::LIVE_CLIENTS),
            duplicates: scrape.get(metric::DUPLICATES),
            commit_errors: scrape.get(metric::COMMIT_ERRORS),
            store,
            ack,
        })
    }

    /// Closes the store-size reader.
    pub(crate) async fn finish(self) {
        self.store.close().await;
    }
}
