//! Gateways publishing at a fixed rate, each reading stamped with the wall clock when its batch
//! is made and signed (just before it is handed to the simulated gateway, which publishes it
//! at once): latency publish → frame is then receipt time − reading time.
//!
//! ```text
//! every `period` (offset per gateway, so the gateways spread over the period):
//!   now ─► next `readings_per_batch` series of the gateway (cycling) stamped `now` ─► sign
//!       ─► channel ─► SimGateway (publishes over mTLS, keeps the window, counts acks)
//! ```
//! Signing live costs one signature per batch (200 a second at the default rate). While the
//! window is open, the readings made are counted per sensor, so that the benchmark knows how
//! many values each view could have received.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use beffroi_protocol::{
    Batch, GatewayId, MetricName, Reading, SensorId, Signer, TenantId, Timestamp, Unit, Value,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bench::gateways::Phase;
use crate::bench::generator::Envelope;

/// Readings made per sensor of the run while the window was open.
#[derive(Debug)]
pub(crate) struct SensorCounts(Box<[AtomicU64]>);

impl SensorCounts {
    /// Counters for `sensors` sensors.
    pub(crate) fn new(sensors: usize) -> Self {
        Self((0..sensors).map(|_| AtomicU64::new(0)).collect())
    }

    /// Readings of sensor `n`.
    pub(crate) fn get(&self, n: usize) -> u64 {
        self.0.get(n).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Readings of every sensor.
    pub(crate) fn total(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// One series of a gateway: its names and the run-wide index of its sensor.
#[derive(Debug, Clone)]
pub(crate) struct SeriesSpec {
    /// The sensor.
    pub sensor: SensorId,
    /// The metric.
    pub metric: MetricName,
    /// The unit.
    pub unit: Unit,
    /// The sensor's index in the run (counts, zones).
    pub sensor_index: usize,
}

/// One gateway's paced source of stamped, signed batches.
pub(crate) struct PacedFeed {
    signer: Signer,
    tenant: TenantId,
    gateway: GatewayId,
    series: Vec<SeriesSpec>,
    readings_per_batch: usize,
    next_seq: u64,
    cursor: usize,
    counts: Arc<SensorCounts>,
}

/// What a paced feed made.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PacedReport {
    /// Batches handed to the gateway.
    pub batches: u64,
    /// Ticks that came late by more than a period (the gateways' runtime was behind).
    pub late_ticks: u64,
}

impl PacedFeed {
    /// A feed for `gateway` over `series`, `readings_per_batch` of them per batch.
    pub(crate) fn new(
        signer: Signer,
        tenant: TenantId,
        gateway: GatewayId,
        series: Vec<SeriesSpec>,
        readings_per_batch: usize,
        counts: Arc<SensorCounts>,
    ) -> Self {
        Self {
            signer,
            tenant,
            gateway,
            series,
            readings_per_batch,
            next_seq: 1,
            cursor: 0,
            counts,
        }
    }

    /// The next batch, every reading stamped `now`; counted per sensor while `measuring`.
    fn make(&mut self, now: Timestamp, measuring: bool) -> anyhow::Result<Envelope> {
        let mut readings = Vec::with_capacity(self.readings_per_batch);
        for _ in 0..self.readings_per_batch {
            let spec = &self.series[self.cursor % self.series.len()];
            self.cursor = self.cursor.wrapping_add(1);
            if measuring {
                if let Some(counter) = self.counts.0.get(spec.sensor_index) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            readings.push(Reading {
                sensor: spec.sensor.clone(),
                metric: spec.metric.clone(),
                unit: spec.unit.clone(),
                time: now,
                value: Value::Number((self.cursor % 997) as f64 / 10.0),
            });
        }
        let count = u32::try_from(readings.len()).unwrap_or(u32::MAX);
        let batch = Batch::new(
            self.tenant.clone(),
            self.gateway.clone(),
            self.next_seq,
            readings,
        )
        .context("building a batch")?;
        let (_, bytes) = self.signer.seal_batch(&batch).context("sealing a batch")?;
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(Envelope {
            seq,
            readings: count,
            bytes,
        })
    }

    /// Makes a batch every `period`, the first after `offset`, until `stop`.
    pub(crate) async fn run(
        mut self,
        tx: mpsc::Sender<Envelope>,
        period: Duration,
        offset: Duration,
        phase: Arc<Phase>,
        stop: CancellationToken,
    ) -> anyhow::Result<PacedReport> {
        let mut report = PacedReport::default();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        // A late tick is made up for at once: the rate holds, the lateness is counted.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            let due = tokio::select! {
                () = stop.cancelled() => break,
                due = ticker.tick() => due,
            };
            if due.elapsed() > period {
                report.late_ticks += 1;
            }
            let measuring = phase.measuring.load(Ordering::Relaxed);
            let envelope = self.make(Timestamp::now(), measuring)?;
            tokio::select! {
                () = stop.cancelled() => break,
                sent = tx.send(envelope) => if sent.is_err() { break },
            }
            report.batches += 1;
        }
        Ok(report)
    }
}
