//! The real `beffroi` platform binary as a child process, and its administration CLI used the
//! way an operator uses it.
//!
//! [`Platform::configure`] writes `beffroi.toml` in a private directory with free loopback
//! ports (gate, API, embedded broker) and a data directory; [`Platform::start`] runs
//! `beffroi --config <file> serve` and waits for `GET /readyz`; [`Platform::kill9`],
//! [`Platform::terminate`] and a new [`Platform::start`] restart it on the same ports and data.
//! Gateways are enrolled with [`Platform::enroll`]: `beffroi-agent keygen` twice (signing key,
//! TLS key), then `beffroi gateway register`, which writes the client certificate and
//! `platform-ca.pem`; [`Enrollment::agent`] turns that into a ready-to-start agent.
//!
//! The binary is `$BEFFROI_BIN`, else `target/debug/beffroi` of this workspace (build it with
//! `cargo build -p beffroi`). Every process is killed on drop; a failing test prints the
//! platform's log and keeps its directory.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::{GatewayId, SigningKey, TenantId, Topic};
use ed25519_dalek::pkcs8::DecodePrivateKey as _;

use crate::agent::{keygen, AgentPaths, AgentProcess, AgentSpec};
use crate::http::Api;
use crate::process::{sigterm, tail};
use crate::wait::poll_until;

/// How long a platform may take to answer `/readyz` after it is started.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Which broker the platform uses.
#[derive(Debug, Clone)]
pub enum BrokerSpec {
    /// The embedded rumqttd on two free loopback ports.
    Embedded,
    /// An external MQTT 5 broker (`[broker] external_v5`).
    External(SocketAddr),
}

/// What the platform under test looks like.
#[derive(Debug, Clone)]
pub struct PlatformSpec {
    /// `database` (default: SQLite in the data directory).
    pub database: Option<String>,
    /// The broker.
    pub broker: BrokerSpec,
    /// `gate.handshake_timeout_ms`.
    pub handshake_timeout_ms: u64,
    /// `pki.certificate_lifetime_s` (default: the platform's, 30 days).
    pub certificate_lifetime_s: Option<u64>,
    /// `pki.dir`: a provisioned PKI directory shared with other nodes (made with
    /// [`pki_init`]); default: the node's own `<data_dir>/pki`.
    pub pki_dir: Option<PathBuf>,
    /// `RUST_LOG` for the platform process (default: the platform's own filter).
    pub log_filter: Option<String>,
    /// The address the gate listens on, also named in its certificate (default 127.0.0.1).
    pub gate_ip: std::net::IpAddr,
}

impl Default for PlatformSpec {
    fn default() -> Self {
        Self {
            database: None,
            broker: BrokerSpec::Embedded,
            handshake_timeout_ms: 10_000,
            certificate_lifetime_s: None,
            pki_dir: None,
            log_filter: None,
            gate_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        }
    }
}

/// Ports handed out in this process, so that two scenarios running in parallel never get the
/// same one even if the kernel offers it twice.
static PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port that was free a moment ago and was not handed out before in this process.
pub fn unique_free_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).context("binding port 0")?;
        let port = listener.local_addr()?.port();
        let mut ports = PORTS.lock().unwrap_or_else(PoisonError::into_inner);
        if ports.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no fresh free port after 100 tries")
}

/// A unique suffix for ids and names (tenants, databases): process id, time and a counter.
pub fn unique_suffix() -> String {
    use sha2::{Digest as _, Sha256};
    static COUNTER: Mutex<u64> = Mutex::new(0);
    let n = {
        let mut counter = COUNTER.lock().unwrap_or_else(PoisonError::into_inner);
        *counter += 1;
        *counter
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::digest(format!("{}-{nanos}-{n}", std::process::id()));
    hex_prefix(&digest, 5)
}

fn hex_prefix(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

/// The platform binary under test.
pub fn platform_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("BEFFROI_BIN") {
        let path = PathBuf::from(path);
        anyhow::ensure!(
            path.exists(),
            "BEFFROI_BIN={} does not exist",
            path.display()
        );
        return Ok(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let path = target.join("debug/beffroi");
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run `cargo build -p beffroi` first (or set BEFFROI_BIN)",
        path.display()
    );
    Ok(path)
}

/// Runs the platform binary with `args` to completion, off the async threads.
pub async fn run_platform(args: Vec<OsString>) -> anyhow::Result<Output> {
    let binary = platform_binary()?;
    tokio::task::spawn_blocking(move || {
        Command::new(&binary)
            .args(&args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {} {args:?}", binary.display()))
    })
    .await?
}

/// `beffroi pki init --dir DIR --gate-name …` for the harness's gate names (`localhost`,
/// 127.0.0.1): the PKI directory several nodes share (`PlatformSpec::pki_dir`). Returns what
/// it printed.
pub async fn pki_init(dir: &Path) -> anyhow::Result<String> {
    let args: Vec<OsString> = vec![
        "pki".into(),
        "init".into(),
        "--dir".into(),
        dir.into(),
        "--gate-name".into(),
        "localhost".into(),
        "--gate-name".into(),
        "127.0.0.1".into(),
    ];
    let output = run_platform(args).await?;
    anyhow::ensure!(
        output.status.success(),
        "beffroi pki init failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A gateway registered with the platform: its keys and certificates on disk.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// Tenant id.
    pub tenant: String,
    /// Gateway id.
    pub gateway: String,
    /// The gateway's directory.
    pub dir: PathBuf,
    /// Ed25519 signing key (PKCS#8 PEM, `keygen`), its public half next to it as `.pub`.
    pub signing_key: PathBuf,
    /// Ed25519 TLS key (PKCS#8 PEM, `keygen`).
    pub tls_key: PathBuf,
    /// The client certificate `gateway register` wrote.
    pub certificate: PathBuf,
    /// `platform-ca.pem`, written next to the certificate.
    pub ca: PathBuf,
    /// The key id `gateway register` printed.
    pub key_id: String,
    /// The certificate fingerprint `gateway register` printed.
    pub fingerprint: String,
}

impl Enrollment {
    /// The signing key, for hand-made envelopes.
    pub fn signing_key(&self) -> anyhow::Result<SigningKey> {
        let pem = std::fs::read_to_string(&self.signing_key)?;
        SigningKey::from_pkcs8_pem(&pem).context("parsing the signing key keygen wrote")
    }

    /// This gateway's batch topic.
    pub fn batch_topic(&self) -> anyhow::Result<Topic> {
        Ok(Topic::batch(
            &TenantId::new(self.tenant.as_str())?,
            &GatewayId::new(self.gateway.as_str())?,
        ))
    }

    /// A TLS client configuration with this gateway's certificate.
    pub fn tls(&self) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
        crate::gate_client::tls_config(&self.ca, Some((&self.certificate, &self.tls_key)))
    }

    /// An agent (not started) for this gateway, connecting to the gate on `gate_port`; the
    /// spec's tenant and gateway are replaced by this enrollment's.
    pub fn agent(&self, mut spec: AgentSpec, gate_port: u16) -> anyhow::Result<AgentProcess> {
        spec.tenant.clone_from(&self.tenant);
        spec.gateway.clone_from(&self.gateway);
        let paths = AgentPaths {
            dir: self.dir.clone(),
            config: self.dir.join("agent.toml"),
            signing_key: self.signing_key.clone(),
            spool: self.dir.join("spool"),
            log: self.dir.join("agent.log"),
            ca: self.ca.clone(),
            certificate: self.certificate.clone(),
            private_key: self.tls_key.clone(),
        };
        AgentProcess::new(spec, paths, gate_port)
    }
}

/// One platform: its directory, configuration, ports and, while running, its process.
#[derive(Debug)]
pub struct Platform {
    /// Its directory (configuration, log, gateways' files).
    pub dir: PathBuf,
    /// The data directory.
    pub data_dir: PathBuf,
    /// `beffroi.toml`.
    pub config: PathBuf,
    /// Standard output and error of every run, appended.
    pub log: PathBuf,
    /// The gate's port on [`Platform::gate_ip`].
    pub gate_port: u16,
    /// The gate's address (`PlatformSpec::gate_ip`).
    pub gate_ip: std::net::IpAddr,
    /// The API's port on 127.0.0.1.
    pub api_port: u16,
    /// The enrollment endpoint's port on 127.0.0.1 (HTTPS).
    pub enroll_port: u16,
    /// The embedded broker's MQTT 5 listener on 127.0.0.1 (what the gate and the ingest use;
    /// gateways never reach it), `None` with an external broker.
    pub broker_v5_port: Option<u16>,
    log_filter: Option<String>,
    child: Option<Child>,
    runs: u32,
    name: String,
}

impl Platform {
    /// Writes the configuration into `dir` (created) with free ports; not started.
    pub fn configure(dir: &Path, spec: &PlatformSpec) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let data_dir = dir.join("data");
        let (gate_port, api_port, enroll_port) = (
            unique_free_port()?,
            unique_free_port()?,
            unique_free_port()?,
        );
        let mut text = format!(
            "# Written by the beffroi-tests harness.\ndata_dir = {data:?}\n",
            data = data_dir.display().to_string()
        );
        if let Some(database) = &spec.database {
            text.push_str(&format!("database = {database:?}\n"));
        }
        let gate_ip = spec.gate_ip;
        let extra_name = if gate_ip.is_loopback() {
            String::new()
        } else {
            format!(", \"{gate_ip}\"")
        };
        text.push_str(&format!(
            "[gate]\nlisten = \"{}\"\nnames = [\"localhost\", \"127.0.0.1\"{extra_name}]\n\
             handshake_timeout_ms = {}\n",
            SocketAddr::new(gate_ip, gate_port),
            spec.handshake_timeout_ms
        ));
        let broker_v5_port = match spec.broker {
            BrokerSpec::Embedded => {
                let v5 = unique_free_port()?;
                text.push_str(&format!(
                    "[broker]\nlisten_v4 = \"127.0.0.1:{}\"\nlisten_v5 = \"127.0.0.1:{v5}\"\n",
                    unique_free_port()?,
                ));
                Some(v5)
            }
            BrokerSpec::External(addr) => {
                text.push_str(&format!("[broker]\nexternal_v5 = \"{addr}\"\n"));
                None
            }
        };
        text.push_str("[pki]\n");
        if let Some(lifetime) = spec.certificate_lifetime_s {
            text.push_str(&format!("certificate_lifetime_s = {lifetime}\n"));
        }
        if let Some(pki) = &spec.pki_dir {
            text.push_str(&format!("dir = {:?}\n", pki.display().to_string()));
        }
        text.push_str(&format!("[api]\nlisten = \"127.0.0.1:{api_port}\"\n"));
        text.push_str(&format!("[enroll]\nlisten = \"127.0.0.1:{enroll_port}\"\n"));
        let config = dir.join("beffroi.toml");
        std::fs::write(&config, text)?;
        Ok(Self {
            name: dir.file_name().map_or_else(
                || "platform".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            ),
            dir: dir.to_owned(),
            data_dir,
            config,
            log: dir.join("platform.log"),
            gate_port,
            gate_ip,
            api_port,
            enroll_port,
            broker_v5_port,
            log_filter: spec.log_filter.clone(),
            child: None,
            runs: 0,
        })
    }

    /// The API address.
    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.api_port))
    }

    /// The gate address.
    pub fn gate_addr(&self) -> SocketAddr {
        SocketAddr::new(self.gate_ip, self.gate_port)
    }

    /// Anonymous API calls.
    pub fn api(&self) -> Api {
        Api::new(self.api_addr())
    }

    /// API calls with a token.
    pub fn api_as(&self, token: &str) -> Api {
        self.api().with_token(token)
    }

    /// Starts `beffroi serve` (without waiting for it).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.is_running(), "the platform is already running");
        self.runs += 1;
        let mut log = File::options().create(true).append(true).open(&self.log)?;
        writeln!(log, "==== run {} ====", self.runs)?;
        let mut command = Command::new(platform_binary()?);
        if let Some(filter) = &self.log_filter {
            command.env("RUST_LOG", filter);
        }
        let child = command
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting beffroi serve")?;
        self.child = Some(child);
        Ok(())
    }

    /// Starts `beffroi serve` and waits until `/readyz` answers 200; returns how long that
    /// took.
    pub async fn start(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.spawn()?;
        self.wait_ready(START_TIMEOUT).await?;
        Ok(started.elapsed())
    }

    /// Waits until `/readyz` answers 200, failing early if the process exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let api = self.api();
        let log = self.log.clone();
        let child = self.child.as_mut().context("the platform is not running")?;
        poll_until(
            "the platform to answer /readyz",
            timeout,
            || {
                let exited = child.try_wait();
                let api = api.clone();
                let log = log.clone();
                async move {
                    if let Some(status) = exited? {
                        anyhow::bail!("the platform exited with {status}: {}", tail(&log, 4000));
                    }
                    Ok(api.is_ready().await.then_some(()))
                }
            },
            || tail(&self.log, 4000),
        )
        .await
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// `kill -9`, and reaps the process.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("kill -9 the platform")?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then waits at most `timeout` for the exit; returns the status and how long it
    /// took.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<(ExitStatus, Duration)> {
        let started = Instant::now();
        sigterm(self.pid().context("the platform is not running")?)?;
        let log = self.log.clone();
        let child = self.child.as_mut().context("the platform is not running")?;
        let status = poll_until(
            "the platform to exit after SIGTERM",
            timeout,
            || {
                let status = child.try_wait();
                async move { Ok(status?) }
            },
            || tail(&log, 4000),
        )
        .await?;
        self.child = None;
        Ok((status, started.elapsed()))
    }

    /// Everything the platform wrote so far (all runs).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// For failure messages: row counts of `tables` read straight from the SQLite file with
    /// the `sqlite3` command (if installed), to tell "not written" from "not shown by the API".
    pub fn sqlite_counts(&self, tables: &[&str]) -> String {
        let db = self.data_dir.join("beffroi.db");
        if !db.exists() {
            return "(no SQLite database)".to_owned();
        }
        let sql: Vec<String> = tables
            .iter()
            .map(|t| format!("SELECT '{t}', count(*) FROM {t};"))
            .collect();
        match Command::new("sqlite3").arg(&db).arg(sql.join(" ")).output() {
            Ok(out) => format!(
                "sqlite3 counts: {}{}",
                String::from_utf8_lossy(&out.stdout).replace('\n', " "),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(error) => format!("(sqlite3 not available: {error})"),
        }
    }

    /// Runs `beffroi --config <file> <args…>`, which must succeed; returns its standard output.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all: Vec<OsString> = vec!["--config".into(), self.config.clone().into()];
        all.extend(args.iter().map(OsString::from));
        let output = run_platform(all).await?;
        anyhow::ensure!(
            output.status.success(),
            "beffroi {args:?} failed with {}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `beffroi tenant create`.
    pub async fn create_tenant(&self, id: &str) -> anyhow::Result<()> {
        let name = format!("Tenant {id}");
        self.cli(&["tenant", "create", "--id", id, "--name", &name])
            .await
            .map(|_| ())
    }

    /// `beffroi token create`; returns the secret.
    pub async fn create_token(&self, tenant: &str, role: &str) -> anyhow::Result<String> {
        let out = self
            .cli(&[
                "token", "create", "--tenant", tenant, "--role", role, "--name", "e2e",
            ])
            .await?;
        let secret = out.trim().to_owned();
        anyhow::ensure!(
            !secret.is_empty() && !secret.contains('\n'),
            "token create printed {out:?}"
        );
        Ok(secret)
    }

    /// `beffroi gateway revoke`.
    pub async fn revoke(&self, tenant: &str, gateway: &str) -> anyhow::Result<()> {
        self.cli(&["gateway", "revoke", "--tenant", tenant, "--id", gateway])
            .await
            .map(|_| ())
    }

    /// Enrolls a gateway as an integrator and an operator would: `beffroi-agent keygen` for
    /// the signing key and for the TLS key, then `beffroi gateway register` with both public
    /// keys, writing the certificate and `platform-ca.pem` into `<dir>/gateways/<tenant>-<id>/`.
    pub async fn enroll(&self, tenant: &str, gateway: &str) -> anyhow::Result<Enrollment> {
        let dir = self
            .dir
            .join("gateways")
            .join(format!("{tenant}-{gateway}"));
        std::fs::create_dir_all(&dir)?;
        let signing_key = dir.join("signing.key");
        let tls_key = dir.join("tls.key");
        keygen(&signing_key).await?;
        keygen(&tls_key).await?;
        let certificate = dir.join("gateway.crt");
        let path = |p: &Path| p.display().to_string();
        let out = self
            .cli(&[
                "gateway",
                "register",
                "--tenant",
                tenant,
                "--id",
                gateway,
                "--signing-key",
                &path(&dir.join("signing.key.pub")),
                "--tls-key",
                &path(&dir.join("tls.key.pub")),
                "--cert-out",
                &path(&certificate),
            ])
            .await?;
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(" = "))
                .map(str::to_owned)
                .with_context(|| format!("gateway register printed no {name}: {out}"))
        };
        let ca = dir.join("platform-ca.pem");
        anyhow::ensure!(
            ca.exists(),
            "gateway register did not write {}",
            ca.display()
        );
        Ok(Enrollment {
            tenant: tenant.to_owned(),
            gateway: gateway.to_owned(),
            key_id: field("key_id")?,
            fingerprint: field("certificate_fingerprint")?,
            signing_key,
            tls_key,
            certificate,
            ca,
            dir,
        })
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- beffroi platform {} log ({}) ----\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 16 * 1024)
            );
        }
    }
}

/// A fresh PostgreSQL database for one scenario, created with `psql` from
/// `TEST_DATABASE_URL` and dropped (with its connections) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    admin_url: String,
    name: String,
}

/// `TEST_DATABASE_URL`, or why a PostgreSQL scenario cannot run: it fails when `CI` is set,
/// and is skipped with a printed notice otherwise (`Ok(None)`).
pub fn test_database_url(scenario: &str) -> anyhow::Result<Option<String>> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Ok(Some(url)),
        _ if std::env::var_os("CI").is_some() => anyhow::bail!(
            "{scenario}: TEST_DATABASE_URL is not set, and CI is: PostgreSQL scenarios must run in CI \
             (e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test)"
        ),
        _ => {
            eprintln!(
                "NOTICE: {scenario} skipped its PostgreSQL part: set TEST_DATABASE_URL \
                 (e.g. postgres://postgres@127.0.0.1:5432/test) to run it"
            );
            Ok(None)
        }
    }
}

/// Runs one SQL statement with `psql` on the database of `url`; fails on any SQL error.
pub async fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let (url, statement) = (url.to_owned(), sql.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("psql")
            .arg(&url)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", &statement])
            .stdin(Stdio::null())
            .output()
    })
    .await?
    .context("running psql (install postgresql-client)")?;
    anyhow::ensure!(
        output.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The database several nodes of `scenario` share: a fresh PostgreSQL database when
/// `TEST_DATABASE_URL` is set (keep the returned handle: it drops the database), else the
/// SQLite file `sqlite_file` (outside CI only, see [`test_database_url`]).
pub async fn shared_database(
    scenario: &str,
    sqlite_file: &Path,
) -> anyhow::Result<(String, Option<TestDatabase>)> {
    match test_database_url(scenario)? {
        Some(url) => {
            let database = TestDatabase::create(&url).await?;
            Ok((database.url.clone(), Some(database)))
        }
        None => Ok((format!("sqlite://{}?mode=rwc", sqlite_file.display()), None)),
    }
}

impl TestDatabase {
    /// Creates `beffroi_t_<random>` on the server of `base_url`.
    pub async fn create(base_url: &str) -> anyhow::Result<Self> {
        let (prefix, rest) = base_url
            .split_once("://")
            .context("TEST_DATABASE_URL is not a URL")?;
        let (authority, query) = match rest.split_once('/') {
            Some((authority, path)) => (authority, path.split_once('?').map(|(_, q)| q)),
            None => (rest, None),
        };
        let name = format!("beffroi_t_{}", unique_suffix());
        let with_db = |db: &str| {
            let mut url = format!("{prefix}://{authority}/{db}");
            if let Some(query) = query {
                url.push('?');
                url.push_str(query);
            }
            url
        };
        psql(base_url, &format!("CREATE DATABASE {name}")).await?;
        Ok(Self {
            url: with_db(&name),
            admin_url: base_url.to_owned(),
            name,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.admin_url)
            .args([
                "-X",
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
