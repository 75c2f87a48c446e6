//! The sandbox builder: one private directory with a PKI, a Mosquitto broker, the consumer
//! and the agents of one scenario.

use std::path::{Path, PathBuf};

use crate::agent::{keygen, AgentPaths, AgentProcess, AgentSpec};
use crate::broker::Broker;
use crate::consumer::Consumer;
use crate::pki::Pki;

/// Everything one scenario runs against. Fields drop in order: consumer, broker, then the
/// directory (kept and printed when the test fails).
pub struct Sandbox {
    /// The platform stand-in.
    pub consumer: Consumer,
    /// The broker.
    pub broker: Broker,
    /// Certificates.
    pub pki: Pki,
    dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("dir", &self.dir())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Creates the directory and PKI, starts the broker and connects the consumer.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("beffroi-e2e-").tempdir()?;
        let pki = Pki::create(&dir.path().join("pki"))?;
        let broker = Broker::start(&dir.path().join("broker"), &pki).await?;
        let consumer = Consumer::start(&pki, broker.port()).await?;
        Ok(Self {
            consumer,
            broker,
            pki,
            dir: Some(dir),
        })
    }

    /// The sandbox directory.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }

    /// A path inside the sandbox.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Prepares an agent (not started): its directory, a client certificate, a signing key
    /// made by `beffroi-agent keygen` whose public half the consumer registers, and its
    /// configuration.
    pub async fn agent(&self, spec: AgentSpec) -> anyhow::Result<AgentProcess> {
        let dir = self
            .dir()
            .join(format!("agent-{}-{}", spec.tenant, spec.gateway));
        std::fs::create_dir_all(&dir)?;
        let identity = if spec.rogue_certificate {
            self.pki.rogue_gateway(&dir, &spec.tenant, &spec.gateway)?
        } else {
            self.pki.gateway(&dir, &spec.tenant, &spec.gateway)?
        };
        let signing_key = dir.join("signing.key");
        let public = keygen(&signing_key).await?;
        self.consumer
            .register_key(&spec.tenant, &spec.gateway, public)?;
        let paths = AgentPaths {
            config: dir.join("agent.toml"),
            spool: dir.join("spool"),
            log: dir.join("agent.log"),
            ca: self.pki.ca.cert.clone(),
            certificate: identity.cert,
            private_key: identity.key,
            signing_key,
            dir,
        };
        AgentProcess::new(spec, paths, self.broker.port())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                eprintln!("---- sandbox kept at {} ----", dir.keep().display());
            }
        }
    }
}
