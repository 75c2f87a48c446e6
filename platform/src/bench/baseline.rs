//! The baseline of the ingest ratio, measured in the same run: the raw bulk load of the same
//! number of readings into the same readings table, by the store's
//! [`Store::bulk_load_baseline`] (PostgreSQL: binary `COPY`; SQLite: prepared multi-row
//! `INSERT`), with none of the ingest's work (no TLS, MQTT, signatures, batch bookkeeping,
//! duplicate checks or acks).
//!
//! Rows go in chunks of [`CHUNK_READINGS`] readings, one transaction each (what a bulk loader
//! on one connection does); only the store calls are timed, not building the rows.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::{
    GatewayId, KeyId, MetricName, Reading, SensorId, TenantId, Timestamp, Unit, Value,
};
use beffroi_store::{CommitBatch, Store};

/// Readings per bulk-load call (one transaction).
pub(crate) const CHUNK_READINGS: usize = 100_000;
/// Readings per baseline batch (the batched run's default message size).
const BATCH_READINGS: usize = 1000;

/// The raw bulk-load figure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Baseline {
    /// Rows written.
    pub rows: u64,
    /// Time spent in the store calls.
    pub elapsed: Duration,
}

impl Baseline {
    /// Rows per second.
    pub(crate) fn rate(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The metrics (and units) of the baseline's sensors.
pub(crate) const SERIES: [(&str, &str); 4] = [
    ("air.pm25", "ug/m3"),
    ("air.no2", "ug/m3"),
    ("noise.laeq", "dB"),
    ("traffic.count", "count"),
];

fn template(gateway: &GatewayId) -> anyhow::Result<Vec<Reading>> {
    let series = SERIES;
    let start = Timestamp::now().unix_micros() - 60_000_000;
    (0..CHUNK_READINGS)
        .map(|i| {
            let (metric, unit) = series[i % series.len()];
            Ok(Reading {
                sensor: SensorId::new(format!(
                    "{}-s{:02}",
                    gateway.as_str(),
                    (i / series.len()) % 16
                ))?,
                metric: MetricName::new(metric)?,
                unit: Unit::new(unit)?,
                time: Timestamp::from_unix_micros(start + i as i64),
                value: Value::Number((i % 1000) as f64 / 10.0),
            })
        })
        .collect()
}

/// Bulk-loads `rows` readings (rounded up to whole batches) for `tenant` into the readings
/// table and times it.
pub(crate) async fn run(
    store: &dyn Store,
    tenant: &TenantId,
    rows: u64,
) -> anyhow::Result<Baseline> {
    let gateway = GatewayId::new("baseline")?;
    let key_id = KeyId::new("baseline")?;
    let readings = template(&gateway)?;
    let mut loaded = 0u64;
    let mut elapsed = Duration::ZERO;
    let mut seq = 0u64;
    let mut shift = 0i64;
    while loaded < rows.max(1) {
        let wanted = usize::try_from(rows - loaded)
            .unwrap_or(usize::MAX)
            .clamp(1, CHUNK_READINGS);
        // Whole batches: CHUNK_READINGS is a multiple of BATCH_READINGS.
        let take = (wanted.div_ceil(BATCH_READINGS) * BATCH_READINGS).min(readings.len());
        let batches: Vec<CommitBatch> = readings[..take]
            .chunks(BATCH_READINGS)
            .map(|chunk| {
                seq += 1;
                CommitBatch {
                    tenant: tenant.clone(),
                    gateway: gateway.clone(),
                    seq,
                    key_id: key_id.clone(),
                    signature: [0; 64],
                    received_at: Timestamp::now(),
                    readings: chunk
                        .iter()
                        .map(|r| Reading {
                            time: Timestamp::from_unix_micros(r.time.unix_micros() + shift),
                            ..r.clone()
                        })
                        .collect(),
                }
            })
            .collect();
        shift += CHUNK_READINGS as i64;
        let started = Instant::now();
        let written = store
            .bulk_load_baseline(&batches)
            .await
            .context("raw bulk load (baseline)")?;
        elapsed += started.elapsed();
        if written == 0 {
            anyhow::bail!("the raw bulk load wrote no rows");
        }
        loaded += written;
    }
    Ok(Baseline {
        rows: loaded,
        elapsed,
    })
}
