//! A PostgreSQL cluster of one test's own, so that the test may crash and restart the database
//! under a running platform without touching the machine's server (other tests use it).
//!
//! [`PrivatePostgres::start`] runs `initdb` into a directory of the test and `pg_ctl start` on
//! a free loopback port (its socket in that directory too); [`PrivatePostgres::crash`] is
//! `pg_ctl stop -m immediate` (no checkpoint, recovery at the next start) and
//! [`PrivatePostgres::restart`] starts it again on the same port. As root the server runs as
//! the `postgres` user, which PostgreSQL requires, in a directory that user owns. The binaries
//! come from the newest `/usr/lib/postgresql/<version>/bin`. Dropped: stopped immediately.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;

use crate::platform::unique_free_port;

/// One private cluster: its directory, port and binaries.
#[derive(Debug)]
pub struct PrivatePostgres {
    data: PathBuf,
    log: PathBuf,
    socket_dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    running: bool,
}

/// The newest installed server's binary directory.
fn server_bin() -> anyhow::Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .with_context(|| format!("no PostgreSQL server under {}", root.display()))?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .context("no initdb under /usr/lib/postgresql/*/bin (install postgresql)")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

impl PrivatePostgres {
    /// Creates the cluster in `dir` (created) and starts it.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let as_postgres = running_as_root();
        if as_postgres {
            // The test's directories are private to root: let `postgres` reach this one.
            let temp = std::env::temp_dir();
            let mut ancestor = dir.parent();
            while let Some(parent) = ancestor.filter(|p| p.starts_with(&temp) && *p != temp) {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(parent)?.permissions().mode();
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode | 0o111))?;
                ancestor = parent.parent();
            }
            run(Command::new("chown").arg("postgres:").arg(dir))?;
        }
        let mut postgres = Self {
            data: dir.join("data"),
            log: dir.join("postgres.log"),
            socket_dir: dir.to_owned(),
            bin: server_bin()?,
            port: unique_free_port()?,
            as_postgres,
            running: false,
        };
        let mut initdb = postgres.command("initdb");
        initdb.arg("-D").arg(&postgres.data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        blocking(initdb).await?;
        postgres.restart().await?;
        Ok(postgres)
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "30", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1",
                self.port,
                self.socket_dir.display()
            ))
            .arg("start");
        blocking(start)
            .await
            .with_context(|| crate::process::tail(&self.log, 3000))?;
        self.running = true;
        Ok(())
    }

    /// `pg_ctl stop -m immediate`: every server process exits at once, as in a crash.
    pub async fn crash(&mut self) -> anyhow::Result<()> {
        self.running = false;
        blocking(self.stop_command()).await
    }

    fn stop_command(&self) -> Command {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        stop
    }

    /// A server binary, run as `postgres` when this process is root.
    fn command(&self, binary: &str) -> Command {
        let path = self.bin.join(binary);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        command.stdin(Stdio::null());
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .stop_command()
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `command` to success, or fails with what it printed.
fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed with {}: {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// [`run`] off the async threads.
async fn blocking(mut command: Command) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || run(&mut command)).await?
}
