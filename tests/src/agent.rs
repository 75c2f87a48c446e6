//! The real `beffroi-agent` binary as a child process: its configuration, key, certificates
//! and spool in a private directory, its standard error in a log file.
//!
//! The binary is `$BEFFROI_AGENT_BIN`, else `target/debug/beffroi-agent` of this workspace
//! (build it first with `cargo build -p beffroi-agent`). The process is killed on drop, and
//! a failing test prints its log. It logs at `info`, or with the filter in
//! `$BEFFROI_TEST_AGENT_LOG` (`rumqttc=debug,info` shows every packet id it sends).

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use serde::Serialize;

use crate::process::{sigterm, tail};
use crate::wait::poll_until;

/// Where readings come from (a `[[sources]]` entry).
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// `kind = "simulator"`.
    Simulator {
        /// Seed.
        seed: u64,
        /// Number of sensors.
        sensors: usize,
        /// Readings per second.
        rate_per_s: f64,
        /// Stop after this many readings.
        limit: Option<u64>,
    },
    /// `kind = "jsonl"` reading a file (`follow`: like `tail -f`).
    JsonlFile {
        /// The file.
        path: PathBuf,
        /// Keep reading as it grows.
        follow: bool,
    },
    /// `kind = "jsonl"` reading standard input (`path = "-"`), fed with
    /// [`AgentProcess::feed`].
    JsonlStdin,
    /// `kind = "mqtt"`: a subscription to a plain local broker on 127.0.0.1.
    Mqtt {
        /// The broker's port.
        port: u16,
        /// The agent's MQTT client id there.
        client_id: String,
        /// One `[[sources.mappings]]` each.
        mappings: Vec<MqttMapping>,
    },
}

/// A `[[sources.mappings]]` rule of one value per message: the sensor id and the value at
/// JSON pointers, the metric and unit fixed.
#[derive(Debug, Clone)]
pub struct MqttMapping {
    /// The topic filter.
    pub filter: String,
    /// JSON pointer to the sensor id.
    pub sensor: String,
    /// The metric.
    pub metric: String,
    /// The unit.
    pub unit: String,
    /// JSON pointer to the value.
    pub value: String,
}

/// What an agent under test looks like; paths and the broker port are filled in by the
/// sandbox.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// Tenant id.
    pub tenant: String,
    /// Gateway id.
    pub gateway: String,
    /// Sources.
    pub sources: Vec<SourceSpec>,
    /// `batch.max_readings`.
    pub max_readings: usize,
    /// `batch.max_linger_ms`.
    pub max_linger_ms: u64,
    /// `spool.max_bytes` (default: the agent's).
    pub spool_max_bytes: Option<u64>,
    /// `spool.segment_bytes` (default: the agent's).
    pub spool_segment_bytes: Option<u64>,
    /// `spool.fsync_interval_ms`.
    pub fsync_interval_ms: u64,
    /// `health.interval_s`.
    pub health_interval_s: u64,
    /// `uplink.ack_timeout_s`.
    pub ack_timeout_s: u64,
    /// `uplink.max_in_flight`.
    pub max_in_flight: usize,
    /// Present a client certificate from the rogue CA instead of the platform CA.
    pub rogue_certificate: bool,
    /// `enrollment.url`: renew the certificate there (an enrolled gateway).
    pub enrollment_url: Option<String>,
    /// `uplink.host` (default `localhost`).
    pub uplink_host: String,
    /// Run the agent inside this network namespace (`ip netns exec`; needs root).
    pub netns: Option<String>,
}

impl AgentSpec {
    /// A gateway of tenant `acme` with one source, small batches, fast health reports and
    /// quick retries.
    pub fn new(gateway: &str, source: SourceSpec) -> Self {
        Self {
            tenant: "acme".to_owned(),
            gateway: gateway.to_owned(),
            sources: vec![source],
            max_readings: 100,
            max_linger_ms: 50,
            spool_max_bytes: None,
            spool_segment_bytes: None,
            fsync_interval_ms: 20,
            health_interval_s: 1,
            ack_timeout_s: 2,
            max_in_flight: 32,
            rogue_certificate: false,
            enrollment_url: None,
            uplink_host: "localhost".to_owned(),
            netns: None,
        }
    }
}

/// Paths of one agent's files.
#[derive(Debug, Clone)]
pub struct AgentPaths {
    /// The agent's directory.
    pub dir: PathBuf,
    /// `agent.toml`.
    pub config: PathBuf,
    /// The Ed25519 signing key (`keygen --out`).
    pub signing_key: PathBuf,
    /// The spool directory.
    pub spool: PathBuf,
    /// Standard error of every run, appended.
    pub log: PathBuf,
    /// Platform CA.
    pub ca: PathBuf,
    /// Client certificate.
    pub certificate: PathBuf,
    /// Client key.
    pub private_key: PathBuf,
}

#[derive(Serialize)]
struct ConfigFile {
    identity: IdentitySection,
    uplink: UplinkSection,
    spool: SpoolSection,
    batch: BatchSection,
    health: HealthSection,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrollment: Option<EnrollmentSection>,
    sources: Vec<SourceSection>,
}

#[derive(Serialize)]
struct EnrollmentSection {
    url: String,
}

#[derive(Serialize)]
struct IdentitySection {
    tenant: String,
    gateway: String,
    signing_key: PathBuf,
}

#[derive(Serialize)]
struct UplinkSection {
    host: String,
    port: u16,
    ca: PathBuf,
    certificate: PathBuf,
    private_key: PathBuf,
    keep_alive_s: u64,
    connect_timeout_s: u64,
    backoff_initial_ms: u64,
    backoff_max_ms: u64,
    ack_timeout_s: u64,
    max_in_flight: usize,
}

#[derive(Serialize)]
struct SpoolSection {
    dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segment_bytes: Option<u64>,
    fsync_interval_ms: u64,
}

#[derive(Serialize)]
struct BatchSection {
    max_readings: usize,
    max_linger_ms: u64,
}

#[derive(Serialize)]
struct HealthSection {
    interval_s: u64,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum SourceSection {
    Simulator {
        seed: u64,
        sensors: usize,
        rate_per_s: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    Jsonl {
        path: PathBuf,
        follow: bool,
    },
    Mqtt {
        host: String,
        port: u16,
        client_id: String,
        mappings: Vec<MappingSection>,
    },
}

#[derive(Serialize)]
struct MappingSection {
    filter: String,
    sensor: SensorPointer,
    values: Vec<ValueSection>,
}

#[derive(Serialize)]
struct SensorPointer {
    pointer: String,
}

#[derive(Serialize)]
struct ValueSection {
    metric: String,
    unit: String,
    value: String,
}

impl SourceSpec {
    /// This source as a `[[sources]]` table of an agent config.
    pub fn toml(&self) -> anyhow::Result<String> {
        #[derive(Serialize)]
        struct Sources {
            sources: Vec<SourceSection>,
        }
        Ok(toml::to_string(&Sources {
            sources: vec![self.section()],
        })?)
    }

    fn section(&self) -> SourceSection {
        match self {
            SourceSpec::Simulator {
                seed,
                sensors,
                rate_per_s,
                limit,
            } => SourceSection::Simulator {
                seed: *seed,
                sensors: *sensors,
                rate_per_s: *rate_per_s,
                limit: *limit,
            },
            SourceSpec::JsonlFile { path, follow } => SourceSection::Jsonl {
                path: path.clone(),
                follow: *follow,
            },
            SourceSpec::JsonlStdin => SourceSection::Jsonl {
                path: PathBuf::from("-"),
                follow: false,
            },
            SourceSpec::Mqtt {
                port,
                client_id,
                mappings,
            } => SourceSection::Mqtt {
                host: "127.0.0.1".to_owned(),
                port: *port,
                client_id: client_id.clone(),
                mappings: mappings
                    .iter()
                    .map(|m| MappingSection {
                        filter: m.filter.clone(),
                        sensor: SensorPointer {
                            pointer: m.sensor.clone(),
                        },
                        values: vec![ValueSection {
                            metric: m.metric.clone(),
                            unit: m.unit.clone(),
                            value: m.value.clone(),
                        }],
                    })
                    .collect(),
            },
        }
    }
}

/// The agent's configuration as a TOML table, for scenarios that break it on purpose.
pub fn config_table(
    spec: &AgentSpec,
    paths: &AgentPaths,
    port: u16,
) -> anyhow::Result<toml::Table> {
    let file = ConfigFile {
        identity: IdentitySection {
            tenant: spec.tenant.clone(),
            gateway: spec.gateway.clone(),
            signing_key: paths.signing_key.clone(),
        },
        uplink: UplinkSection {
            host: spec.uplink_host.clone(),
            port,
            ca: paths.ca.clone(),
            certificate: paths.certificate.clone(),
            private_key: paths.private_key.clone(),
            keep_alive_s: 5,
            connect_timeout_s: 5,
            backoff_initial_ms: 100,
            backoff_max_ms: 1000,
            ack_timeout_s: spec.ack_timeout_s,
            max_in_flight: spec.max_in_flight,
        },
        spool: SpoolSection {
            dir: paths.spool.clone(),
            max_bytes: spec.spool_max_bytes,
            segment_bytes: spec.spool_segment_bytes,
            fsync_interval_ms: spec.fsync_interval_ms,
        },
        batch: BatchSection {
            max_readings: spec.max_readings,
            max_linger_ms: spec.max_linger_ms,
        },
        health: HealthSection {
            interval_s: spec.health_interval_s,
        },
        enrollment: spec
            .enrollment_url
            .clone()
            .map(|url| EnrollmentSection { url }),
        sources: spec.sources.iter().map(SourceSpec::section).collect(),
    };
    Ok(toml::Table::try_from(file)?)
}

/// The agent binary under test.
pub fn agent_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("BEFFROI_AGENT_BIN") {
        let path = PathBuf::from(path);
        anyhow::ensure!(
            path.exists(),
            "BEFFROI_AGENT_BIN={} does not exist",
            path.display()
        );
        return Ok(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let path = target.join("debug/beffroi-agent");
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run `cargo build -p beffroi-agent` first (or set BEFFROI_AGENT_BIN)",
        path.display()
    );
    Ok(path)
}

/// Runs the agent binary with `args` to completion (subcommands other than `run`).
pub async fn run_command(args: Vec<std::ffi::OsString>) -> anyhow::Result<Output> {
    let binary = agent_binary()?;
    tokio::task::spawn_blocking(move || {
        Command::new(&binary)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {} {args:?}", binary.display()))
    })
    .await?
}

/// Generates a signing key with `beffroi-agent keygen --out` and returns its public key.
pub async fn keygen(path: &Path) -> anyhow::Result<VerifyingKey> {
    let output = run_command(vec!["keygen".into(), "--out".into(), path.into()]).await?;
    anyhow::ensure!(
        output.status.success(),
        "keygen failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut public = path.as_os_str().to_owned();
    public.push(".pub");
    let pem = std::fs::read_to_string(&public)
        .with_context(|| format!("reading {}", Path::new(&public).display()))?;
    VerifyingKey::from_public_key_pem(&pem).context("parsing the public key keygen wrote")
}

/// One agent: its files and, while running, its process.
#[derive(Debug)]
pub struct AgentProcess {
    /// Its spec.
    pub spec: AgentSpec,
    /// Its files.
    pub paths: AgentPaths,
    port: u16,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    runs: u32,
    /// The harness writes `paths.config` from `spec`.
    own_config: bool,
}

impl AgentProcess {
    /// An agent whose files are in place (see [`crate::Sandbox::agent`]); not started.
    pub fn new(spec: AgentSpec, paths: AgentPaths, port: u16) -> anyhow::Result<Self> {
        let agent = Self {
            spec,
            paths,
            port,
            child: None,
            stdin: None,
            runs: 0,
            own_config: true,
        };
        agent.write_config()?;
        Ok(agent)
    }

    /// An agent run with the config file someone else wrote at `paths.config` (`beffroi-agent
    /// enroll`), used as it is; `spec` and `paths` describe that file to the harness, which
    /// will not write it ([`Self::write_config`] refuses).
    pub fn with_config_file(spec: AgentSpec, paths: AgentPaths) -> Self {
        Self {
            spec,
            paths,
            port: 0,
            child: None,
            stdin: None,
            runs: 0,
            own_config: false,
        }
    }

    /// Writes `agent.toml` from the spec.
    pub fn write_config(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.own_config,
            "{} was not written by the harness: it is left as it is",
            self.paths.config.display()
        );
        let table = config_table(&self.spec, &self.paths, self.port)?;
        std::fs::write(&self.paths.config, toml::to_string(&table)?)?;
        Ok(())
    }

    /// Replaces the sources (for the next start).
    pub fn set_sources(&mut self, sources: Vec<SourceSpec>) -> anyhow::Result<()> {
        self.spec.sources = sources;
        self.write_config()
    }

    /// `(tenant, gateway)`.
    pub fn id(&self) -> (&str, &str) {
        (&self.spec.tenant, &self.spec.gateway)
    }

    /// Starts `beffroi-agent run`.
    pub fn start(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.is_running(), "the agent is already running");
        self.runs += 1;
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&self.paths.log)?;
        writeln!(log, "==== run {} ====", self.runs)?;
        let uses_stdin = self
            .spec
            .sources
            .iter()
            .any(|s| matches!(s, SourceSpec::JsonlStdin));
        let mut command = match &self.spec.netns {
            Some(netns) => {
                // `ip netns exec` execs the agent: the child's pid is the agent's.
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(agent_binary()?);
                command
            }
            None => Command::new(agent_binary()?),
        };
        let mut child = command
            .arg("run")
            .arg("--config")
            .arg(&self.paths.config)
            .env(
                "RUST_LOG",
                std::env::var("BEFFROI_TEST_AGENT_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(if uses_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting beffroi-agent run")?;
        self.stdin = child.stdin.take();
        self.child = Some(child);
        Ok(())
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Writes to the agent's standard input (for `path = "-"`), off the async threads.
    pub async fn feed(&mut self, data: impl Into<Vec<u8>>) -> anyhow::Result<()> {
        let mut stdin = self
            .stdin
            .take()
            .context("the agent has no standard input pipe")?;
        let data = data.into();
        let stdin = tokio::task::spawn_blocking(move || {
            stdin.write_all(&data)?;
            stdin.flush()?;
            Ok::<_, std::io::Error>(stdin)
        })
        .await?
        .context("writing to the agent's standard input")?;
        self.stdin = Some(stdin);
        Ok(())
    }

    /// Closes the agent's standard input (end of input for `path = "-"`).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// `kill -9`, and reaps the process.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            child.kill().context("kill -9 the agent")?;
            child.wait()?;
        }
        Ok(())
    }

    /// Sends SIGTERM (the process keeps its handle until [`AgentProcess::wait_exit`]).
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        let pid = self.pid().context("the agent is not running")?;
        sigterm(pid)
    }

    /// Waits at most `timeout` for the process to exit; returns its status and how long it
    /// took.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<(ExitStatus, Duration)> {
        let started = Instant::now();
        let log = self.paths.log.clone();
        let child = self.child.as_mut().context("the agent is not running")?;
        let status = poll_until(
            "the agent to exit",
            timeout,
            || {
                let status = child.try_wait();
                async move { Ok(status?) }
            },
            || tail(&log, 2000),
        )
        .await?;
        self.child = None;
        self.stdin = None;
        Ok((status, started.elapsed()))
    }

    /// `beffroi-agent spool stats` (the agent must be stopped), parsed.
    pub async fn spool_stats(&self) -> anyhow::Result<serde_json::Value> {
        let output = run_command(vec![
            "spool".into(),
            "stats".into(),
            "--config".into(),
            self.paths.config.clone().into(),
        ])
        .await?;
        anyhow::ensure!(
            output.status.success(),
            "spool stats failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).context("spool stats printed invalid JSON")
    }

    /// `beffroi-agent status --json`: its exit code and report (the agent may be running).
    pub async fn status(&self) -> anyhow::Result<(Option<i32>, serde_json::Value)> {
        let output = run_command(vec![
            "status".into(),
            "--json".into(),
            "--config".into(),
            self.paths.config.clone().into(),
        ])
        .await?;
        let report = serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "status printed invalid JSON ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        Ok((output.status.code(), report))
    }

    /// `beffroi-agent status` as text: its exit code and what it printed.
    pub async fn status_text(&self) -> anyhow::Result<(Option<i32>, String)> {
        let output = run_command(vec![
            "status".into(),
            "--config".into(),
            self.paths.config.clone().into(),
        ])
        .await?;
        Ok((
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ))
    }

    /// Everything the agent wrote to standard error so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.paths.log).unwrap_or_default()
    }

    /// Waits until the agent's log contains `needle`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let path = self.paths.log.clone();
        poll_until(
            &format!("the agent's log to contain {needle:?}"),
            timeout,
            || {
                let found = std::fs::read_to_string(&path)
                    .map(|text| text.contains(needle))
                    .unwrap_or(false);
                async move { Ok(found.then_some(())) }
            },
            || tail(&self.paths.log, 2000),
        )
        .await
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- beffroi-agent {}/{} log ({}) ----\n{}",
                self.spec.tenant,
                self.spec.gateway,
                self.paths.log.display(),
                tail(&self.paths.log, 12 * 1024)
            );
        }
    }
}
