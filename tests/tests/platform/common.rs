//! What the platform scenarios share: a private directory per scenario that is kept (and its
//! logs printed) unless the scenario passes, recent known readings, and waits and comparisons
//! over what the API returns.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use beffroi_protocol::{Reading, Timestamp};
use beffroi_tests::http::{Api, ApiReading};
use beffroi_tests::input;
use beffroi_tests::platform::unique_suffix;
use beffroi_tests::process::tail;
use beffroi_tests::wait::poll_until;
use beffroi_tests::{AgentSpec, Platform, PlatformSpec, SourceSpec};

/// How long a scenario waits for readings to be stored.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(40);

/// One scenario's directory. Declare it first so that it drops last: when the scenario did
/// not call [`Scenario::pass`] (it returned an error or panicked), the directory is kept and
/// the tail of every log in it is printed.
pub struct Scenario {
    name: &'static str,
    dir: Option<tempfile::TempDir>,
    started: Instant,
    passed: bool,
}

impl Scenario {
    /// A fresh directory for scenario `name`.
    pub fn new(name: &'static str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("beffroi-e2e-{name}-"))
            .tempdir()?;
        Ok(Self {
            name,
            dir: Some(dir),
            started: Instant::now(),
            passed: false,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// A platform configured in `<dir>/<name>` (not started).
    pub fn platform(&self, name: &str, spec: &PlatformSpec) -> anyhow::Result<Platform> {
        Platform::configure(&self.path(name), spec)
    }

    /// Marks the scenario as passed and prints how long it took.
    pub fn pass(mut self) {
        self.passed = true;
        eprintln!("{}: passed in {:.1?}", self.name, self.started.elapsed());
    }
}

fn logs_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            logs_under(&path, found);
        } else if path.extension().is_some_and(|e| e == "log") {
            found.push(path);
        }
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if self.passed {
            return;
        }
        if let Some(dir) = self.dir.take() {
            let dir = dir.keep();
            let mut logs = Vec::new();
            logs_under(&dir, &mut logs);
            logs.sort();
            for log in logs {
                eprintln!("---- {} ----\n{}", log.display(), tail(&log, 6 * 1024));
            }
            eprintln!(
                "---- {}: failed after {:.1?}; directory kept at {} ----",
                self.name,
                self.started.elapsed(),
                dir.display()
            );
        }
    }
}

/// A tenant id no other run uses (the scenarios may share a broker or a database).
pub fn unique_tenant(prefix: &str) -> String {
    format!("{prefix}-{}", unique_suffix())
}

/// A time base for known readings: ten minutes ago, on a whole second (the platform
/// quarantines readings outside its time window, so the fixed base of the agent scenarios
/// would be stale).
pub fn recent_base() -> Timestamp {
    let now = Timestamp::now().unix_micros();
    Timestamp::from_unix_micros((now - 600_000_000) / 1_000_000 * 1_000_000)
}

/// The query range that holds every reading made from `base` (`[base − 1 s, base + 1 h)`).
pub fn range(base: Timestamp) -> (Timestamp, Timestamp) {
    let us = base.unix_micros();
    (
        Timestamp::from_unix_micros(us - 1_000_000),
        Timestamp::from_unix_micros(us + 3_600_000_000),
    )
}

/// An agent spec reading a JSON lines file, with small batches so that a few thousand
/// readings make dozens of batches.
pub fn jsonl_agent(path: &Path, follow: bool) -> AgentSpec {
    let mut spec = AgentSpec::new(
        "placeholder",
        SourceSpec::JsonlFile {
            path: path.to_owned(),
            follow,
        },
    );
    spec.max_readings = 50;
    spec.max_linger_ms = 20;
    spec
}

/// Writes `readings` as JSON lines to `path`.
pub fn write_jsonl(path: &Path, readings: &[Reading]) -> anyhow::Result<()> {
    std::fs::write(path, input::jsonl(readings))?;
    Ok(())
}

/// Counts readings in `[from, to)` with big pages (cheap enough to poll).
pub async fn count_readings(api: &Api, from: Timestamp, to: Timestamp) -> anyhow::Result<usize> {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/readings?from={from}&to={to}&limit=10000");
        if let Some(cursor) = &cursor {
            path.push_str("&cursor=");
            path.push_str(cursor);
        }
        let page = api.get_json(&path).await?;
        count += page["items"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(count),
        }
    }
}

/// Waits until at least `expected` readings are stored in `[from, to)`, then returns every
/// stored reading (walked page by page with the default page size).
pub async fn wait_stored(
    api: &Api,
    (from, to): (Timestamp, Timestamp),
    expected: usize,
    platform_logs: &[&Path],
) -> anyhow::Result<Vec<ApiReading>> {
    let last = std::sync::Mutex::new(0usize);
    poll_until(
        &format!("{expected} readings stored"),
        STORE_TIMEOUT,
        || async {
            let n = count_readings(api, from, to).await.unwrap_or(0);
            *last.lock().unwrap() = n;
            if n < expected {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok((n >= expected).then_some(()))
        },
        || {
            let mut text = format!("{} stored", last.lock().unwrap());
            for log in platform_logs {
                text.push_str(&format!("\n--- {} ---\n{}", log.display(), tail(log, 3000)));
            }
            text
        },
    )
    .await?;
    // Anything still in flight (a duplicate, say) would land now: look once more, later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.readings(from, to).await
}

/// Asserts that `stored` holds exactly `expected`, each reading once, and that each was stored
/// under the gateway it came from (`expected` is per gateway).
pub fn assert_exactly_once(stored: &[ApiReading], expected: &[(&str, &[Reading])]) {
    let total: usize = expected.iter().map(|(_, r)| r.len()).sum();
    let got: Vec<Reading> = stored.iter().map(ApiReading::reading).collect();
    input::assert_each_once("stored", &got, expected.iter().flat_map(|(_, r)| r.iter()));
    assert_eq!(stored.len(), total, "stored count");
    let owner: BTreeMap<String, &str> = expected
        .iter()
        .flat_map(|(gateway, readings)| readings.iter().map(move |r| (input::key(r), *gateway)))
        .collect();
    for reading in stored {
        let key = input::key(&reading.reading());
        assert_eq!(
            owner.get(&key).copied(),
            Some(reading.gateway.as_str()),
            "stored under the wrong gateway (seq {}): {key}",
            reading.seq
        );
    }
}

/// The API items whose `field` equals `value`.
pub fn with_field<'a>(
    items: &'a [serde_json::Value],
    field: &str,
    value: &str,
) -> Vec<&'a serde_json::Value> {
    items.iter().filter(|i| i[field] == value).collect()
}

/// Lines [`feed`] appends to each file per step.
pub const CHUNK: usize = 100;
/// The pause between two steps of [`feed`].
pub const STEP: Duration = Duration::from_millis(40);

/// Appends the lines of each `(file, text)` to its file, [`CHUNK`] lines per step and
/// [`STEP`] apart, so agents following the files stream them over a few seconds.
pub fn feed(files: Vec<(PathBuf, String)>) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    feed_paced(files, CHUNK, STEP)
}

/// [`feed`] at another pace: `chunk` lines per file every `step`.
pub fn feed_paced(
    files: Vec<(PathBuf, String)>,
    chunk: usize,
    step: Duration,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let lines: Vec<(PathBuf, Vec<String>)> = files
            .into_iter()
            .map(|(path, text)| (path, text.lines().map(|l| format!("{l}\n")).collect()))
            .collect();
        let steps = lines
            .iter()
            .map(|(_, l)| l.len().div_ceil(chunk))
            .max()
            .unwrap_or(0);
        for n in 0..steps {
            for (path, lines) in &lines {
                let text: String = lines.iter().skip(n * chunk).take(chunk).cloned().collect();
                if !text.is_empty() {
                    let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
                    file.write_all(text.as_bytes())?;
                }
            }
            tokio::time::sleep(step).await;
        }
        Ok(())
    })
}
