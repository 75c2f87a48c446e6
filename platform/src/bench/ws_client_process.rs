//! The parent's handle on the live-view client process (`beffroi bench live-clients`, see
//! `super::ws_clients`): the same binary, started with the spec on its stdin, told when the
//! measure window opens and closes, sampled in it, and read for its report. Killed if dropped
//! early.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::ws_clients::{ChildLine, ClientsReport, ClientsSample, ClientsSpec, Ready};

/// Longest the report may take once the window closed.
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a sample may take.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running client process, its clients connected.
pub(crate) struct ClientProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    window_closed: bool,
    /// How connecting went.
    pub ready: Ready,
}

impl ClientProcess {
    /// Starts the process and waits until every client is connected and subscribed (or
    /// failed). The token travels on stdin, not in the process's arguments.
    pub(crate) async fn spawn(spec: &ClientsSpec, threads: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the running binary")?;
        let mut child = tokio::process::Command::new(exe)
            .args(["bench", "live-clients", "--threads", &threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the live-view client process")?;
        let mut stdin = child.stdin.take().context("client process stdin")?;
        let stdout = child.stdout.take().context("client process stdout")?;
        let mut stdout = BufReader::new(stdout).lines();
        let mut line = serde_json::to_string(spec)?;
        line.push('\n');
        stdin.write_all(line.as_bytes()).await?;
        stdin.flush().await?;
        let clients: usize = spec.groups.iter().map(|g| g.clients).sum();
        let wait = Duration::from_secs(120)
            + Duration::from_millis(100) * u32::try_from(clients).unwrap_or(u32::MAX);
        let ready = match tokio::time::timeout(wait, next_line(&mut stdout)).await {
            Ok(Ok(ChildLine::Ready(ready))) => ready,
            Ok(Ok(_)) => anyhow::bail!("client process: another line before ready"),
            Ok(Err(error)) => return Err(error.context("client process")),
            Err(_) => anyhow::bail!("client process: clients not connected within {wait:?}"),
        };
        Ok(Self {
            child,
            stdin,
            stdout,
            window_closed: false,
            ready,
        })
    }

    /// Opens the measure window.
    pub(crate) async fn start(&mut self) -> anyhow::Result<()> {
        self.stdin.write_all(b"start\n").await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// The window so far: frames and values received, clients closed early, the process's
    /// memory. Only while the window is open.
    pub(crate) async fn sample(&mut self) -> anyhow::Result<ClientsSample> {
        anyhow::ensure!(
            !self.window_closed,
            "client process: sample after the window"
        );
        self.stdin.write_all(b"sample\n").await?;
        self.stdin.flush().await?;
        match tokio::time::timeout(SAMPLE_TIMEOUT, next_line(&mut self.stdout)).await {
            Ok(Ok(ChildLine::Sample(sample))) => Ok(sample),
            Ok(Ok(_)) => anyhow::bail!("client process: another line instead of a sample"),
            Ok(Err(error)) => Err(error.context("client process")),
            Err(_) => anyhow::bail!("client process: no sample within {SAMPLE_TIMEOUT:?}"),
        }
    }

    /// Closes the measure window (the clients then close their connections).
    pub(crate) async fn close_window(&mut self) -> anyhow::Result<()> {
        if !self.window_closed {
            self.window_closed = true;
            self.stdin.write_all(b"stop\n").await?;
            self.stdin.flush().await?;
        }
        Ok(())
    }

    /// Closes the window if [`ClientProcess::close_window`] did not; returns the clients'
    /// figures once the process has ended.
    pub(crate) async fn stop(mut self) -> anyhow::Result<ClientsReport> {
        self.close_window().await?;
        let report = match tokio::time::timeout(REPORT_TIMEOUT, next_line(&mut self.stdout)).await {
            Ok(Ok(ChildLine::Report(report))) => report,
            Ok(Ok(_)) => anyhow::bail!("client process: another line instead of the report"),
            Ok(Err(error)) => return Err(error.context("client process")),
            Err(_) => anyhow::bail!("client process: no report within {REPORT_TIMEOUT:?}"),
        };
        drop(self.stdin);
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => eprintln!("bench: the client process ended with {status}"),
            Ok(Err(error)) => eprintln!("bench: cannot wait for the client process: {error}"),
            Err(_) => {
                let _ = self.child.kill().await;
            }
        }
        Ok(report)
    }
}

/// The next protocol line (other output is skipped).
async fn next_line(stdout: &mut Lines<BufReader<ChildStdout>>) -> anyhow::Result<ChildLine> {
    loop {
        let line = stdout
            .next_line()
            .await?
            .context("the client process ended early")?;
        if let Ok(parsed) = serde_json::from_str::<ChildLine>(&line) {
            return Ok(parsed);
        }
    }
}
