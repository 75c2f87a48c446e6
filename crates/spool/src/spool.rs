//! The [`Spool`] handle and its running operations: allocate, append, sync, ack, read.
//! Opening and crash recovery live in [`recovery`](crate::recovery).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::SpoolConfig;
use crate::error::{Error, Result};
use crate::gaps;
use crate::lock::DirLock;
use crate::record::{self, HEADER_LEN};
use crate::segment::{Entry, Segment};
use crate::state::{self, State, STATE_VERSION};
use crate::{Gap, GapReason};

/// What the spool knows about one unacknowledged record (the payload stays on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// Batch seq.
    pub seq: u64,
    /// Readings in the batch.
    pub readings: u32,
    /// Append time, unix milliseconds.
    pub appended_at_ms: u64,
    /// Payload length in bytes.
    pub len: u32,
}

impl From<&Entry> for RecordInfo {
    fn from(entry: &Entry) -> Self {
        RecordInfo {
            seq: entry.seq,
            readings: entry.readings,
            appended_at_ms: entry.appended_at_ms,
            len: entry.len,
        }
    }
}

/// What one [`Spool::ack`] removed from the unacknowledged view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Records newly acknowledged.
    pub removed_batches: u64,
    /// Readings in those records.
    pub removed_readings: u64,
}

/// A snapshot of the spool's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStats {
    /// Unacknowledged records.
    pub batches: u64,
    /// Readings in unacknowledged records.
    pub readings: u64,
    /// Size of the segment files on disk (what `max_bytes` bounds).
    pub bytes: u64,
    /// Append time of the oldest unacknowledged record.
    pub oldest_unacked_appended_at_ms: Option<u64>,
    /// Batches dropped because the spool was full, since the directory was created.
    pub dropped_batches: u64,
    /// Readings in those batches.
    pub dropped_readings: u64,
    /// The seq the next [`Spool::allocate_seq`] returns.
    pub next_seq: u64,
    /// Every record with seq <= this is acknowledged or dropped.
    pub acked_through: u64,
}

/// An open spool directory. See the crate documentation for the format and guarantees.
///
/// Dropping it without [`Spool::close`] behaves like a crash: the state is not persisted and
/// the next open records a `CrashRestart` gap over the unused reserved seqs.
#[derive(Debug)]
pub struct Spool {
    pub(crate) dir: PathBuf,
    pub(crate) config: SpoolConfig,
    pub(crate) _lock: DirLock,
    /// Segments in seq order; when `active` the last one takes appends.
    pub(crate) segments: VecDeque<Segment>,
    pub(crate) active: bool,
    pub(crate) next_seq: u64,
    pub(crate) block_start: u64,
    pub(crate) reserved_until: u64,
    /// Highest seq appended (or known acknowledged); appends must be above it.
    pub(crate) last_appended: u64,
    pub(crate) acked_through: u64,
    pub(crate) batches: u64,
    pub(crate) readings: u64,
    pub(crate) bytes: u64,
    pub(crate) dropped_batches: u64,
    pub(crate) dropped_readings: u64,
    pub(crate) gaps: Vec<Gap>,
    pub(crate) state_dirty: bool,
    pub(crate) dir_dirty: bool,
    /// Reused encode buffer, so an append makes a single write.
    pub(crate) scratch: Vec<u8>,
}

impl Spool {
    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the spool was opened with.
    pub fn config(&self) -> &SpoolConfig {
        &self.config
    }

    /// Hands out the next seq. When the reserved block is used up, the next block is reserved
    /// by writing the state file durably before returning, so a seq is never reused even
    /// after a power loss.
    pub fn allocate_seq(&mut self) -> Result<u64> {
        if self.next_seq >= self.reserved_until {
            let (old_start, old_until) = (self.block_start, self.reserved_until);
            self.block_start = self.next_seq;
            self.reserved_until = self
                .next_seq
                .checked_add(self.config.seq_block)
                .ok_or(Error::SeqExhausted)?;
            if let Err(err) = self.persist_state(None) {
                // Not durably reserved: hand nothing out from the block.
                (self.block_start, self.reserved_until) = (old_start, old_until);
                return Err(err);
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1; // < reserved_until <= u64::MAX
        Ok(seq)
    }

    /// Appends one batch. `seq` must come from [`Spool::allocate_seq`] and be above every seq
    /// appended before. The record is written to the segment file (page cache) but only
    /// durable after the next [`Spool::sync`]. If the spool is full, the oldest segments are
    /// dropped first and recorded as a gap.
    pub fn append(&mut self, seq: u64, readings: u32, payload: &[u8]) -> Result<()> {
        if seq <= self.last_appended {
            return Err(Error::SeqNotIncreasing {
                seq,
                last: self.last_appended,
            });
        }
        if seq >= self.next_seq {
            return Err(Error::SeqNotAllocated {
                seq,
                next: self.next_seq,
            });
        }
        let size = HEADER_LEN + payload.len() as u64;
        let len = match u32::try_from(payload.len()) {
            Ok(len) if size <= self.config.max_bytes => len,
            _ => {
                let limit = self.config.max_bytes.min(HEADER_LEN + u64::from(u32::MAX));
                return Err(Error::RecordTooLarge { seq, size, limit });
            }
        };
        if self.active {
            if let Some(current) = self.segments.back_mut() {
                if current.len > 0 && current.len + size > self.config.segment_bytes {
                    self.active = false;
                    current.sync()?;
                    // Sealed with every record already acknowledged: delete it now.
                    self.remove_acked_segments()?;
                }
            }
        }
        while self.bytes + size > self.config.max_bytes && !self.segments.is_empty() {
            self.drop_oldest()?;
        }
        if !self.active {
            self.segments.push_back(Segment::create(&self.dir, seq)?);
            self.active = true;
            self.dir_dirty = true;
        }
        let appended_at_ms = now_ms();
        record::encode(&mut self.scratch, seq, readings, appended_at_ms, payload);
        let entry = Entry {
            seq,
            offset: 0,
            len,
            readings,
            appended_at_ms,
            acked: false,
        };
        let segment = self
            .segments
            .back_mut()
            .expect("a segment is active: one was pushed above when none was");
        if let Err(err) = segment.append(&self.scratch, entry) {
            // Never append after a possibly partial record: the next append starts a new
            // segment, so a torn record here cannot hide later ones at the next open.
            self.active = false;
            self.remove_acked_segments()?;
            return Err(err);
        }
        self.bytes += size;
        self.batches += 1;
        self.readings += u64::from(readings);
        self.last_appended = seq;
        Ok(())
    }

    /// Makes everything appended so far durable: fsyncs written segments, the directory when
    /// files were created or removed, and the state file when it changed.
    pub fn sync(&mut self) -> Result<()> {
        for segment in self.segments.iter_mut().filter(|s| s.unsynced) {
            segment.sync()?;
        }
        if self.dir_dirty {
            state::sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        if self.state_dirty {
            self.persist_state(None)?;
        }
        Ok(())
    }

    /// Acknowledges every record with seq <= `contiguous` and every record whose seq is in
    /// `above`. Acknowledged records are never returned again; sealed segments left without
    /// unacknowledged records are deleted. Gaps ending at or below `contiguous` are cleared.
    ///
    /// An error means a segment file could not be deleted; the acknowledgements are applied.
    pub fn ack(&mut self, contiguous: u64, above: &[u64]) -> Result<AckOutcome> {
        let contiguous = contiguous.min(self.last_appended);
        let mut outcome = AckOutcome::default();
        for segment in self.segments.iter_mut() {
            while let Some(entry) = segment.entries.front().copied() {
                if entry.seq > contiguous {
                    break;
                }
                segment.entries.pop_front();
                if !entry.acked {
                    segment.unacked -= 1;
                    outcome.removed_batches += 1;
                    outcome.removed_readings += u64::from(entry.readings);
                }
            }
            segment.pop_acked_front();
            if segment.entries.front().is_some_and(|e| e.seq > contiguous) {
                break;
            }
        }
        for &seq in above.iter().filter(|&&seq| seq > contiguous) {
            let Some(index) = self.segment_index(seq) else {
                continue;
            };
            let segment = &mut self.segments[index];
            let Some(position) = segment.position(seq) else {
                continue;
            };
            let entry = &mut segment.entries[position];
            if !entry.acked {
                entry.acked = true;
                segment.unacked -= 1;
                outcome.removed_batches += 1;
                outcome.removed_readings += u64::from(entry.readings);
                segment.pop_acked_front();
            }
        }
        self.batches -= outcome.removed_batches;
        self.readings -= outcome.removed_readings;
        let gaps_before = self.gaps.len();
        self.gaps.retain(|gap| gap.last_seq > contiguous);
        let old_acked_through = self.acked_through;
        self.acked_through = self.acked_through.max(contiguous);
        self.advance_acked_through();
        if outcome.removed_batches > 0
            || self.gaps.len() != gaps_before
            || self.acked_through != old_acked_through
        {
            self.state_dirty = true;
        }
        self.remove_acked_segments()?;
        Ok(outcome)
    }

    /// Unacknowledged records in seq order.
    pub fn unacked(&self) -> impl Iterator<Item = RecordInfo> + '_ {
        self.segments.iter().flat_map(|segment| {
            segment
                .entries
                .iter()
                .filter(|e| !e.acked)
                .map(RecordInfo::from)
        })
    }

    /// Reads the payload of the unacknowledged record `seq` from disk, checking its CRC
    /// again. `Ok(None)` if the spool does not hold it (acknowledged, dropped, never appended).
    pub fn read(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        let Some(segment) = self.segment_index(seq).map(|i| &self.segments[i]) else {
            return Ok(None);
        };
        match segment.position(seq).map(|p| &segment.entries[p]) {
            Some(entry) if !entry.acked => segment.read(entry).map(Some),
            _ => Ok(None),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            batches: self.batches,
            readings: self.readings,
            bytes: self.bytes,
            oldest_unacked_appended_at_ms: self.unacked().next().map(|r| r.appended_at_ms),
            dropped_batches: self.dropped_batches,
            dropped_readings: self.dropped_readings,
            next_seq: self.next_seq,
            acked_through: self.acked_through,
        }
    }

    /// Gaps not yet covered by a contiguous acknowledgement, oldest first; the agent reports
    /// them in its health message.
    pub fn pending_gaps(&self) -> &[Gap] {
        &self.gaps
    }

    /// Clean shutdown: syncs, then persists the exact next seq so that the next open leaves
    /// no gap. Releases the directory lock.
    pub fn close(mut self) -> Result<()> {
        self.sync()?;
        self.block_start = self.next_seq;
        self.reserved_until = self.next_seq;
        self.persist_state(Some(self.next_seq))
    }

    /// Index of the segment that would hold `seq`.
    fn segment_index(&self, seq: u64) -> Option<usize> {
        self.segments
            .partition_point(|s| s.first_seq <= seq)
            .checked_sub(1)
    }

    /// Drops the oldest segment to make room, recording its unacknowledged records as a
    /// `SpoolFull` gap.
    fn drop_oldest(&mut self) -> Result<()> {
        let Some(segment) = self.segments.pop_front() else {
            return Ok(());
        };
        if self.segments.is_empty() {
            self.active = false;
        }
        let mut gap: Option<Gap> = None;
        for entry in segment.entries.iter().filter(|e| !e.acked) {
            let gap = gap.get_or_insert(Gap {
                first_seq: entry.seq,
                last_seq: entry.seq,
                batches: 0,
                readings: 0,
                reason: GapReason::SpoolFull,
            });
            gap.last_seq = entry.seq;
            gap.batches += 1;
            gap.readings += u64::from(entry.readings);
        }
        self.bytes -= segment.len;
        if let Some(gap) = gap {
            tracing::warn!(
                first_seq = gap.first_seq,
                last_seq = gap.last_seq,
                batches = gap.batches,
                readings = gap.readings,
                "spool full: dropping oldest segment"
            );
            self.batches -= gap.batches;
            self.readings -= gap.readings;
            self.dropped_batches += gap.batches;
            self.dropped_readings += gap.readings;
            gaps::push(&mut self.gaps, gap);
        }
        self.advance_acked_through();
        self.state_dirty = true;
        self.dir_dirty = true;
        segment.remove()
    }

    /// Raises `acked_through` to just below the oldest record still held (or to the last
    /// appended seq when none is).
    pub(crate) fn advance_acked_through(&mut self) {
        let floor = match self.unacked().next() {
            Some(oldest) => oldest.seq - 1, // seqs start at 1
            None => self.last_appended,
        };
        self.acked_through = self.acked_through.max(floor);
    }

    /// Deletes every segment without unacknowledged records, except the active one.
    pub(crate) fn remove_acked_segments(&mut self) -> Result<()> {
        let mut first_error = None;
        let mut index = 0;
        while index < self.segments.len() {
            let is_active = self.active && index + 1 == self.segments.len();
            if is_active || self.segments[index].unacked > 0 {
                index += 1;
                continue;
            }
            if let Some(segment) = self.segments.remove(index) {
                self.bytes -= segment.len;
                self.dir_dirty = true;
                if let Err(err) = segment.remove() {
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes the state file durably and clears the dirty flag.
    pub(crate) fn persist_state(&mut self, clean_next_seq: Option<u64>) -> Result<()> {
        let state = State {
            version: STATE_VERSION,
            block_start: self.block_start,
            reserved_until: self.reserved_until,
            clean_next_seq,
            acked_through: self.acked_through,
            dropped_batches: self.dropped_batches,
            dropped_readings: self.dropped_readings,
            gaps: self.gaps.clone(),
        };
        state::store(&self.dir, &state)?;
        self.state_dirty = false;
        Ok(())
    }
}

/// Current time in unix milliseconds (0 if the clock is before 1970).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
