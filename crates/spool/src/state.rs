//! The state file (`state.json`): seq reservation, acknowledgement progress, drop counters
//! and pending gaps, written atomically (tmp file, fsync, rename, fsync directory).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::gaps::MAX_PENDING_GAPS;
use crate::Gap;

/// Name of the state file in the spool directory.
pub const STATE_FILE: &str = "state.json";
/// Temporary name the state is written under before being renamed into place.
pub const STATE_TMP: &str = "state.json.tmp";
/// Version of the state file format.
pub const STATE_VERSION: u32 = 1;
/// A state file larger than this is rejected as corrupt (a valid one is a few KiB).
const MAX_STATE_BYTES: u64 = 1024 * 1024;

/// Contents of the state file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version, [`STATE_VERSION`].
    pub version: u32,
    /// First seq of the current reservation block.
    pub block_start: u64,
    /// Seqs below this may have been handed out; after a crash the next seq is this value.
    pub reserved_until: u64,
    /// Written only by a clean close: the exact next seq. `None` while running.
    pub clean_next_seq: Option<u64>,
    /// Every record with seq <= this is acknowledged (or dropped) and skipped at open.
    pub acked_through: u64,
    /// Cumulative count of batches dropped because the spool was full.
    pub dropped_batches: u64,
    /// Cumulative count of readings in those batches.
    pub dropped_readings: u64,
    /// Gaps not yet covered by a contiguous acknowledgement, oldest first.
    pub gaps: Vec<Gap>,
}

/// Outcome of reading the state file.
#[derive(Debug)]
pub enum Loaded {
    /// No state file: a fresh directory (or one whose state was removed).
    Missing,
    /// A state file that cannot be trusted, with the reason.
    Corrupt(Error),
    /// A valid state.
    Found(State),
}

/// Reads and checks the state file. Only IO failures other than "not found" are errors.
pub fn load(dir: &Path) -> Result<Loaded> {
    let path = dir.join(STATE_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(err) => return Err(Error::io("open state", &path)(err)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io("read state", &path))?;
    let corrupt = |reason: String| {
        Ok(Loaded::Corrupt(Error::CorruptState {
            path: path.clone(),
            reason,
        }))
    };
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return corrupt(format!("larger than {MAX_STATE_BYTES} bytes"));
    }
    let state: State = match serde_json::from_slice(&bytes) {
        Ok(state) => state,
        Err(err) => return corrupt(err.to_string()),
    };
    if state.version != STATE_VERSION {
        return corrupt(format!("unknown version {}", state.version));
    }
    if state.block_start > state.reserved_until {
        return corrupt("block_start is above reserved_until".to_owned());
    }
    if state.gaps.len() > MAX_PENDING_GAPS {
        return corrupt(format!("more than {MAX_PENDING_GAPS} gaps"));
    }
    if state.gaps.iter().any(|g| g.first_seq > g.last_seq) {
        return corrupt("a gap ends before it starts".to_owned());
    }
    Ok(Loaded::Found(state))
}

/// Writes the state durably: tmp file, fsync, rename over the old one, fsync the directory.
pub fn store(dir: &Path, state: &State) -> Result<()> {
    let tmp = dir.join(STATE_TMP);
    let path = dir.join(STATE_FILE);
    // Serializing plain integers and enums into a Vec cannot fail; map it anyway rather than
    // panic.
    let bytes = serde_json::to_vec_pretty(state).map_err(|err| Error::CorruptState {
        path: path.clone(),
        reason: err.to_string(),
    })?;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(Error::io("create state", &tmp))?;
    file.write_all(&bytes)
        .map_err(Error::io("write state", &tmp))?;
    file.sync_all().map_err(Error::io("fsync state", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(Error::io("rename state", &path))?;
    sync_dir(dir)
}

/// Fsyncs a directory so that file creations, renames and removals in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GapReason;

    fn sample() -> State {
        State {
            version: STATE_VERSION,
            block_start: 1025,
            reserved_until: 2049,
            clean_next_seq: None,
            acked_through: 1000,
            dropped_batches: 3,
            dropped_readings: 300,
            gaps: vec![Gap {
                first_seq: 5,
                last_seq: 9,
                batches: 3,
                readings: 300,
                reason: GapReason::SpoolFull,
            }],
        }
    }

    #[test]
    fn store_then_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(load(dir.path()), Ok(Loaded::Missing)));
        store(dir.path(), &sample()).expect("store");
        match load(dir.path()) {
            Ok(Loaded::Found(state)) => assert_eq!(state, sample()),
            other => panic!("unexpected {other:?}"),
        }
        assert!(!dir.path().join(STATE_TMP).exists());
    }

    #[test]
    fn garbage_and_inconsistent_states_are_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(STATE_FILE), b"{\"version\":1,").expect("write");
        assert!(matches!(load(dir.path()), Ok(Loaded::Corrupt(_))));
        let bad = State {
            block_start: 5000,
            ..sample()
        };
        store(dir.path(), &bad).expect("store");
        assert!(matches!(load(dir.path()), Ok(Loaded::Corrupt(_))));
    }
}
