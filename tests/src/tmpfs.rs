//! A small tmpfs mounted on a test's directory, to run an agent's spool out of space.
//!
//! [`Tmpfs::fill`] writes a filler file until the filesystem refuses a byte (`ENOSPC`);
//! called again it takes whatever was freed since. [`Tmpfs::free`] deletes the filler. The
//! filesystem is unmounted on drop (lazily if a process still holds it), whatever happened.
//! Needs root (or `CAP_SYS_ADMIN`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;

/// The filler's name in the mounted directory.
const FILLER: &str = "chaos-filler";

/// One mounted tmpfs.
#[derive(Debug)]
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_bytes` on `dir` (created).
    pub fn mount(dir: &Path, size_bytes: u64) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_bytes},mode=0700")])
            .arg("tmpfs")
            .arg(dir)
            .stdin(Stdio::null())
            .output()
            .context("running mount")?;
        anyhow::ensure!(
            output.status.success(),
            "mount -t tmpfs on {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// Appends to the filler until the filesystem is full; returns the bytes written.
    pub fn fill(&self) -> anyhow::Result<u64> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(FILLER))?;
        let chunk = [0u8; 4096];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => return Ok(written),
                Ok(n) => written += n as u64,
                Err(error) if error.kind() == std::io::ErrorKind::StorageFull => {
                    return Ok(written)
                }
                Err(error) => return Err(error).context("filling the tmpfs"),
            }
        }
    }

    /// Deletes the filler: the space is free again.
    pub fn free(&self) -> anyhow::Result<()> {
        std::fs::remove_file(self.dir.join(FILLER)).context("deleting the filler")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}
