//! `beffroi-agent bench`: readings per second through batch → sign → spool, against a
//! baseline measured in the same run: writing the same bytes to a plain file with the same
//! fsync cadence (what the disk allows without any Beffroi work).

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_agent::batcher::Sealer;
use beffroi_agent::signer_slot::SignerSlot;
use beffroi_agent::telemetry::Telemetry;
use beffroi_protocol::{
    GatewayId, MetricName, Reading, SensorId, Signer, SigningKey, TenantId, Timestamp, Unit, Value,
};
use beffroi_spool::{Spool, SpoolConfig};
use tokio::sync::Notify;

/// Options of the throughput benchmark.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Readings to push through the pipeline.
    #[arg(long, default_value_t = 1_000_000)]
    readings: usize,
    /// Readings per batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Spool fsync interval, in batches.
    #[arg(long, default_value_t = 10)]
    fsync_every: usize,
    /// Directory for the spool and the baseline file (default: a temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn readings(count: usize) -> anyhow::Result<Vec<Reading>> {
    let metrics = ["air.pm25", "air.no2", "noise.laeq", "traffic.count"];
    let units = ["ug/m3", "ug/m3", "dB", "count"];
    let start = Timestamp::now().unix_micros();
    (0..count)
        .map(|i| {
            let kind = i % metrics.len();
            Ok(Reading {
                sensor: SensorId::new(format!("sim-{:03}", i % 200))?,
                metric: MetricName::new(metrics[kind])?,
                unit: Unit::new(units[kind])?,
                time: Timestamp::from_unix_micros(start + i as i64 * 1000),
                value: Value::Number(((i * 7919) % 1000) as f64 / 10.0),
            })
        })
        .collect()
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("temporary directory")?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| scratch.path().to_owned());
    let input = readings(args.readings)?;
    let batches: Vec<Vec<Reading>> = input.chunks(args.batch).map(<[Reading]>::to_vec).collect();

    let spool_dir = dir.join("bench-spool");
    let _ = std::fs::remove_dir_all(&spool_dir);
    let config = SpoolConfig {
        max_bytes: 8 << 30,
        ..SpoolConfig::default()
    };
    let (spool, _) = Spool::open(&spool_dir, config)?;
    let spool = Arc::new(Mutex::new(spool));
    let sealer = Sealer::new(
        TenantId::new("bench")?,
        GatewayId::new("gw-bench")?,
        Arc::new(SignerSlot::new(Signer::new(SigningKey::from_bytes(
            &[7; 32],
        )))),
        spool.clone(),
        Arc::new(Telemetry::default()),
        Arc::new(Notify::new()),
    );
    let started = Instant::now();
    for (i, batch) in batches.into_iter().enumerate() {
        sealer.seal(batch)?;
        if (i + 1) % args.fsync_every == 0 {
            spool
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .sync()?;
        }
    }
    spool
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .sync()?;
    let pipeline = started.elapsed();
    let spooled_bytes = spool
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .stats()
        .bytes;

    let baseline = raw_write(
        &dir,
        spooled_bytes,
        args.readings.div_ceil(args.batch),
        args.fsync_every,
    )?;
    let _ = std::fs::remove_dir_all(&spool_dir);

    let rate = args.readings as f64 / pipeline.as_secs_f64();
    let raw_rate = args.readings as f64 / baseline.as_secs_f64();
    println!(
        "agent pipeline (batch {} readings, fsync every {} batches):",
        args.batch, args.fsync_every
    );
    println!(
        "  batch+sign+spool : {rate:>12.0} readings/s  ({} readings, {:.1} MB spooled, {:.2} s)",
        args.readings,
        spooled_bytes as f64 / 1e6,
        pipeline.as_secs_f64()
    );
    println!("  baseline raw write of the same bytes: {raw_rate:>12.0} readings/s");
    println!("  ratio pipeline / raw write: {:.2}", rate / raw_rate);
    println!(
        "  budget: sustain 1,000 readings/s per gateway → headroom ×{:.0}",
        rate / 1000.0
    );
    Ok(())
}

/// Writes `bytes` to a plain file in `chunks` writes with the same fsync cadence.
fn raw_write(
    dir: &std::path::Path,
    bytes: u64,
    chunks: usize,
    fsync_every: usize,
) -> anyhow::Result<Duration> {
    let path = dir.join("bench-raw.bin");
    let mut file = std::fs::File::create(&path)?;
    let chunks = chunks.max(1);
    let chunk = vec![0xa5u8; (bytes as usize / chunks).max(1)];
    let started = Instant::now();
    for i in 0..chunks {
        file.write_all(&chunk)?;
        if (i + 1) % fsync_every == 0 {
            file.sync_data()?;
        }
    }
    file.sync_data()?;
    let elapsed = started.elapsed();
    std::fs::remove_file(&path)?;
    Ok(elapsed)
}
