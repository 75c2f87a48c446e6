//! Child-process helpers shared by the broker and agent handles.

use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

/// Sends SIGTERM to a process with the `kill` command (the workspace forbids `unsafe`).
pub fn sigterm(pid: u32) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .context("running kill -TERM")?;
    anyhow::ensure!(status.success(), "kill -TERM {pid} failed: {status}");
    Ok(())
}

/// The last `max` bytes of a file, for diagnostics.
pub fn tail(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(error) => format!("<cannot read {}: {error}>", path.display()),
    }
}
