//! Zero-touch enrollment as an integrator does it (issue #9, docs/gateway-identity.md): a
//! tenant admin creates the gateway with `beffroi gateway create`, which prints a one-time
//! token; `beffroi-agent enroll --url … --token …` on the gateway generates its keys, sends a
//! CSR over HTTPS pinned by the token, and writes its certificate, trust anchors and config.
//!
//! [`Platform::create_gateway`] and [`enroll`] run the two real binaries; [`Enrolled`] holds
//! the files the agent wrote and turns them into an [`AgentProcess`], with the harness's usual
//! settings, renewal included, or with the config `enroll` wrote.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::Context as _;

use crate::agent::{run_command, AgentPaths, AgentProcess, AgentSpec, SourceSpec};
use crate::platform::Platform;

/// What an enrollment wrote into the agent's state directory.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// Tenant id.
    pub tenant: String,
    /// Gateway id.
    pub gateway: String,
    /// The agent's directory (config, log, state).
    pub dir: PathBuf,
    /// The state directory `--state-dir` named.
    pub state: PathBuf,
    /// The config `enroll --config` wrote.
    pub config: PathBuf,
    /// The enrollment endpoint's URL.
    pub url: String,
}

impl Enrolled {
    /// The signing key.
    pub fn signing_key(&self) -> PathBuf {
        self.state.join("signing.key")
    }

    /// The TLS client key.
    pub fn tls_key(&self) -> PathBuf {
        self.state.join("tls.key")
    }

    /// The client certificate chain.
    pub fn certificate(&self) -> PathBuf {
        self.state.join("tls.crt")
    }

    /// The trust anchors.
    pub fn ca(&self) -> PathBuf {
        self.state.join("ca.crt")
    }

    /// A TLS client configuration with the gateway's current certificate.
    pub fn tls(&self) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
        crate::gate_client::tls_config(&self.ca(), Some((&self.certificate(), &self.tls_key())))
    }

    /// An agent (not started) with the enrolled identity and the harness's settings (`spec`'s
    /// tenant and gateway are replaced), renewing its certificate at the enrollment endpoint.
    pub fn agent(&self, mut spec: AgentSpec, gate_port: u16) -> anyhow::Result<AgentProcess> {
        spec.tenant.clone_from(&self.tenant);
        spec.gateway.clone_from(&self.gateway);
        spec.enrollment_url = Some(self.url.clone());
        let paths = AgentPaths {
            dir: self.dir.clone(),
            config: self.dir.join("agent.toml"),
            signing_key: self.signing_key(),
            spool: self.dir.join("spool"),
            log: self.dir.join("agent.log"),
            ca: self.ca(),
            certificate: self.certificate(),
            private_key: self.tls_key(),
        };
        AgentProcess::new(spec, paths, gate_port)
    }

    /// The agent run with the very config `enroll` wrote, `source` appended to it as its
    /// `[[sources]]` table and nothing else changed (not started).
    pub fn written_agent(&self, source: SourceSpec) -> anyhow::Result<AgentProcess> {
        let mut text = std::fs::read_to_string(&self.config)?;
        text.push('\n');
        text.push_str(&source.toml()?);
        std::fs::write(&self.config, text)?;
        let mut spec = AgentSpec::new(&self.gateway, source);
        spec.tenant.clone_from(&self.tenant);
        spec.enrollment_url = Some(self.url.clone());
        let paths = AgentPaths {
            dir: self.dir.clone(),
            config: self.config.clone(),
            signing_key: self.signing_key(),
            spool: self.state.join("spool"),
            log: self.dir.join("agent.log"),
            ca: self.ca(),
            certificate: self.certificate(),
            private_key: self.tls_key(),
        };
        Ok(AgentProcess::with_config_file(spec, paths))
    }
}

impl Platform {
    /// The enrollment endpoint, as gateways reach it.
    pub fn enroll_url(&self) -> String {
        format!("https://localhost:{}", self.enroll_port)
    }

    /// `beffroi gateway create`: returns the one-time enrollment token it printed.
    pub async fn create_gateway(
        &self,
        tenant: &str,
        gateway: &str,
        ttl_s: Option<u64>,
    ) -> anyhow::Result<String> {
        let ttl = ttl_s.map(|s| s.to_string());
        let mut args = vec![
            "gateway",
            "create",
            "--tenant",
            tenant,
            "--gateway",
            gateway,
        ];
        if let Some(ttl) = &ttl {
            args.extend(["--ttl-s", ttl.as_str()]);
        }
        let out = self.cli(&args).await?;
        out.split_whitespace()
            .find(|word| word.starts_with("bfe1."))
            .map(str::to_owned)
            .with_context(|| format!("gateway create printed no token: {out}"))
    }

    /// Creates the gateway and enrolls it with the real agent into `<dir>/gateways/…`; fails
    /// unless the enrollment succeeds.
    pub async fn enroll_gateway(&self, tenant: &str, gateway: &str) -> anyhow::Result<Enrolled> {
        let token = self.create_gateway(tenant, gateway, None).await?;
        let dir = self
            .dir
            .join("gateways")
            .join(format!("{tenant}-{gateway}"));
        let (enrolled, output) = enroll(&self.enroll_url(), &token, &dir, &[]).await?;
        anyhow::ensure!(
            output.status.success(),
            "beffroi-agent enroll failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(Enrolled {
            tenant: tenant.to_owned(),
            gateway: gateway.to_owned(),
            ..enrolled
        })
    }
}

/// Runs `beffroi-agent enroll --url URL --token TOKEN --config <dir>/enrolled.toml
/// --state-dir <dir>/state` plus `extra` arguments, to completion; the tenant and gateway of
/// the returned [`Enrolled`] are empty (the caller knows them).
pub async fn enroll(
    url: &str,
    token: &str,
    dir: &Path,
    extra: &[&str],
) -> anyhow::Result<(Enrolled, Output)> {
    std::fs::create_dir_all(dir)?;
    let enrolled = Enrolled {
        tenant: String::new(),
        gateway: String::new(),
        dir: dir.to_owned(),
        state: dir.join("state"),
        config: dir.join("enrolled.toml"),
        url: url.to_owned(),
    };
    let mut args: Vec<OsString> = vec![
        "enroll".into(),
        "--url".into(),
        url.into(),
        "--token".into(),
        token.into(),
        "--config".into(),
        enrolled.config.clone().into(),
        "--state-dir".into(),
        enrolled.state.clone().into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    let output = run_command(args).await?;
    Ok((enrolled, output))
}

/// The token with its pin (the part after the last dot) replaced.
pub fn with_pin(token: &str, pin: &str) -> String {
    let cut = token.rfind('.').map_or(token.len(), |i| i + 1);
    format!("{}{pin}", &token[..cut])
}
