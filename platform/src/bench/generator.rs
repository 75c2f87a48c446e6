//! The load generator: signed batch envelopes for each simulated gateway, made on dedicated
//! signer threads, outside the gateways' publish path.
//!
//! ```text
//! prefill: every feed filled to `capacity` envelopes (timed: the generator's own max rate)
//! run    : a feed that fell below `refill_below` is filled up again ("signed live")
//!          feed ──bounded channel──► simulated gateway (publishes, never signs)
//! ```
//! With the default memory budget the unbatched run is signed entirely in advance, so the
//! gateways only publish; the batched run signs live a little (cheap: one signature per
//! 1,000 readings), and the CPU it takes is reported under the signer threads' name.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::{
    Batch, GatewayId, MetricName, Reading, SensorId, Signer, TenantId, Timestamp, Unit, Value,
};
use tokio::sync::mpsc;

/// A signed batch ready to publish.
#[derive(Debug)]
pub(crate) struct Envelope {
    /// The batch's seq.
    pub seq: u64,
    /// Readings in the batch.
    pub readings: u32,
    /// The COSE_Sign1 bytes.
    pub bytes: Vec<u8>,
}

/// Series a simulated gateway reports: (metric, unit) × [`SENSORS`] sensors.
pub(crate) const SERIES: [(&str, &str); 4] = [
    ("air.pm25", "ug/m3"),
    ("air.no2", "ug/m3"),
    ("noise.laeq", "dB"),
    ("traffic.count", "count"),
];
/// Sensors per simulated gateway.
pub(crate) const SENSORS: usize = 16;

/// Sensor `i` of `gateway`: `{gateway}-s{i:02}`.
pub(crate) fn sensor_id(gateway: &GatewayId, i: usize) -> beffroi_protocol::Result<SensorId> {
    SensorId::new(format!("{}-s{i:02}", gateway.as_str()))
}

/// One gateway's source of envelopes (producer side).
pub(crate) struct Feed {
    signer: Signer,
    tenant: TenantId,
    gateway: GatewayId,
    readings_per_message: usize,
    next_seq: u64,
    /// Time of the next reading (µs), 1 µs apart: every reading lies inside the ingest's
    /// time window (now − 7 days … now + 5 min) for any realistic run.
    next_time: i64,
    sensors: Vec<SensorId>,
    series: Vec<(MetricName, Unit)>,
    tx: mpsc::Sender<Envelope>,
}

impl Feed {
    /// A feed for `gateway`, signing with `signer`; envelopes go to `tx`.
    pub(crate) fn new(
        signer: Signer,
        tenant: TenantId,
        gateway: GatewayId,
        readings_per_message: usize,
        tx: mpsc::Sender<Envelope>,
    ) -> anyhow::Result<Self> {
        let sensors = (0..SENSORS)
            .map(|i| sensor_id(&gateway, i))
            .collect::<Result<Vec<_>, _>>()?;
        let series = SERIES
            .iter()
            .map(|(m, u)| Ok((MetricName::new(*m)?, Unit::new(*u)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            signer,
            tenant,
            gateway,
            readings_per_message,
            next_seq: 1,
            // A minute in the past: the run stays far inside the accepted window.
            next_time: Timestamp::now().unix_micros() - 60_000_000,
            sensors,
            series,
            tx,
        })
    }

    /// Readings of the next batch.
    fn readings(&mut self) -> Vec<Reading> {
        (0..self.readings_per_message)
            .map(|_| {
                let n = self.next_time;
                self.next_time += 1;
                let k = n.unsigned_abs() as usize;
                let (metric, unit) = &self.series[k % self.series.len()];
                Reading {
                    sensor: self.sensors[(k / self.series.len()) % self.sensors.len()].clone(),
                    metric: metric.clone(),
                    unit: unit.clone(),
                    time: Timestamp::from_unix_micros(n),
                    value: Value::Number((k % 1000) as f64 / 10.0),
                }
            })
            .collect()
    }

    /// Makes and signs the next envelope.
    pub(crate) fn make(&mut self) -> anyhow::Result<Envelope> {
        let readings = self.readings();
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

    /// Envelopes waiting in the channel.
    fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Signs until the channel is full; returns (envelopes, readings) made. The feed is the
    /// only producer, so room seen here cannot disappear before the send.
    fn fill(&mut self) -> anyhow::Result<(u64, u64)> {
        let (mut made, mut readings) = (0, 0);
        while self.tx.capacity() > 0 {
            let envelope = self.make()?;
            readings += u64::from(envelope.readings);
            match self.tx.try_send(envelope) {
                Ok(()) => made += 1,
                // The gateway is gone (end of run).
                Err(_) => break,
            }
        }
        Ok((made, readings))
    }
}

/// What the signer threads did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GeneratorStats {
    /// Envelopes signed before the run.
    pub prefilled: u64,
    /// Readings in them.
    pub prefilled_readings: u64,
    /// Wall time of the prefill.
    pub prefill_time: Duration,
    /// Envelopes signed while the run was going.
    pub signed_live: u64,
    /// Signer threads.
    pub threads: usize,
}

impl GeneratorStats {
    /// The generator's own maximum rate (prefill, all signer threads, platform idle):
    /// (messages/s, readings/s).
    pub(crate) fn max_rate(&self) -> (f64, f64) {
        let secs = self.prefill_time.as_secs_f64().max(1e-9);
        (
            self.prefilled as f64 / secs,
            self.prefilled_readings as f64 / secs,
        )
    }
}

/// The running signer threads.
pub(crate) struct Generator {
    stop: Arc<AtomicBool>,
    live: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<anyhow::Result<()>>>,
    stats: GeneratorStats,
}

impl Generator {
    /// Starts `threads` signer threads over `feeds`, fills every feed, and returns once the
    /// prefill is done (timed). After that a feed with fewer than `refill_below` envelopes
    /// queued is filled up again.
    pub(crate) fn start(
        feeds: Vec<Feed>,
        threads: usize,
        refill_below: usize,
    ) -> anyhow::Result<Self> {
        let threads = threads.clamp(1, feeds.len().max(1));
        let mut shares: Vec<Vec<Feed>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, feed) in feeds.into_iter().enumerate() {
            shares[i % threads].push(feed);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(AtomicU64::new(0));
        let prefilled = Arc::new(AtomicU64::new(0));
        let prefilled_readings = Arc::new(AtomicU64::new(0));
        let barrier = Arc::new(Barrier::new(threads + 1));
        let started = Instant::now();
        let mut handles = Vec::with_capacity(threads);
        for mut share in shares {
            let (stop, live, barrier) = (stop.clone(), live.clone(), barrier.clone());
            let (prefilled, prefilled_readings) = (prefilled.clone(), prefilled_readings.clone());
            let handle = std::thread::Builder::new()
                .name(super::SIGNER_THREAD.into())
                .spawn(move || {
                    let mut result = Ok(());
                    for feed in &mut share {
                        match feed.fill() {
                            Ok((made, readings)) => {
                                prefilled.fetch_add(made, Ordering::Relaxed);
                                prefilled_readings.fetch_add(readings, Ordering::Relaxed);
                            }
                            Err(error) => {
                                result = Err(error);
                                break;
                            }
                        }
                    }
                    barrier.wait();
                    result?;
                    top_up(&mut share, &stop, &live, refill_below)
                })
                .context("cannot start a signer thread")?;
            handles.push(handle);
        }
        barrier.wait();
        let stats = GeneratorStats {
            prefilled: prefilled.load(Ordering::Relaxed),
            prefilled_readings: prefilled_readings.load(Ordering::Relaxed),
            prefill_time: started.elapsed(),
            signed_live: 0,
            threads,
        };
        Ok(Self {
            stop,
            live,
            threads: handles,
            stats,
        })
    }

    /// Stops the signer threads; returns what they did.
    pub(crate) fn stop(self) -> anyhow::Result<GeneratorStats> {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.threads {
            match handle.join() {
                Ok(result) => result?,
                Err(_) => anyhow::bail!("a signer thread panicked"),
            }
        }
        Ok(GeneratorStats {
            signed_live: self.live.load(Ordering::Relaxed),
            ..self.stats
        })
    }

    /// The prefill figures (known as soon as [`Generator::start`] returns).
    pub(crate) fn stats(&self) -> GeneratorStats {
        self.stats
    }
}

/// Keeps feeds above `refill_below` until `stop`.
fn top_up(
    feeds: &mut [Feed],
    stop: &AtomicBool,
    live: &AtomicU64,
    refill_below: usize,
) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        for feed in feeds.iter_mut() {
            if feed.tx.is_closed() || feed.queued() >= refill_below {
                continue;
            }
            busy = true;
            let (made, _) = feed.fill()?;
            live.fetch_add(made, Ordering::Relaxed);
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(())
}
