//! A read-only look at a spool directory, for `beffroi-agent status` while the agent may hold
//! it open: no lock taken, nothing repaired, truncated or written.
//!
//! It reads the state file for `acked_through` and scans every segment the way an open does
//! (same record checks), counting the valid records above `acked_through`. The view is exact
//! after a clean close. While an agent runs it is a snapshot that may count a little more than
//! the agent holds: acknowledgements above a hole, and those since the last sync, live only in
//! the agent's memory; a record being appended at that instant reads as a torn tail and is not
//! counted.

use std::path::Path;

use crate::error::Result;
use crate::recovery::segment_paths;
use crate::segment::Segment;
use crate::state::{self, Loaded};

/// What [`inspect`] found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskView {
    /// Valid records above `acked_through`.
    pub batches: u64,
    /// Readings in those records.
    pub readings: u64,
    /// Size of the segment files.
    pub bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Append time of the oldest record counted.
    pub oldest_unacked_appended_at_ms: Option<u64>,
    /// `acked_through` from the state file (0 when it is missing or corrupt).
    pub acked_through: u64,
    /// Segments in which scanning stopped at an invalid record (a torn tail or bit rot).
    pub invalid_segments: u64,
}

/// Scans the spool in `dir` without locking or changing it; see the module documentation.
pub fn inspect(dir: &Path) -> Result<DiskView> {
    let acked_through = match state::load(dir)? {
        Loaded::Found(state) => state.acked_through,
        Loaded::Missing | Loaded::Corrupt(_) => 0,
    };
    let mut view = DiskView {
        batches: 0,
        readings: 0,
        bytes: 0,
        segments: 0,
        oldest_unacked_appended_at_ms: None,
        acked_through,
        invalid_segments: 0,
    };
    let mut highest = 0u64;
    for (first_seq, path) in segment_paths(dir)? {
        let prev_seq = highest.max(first_seq.saturating_sub(1));
        let (segment, scan) = Segment::open(path, first_seq, acked_through, prev_seq, false)?;
        highest = scan.highest_seq.unwrap_or(highest).max(highest);
        view.segments += 1;
        view.bytes += segment.len;
        view.invalid_segments += u64::from(scan.corruption.is_some());
        for entry in &segment.entries {
            view.batches += 1;
            view.readings += u64::from(entry.readings);
            view.oldest_unacked_appended_at_ms = view
                .oldest_unacked_appended_at_ms
                .or(Some(entry.appended_at_ms));
        }
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Spool, SpoolConfig};

    fn config() -> SpoolConfig {
        SpoolConfig {
            max_bytes: 1 << 20,
            segment_bytes: crate::MIN_SEGMENT_BYTES,
            ..SpoolConfig::default()
        }
    }

    #[test]
    fn sees_what_an_open_spool_holds_without_touching_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = Spool::open(dir.path(), config()).unwrap();
        for readings in [3u32, 4, 5] {
            let seq = spool.allocate_seq().unwrap();
            spool.append(seq, readings, &[7u8; 100]).unwrap();
        }
        spool.ack(1, &[]).unwrap();
        spool.sync().unwrap();
        // The spool is open (locked) here: inspection must neither fail nor wait.
        let view = inspect(dir.path()).unwrap();
        assert_eq!((view.batches, view.readings), (2, 9));
        assert_eq!(view.acked_through, 1);
        assert_eq!(view.invalid_segments, 0);
        assert_eq!(view.bytes, spool.stats().bytes);
        assert!(view.oldest_unacked_appended_at_ms.is_some());
        let stats = spool.stats();
        spool.close().unwrap();
        assert_eq!(inspect(dir.path()).unwrap().batches, stats.batches);
    }

    #[test]
    fn an_empty_or_missing_spool_is_an_answer_or_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let view = inspect(dir.path()).unwrap();
        assert_eq!((view.batches, view.segments, view.bytes), (0, 0, 0));
        assert!(inspect(&dir.path().join("absent")).is_err());
    }

    #[test]
    fn a_torn_tail_is_not_counted_and_not_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = Spool::open(dir.path(), config()).unwrap();
        let seq = spool.allocate_seq().unwrap();
        spool.append(seq, 2, &[1u8; 64]).unwrap();
        spool.close().unwrap();
        let segment = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .unwrap();
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes.extend_from_slice(b"BFSP torn");
        std::fs::write(&segment, &bytes).unwrap();
        let view = inspect(dir.path()).unwrap();
        assert_eq!((view.batches, view.invalid_segments), (1, 1));
        assert_eq!(
            std::fs::read(&segment).unwrap(),
            bytes,
            "the file was changed"
        );
    }
}
