//! The integrator baseline's consumer: `bench/integrator/consumer.py` (built into this
//! binary, written into the run's directory) run by the Python of a virtual environment that
//! holds `bench/integrator/requirements.txt` — created with `python3 -m venv` and pip when
//! missing or when the requirements changed (network access to PyPI needed once).
//!
//! The consumer prints JSON lines (`{"ready": true}`, then its counts every 20 ms); a reader
//! task keeps the latest counts in [`Progress`], which the publishers' flow control and the
//! measurement read. Closing its standard input asks it to commit what it holds and exit.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;

use super::super::cluster::log_tail;
use super::super::database::BenchDatabase;

/// The consumer, as in the repository.
const SCRIPT: &str = include_str!("../../../../bench/integrator/consumer.py");
/// Its requirements, as in the repository.
const REQUIREMENTS: &str = include_str!("../../../../bench/integrator/requirements.txt");
/// The requirements the environment was last installed from (in the environment).
const INSTALLED: &str = "beffroi-requirements.txt";
/// Time allowed for the consumer to connect to the database and subscribe.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for its last commit and exit once its input is closed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A virtual environment with the consumer's requirements.
pub(crate) struct Installation {
    python: PathBuf,
}

impl Installation {
    /// Finds the environment at `venv` up to date, or creates / updates it. Errors say why it
    /// is not available; the benchmark then runs without the baseline.
    pub(crate) fn prepare(venv: &Path) -> anyhow::Result<Self> {
        let python = venv.join("bin/python");
        let stamp = venv.join(INSTALLED);
        if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == REQUIREMENTS) {
            return Ok(Self { python });
        }
        if !python.exists() {
            eprintln!(
                "bench: creating the integrator's Python environment in {}",
                venv.display()
            );
            run(std::process::Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(venv))
            .context("cannot create a virtual environment (python3 and python3-venv needed)")?;
        }
        eprintln!("bench: installing bench/integrator/requirements.txt from PyPI");
        let requirements = venv.join("requirements.txt");
        std::fs::write(&requirements, REQUIREMENTS)?;
        run(std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements))
        .context("pip cannot install the integrator's requirements")?;
        std::fs::write(&stamp, REQUIREMENTS)?;
        Ok(Self { python })
    }
}

fn run(command: &mut std::process::Command) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    anyhow::ensure!(
        output.status.success(),
        "{:?} failed ({}): {}",
        command.get_program(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// The consumer's latest counts.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    ready: AtomicBool,
    messages: AtomicU64,
    received: AtomicU64,
    written: AtomicU64,
}

impl Progress {
    /// Messages received.
    pub(crate) fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// Readings received.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Readings committed.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

/// One line of the consumer's output.
#[derive(Debug, serde::Deserialize)]
struct Line {
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    messages: Option<u64>,
    #[serde(default)]
    received: Option<u64>,
    #[serde(default)]
    written: Option<u64>,
}

/// A running consumer.
pub(crate) struct Consumer {
    child: Child,
    stdin: Option<ChildStdin>,
    reader: JoinHandle<()>,
    log: PathBuf,
    /// Its counts.
    pub progress: Arc<Progress>,
}

impl Consumer {
    /// Starts the consumer writing into `database` with `options` (`--port`, `--topic`,
    /// `--tenant`, … of the script); returns once it is subscribed.
    pub(crate) async fn start(
        installation: &Installation,
        dir: &Path,
        database: &BenchDatabase,
        options: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let script = dir.join("consumer.py");
        std::fs::write(&script, SCRIPT)?;
        let log = dir.join("consumer.log");
        let stderr = std::fs::File::create(&log)?;
        let mut command = Command::new(&installation.python);
        command.arg(&script);
        for (name, value) in options {
            command.arg(name).arg(value);
        }
        match database {
            BenchDatabase::Sqlite { url } => command.arg("--sqlite").arg(sqlite_path(url)?),
            BenchDatabase::Postgres { url, .. } => command.arg("--postgres").arg(url),
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", installation.python.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("consumer stdout")?;
        let progress = Arc::new(Progress::default());
        let counts = progress.clone();
        let reader = tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(line) = serde_json::from_str::<Line>(&line) else {
                    continue;
                };
                if line.ready {
                    counts.ready.store(true, Ordering::Relaxed);
                }
                let fields = [
                    (&counts.messages, line.messages),
                    (&counts.received, line.received),
                    (&counts.written, line.written),
                ];
                for (counter, value) in fields {
                    if let Some(value) = value {
                        counter.store(value, Ordering::Relaxed);
                    }
                }
            }
        });
        let mut consumer = Self {
            child,
            stdin,
            reader,
            log,
            progress,
        };
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while !consumer.progress.ready.load(Ordering::Relaxed) {
            if let Some(status) = consumer.child.try_wait()? {
                anyhow::bail!("the consumer exited ({status}): {}", consumer.log_tail());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the consumer did not subscribe: {}", consumer.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(consumer)
    }

    /// Its process id (for its CPU time and memory).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Fails when the consumer has exited.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => anyhow::bail!("the consumer exited ({status}): {}", self.log_tail()),
            None => Ok(()),
        }
    }

    /// Closes its input: it commits what it holds, prints its last counts and exits.
    pub(crate) async fn finish(mut self) -> anyhow::Result<Arc<Progress>> {
        drop(self.stdin.take());
        let status = tokio::time::timeout(EXIT_TIMEOUT, self.child.wait())
            .await
            .map_err(|_| anyhow::anyhow!("the consumer does not exit: {}", self.log_tail()))??;
        anyhow::ensure!(
            status.success(),
            "the consumer failed ({status}): {}",
            self.log_tail()
        );
        // Its output ends with its exit: the reader has seen the last line.
        (&mut self.reader).await.context("consumer output reader")?;
        Ok(self.progress.clone())
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

/// The file of an `sqlite://PATH?…` (or `sqlite:PATH`) URL.
fn sqlite_path(url: &str) -> anyhow::Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .context("not an SQLite URL")?;
    let path = rest.split('?').next().unwrap_or(rest);
    anyhow::ensure!(
        !path.is_empty() && !path.contains(":memory:"),
        "the integrator baseline needs an SQLite file, not {url}"
    );
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite:///tmp/x/bench.db?mode=rwc").unwrap(),
            PathBuf::from("/tmp/x/bench.db")
        );
        assert_eq!(
            sqlite_path("sqlite:data.db").unwrap(),
            PathBuf::from("data.db")
        );
        assert!(sqlite_path("sqlite::memory:").is_err());
        assert!(sqlite_path("postgres://h/db").is_err());
    }
}
