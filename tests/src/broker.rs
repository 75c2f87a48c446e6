//! A real Mosquitto broker with one mutual-TLS listener on 127.0.0.1, started for one test.
//!
//! Clients must present a certificate from the test's CA; its CN becomes the MQTT username
//! (`use_identity_as_username`), so there is no anonymous access. The broker can be stopped
//! and restarted on the same port to model a platform outage. It is killed on drop, and a
//! failing test prints its log.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::pki::Pki;
use crate::process::{sigterm, tail};
use crate::wait::poll_until;

/// How long the broker may take to accept connections or to exit.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or stopped) Mosquitto process.
#[derive(Debug)]
pub struct Broker {
    port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Finds the mosquitto binary: `/usr/sbin/mosquitto` or on `PATH`.
fn mosquitto_binary() -> anyhow::Result<PathBuf> {
    let default = PathBuf::from("/usr/sbin/mosquitto");
    if default.exists() {
        return Ok(default);
    }
    let output = Command::new("which").arg("mosquitto").output();
    match output {
        Ok(out) if out.status.success() => Ok(PathBuf::from(
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )),
        _ => anyhow::bail!("mosquitto not found: install it (apt-get install mosquitto)"),
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding port 0")?;
    Ok(listener.local_addr()?.port())
}

impl Broker {
    /// Writes the configuration into `dir` and starts the broker on a free port.
    pub async fn start(dir: &Path, pki: &Pki) -> anyhow::Result<Self> {
        let listener = format!(
            "allow_anonymous false\n\
             cafile {ca}\n\
             certfile {cert}\n\
             keyfile {key}\n\
             require_certificate true\n\
             use_identity_as_username true\n",
            ca = pki.ca.cert.display(),
            cert = pki.server.cert.display(),
            key = pki.server.key.display(),
        );
        Self::launch(dir, &listener).await
    }

    /// A broker of its own for one scenario's platform nodes (the external broker of a
    /// cluster, `[broker] external_v5`): plain MQTT on 127.0.0.1, as on a private network, so
    /// that scenarios running at once never share `$share` groups or relay topics.
    pub async fn start_private(dir: &Path) -> anyhow::Result<Self> {
        Self::launch(dir, "allow_anonymous true\n").await
    }

    async fn launch(dir: &Path, listener: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let config = dir.join("mosquitto.conf");
        let text = format!(
            "# Written by the beffroi-tests harness.\n\
             per_listener_settings false\n\
             persistence false\n\
             user root\n\
             log_dest stderr\n\
             log_type error\nlog_type warning\nlog_type notice\nlog_type information\n\
             connection_messages true\n\
             listener {port} 127.0.0.1\n\
             {listener}"
        );
        std::fs::write(&config, text)?;
        let mut broker = Self {
            port,
            config,
            log: dir.join("mosquitto.log"),
            child: None,
        };
        broker.restart().await?;
        Ok(broker)
    }

    /// The listener's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The listener's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        (Ipv4Addr::LOCALHOST, self.port).into()
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Starts the broker again on the same port (after [`Broker::stop`]), waiting until the
    /// port accepts connections.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.is_running(), "the broker is already running");
        let log = File::options().create(true).append(true).open(&self.log)?;
        let child = Command::new(mosquitto_binary()?)
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting mosquitto")?;
        self.child = Some(child);
        let port = self.port;
        let log = self.log.clone();
        let child = &mut self.child;
        poll_until(
            &format!("mosquitto to accept connections on 127.0.0.1:{port}"),
            START_TIMEOUT,
            || {
                let exited = match child.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(status))) => Some(status),
                    _ => None,
                };
                let log = log.clone();
                async move {
                    if let Some(status) = exited {
                        anyhow::bail!("mosquitto exited with {status}: {}", tail(&log, 4000));
                    }
                    Ok(TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                        .ok()
                        .map(|_| ()))
                }
            },
            || tail(&self.log, 2000),
        )
        .await
    }

    /// Stops the broker (SIGTERM) and waits for it to exit; the port is then closed.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        sigterm(child.id())?;
        let exited = poll_until(
            "mosquitto to exit after SIGTERM",
            START_TIMEOUT,
            || {
                let status = child.try_wait();
                async move { Ok(status?) }
            },
            || tail(&self.log, 2000),
        )
        .await;
        if exited.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        exited.map(|_| ())
    }

    /// `kill -9`, and reaps the process; [`Broker::restart`] starts it again on the port.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("kill -9 mosquitto")?;
            child.wait()?;
        }
        Ok(())
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        tail(&self.log, 16 * 1024)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- mosquitto log ({}) ----\n{}",
                self.log.display(),
                tail(&self.log, 8 * 1024)
            );
        }
    }
}
