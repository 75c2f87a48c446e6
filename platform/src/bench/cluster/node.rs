//! One platform node of the cluster under test: `beffroi serve` in a process of its own (this
//! executable), with its configuration written in the run's directory — the external broker,
//! the shared database and the shared PKI directory — and its figures read from outside, as an
//! operator's monitoring reads them: `/metrics` for what it did, `/proc/<pid>` for its CPU
//! time and memory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use rustix::process::{kill_process, Pid, Signal};

use super::super::free_port;
use super::super::http::Client;
use super::super::{usage, TimescaleArg};
use crate::config::PlatformConfig;

/// Time allowed for a node to become ready (migrations, broker subscription, relay).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed for a node to stop in order after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// What every node of a run shares.
pub(crate) struct Shared<'a> {
    /// The database URL.
    pub database: &'a str,
    /// The broker's `host:port`.
    pub broker: &'a str,
    /// The PKI directory made by `pki init`.
    pub pki: &'a Path,
    /// `store.timescale`.
    pub timescale: TimescaleArg,
}

/// A node's configuration: its ports and file.
pub(crate) struct NodeConfig {
    /// Its name in the report (`node-1`…).
    pub name: String,
    /// Where it was written.
    pub path: PathBuf,
    /// The parsed configuration (what the bench opens the store and CA with).
    pub config: PlatformConfig,
    /// The gate's port.
    pub gate_port: u16,
    /// The API's address.
    pub api: SocketAddr,
}

impl NodeConfig {
    /// Writes node `n`'s configuration under `dir`.
    pub(crate) fn write(dir: &Path, n: usize, shared: &Shared<'_>) -> anyhow::Result<Self> {
        let name = format!("node-{n}");
        let data_dir = dir.join(&name);
        std::fs::create_dir_all(&data_dir)?;
        let (gate_port, api_port, enroll_port) = (free_port()?, free_port()?, free_port()?);
        let text = format!(
            "# Written by beffroi bench cluster.\n\
             data_dir = {data:?}\ndatabase = {db:?}\n\
             [gate]\nlisten = \"127.0.0.1:{gate_port}\"\nnames = [\"localhost\", \"127.0.0.1\"]\n\
             [broker]\nexternal_v5 = {broker:?}\n\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\n\
             [enroll]\nlisten = \"127.0.0.1:{enroll_port}\"\n\
             [pki]\ndir = {pki:?}\n\
             [store]\ntimescale = \"{timescale}\"\n",
            data = data_dir.display().to_string(),
            db = shared.database,
            broker = shared.broker,
            pki = shared.pki.display().to_string(),
            timescale = shared.timescale.as_str(),
        );
        let path = data_dir.join("beffroi.toml");
        std::fs::write(&path, &text)?;
        Ok(Self {
            name,
            path,
            config: PlatformConfig::from_toml(&text)?,
            gate_port,
            api: SocketAddr::from(([127, 0, 0, 1], api_port)),
        })
    }
}

/// A running node.
pub(crate) struct Node {
    /// Its name in the report.
    pub name: String,
    api: SocketAddr,
    child: Child,
    log: PathBuf,
}

/// One scrape of a node's `/metrics`: sample name with labels → value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    /// Parses the Prometheus text format (comments skipped).
    pub(crate) fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter(|line| !line.starts_with('#'))
                .filter_map(|line| {
                    let (name, value) = line.rsplit_once(' ')?;
                    Some((name.to_owned(), value.parse().ok()?))
                })
                .collect(),
        )
    }

    /// A sample's value (0 when absent).
    pub(crate) fn get(&self, sample: &str) -> f64 {
        self.0.get(sample).copied().unwrap_or(0.0)
    }
}

/// A node's process figures at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcSample {
    /// CPU ticks (user + system).
    pub ticks: u64,
    /// Resident set, bytes.
    pub rss: u64,
}

impl Node {
    /// Starts `beffroi serve` with `config`, waiting until it is ready and its cluster relay
    /// subscribed.
    pub(crate) async fn start(config: &NodeConfig) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let log = config.path.with_file_name("node.log");
        let file = std::fs::File::create(&log)?;
        let child = Command::new(exe)
            .arg("--config")
            .arg(&config.path)
            .arg("serve")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("cannot start a node")?;
        let mut node = Self {
            name: config.name.clone(),
            api: config.api,
            child,
            log,
        };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = node.child.try_wait()? {
                anyhow::bail!("{} exited ({status}): {}", node.name, node.log_tail());
            }
            if node.is_ready().await {
                return Ok(node);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("{} is not ready: {}", node.name, node.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ready, and its cluster relay subscribed.
    async fn is_ready(&self) -> bool {
        let Ok(mut client) = Client::connect(self.api).await else {
            return false;
        };
        matches!(client.get("/readyz", "").await, Ok(reply) if reply.status == 200)
            && matches!(self.scrape().await, Ok(s) if s.get("beffroi_cluster_relay_connected") == 1.0)
    }

    /// Its metrics now.
    pub(crate) async fn scrape(&self) -> anyhow::Result<Scrape> {
        let mut client = Client::connect(self.api).await?;
        let reply = client.get("/metrics", "").await?;
        anyhow::ensure!(
            reply.status == 200,
            "{}: /metrics answered {}",
            self.name,
            reply.status
        );
        Ok(Scrape::parse(&String::from_utf8_lossy(&reply.body)))
    }

    /// Its CPU time and resident set now.
    pub(crate) fn proc_sample(&self) -> ProcSample {
        proc_sample(self.child.id())
    }

    /// SIGTERM, then waits for it to stop in order (killed after [`STOP_TIMEOUT`]).
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        let pid = Pid::from_raw(i32::try_from(self.child.id())?).context("no pid")?;
        kill_process(pid, Signal::TERM).context("cannot signal a node")?;
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        while self.child.try_wait()?.is_none() {
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                anyhow::bail!("{} did not stop within {STOP_TIMEOUT:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        super::log_tail(&self.log)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU ticks and resident set of process `pid`, from `/proc` (zeros when it is gone).
pub(crate) fn proc_sample(pid: u32) -> ProcSample {
    ProcSample {
        ticks: usage::ticks_of_pid(pid),
        rss: usage::resident_of(pid).unwrap_or(0),
    }
}
