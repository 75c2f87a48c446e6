//! A Mosquitto of the run's own (plain TCP on 127.0.0.1, anonymous, no persistence), started
//! from `--mosquitto` and killed at the end of the run: the external broker of `bench cluster`
//! (as on the nodes' private network), and the broker of `bench ingest`'s integrator baseline
//! (as an integrator runs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use super::cluster::log_tail;
use super::free_port;

/// Time allowed for the broker to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running Mosquitto.
pub(crate) struct Mosquitto {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Mosquitto {
    /// Writes its configuration into `dir` and starts `binary` on a free port. `max_queued`:
    /// QoS 1 messages queued per client before Mosquitto drops them (`None`: its default,
    /// 1000).
    pub(crate) async fn start(
        binary: &Path,
        dir: &Path,
        max_queued: Option<u32>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let port = free_port()?;
        let config = dir.join("mosquitto.conf");
        let queue = max_queued.map_or_else(String::new, |n| format!("max_queued_messages {n}\n"));
        std::fs::write(
            &config,
            format!(
                "# Written by beffroi bench.\n\
                 persistence false\n\
                 user root\n\
                 log_dest stderr\n\
                 log_type error\nlog_type warning\n\
                 {queue}\
                 listener {port} 127.0.0.1\n\
                 allow_anonymous true\n"
            ),
        )?;
        let log = dir.join("mosquitto.log");
        let file = std::fs::File::create(&log)?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (install it: apt-get install mosquitto)",
                    binary.display()
                )
            })?;
        let mut broker = Self { child, port, log };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = broker.child.try_wait()? {
                anyhow::bail!("mosquitto exited ({status}): {}", broker.log_tail());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "mosquitto does not accept connections: {}",
                    broker.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(broker)
    }

    /// Its port on 127.0.0.1.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Its `host:port`, as `[broker] external_v5` takes it.
    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its process id (for its CPU time).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
