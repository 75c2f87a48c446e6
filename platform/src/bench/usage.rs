//! CPU time and memory of this process, read from `/proc/self`: the whole process
//! (`/proc/self/stat`), each thread grouped by its name (`/proc/self/task/*/stat`), and the
//! peak resident set (`VmHWM` in `/proc/self/status`).
//!
//! The benchmark runs the platform and the simulated gateways in one process; their threads
//! carry distinct names (see `super::PLATFORM_THREAD`, `super::GATEWAY_THREAD`,
//! `super::SIGNER_THREAD`), so the per-thread figures tell the platform's CPU from the load
//! generator's.

use std::collections::BTreeMap;
use std::time::Instant;

/// Clock ticks per second of `utime`/`stime` (`USER_HZ`): fixed at 100 for userspace on
/// every architecture Linux runs this on (x86, arm, riscv).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks at one instant.
#[derive(Debug, Clone)]
pub(crate) struct CpuSample {
    at: Instant,
    process: u64,
    /// tid → (thread group name, ticks).
    threads: BTreeMap<u32, (String, u64)>,
}

/// CPU used between two samples, in % of one core.
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuUsage {
    /// The whole process.
    pub process: f64,
    /// Per thread group (name without its trailing number), largest first.
    pub groups: Vec<(String, f64)>,
}

impl CpuUsage {
    /// The share of the groups whose name starts with one of `prefixes`.
    pub(crate) fn of(&self, prefixes: &[&str]) -> f64 {
        self.groups
            .iter()
            .filter(|(name, _)| prefixes.iter().any(|p| name.starts_with(p)))
            .map(|(_, pct)| pct)
            .sum()
    }
}

/// `utime + stime` from a `stat` line; the name (field 2) may hold spaces and parentheses,
/// so fields are counted after its closing parenthesis.
fn parse_stat(line: &str) -> Option<(String, u64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// A thread name without its trailing number or separator (`sqlx-sqlite-worker-3` →
/// `sqlx-sqlite-worker`), so that pools are summed.
fn group_name(name: &str) -> String {
    name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '_' || c == '#')
        .to_owned()
}

impl CpuSample {
    /// Reads the process and its threads now (missing figures count as 0).
    pub(crate) fn now() -> Self {
        let process = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|line| parse_stat(&line))
            .map_or(0, |(_, ticks)| ticks);
        let mut threads = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc/self/task") {
            for entry in entries.flatten() {
                let Some(tid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|t| t.parse::<u32>().ok())
                else {
                    continue;
                };
                if let Some((name, ticks)) = std::fs::read_to_string(entry.path().join("stat"))
                    .ok()
                    .and_then(|line| parse_stat(&line))
                {
                    threads.insert(tid, (group_name(&name), ticks));
                }
            }
        }
        Self {
            at: Instant::now(),
            process,
            threads,
        }
    }

    /// CPU used from `self` to `later`. Threads that ended in between are counted in the
    /// process figure and, per group, as `(ended threads)`.
    pub(crate) fn usage_until(&self, later: &CpuSample) -> CpuUsage {
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let pct = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / seconds * 100.0;
        let mut groups: BTreeMap<String, u64> = BTreeMap::new();
        let mut counted = 0u64;
        for (tid, (name, ticks)) in &later.threads {
            let before = self.threads.get(tid).map_or(0, |(_, t)| *t);
            let delta = ticks.saturating_sub(before);
            counted += delta;
            *groups.entry(name.clone()).or_default() += delta;
        }
        let process = later.process.saturating_sub(self.process);
        let ended = process.saturating_sub(counted);
        if ended > 0 {
            groups.insert("(ended threads)".to_owned(), ended);
        }
        let mut groups: Vec<(String, f64)> = groups
            .into_iter()
            .filter(|(_, ticks)| *ticks > 0)
            .map(|(name, ticks)| (name, pct(ticks)))
            .collect();
        groups.sort_by(|a, b| b.1.total_cmp(&a.1));
        CpuUsage {
            process: pct(process),
            groups,
        }
    }
}

/// CPU ticks so far of every process on this host named `name` (e.g. `postgres`: a local
/// database server's backends, writer, WAL writer, checkpointer).
pub(crate) fn ticks_of_processes(name: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|line| parse_stat(&line))
        .filter(|(comm, _)| comm == name)
        .map(|(_, ticks)| ticks)
        .sum()
}

/// `ticks` over `seconds`, in % of one core.
pub(crate) fn ticks_pct(ticks: u64, seconds: f64) -> f64 {
    ticks as f64 / TICKS_PER_SECOND / seconds.max(1e-9) * 100.0
}

/// CPU ticks so far of process `pid` (0 when it is gone).
pub(crate) fn ticks_of_pid(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|line| parse_stat(&line))
        .map_or(0, |(_, ticks)| ticks)
}

/// Resident set size of process `pid` now, in bytes.
pub(crate) fn resident_of(pid: u32) -> Option<u64> {
    status_bytes(&pid.to_string(), "VmRSS:")
}

/// A `kB` field of `/proc/{process}/status`, in bytes.
fn status_bytes(process: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resident set size of the process now, in bytes.
pub(crate) fn resident() -> Option<u64> {
    status_bytes("self", "VmRSS:")
}

/// Peak resident set size of the process so far, in bytes.
pub(crate) fn peak_rss() -> Option<u64> {
    status_bytes("self", "VmHWM:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_odd_names() {
        let line = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16";
        assert_eq!(parse_stat(line), Some(("a (b) c".to_owned(), 11 + 12)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn groups_pools() {
        assert_eq!(group_name("sqlx-sqlite-worker-3"), "sqlx-sqlite-worker");
        assert_eq!(group_name("platform"), "platform");
        let sample = CpuSample::now();
        assert!(!sample.threads.is_empty());
        assert!(peak_rss().is_some_and(|b| b > 0));
    }
}
