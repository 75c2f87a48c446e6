//! One platform node under test: `beffroi serve` in a process of its own (this executable),
//! with its configuration written in the run's directory — the external broker (or its own
//! embedded one), the shared database and the shared PKI directory — and its figures read from
//! outside, as an operator's monitoring reads them: `/metrics` for what it did, `/proc/<pid>`
//! for its CPU time and memory. `bench cluster` runs several on one broker; `bench gate` runs
//! one, on its embedded broker by default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use beffroi_store::Store;
use rustix::process::{kill_process, Pid, Signal};

use super::super::free_port;
use super::super::http::Client;
use super::super::{usage, TimescaleArg};
use crate::config::PlatformConfig;
use crate::pki::Ca;
use crate::pki_init::{self, InitArgs};
use crate::{admin, node_pki};

/// Makes the run's PKI directory, `dir/pki`, with `pki init` (gate names `localhost` and
/// `127.0.0.1`), and returns it.
pub(crate) fn init_pki(dir: &Path) -> anyhow::Result<PathBuf> {
    let pki = dir.join("pki");
    pki_init::run(&InitArgs {
        dir: pki.clone(),
        gate_names: vec!["localhost".into(), "127.0.0.1".into()],
        offline_root: false,
    })?;
    Ok(pki)
}

/// The bench's own handle on the nodes' database and CA, from one node's configuration:
/// opening the store migrates the database before any node starts.
pub(crate) async fn bench_handles(config: &NodeConfig) -> anyhow::Result<(Arc<dyn Store>, Ca)> {
    let store = admin::open_store(&config.config).await?;
    let ca = node_pki::load_ca(&config.config)?;
    Ok((store, ca))
}

/// Time allowed for a node to become ready (migrations, broker subscription, relay).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed for a node to stop in order after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// What every node of a run shares.
pub(crate) struct Shared<'a> {
    /// The database URL.
    pub database: &'a str,
    /// The external broker's `host:port`; `None`: each node runs its embedded broker on two
    /// free loopback ports (no cluster relay then).
    pub broker: Option<&'a str>,
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
    /// The enrollment endpoint's address.
    pub enroll: SocketAddr,
    /// Whether it uses an external broker (and so runs the cluster relay).
    pub external_broker: bool,
}

impl NodeConfig {
    /// Writes node `n`'s configuration under `dir`.
    pub(crate) fn write(dir: &Path, n: usize, shared: &Shared<'_>) -> anyhow::Result<Self> {
        let name = format!("node-{n}");
        let data_dir = dir.join(&name);
        std::fs::create_dir_all(&data_dir)?;
        let (gate_port, api_port, enroll_port) = (free_port()?, free_port()?, free_port()?);
        let broker = match shared.broker {
            Some(address) => format!("external_v5 = {address:?}"),
            None => format!(
                "listen_v4 = \"127.0.0.1:{}\"\nlisten_v5 = \"127.0.0.1:{}\"",
                free_port()?,
                free_port()?
            ),
        };
        let text = format!(
            "# Written by beffroi bench.\n\
             data_dir = {data:?}\ndatabase = {db:?}\n\
             [gate]\nlisten = \"127.0.0.1:{gate_port}\"\nnames = [\"localhost\", \"127.0.0.1\"]\n\
             [broker]\n{broker}\n\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\n\
             [enroll]\nlisten = \"127.0.0.1:{enroll_port}\"\n\
             [pki]\ndir = {pki:?}\n\
             [store]\ntimescale = \"{timescale}\"\n",
            data = data_dir.display().to_string(),
            db = shared.database,
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
            enroll: SocketAddr::from(([127, 0, 0, 1], enroll_port)),
            external_broker: shared.broker.is_some(),
        })
    }
}

/// A running node.
pub(crate) struct Node {
    /// Its name in the report.
    pub name: String,
    api: SocketAddr,
    /// Whether its readiness includes the cluster relay's subscription.
    relay: bool,
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

    /// The sum of a metric's samples over all its labels.
    pub(crate) fn sum(&self, metric: &str) -> f64 {
        self.0
            .iter()
            .filter(|(name, _)| {
                name.strip_prefix(metric)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
            })
            .fold(0.0, |sum, (_, value)| sum + value)
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
    /// Starts `beffroi serve` with `config`, waiting until it is ready and, on an external
    /// broker, its cluster relay subscribed.
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
            relay: config.external_broker,
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

    /// Ready, and its cluster relay (if any) subscribed.
    async fn is_ready(&self) -> bool {
        let Ok(mut client) = Client::connect(self.api).await else {
            return false;
        };
        matches!(client.get("/readyz", "").await, Ok(reply) if reply.status == 200)
            && (!self.relay
                || matches!(self.scrape().await, Ok(s) if s.get("beffroi_cluster_relay_connected") == 1.0))
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_metric_over_its_labels() {
        let scrape = Scrape::parse(
            "# TYPE beffroi_gate_refused_total counter\n\
             beffroi_gate_refused_total{reason=\"revoked\"} 2\n\
             beffroi_gate_refused_total{reason=\"idle_timeout\"} 3\n\
             beffroi_gate_refused_totals 7\nbeffroi_gate_connections 5\n",
        );
        assert_eq!(scrape.sum("beffroi_gate_refused_total"), 5.0);
        assert_eq!(scrape.sum("beffroi_gate_connections"), 5.0);
        assert_eq!(scrape.get("beffroi_gate_connections"), 5.0);
        assert_eq!(scrape.sum("absent").to_bits(), 0.0f64.to_bits());
    }
}
