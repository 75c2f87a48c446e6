//! The process's own figures — memory, CPU, file descriptors, threads, start time — read from
//! `/proc/self` at each render, under the names the Prometheus client libraries give them
//! (`process_…`), so that standard dashboards and alert rules (memory growth, descriptors
//! running out) work unchanged. Linux only: where `/proc/self/stat` cannot be read, nothing is
//! rendered.

use std::fmt::Write as _;

/// Clock ticks per second of `/proc/<pid>/stat`'s times: `USER_HZ`, fixed at 100 for user
/// space on every Linux architecture.
const USER_HZ: f64 = 100.0;

/// One reading of the process's figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    threads: u64,
    start_time_seconds: f64,
    open_fds: u64,
    max_fds: Option<u64>,
}

/// The fields of `/proc/<pid>/stat` these figures use.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    /// `utime + stime`, in clock ticks.
    cpu_ticks: u64,
    threads: u64,
    /// Since boot, in clock ticks.
    start_ticks: u64,
    virtual_bytes: u64,
}

impl ProcessFigures {
    /// Reads them from `/proc`; `None` where it is not there or not as expected.
    pub(crate) fn read() -> Option<Self> {
        let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        let resident_kib = status_kib(
            &std::fs::read_to_string("/proc/self/status").ok()?,
            "VmRSS:",
        )?;
        let boot_time = boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| max_open_files(&limits));
        Some(Self {
            cpu_seconds: stat.cpu_ticks as f64 / USER_HZ,
            resident_bytes: resident_kib * 1024,
            virtual_bytes: stat.virtual_bytes,
            threads: stat.threads,
            start_time_seconds: boot_time as f64 + stat.start_ticks as f64 / USER_HZ,
            open_fds,
            max_fds,
        })
    }

    /// Appends them in the Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        let figures = [
            (
                "process_cpu_seconds_total",
                "counter",
                "CPU time the process used, user and system, in seconds.",
                Some(self.cpu_seconds.to_string()),
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory of the process, in bytes.",
                Some(self.resident_bytes.to_string()),
            ),
            (
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory of the process, in bytes.",
                Some(self.virtual_bytes.to_string()),
            ),
            (
                "process_threads",
                "gauge",
                "Threads of the process.",
                Some(self.threads.to_string()),
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "When the process started, in seconds since the Unix epoch.",
                Some(self.start_time_seconds.to_string()),
            ),
            (
                "process_open_fds",
                "gauge",
                "File descriptors the process has open (sockets included).",
                Some(self.open_fds.to_string()),
            ),
            (
                "process_max_fds",
                "gauge",
                "The process's limit on open file descriptors (soft limit).",
                self.max_fds.map(|max| max.to_string()),
            ),
        ];
        for (name, kind, help, value) in figures {
            if let Some(value) = value {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
                let _ = writeln!(out, "{name} {value}");
            }
        }
    }
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses: fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let after_name = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is index 0 here: field N is index N - 3.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: field(14)? + field(15)?,
        threads: field(20)?,
        start_ticks: field(22)?,
        virtual_bytes: field(23)?,
    })
}

/// The value in kB of line `key` of `/proc/<pid>/status`.
fn status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// The boot time (`btime`, seconds since the epoch) from `/proc/stat`.
fn boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The soft limit of "Max open files" in `/proc/<pid>/limits` (`None` when unlimited).
fn max_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_end_of_the_command_name() {
        let line = "4242 (beffroi (serve) 2) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 17 0 98765 1073741824 20000 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                cpu_ticks: 325,
                threads: 17,
                start_ticks: 98765,
                virtual_bytes: 1 << 30,
            })
        );
        assert_eq!(parse_stat("4242 (cut"), None);
        assert_eq!(parse_stat("4242 (short) S 1 2"), None);
    }

    #[test]
    fn status_stat_and_limits_lines_are_read() {
        assert_eq!(
            status_kib(
                "Name:\tbeffroi\nVmRSS:\t   66112 kB\nThreads:\t9\n",
                "VmRSS:"
            ),
            Some(66112)
        );
        assert_eq!(status_kib("Name:\tbeffroi\n", "VmRSS:"), None);
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1764892800\nprocesses 9\n"),
            Some(1_764_892_800)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            20000                20000                files\n";
        assert_eq!(max_open_files(limits), Some(20000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(unlimited), None);
    }

    #[test]
    fn this_process_has_figures_and_renders_them() {
        let before = ProcessFigures::read().expect("/proc/self on Linux");
        assert!(before.resident_bytes > 0 && before.virtual_bytes >= before.resident_bytes);
        assert!(before.threads >= 1 && before.open_fds >= 3, "{before:?}");
        // Burn CPU until the counter moves (it counts 10 ms ticks), within a bound.
        let mut x = 0_u64;
        let start = std::time::Instant::now();
        let after = loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            let now = ProcessFigures::read().expect("/proc/self on Linux");
            if now.cpu_seconds > before.cpu_seconds || start.elapsed().as_secs() >= 10 {
                break now;
            }
        };
        assert!(
            after.cpu_seconds > before.cpu_seconds,
            "{before:?} {after:?}"
        );
        assert_eq!(after.start_time_seconds, before.start_time_seconds);
        let mut text = String::new();
        after.render(&mut text);
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
        let resident = format!("process_resident_memory_bytes {}\n", after.resident_bytes);
        assert!(text.contains(&resident), "{text}");
    }
}
