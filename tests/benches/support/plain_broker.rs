//! A plain Mosquitto on 127.0.0.1 without TLS and with anonymous access, for the baseline's
//! local sensor bus and its ThingsBoard stand-in (the harness's [`beffroi_tests::Broker`] is
//! mutual-TLS only). Killed on drop.

use std::fs::File;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use beffroi_tests::broker::free_port;
use beffroi_tests::process::tail;
use beffroi_tests::wait::poll_until;

/// How long the broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running anonymous Mosquitto.
#[derive(Debug)]
pub struct PlainBroker {
    port: u16,
    log: PathBuf,
    child: Child,
}

fn mosquitto_binary() -> PathBuf {
    let default = PathBuf::from("/usr/sbin/mosquitto");
    if default.exists() {
        default
    } else {
        PathBuf::from("mosquitto")
    }
}

impl PlainBroker {
    /// Writes `<dir>/<name>.conf` and starts the broker on a free port.
    pub async fn start(dir: &Path, name: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let config = dir.join(format!("{name}.conf"));
        std::fs::write(
            &config,
            format!(
                "# Written by the beffroi-tests benchmarks.\n\
                 persistence false\n\
                 allow_anonymous true\n\
                 user root\n\
                 log_dest stderr\n\
                 log_type error\nlog_type warning\nlog_type subscribe\n\
                 listener {port} 127.0.0.1\n"
            ),
        )?;
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log)?;
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting mosquitto (apt-get install mosquitto)")?;
        let broker = Self { port, log, child };
        poll_until(
            &format!("mosquitto {name} to accept connections on 127.0.0.1:{port}"),
            START_TIMEOUT,
            || {
                let up = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok();
                async move { Ok(up.then_some(())) }
            },
            || tail(&broker.log, 2000),
        )
        .await?;
        Ok(broker)
    }

    /// The listener's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits until client `client_id` has subscribed to `topic` (Mosquitto logs each
    /// subscription as `<time>: <client id> <qos> <topic>`).
    pub async fn wait_subscribed(
        &self,
        client_id: &str,
        topic: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let needle = format!(": {client_id} ");
        poll_until(
            &format!("{client_id} to subscribe to {topic}"),
            timeout,
            || {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let found = log
                    .lines()
                    .any(|line| line.contains(&needle) && line.ends_with(&format!(" {topic}")));
                async move { Ok(found.then_some(())) }
            },
            || tail(&self.log, 2000),
        )
        .await
    }
}

impl Drop for PlainBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
