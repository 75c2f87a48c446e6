//! Opening a spool directory: lock, state file, segment scan, torn-tail truncation, and the
//! choice of the next seq after a clean or unclean shutdown.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::config::SpoolConfig;
use crate::error::{Error, Result};
use crate::gaps;
use crate::lock;
use crate::segment::{self, Segment};
use crate::spool::Spool;
use crate::state::{self, Loaded, State, STATE_TMP};
use crate::{Gap, GapReason};

/// How the state file was found at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRecovery {
    /// No state file and no segment: a new spool.
    Fresh,
    /// Written by a clean [`Spool::close`].
    Clean,
    /// Left by a process that did not close the spool (crash, kill, power loss).
    Crash,
    /// No state file although segments exist; treated conservatively.
    Missing,
    /// The state file could not be trusted; treated conservatively.
    Corrupt {
        /// Why it was rejected.
        reason: String,
    },
}

/// What [`Spool::open`] found and repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// How the state file was found.
    pub state: StateRecovery,
    /// Unacknowledged records recovered.
    pub records: u64,
    /// Readings in those records.
    pub readings: u64,
    /// Segment files kept.
    pub segments: u64,
    /// Valid records skipped because they were at or below `acked_through`.
    pub skipped_acked: u64,
    /// Bytes cut off the torn tail of the last segment.
    pub bytes_truncated: u64,
    /// Earlier segments in which reading stopped at a corrupt record.
    pub corrupt_segments: u64,
    /// Bytes left unread in those segments (from the corrupt record to the end).
    pub bytes_unreadable: u64,
    /// Persisted `acked_through`.
    pub acked_through: u64,
    /// The seq the next `allocate_seq` returns.
    pub next_seq: u64,
    /// The `CrashRestart` gap recorded by this open, if any.
    pub crash_gap: Option<Gap>,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, taking its exclusive lock, recovering
    /// from a crash or torn writes, and reporting what was found.
    pub fn open(dir: impl AsRef<Path>, config: SpoolConfig) -> Result<(Spool, Recovery)> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(Error::io("create spool directory", &dir))?;
        let lock = lock::acquire(&dir)?;
        let loaded = state::load(&dir)?;
        let tmp = dir.join(STATE_TMP);
        match std::fs::remove_file(&tmp) {
            Err(err) if err.kind() != ErrorKind::NotFound => {
                return Err(Error::io("remove stale state", &tmp)(err));
            }
            _ => {}
        }
        let found = match &loaded {
            Loaded::Found(found) => Some(found.clone()),
            Loaded::Missing | Loaded::Corrupt(_) => None,
        };
        let acked_through = found.as_ref().map_or(0, |s| s.acked_through);

        let mut recovery = Recovery {
            state: StateRecovery::Fresh,
            records: 0,
            readings: 0,
            segments: 0,
            skipped_acked: 0,
            bytes_truncated: 0,
            corrupt_segments: 0,
            bytes_unreadable: 0,
            acked_through,
            next_seq: 0,
            crash_gap: None,
        };
        let paths = segment_paths(&dir)?;
        let count = paths.len();
        let mut segments = VecDeque::with_capacity(count);
        let mut highest = 0u64;
        for (index, (first_seq, path)) in paths.into_iter().enumerate() {
            let last = index + 1 == count;
            let prev_seq = highest.max(first_seq.saturating_sub(1));
            let (segment, scan) = Segment::open(path, first_seq, acked_through, prev_seq, last)?;
            highest = scan.highest_seq.unwrap_or(highest).max(highest);
            recovery.skipped_acked += scan.skipped_acked;
            if let Some(reason) = scan.corruption {
                let bad = scan.file_len - scan.valid_len;
                tracing::warn!(path = %segment.path.display(), offset = scan.valid_len, bytes = bad, reason, last, "spool: invalid record");
                if last {
                    recovery.bytes_truncated = bad;
                } else {
                    recovery.corrupt_segments += 1;
                    recovery.bytes_unreadable += bad;
                }
            }
            segments.push_back(segment);
        }

        let (state, next_seq, crash_gap) = choose_next_seq(&loaded, found, highest, &config);
        recovery.state = state;
        recovery.next_seq = next_seq;
        recovery.crash_gap = crash_gap;
        let mut gaps_list = Vec::new();
        let (mut dropped_batches, mut dropped_readings) = (0, 0);
        if let Loaded::Found(found) = &loaded {
            gaps_list.clone_from(&found.gaps);
            (dropped_batches, dropped_readings) = (found.dropped_batches, found.dropped_readings);
        }
        if let Some(gap) = crash_gap {
            tracing::warn!(
                first_seq = gap.first_seq,
                last_seq = gap.last_seq,
                "spool: seqs skipped after an unclean shutdown"
            );
            gaps::push(&mut gaps_list, gap);
        }

        let active = segments
            .back()
            .is_some_and(|s| s.len > 0 && s.len < config.segment_bytes);
        let mut spool = Spool {
            dir,
            config,
            _lock: lock,
            bytes: segments.iter().map(|s| s.len).sum(),
            batches: segments.iter().map(|s| s.entries.len() as u64).sum(),
            readings: segments
                .iter()
                .flat_map(|s| s.entries.iter())
                .map(|e| u64::from(e.readings))
                .sum(),
            segments,
            active,
            next_seq,
            block_start: next_seq,
            reserved_until: next_seq,
            last_appended: highest.max(acked_through),
            acked_through,
            dropped_batches,
            dropped_readings,
            gaps: gaps_list,
            state_dirty: true,
            dir_dirty: true,
            scratch: Vec::new(),
        };
        spool.remove_acked_segments()?;
        // Persist now: the crash gap and the new reservation point become durable, and a
        // stale `clean_next_seq` is cleared before any seq is handed out.
        spool.sync()?;
        recovery.records = spool.batches;
        recovery.readings = spool.readings;
        recovery.segments = spool.segments.len() as u64;
        Ok((spool, recovery))
    }
}

/// Segment files in `dir`, sorted by first seq. Other files are ignored.
pub(crate) fn segment_paths(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut paths = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(Error::io("list spool directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("list spool directory", dir))?;
        if let Some(first_seq) = entry.file_name().to_str().and_then(segment::parse_name) {
            paths.push((first_seq, entry.path()));
        }
    }
    paths.sort_unstable();
    Ok(paths)
}

/// Decides the next seq from the state file and the highest seq on disk, and the
/// `CrashRestart` gap covering seqs that may have been handed out but will never arrive.
fn choose_next_seq(
    loaded: &Loaded,
    found: Option<State>,
    highest: u64,
    config: &SpoolConfig,
) -> (StateRecovery, u64, Option<Gap>) {
    let above_disk = highest.saturating_add(1);
    let crash_gap = |first_seq: u64, next_seq: u64| {
        (first_seq < next_seq).then_some(Gap {
            first_seq,
            last_seq: next_seq - 1,
            batches: 0,
            readings: 0,
            reason: GapReason::CrashRestart,
        })
    };
    match (loaded, found) {
        (_, Some(state)) => {
            let above_acked = state.acked_through.saturating_add(1);
            let floor = above_disk.max(above_acked);
            match state.clean_next_seq {
                Some(clean) => (StateRecovery::Clean, clean.max(floor), None),
                None => {
                    let next_seq = state.reserved_until.max(floor);
                    let first_unused = state.block_start.max(floor);
                    (
                        StateRecovery::Crash,
                        next_seq,
                        crash_gap(first_unused, next_seq),
                    )
                }
            }
        }
        (Loaded::Missing, None) if highest == 0 => (StateRecovery::Fresh, 1, None),
        (loaded, None) => {
            let state = match loaded {
                Loaded::Corrupt(err) => StateRecovery::Corrupt {
                    reason: err.to_string(),
                },
                _ => StateRecovery::Missing,
            };
            let next_seq = above_disk.saturating_add(config.seq_block);
            (state, next_seq, crash_gap(above_disk, next_seq))
        }
    }
}
