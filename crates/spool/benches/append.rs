//! Append throughput of the spool against raw sequential writes to a plain file.
//!
//! Both sides write the same payloads and fsync every [`SYNC_EVERY`] appends (the agent's
//! 200 ms sync interval at 1,000 batches/s). Prints appends/s, payload MB/s and the ratio
//! spool / raw. A second baseline writes raw chunks of the record's on-disk size (payload +
//! 36-byte header): writes that are not multiples of the page size are measurably slower on
//! ext4, which is most of the gap for 16 KiB payloads. Run with
//! `cargo bench -p beffroi-spool --bench append`.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant};

use beffroi_spool::{Spool, SpoolConfig, HEADER_LEN};

/// Appends between two fsyncs.
const SYNC_EVERY: usize = 200;
/// Payload bytes written per case.
const TOTAL_BYTES: usize = 64 * 1024 * 1024;

fn main() {
    println!(
        "spool append benchmark: fsync every {SYNC_EVERY} appends, {} MiB per case",
        TOTAL_BYTES >> 20
    );
    for size in [1024usize, 16 * 1024] {
        let count = TOTAL_BYTES / size;
        let payload: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        let raw = raw_file(&payload, count);
        let record_sized = vec![0x5a; size + HEADER_LEN as usize];
        let raw_record = raw_file(&record_sized, count);
        let spool = spool(&payload, count);
        let rate = |elapsed: Duration| count as f64 / elapsed.as_secs_f64();
        let mbps = |elapsed: Duration| (count * size) as f64 / 1e6 / elapsed.as_secs_f64();
        println!(
            "{size:>6} B payload: spool {:>7.0} appends/s {:>6.1} MB/s | raw write_all+fsync {:>7.0}/s {:>6.1} MB/s | ratio {:.2} | raw at record size {:>7.0}/s, ratio {:.2}",
            rate(spool),
            mbps(spool),
            rate(raw),
            mbps(raw),
            raw.as_secs_f64() / spool.as_secs_f64(),
            rate(raw_record),
            raw_record.as_secs_f64() / spool.as_secs_f64(),
        );
    }
}

/// Sequential `write_all` of each payload to one file, `sync_data` every `SYNC_EVERY`.
fn raw_file(payload: &[u8], count: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut file = File::create(dir.path().join("raw")).unwrap();
    let start = Instant::now();
    for i in 1..=count {
        file.write_all(payload).unwrap();
        if i % SYNC_EVERY == 0 {
            file.sync_data().unwrap();
        }
    }
    file.sync_data().unwrap();
    start.elapsed()
}

/// `allocate_seq` + `append` of each payload, `sync` every `SYNC_EVERY`.
fn spool(payload: &[u8], count: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    let start = Instant::now();
    for i in 1..=count {
        let seq = spool.allocate_seq().unwrap();
        spool.append(seq, 10, payload).unwrap();
        if i % SYNC_EVERY == 0 {
            spool.sync().unwrap();
        }
    }
    spool.sync().unwrap();
    let elapsed = start.elapsed();
    spool.close().unwrap();
    elapsed
}
