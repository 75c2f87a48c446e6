//! The spool's error type: one variant per cause, and the [`Result`] alias.
//!
//! Damaged disk content found while opening is *recovered from* and reported in
//! [`Recovery`](crate::Recovery), not returned as an error; the corruption variants here are
//! returned when a payload read back later fails its checks.

use std::io;
use std::path::PathBuf;

/// Result alias for the spool.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the spool.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An IO operation on a spool file or directory failed.
    #[error("spool: {op} {}: {source}", path.display())]
    Io {
        /// What was being done (`"open segment"`, `"fsync state"`, …).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another `Spool` in this one) holds the directory lock.
    #[error("spool directory {} is locked by another process", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The configuration is invalid; `field` names the offending setting.
    #[error("invalid spool config: {field}: {reason}")]
    InvalidConfig {
        /// Name of the configuration field.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// One record (header + payload) is larger than `max_bytes` or than the record format
    /// allows; the caller still owns the payload.
    #[error("record seq {seq} of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// Seq of the rejected batch.
        seq: u64,
        /// Size the record would take on disk.
        size: u64,
        /// The limit it exceeds.
        limit: u64,
    },
    /// `append` was given a seq not greater than the last appended one.
    #[error("seq {seq} is not greater than the last appended seq {last}")]
    SeqNotIncreasing {
        /// The seq passed to `append`.
        seq: u64,
        /// The last seq appended (or acknowledged).
        last: u64,
    },
    /// `append` was given a seq that `allocate_seq` has not handed out yet, so it is not
    /// covered by a durable reservation and could be reused after a crash.
    #[error("seq {seq} was never allocated (next seq is {next})")]
    SeqNotAllocated {
        /// The seq passed to `append`.
        seq: u64,
        /// The next seq `allocate_seq` would return.
        next: u64,
    },
    /// The u64 seq space is exhausted (never happens in practice; reported, not panicked).
    #[error("seq space exhausted")]
    SeqExhausted,
    /// A record read back from disk failed its checks (magic, length, seq or CRC).
    #[error("corrupt record in {} at offset {offset}: {reason}", path.display())]
    CorruptRecord {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the record in the segment.
        offset: u64,
        /// Which check failed.
        reason: &'static str,
    },
    /// The state file could not be parsed. `open` recovers from this conservatively.
    #[error("corrupt spool state file {}: {reason}", path.display())]
    CorruptState {
        /// The state file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
}

impl Error {
    /// Builds a closure mapping an [`io::Error`] to [`Error::Io`] for `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
