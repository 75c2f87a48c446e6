//! The agent's durable, crash-safe, bounded on-disk FIFO of signed batches.
//!
//! This crate owns the spool directory: segment files, the state file and the lock file. It
//! stores opaque payloads (the signed COSE batches) with their `seq` and reading count, hands
//! them back in seq order until the platform's commit acknowledgement removes them, drops the
//! oldest ones when full and reports every loss as a [`Gap`]. It does synchronous std IO and
//! no networking; it must not interpret payloads and must never panic on disk content.
//!
//! # Life of a record
//! ```text
//!  allocate_seq ──► append ──► [written] ──sync──► [durable] ──read/resend──► [sent]
//!                                 │                    │                        │
//!                                 │ spool full: oldest │ segment dropped        │ ack(contiguous, above)
//!                                 ▼                    ▼                        ▼
//!                            [dropped] ── counted in a SpoolFull Gap      [acked] ── never returned again
//!                                                                             │ last unacked record of a
//!                                                                             ▼ sealed segment acked
//!                                                                        [removed] (segment file deleted)
//! ```
//! "Sent" is not tracked here: the uplink reads [`Spool::unacked`] and resends after every
//! reconnect; only an acknowledgement (or a drop) takes a record out of that view.
//!
//! # Directory layout
//! ```text
//! spool.lock                      exclusive lock (File::try_lock), held while open
//! state.json                      state file, replaced atomically (state.json.tmp + rename)
//! 00000000000000000001.seg        segment: records, named after the seq of its first record
//! 00000000000000001377.seg        … (20 zero-padded decimal digits, sorted = seq order)
//! ```
//!
//! # Record layout (all integers little endian)
//! ```text
//! offset size field
//!      0    4 magic            "BFSP"
//!      4    1 version          1
//!      5    3 reserved         zero
//!      8    4 len              payload length in bytes
//!     12    8 seq              batch seq
//!     20    4 readings         readings in the batch
//!     24    8 appended_at_ms   append time, unix milliseconds
//!     32    4 crc              CRC32C (Castagnoli) of bytes 0..32 followed by the payload
//!     36  len payload          opaque bytes (the signed batch)
//! ```
//! Invariants:
//! - records in a segment, and segments in name order, have strictly increasing seqs; a
//!   segment's name is the seq of its first record and the first record's seq is >= it;
//! - a segment is at most `segment_bytes` long unless it holds a single record larger than
//!   that; only the last segment is appended to, and a segment is fsynced when it is sealed
//!   (a new one is started), so only the last segment can have a torn tail after power loss;
//! - the sum of the segment sizes never exceeds `max_bytes`;
//! - a record is valid iff magic, version, reserved bytes, length (fits in the file) and CRC
//!   check, and its seq is above the previous record's.
//!
//! # Recovery at open
//! Segments are scanned in order. In the **last** segment the first invalid record and
//! everything after it is a torn tail: the file is truncated there, fsynced, and the bytes cut
//! are reported in [`Recovery::bytes_truncated`]. In an **earlier** segment (bit rot) reading
//! that segment stops there, nothing is truncated and it is counted in
//! [`Recovery::corrupt_segments`]. Records with seq <= the persisted `acked_through` are
//! skipped. Segments left with no unacknowledged record are deleted.
//!
//! # Seq reservation and crashes
//! [`Spool::allocate_seq`] hands out seqs from a reserved block of `seq_block` seqs; reserving
//! the next block writes the state file durably *before* the first seq of that block is
//! returned. [`Spool::close`] writes the exact next seq. At open:
//! - after a clean close the next seq is the one written, and there is no gap;
//! - after a crash the next seq is the reserved high-water mark, and the unused part of the
//!   block — from the first seq above every seq on disk (and above the block start) up to the
//!   high-water mark − 1 — is recorded as a `CrashRestart` gap (0 batches, 0 readings); seqs
//!   allocated but not appended (or lost with unsynced data) are in that range;
//! - with a missing (but segments present) or corrupt state file, the next seq is the highest
//!   seq on disk + 1 + `seq_block` (a safety margin), with a `CrashRestart` gap over the margin;
//! - in every case the next seq is above every seq found on disk.
//!
//! # Acknowledgements
//! [`Spool::ack`]`(contiguous, above)` acknowledges every record with seq <= `contiguous`
//! (clamped to the last appended seq) and each seq in `above`. A sealed segment whose records
//! are all acknowledged is deleted at once (the directory is fsynced at the next sync); the
//! active segment is kept until it is sealed and then deleted when its last record is acked.
//! `acked_through` — the highest seq such that every record at or below it is acknowledged or
//! dropped — is persisted in the state file at the next [`Spool::sync`], and records at or
//! below it are skipped after a restart. Acknowledgements *above a hole* are kept in memory
//! only: after a restart those records may be resent once, which is harmless because the
//! platform deduplicates by (gateway, seq). Gaps whose `last_seq <= contiguous` are cleared
//! (the platform has heard of them); the others are persisted until then.
//!
//! # When full
//! An append that would take the segments past `max_bytes` first drops whole oldest segments
//! (never the one being written unless it is the only one left). Their unacknowledged records
//! become a `SpoolFull` gap — `first_seq..=last_seq` is the envelope of the dropped seqs,
//! `batches`/`readings` the exact counts — merged into the previous gap when it has the same
//! reason (dropping from the oldest end, nothing still held lies between them). Dropped
//! counters are cumulative and persisted. At most [`MAX_PENDING_GAPS`] gaps are kept; beyond
//! it the two oldest are merged. A single record larger than `max_bytes` is rejected with
//! [`Error::RecordTooLarge`].
//!
//! # Durability (group fsync)
//! [`Spool::append`] writes the record to the segment file (one `pwrite`, in the page cache)
//! and returns; [`Spool::sync`], called by the agent on an interval, fsyncs the written
//! segments, the directory when files were created or removed, and the state file when it
//! changed. A crash of the process loses nothing appended; a power loss loses at most what
//! was appended since the last sync, and those seqs are covered by the crash gap.
//!
//! # State file (`state.json`)
//! ```text
//! { "version": 1, "block_start": 1025, "reserved_until": 2049, "clean_next_seq": null,
//!   "acked_through": 1500, "dropped_batches": 0, "dropped_readings": 0,
//!   "gaps": [ { "first_seq": 7, "last_seq": 9, "batches": 3, "readings": 30,
//!               "reason": "spool-full" } ] }
//! ```
//! Written as `state.json.tmp`, fsynced, renamed over `state.json`, directory fsynced.
//!
//! # Memory
//! Only a compact index is kept per unacknowledged record (seq, offset, length, readings,
//! append time: about 40 bytes); payloads stay on disk and [`Spool::read`] reads them back
//! (checking the CRC again).
//!
//! Unix only: segments use positional IO (`pread`/`pwrite`).

mod config;
mod error;
mod gaps;
mod inspect;
mod lock;
mod record;
mod recovery;
mod segment;
mod spool;
mod state;

pub use beffroi_protocol::{Gap, GapReason};
pub use config::{SpoolConfig, MAX_SEQ_BLOCK, MIN_SEGMENT_BYTES};
pub use error::{Error, Result};
pub use gaps::MAX_PENDING_GAPS;
pub use inspect::{inspect, DiskView};
pub use record::HEADER_LEN;
pub use recovery::{Recovery, StateRecovery};
pub use spool::{AckOutcome, RecordInfo, Spool, SpoolStats};
