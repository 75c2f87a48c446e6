//! A process's memory and CPU footprint over a fixed wall-clock window, read from `/proc`.
//!
//! CPU is the process's own CPU time (`utime + stime` from `/proc/<pid>/stat`, in clock ticks
//! of `getconf CLK_TCK`) divided by the wall time of the window. Unlike a `top`-style
//! instantaneous percentage this does not depend on how busy the other cores are: on a loaded
//! machine the process may be scheduled later, but it is charged only for the time it ran.
//! Memory is `VmRSS` sampled during the window (mean and maximum) and `VmHWM`, the peak
//! resident set since the process started, from `/proc/<pid>/status`. Disk is what the
//! process caused to be written to storage (`write_bytes` of `/proc/<pid>/io`: its spool,
//! logs, databases — not what a page cache absorbed and later dropped).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Clock ticks per second when `getconf CLK_TCK` cannot tell (the Linux value).
const DEFAULT_CLK_TCK: u64 = 100;

/// How often RSS is sampled during a window.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// Kernel clock ticks per second (`getconf CLK_TCK`).
pub fn clock_ticks_per_s() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(DEFAULT_CLK_TCK)
}

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// `utime + stime`, in clock ticks.
    cpu_ticks: u64,
    /// `VmRSS`, KiB.
    rss_kib: u64,
    /// `VmHWM`, KiB.
    hwm_kib: u64,
    /// `write_bytes` of `/proc/<pid>/io`.
    written: u64,
}

fn proc_path(pid: u32, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{file}"))
}

/// `utime + stime` from `/proc/<pid>/stat`. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`: `utime` and `stime` are fields 14 and
/// 15 of the line, the 12th and 13th after the name.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = proc_path(pid, "stat");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (has the process exited?)", path.display()))?;
    let after_name = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .context("no ')' in /proc/<pid>/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("/proc/<pid>/stat is too short")?
            .parse()
            .context("parsing a /proc/<pid>/stat field")
    };
    Ok(field(11)? + field(12)?)
}

/// A `kB` line of `/proc/<pid>/status`, such as `VmRSS:   3120 kB`.
fn status_kib(status: &str, key: &str) -> anyhow::Result<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {key} in /proc/<pid>/status"))
}

fn sample(pid: u32) -> anyhow::Result<Sample> {
    let path = proc_path(pid, "status");
    let status = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (has the process exited?)", path.display()))?;
    Ok(Sample {
        cpu_ticks: cpu_ticks(pid)?,
        rss_kib: status_kib(&status, "VmRSS")?,
        hwm_kib: status_kib(&status, "VmHWM")?,
        written: written_bytes(pid)?,
    })
}

/// `write_bytes` of `/proc/<pid>/io`.
fn written_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = proc_path(pid, "io");
    let io = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (has the process exited?)", path.display()))?;
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|value| value.trim().parse().ok())
        .context("no write_bytes in /proc/<pid>/io")
}

/// What one window measured.
#[derive(Debug, Clone, Copy)]
pub struct Footprint {
    /// Wall time between the first and the last sample.
    pub wall: Duration,
    /// CPU time the process used in the window, seconds.
    pub cpu_s: f64,
    /// Mean `VmRSS` over the window's samples, bytes.
    pub rss_mean: u64,
    /// Largest `VmRSS` seen in the window, bytes.
    pub rss_max: u64,
    /// `VmHWM` at the end: peak RSS since the process started, bytes.
    pub rss_peak: u64,
    /// Bytes the process caused to be written to storage during the window.
    pub disk_written: u64,
    /// RSS samples taken.
    pub samples: usize,
    /// How much the caller's delivery counter advanced during the window.
    pub delivered: u64,
}

impl Footprint {
    /// CPU time over wall time, in percent of one core.
    pub fn cpu_percent(&self) -> f64 {
        100.0 * self.cpu_s / self.wall.as_secs_f64()
    }

    /// Bytes written to storage per second over the window.
    pub fn disk_per_s(&self) -> f64 {
        self.disk_written as f64 / self.wall.as_secs_f64()
    }

    /// Delivered items per second over the window.
    pub fn delivered_per_s(&self) -> f64 {
        self.delivered as f64 / self.wall.as_secs_f64()
    }
}

/// Samples process `pid` every [`SAMPLE_EVERY`] for `window`; `delivered` is read at both
/// ends of the window (a count of what the process forwarded so far).
pub async fn measure(
    pid: u32,
    window: Duration,
    delivered: impl Fn() -> u64,
) -> anyhow::Result<Footprint> {
    let ticks_per_s = clock_ticks_per_s() as f64;
    let first = sample(pid)?;
    let started = Instant::now();
    let delivered_before = delivered();
    let mut last = first;
    let mut rss_sum = u128::from(first.rss_kib);
    let mut rss_max = first.rss_kib;
    let mut samples: usize = 1;
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    ticker.tick().await;
    while started.elapsed() < window {
        ticker.tick().await;
        last = sample(pid)?;
        rss_sum += u128::from(last.rss_kib);
        rss_max = rss_max.max(last.rss_kib);
        samples += 1;
    }
    let wall = started.elapsed();
    let delivered = delivered().saturating_sub(delivered_before);
    Ok(Footprint {
        wall,
        cpu_s: (last.cpu_ticks - first.cpu_ticks) as f64 / ticks_per_s,
        rss_mean: u64::try_from(rss_sum / samples as u128)? * 1024,
        rss_max: rss_max * 1024,
        rss_peak: last.hwm_kib * 1024,
        disk_written: last.written.saturating_sub(first.written),
        samples,
        delivered,
    })
}
