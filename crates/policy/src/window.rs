//! Time: half-open ranges and bucket grids.
//!
//! Buckets are laid on a grid anchored at the Unix epoch: a [`BucketSpec`] of width `w` and
//! offset `o` has buckets `[o + n·w, o + (n+1)·w)`. A grid is aligned on a finer one when
//! each of its buckets is a union of whole fine buckets (width a multiple of the fine width,
//! boundaries on fine boundaries). Arithmetic saturates at the ends of the timestamp range.

use beffroi_protocol::Timestamp;
use serde::{Deserialize, Serialize};

const MICROS_PER_SECOND: i128 = 1_000_000;

/// The instants `from <= t < to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// First instant, inclusive.
    pub from: Timestamp,
    /// End, exclusive.
    pub to: Timestamp,
}

impl TimeRange {
    /// `[from, to)`.
    pub const fn new(from: Timestamp, to: Timestamp) -> Self {
        Self { from, to }
    }

    /// Whether `t` is inside.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.to
    }

    /// Whether no instant is inside.
    pub fn is_empty(&self) -> bool {
        self.from >= self.to
    }
}

/// A bucket grid: `width_s` seconds per bucket, starting `offset_s` seconds after each
/// multiple of the width since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSpec {
    /// Bucket width in seconds (≥ 1).
    pub width_s: u32,
    /// Offset of the grid from the epoch, in seconds (< `width_s`).
    pub offset_s: u32,
}

impl BucketSpec {
    /// Buckets of `width_s` seconds aligned on the epoch.
    pub const fn epoch_aligned(width_s: u32) -> Self {
        Self {
            width_s,
            offset_s: 0,
        }
    }

    /// Whether the grid is usable: width ≥ 1, offset < width.
    pub fn is_well_formed(&self) -> bool {
        self.width_s >= 1 && self.offset_s < self.width_s
    }

    /// Whether every bucket of `self` is a union of whole buckets of `fine`.
    pub fn is_aligned_on(&self, fine: &BucketSpec) -> bool {
        fine.width_s >= 1
            && self.width_s.is_multiple_of(fine.width_s)
            && (i64::from(self.offset_s) - i64::from(fine.offset_s))
                .rem_euclid(i64::from(fine.width_s))
                == 0
    }

    /// Start of the bucket holding `t`.
    pub fn floor(&self, t: Timestamp) -> Timestamp {
        let (width, offset) = self.micros();
        let at = i128::from(t.unix_micros());
        clamp(at - (at - offset).rem_euclid(width))
    }

    /// `t` if it is a bucket boundary, else the end of its bucket.
    pub fn ceil(&self, t: Timestamp) -> Timestamp {
        let (width, offset) = self.micros();
        let at = i128::from(t.unix_micros());
        let into = (at - offset).rem_euclid(width);
        clamp(if into == 0 { at } else { at - into + width })
    }

    /// Whether `t` is a bucket boundary.
    pub fn is_boundary(&self, t: Timestamp) -> bool {
        self.floor(t) == t
    }

    fn micros(&self) -> (i128, i128) {
        (
            i128::from(self.width_s.max(1)) * MICROS_PER_SECOND,
            i128::from(self.offset_s) * MICROS_PER_SECOND,
        )
    }
}

/// `now` moved back by `seconds`, saturating.
pub(crate) fn seconds_before(now: Timestamp, seconds: u64) -> Timestamp {
    clamp(i128::from(now.unix_micros()) - i128::from(seconds) * MICROS_PER_SECOND)
}

fn clamp(micros: i128) -> Timestamp {
    // Clamped to the i64 range first, so the cast is exact.
    Timestamp::from_unix_micros(micros.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    fn t(micros: i64) -> Timestamp {
        Timestamp::from_unix_micros(micros)
    }

    #[test]
    fn floor_and_ceil() {
        let hourly = BucketSpec::epoch_aligned(3600);
        assert_eq!(hourly.floor(t(H + 5)), t(H));
        assert_eq!(hourly.ceil(t(H + 5)), t(2 * H));
        assert_eq!(hourly.ceil(t(H)), t(H));
        assert_eq!(hourly.floor(t(-5)), t(-H));
        let shifted = BucketSpec {
            width_s: 7200,
            offset_s: 3600,
        };
        assert_eq!(shifted.floor(t(2 * H + 1)), t(H));
        assert_eq!(hourly.ceil(t(i64::MAX)), t(i64::MAX));
        assert_eq!(hourly.floor(t(i64::MIN)), t(i64::MIN));
    }

    #[test]
    fn alignment() {
        let hourly = BucketSpec::epoch_aligned(3600);
        assert!(BucketSpec::epoch_aligned(7200).is_aligned_on(&hourly));
        assert!(BucketSpec {
            width_s: 7200,
            offset_s: 3600
        }
        .is_aligned_on(&hourly));
        assert!(!BucketSpec::epoch_aligned(1800).is_aligned_on(&hourly));
        assert!(!BucketSpec::epoch_aligned(5400).is_aligned_on(&hourly));
        assert!(!BucketSpec {
            width_s: 3600,
            offset_s: 1800
        }
        .is_aligned_on(&hourly));
    }
}
