//! The running agent's status file and `beffroi-agent status`.
//!
//! The agent writes `status.json` in its state directory — the directory holding the spool
//! directory, `/var/lib/beffroi-agent` for a packaged agent — every [`WRITE_INTERVAL`], at
//! once when the connection state changes, and a last time when it stops. Each write replaces
//! the file atomically (temporary file + rename), mode 0600:
//!
//! ```text
//! { "format": 1, "agent_version": "0.1.0", "pid": 4242, "tenant": "lyon",
//!   "gateway": "gw-part-dieu-01", "started_at": "…Z", "updated_at": "…Z", "stopped_at": null,
//!   "connection": { "state": "connected", "since": "…Z" },
//!   "last_ack": { "at": "…Z", "contiguous": 1377, "highest_seq": 1377 },
//!   "spool": { "batches": 2, "readings": 180, "bytes": 24576, "oldest_unacked_at": "…Z" },
//!   "certificate_not_after": "…Z" }
//! ```
//! `connection.state` is `connecting`, `connected` or `disconnected` (with `last_error`).
//!
//! Liveness rule ([`judge`]): the agent is running when the file names a live process of this
//! program and was written less than [`STALE_AFTER`] ago. A clean stop records `stopped_at`;
//! a killed agent leaves a file whose `pid` is gone; a hung one stops updating it.

mod board;
mod liveness;
pub mod report;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use beffroi_protocol::Timestamp;
use serde::{Deserialize, Serialize};

pub use board::{Connection, ConnectionState, LastAck, StatusBoard};
pub use liveness::{is_this_program, parse_stat};
pub use writer::StatusWriter;

use crate::config::Config;

/// Version of the status file format.
pub const FORMAT: u32 = 1;
/// How often the running agent rewrites its status file.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(5);
/// A status file older than this belongs to an agent that stopped working (four missed
/// writes: a busy gateway may delay one or two).
pub const STALE_AFTER: Duration = Duration::from_secs(20);
/// A status file larger than this is not one the agent wrote.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The spool's depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolDepth {
    /// Batches not yet acknowledged.
    pub batches: u64,
    /// Readings in them.
    pub readings: u64,
    /// Bytes of the segment files.
    pub bytes: u64,
    /// When the oldest of them was spooled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_unacked_at: Option<Timestamp>,
}

impl SpoolDepth {
    /// The depth for a spool's append time of its oldest record, in unix milliseconds.
    pub fn new(batches: u64, readings: u64, bytes: u64, oldest_ms: Option<u64>) -> Self {
        Self {
            batches,
            readings,
            bytes,
            oldest_unacked_at: oldest_ms
                .map(|ms| Timestamp::from_unix_millis(i64::try_from(ms).unwrap_or(i64::MAX))),
        }
    }
}

/// Contents of `status.json` (unknown fields are ignored, so an older `status` reads a
/// newer agent's file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFile {
    /// [`FORMAT`].
    pub format: u32,
    /// The agent's version.
    pub agent_version: String,
    /// The agent's process id.
    pub pid: u32,
    /// The gateway's tenant.
    pub tenant: String,
    /// The gateway.
    pub gateway: String,
    /// When the agent started.
    pub started_at: Timestamp,
    /// When this file was written.
    pub updated_at: Timestamp,
    /// When the agent stopped cleanly (its last write).
    #[serde(default)]
    pub stopped_at: Option<Timestamp>,
    /// The connection to the platform.
    pub connection: Connection,
    /// The last commit ack.
    #[serde(default)]
    pub last_ack: Option<LastAck>,
    /// The spool's depth.
    pub spool: SpoolDepth,
    /// End of validity of the TLS client certificate (absent when it cannot be read).
    #[serde(default)]
    pub certificate_not_after: Option<Timestamp>,
}

/// Where the agent configured by `config` writes its status: `status.json` in the directory
/// that holds the spool directory (the state directory).
pub fn file_path(config: &Config) -> PathBuf {
    let spool = &config.spool.dir;
    match spool.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("status.json"),
        _ => spool.join("status.json"),
    }
}

/// Why the status file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// There is no status file: the agent has not run with this configuration.
    #[error("{0}: no status file")]
    Missing(PathBuf),
    /// The file could not be read (permissions: it is 0600, owned by the agent's user).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a status file.
    #[error("{path}: not a status file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Reads and parses a status file.
pub fn read(path: &Path) -> Result<StatusFile, ReadError> {
    use std::io::Read as _;
    let io = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => ReadError::Missing(path.to_owned()),
        _ => ReadError::Io {
            path: path.to_owned(),
            source,
        },
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let corrupt = |reason: String| ReadError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(corrupt(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let file: StatusFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if file.format != FORMAT {
        return Err(corrupt(format!(
            "format {} (expected {FORMAT})",
            file.format
        )));
    }
    Ok(file)
}

/// Whether an agent is running, by the liveness rule of the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Running and writing its status.
    Running,
    /// Stopped cleanly at that time.
    Stopped(Timestamp),
    /// Its process is gone without a clean stop (killed, crashed, power loss).
    Gone,
    /// Its process exists but has not written its status for this long (hung).
    Stale(Duration),
}

impl Verdict {
    /// Whether the agent is running.
    pub fn is_running(&self) -> bool {
        matches!(self, Verdict::Running)
    }
}

/// Applies the liveness rule to `file` at `now`; `alive` says whether `file.pid` is a live
/// process of this program.
pub fn judge(file: &StatusFile, now: Timestamp, alive: bool) -> Verdict {
    if let Some(at) = file.stopped_at {
        return Verdict::Stopped(at);
    }
    if !alive {
        return Verdict::Gone;
    }
    let age_us = u64::try_from(now.micros_since(file.updated_at)).unwrap_or(0);
    let age = Duration::from_micros(age_us);
    if age > STALE_AFTER {
        Verdict::Stale(age)
    } else {
        Verdict::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(now: Timestamp) -> StatusFile {
        StatusFile {
            format: FORMAT,
            agent_version: "0.1.0".into(),
            pid: 4242,
            tenant: "acme".into(),
            gateway: "gw-1".into(),
            started_at: now,
            updated_at: now,
            stopped_at: None,
            connection: Connection {
                state: ConnectionState::Disconnected,
                since: now,
                last_error: Some("connection refused".into()),
            },
            last_ack: Some(LastAck {
                at: now,
                contiguous: 41,
                highest_seq: 42,
            }),
            spool: SpoolDepth::new(2, 180, 24_576, Some(1_700_000_000_000)),
            certificate_not_after: Some(now),
        }
    }

    fn seconds(s: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_780_000_000_000_000 + s * 1_000_000)
    }

    #[test]
    fn the_file_round_trips_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let file = sample(Timestamp::now());
        crate::enroll::files::write_atomic(
            &path,
            &serde_json::to_vec(&file).unwrap(),
            crate::enroll::files::PRIVATE,
        )
        .unwrap();
        assert_eq!(read(&path).unwrap(), file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""state":"disconnected""#), "{text}");
    }

    #[test]
    fn missing_corrupt_or_foreign_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        assert!(matches!(read(&path), Err(ReadError::Missing(_))));
        for bad in [&b""[..], b"{", b"[1,2]", b"\xff\xfe", br#"{"format":1}"#] {
            std::fs::write(&path, bad).unwrap();
            assert!(
                matches!(read(&path), Err(ReadError::Corrupt { .. })),
                "{bad:?}"
            );
        }
        let mut future = serde_json::to_value(sample(Timestamp::now())).unwrap();
        future["format"] = 2.into();
        future["added_later"] = true.into();
        std::fs::write(&path, future.to_string()).unwrap();
        let error = read(&path).unwrap_err().to_string();
        assert!(error.contains("format 2"), "{error}");
        std::fs::write(&path, vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(read(&path), Err(ReadError::Corrupt { .. })));
    }

    #[test]
    fn staleness_rule() {
        let mut file = sample(seconds(0));
        assert_eq!(judge(&file, seconds(0), true), Verdict::Running);
        assert_eq!(judge(&file, seconds(20), true), Verdict::Running);
        assert_eq!(
            judge(&file, seconds(21), true),
            Verdict::Stale(Duration::from_secs(21))
        );
        // A clock that went back does not make the file stale.
        assert_eq!(judge(&file, seconds(-60), true), Verdict::Running);
        assert_eq!(judge(&file, seconds(1), false), Verdict::Gone);
        file.stopped_at = Some(seconds(3));
        assert_eq!(
            judge(&file, seconds(4), false),
            Verdict::Stopped(seconds(3))
        );
        assert!(!judge(&file, seconds(4), true).is_running());
    }

    #[test]
    fn the_status_file_sits_next_to_the_spool_directory() {
        let toml = r#"
            [identity]
            tenant = "acme"
            gateway = "gw-1"
            signing_key = "/var/lib/beffroi-agent/signing.key"
            [uplink]
            host = "platform.example"
            ca = "ca.crt"
            certificate = "tls.crt"
            private_key = "tls.key"
            [spool]
            dir = "/var/lib/beffroi-agent/spool"
        "#;
        let config = crate::Config::from_toml(toml, Path::new("/etc/beffroi-agent")).unwrap();
        assert_eq!(
            file_path(&config),
            Path::new("/var/lib/beffroi-agent/status.json")
        );
    }
}
