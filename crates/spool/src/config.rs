//! Spool configuration: sizes and the seq reservation block, with a pure `validate()`.

use crate::error::{Error, Result};
use crate::record::HEADER_LEN;

/// Smallest accepted `segment_bytes`.
pub const MIN_SEGMENT_BYTES: u64 = 4 * 1024;

/// Largest accepted `seq_block` (a crash skips at most this many seqs).
pub const MAX_SEQ_BLOCK: u64 = 1 << 32;

/// Sizes and reservation policy of a spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Upper bound on the total size of segment files; when an append would exceed it the
    /// oldest segments are dropped and a [`Gap`](crate::Gap) is recorded.
    pub max_bytes: u64,
    /// A new segment is started when the current one would grow past this size.
    pub segment_bytes: u64,
    /// How many seqs one durable reservation covers: one state-file write per block, and
    /// at most one block of seqs skipped (reported as a gap) after a crash.
    pub seq_block: u64,
}

impl SpoolConfig {
    /// Default `max_bytes`: 256 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
    /// Default `segment_bytes`: 8 MiB.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
    /// Default `seq_block`: 1024.
    pub const DEFAULT_SEQ_BLOCK: u64 = 1024;

    /// The default configuration, usable in `const` contexts.
    pub const fn new() -> Self {
        SpoolConfig {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            seq_block: Self::DEFAULT_SEQ_BLOCK,
        }
    }

    /// Checks the settings without doing any IO; the error names the field and the reason.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: String| Err(Error::InvalidConfig { field, reason });
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return bad(
                "segment_bytes",
                format!(
                    "{} is below the minimum of {MIN_SEGMENT_BYTES}",
                    self.segment_bytes
                ),
            );
        }
        if self.segment_bytes > self.max_bytes / 2 {
            return bad(
                "segment_bytes",
                format!(
                    "{} is more than half of max_bytes ({}); at least two segments must fit",
                    self.segment_bytes, self.max_bytes
                ),
            );
        }
        if self.segment_bytes <= HEADER_LEN {
            return bad("segment_bytes", "cannot hold a record header".to_owned());
        }
        if self.seq_block == 0 {
            return bad("seq_block", "must be at least 1".to_owned());
        }
        if self.seq_block > MAX_SEQ_BLOCK {
            return bad(
                "seq_block",
                format!("{} is above the maximum of {MAX_SEQ_BLOCK}", self.seq_block),
            );
        }
        Ok(())
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(config: SpoolConfig) -> Option<&'static str> {
        match config.validate() {
            Err(Error::InvalidConfig { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn default_is_valid() {
        assert!(SpoolConfig::default().validate().is_ok());
    }

    #[test]
    fn bad_fields_are_named() {
        let base = SpoolConfig::default();
        let small_segment = SpoolConfig {
            segment_bytes: 100,
            ..base
        };
        assert_eq!(field_of(small_segment), Some("segment_bytes"));
        let big_segment = SpoolConfig {
            segment_bytes: base.max_bytes,
            ..base
        };
        assert_eq!(field_of(big_segment), Some("segment_bytes"));
        assert_eq!(
            field_of(SpoolConfig {
                seq_block: 0,
                ..base
            }),
            Some("seq_block")
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let parsed: Result<SpoolConfig, _> = serde_json::from_str(r#"{"max_byte": 1}"#);
        assert!(parsed.is_err());
        let parsed: Result<SpoolConfig, _> = serde_json::from_str(r#"{"seq_block": 8}"#);
        assert_eq!(parsed.ok().map(|c| c.seq_block), Some(8));
    }
}
