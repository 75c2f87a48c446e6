//! A latency histogram that many tasks record into at once and that never grows: log-linear
//! buckets (64 per power of two, so every value is kept within 1.6 %) over microseconds,
//! with the exact count, sum and maximum beside them.
//!
//! ```text
//! value µs  0..64        : one bucket per µs (exact)
//!           2^m..2^(m+1) : 64 buckets of 2^(m-6) µs each, m = 6..=41 (about 25 days)
//! ```
//! Percentiles use the same rank as `report::percentiles` (the sample at rank ⌈q·n⌉) and
//! answer the middle of that sample's bucket.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Bits of sub-bucket resolution: 2^6 = 64 buckets per power of two.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Largest power of two tracked; larger values land in the last bucket.
const MAX_MAGNITUDE: u32 = 41;
const BUCKETS: usize = ((MAX_MAGNITUDE - SUB_BITS + 2) as usize) << SUB_BITS;

/// Latencies recorded from any thread.
#[derive(Debug)]
pub(crate) struct Histogram {
    counts: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

/// The bucket of `us`.
fn index(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let magnitude = (63 - us.leading_zeros()).min(MAX_MAGNITUDE);
    let shift = magnitude - SUB_BITS;
    let top = (us >> shift).min(2 * SUB - 1);
    (((magnitude - SUB_BITS + 1) as usize) << SUB_BITS) + (top - SUB) as usize
}

/// The middle of bucket `i`, µs.
fn middle(i: usize) -> u64 {
    let block = (i >> SUB_BITS) as u32;
    let sub = (i as u64) & (SUB - 1);
    if block == 0 {
        return sub;
    }
    let shift = block - 1;
    ((SUB + sub) << shift) + ((1u64 << shift) >> 1)
}

impl Histogram {
    /// Records one latency.
    pub(crate) fn record(&self, us: u64) {
        self.counts[index(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Records a latency that may be negative (clocks are the same here, so only rounding
    /// makes it so): counted as 0.
    pub(crate) fn record_signed(&self, us: i64) {
        self.record(u64::try_from(us).unwrap_or(0));
    }

    /// Count, mean, p50, p99, p99.9 and max.
    pub(crate) fn summary(&self) -> Summary {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        summarise(
            &counts,
            self.count.load(Ordering::Relaxed),
            self.sum_us.load(Ordering::Relaxed),
            self.max_us.load(Ordering::Relaxed),
        )
    }

    /// What was recorded since the last take, and starts over (a per-interval figure); a
    /// latency recorded meanwhile may be counted in either interval, never lost.
    pub(crate) fn take(&self) -> Summary {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.swap(0, Ordering::Relaxed))
            .collect();
        summarise(
            &counts,
            self.count.swap(0, Ordering::Relaxed),
            self.sum_us.swap(0, Ordering::Relaxed),
            self.max_us.swap(0, Ordering::Relaxed),
        )
    }
}

/// The summary of bucket `counts` with the exact count, sum and maximum beside them.
fn summarise(counts: &[u64], count: u64, sum_us: u64, max_us: u64) -> Summary {
    let total: u64 = counts.iter().sum();
    let at = |q: f64| -> u64 {
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return middle(i);
            }
        }
        0
    };
    Summary {
        count,
        mean_us: if count == 0 {
            0.0
        } else {
            sum_us as f64 / count as f64
        },
        p50_us: at(0.50).min(max_us),
        p99_us: at(0.99).min(max_us),
        p999_us: at(0.999).min(max_us),
        max_us,
    }
}

/// What a histogram holds, as the report prints it (and the client process sends it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Summary {
    /// Samples.
    pub count: u64,
    /// Mean, µs (exact).
    pub mean_us: f64,
    /// Median, µs (within 1.6 %).
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Largest, µs (exact).
    pub max_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order_within_their_precision() {
        let mut last = 0;
        for us in [
            0u64,
            1,
            63,
            64,
            65,
            127,
            128,
            129,
            1000,
            4_999,
            65_536,
            1 << 40,
        ] {
            let i = index(us);
            assert!(i >= last, "{us}: buckets must not go backwards");
            last = i;
            let mid = middle(i) as f64;
            assert!(
                (mid - us as f64).abs() <= us as f64 / 64.0 + 0.5,
                "{us} answered as {mid}"
            );
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_match_the_exact_ranks() {
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(us * 10);
        }
        h.record_signed(-3);
        let s = h.summary();
        assert_eq!(s.count, 1001);
        assert_eq!(s.max_us, 10_000);
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 / 64.0;
        assert!(close(s.p50_us, 5_000), "p50 {}", s.p50_us);
        assert!(close(s.p99_us, 9_900), "p99 {}", s.p99_us);
        assert!(close(s.p999_us, 9_990), "p99.9 {}", s.p999_us);
        assert!((s.mean_us - 5_005_000.0 / 1001.0).abs() < 1e-6);
        assert_eq!(Histogram::default().summary(), Summary::default());
    }

    #[test]
    fn take_answers_each_interval_apart() {
        let h = Histogram::default();
        h.record(1_000);
        h.record(3_000);
        let first = h.take();
        assert_eq!((first.count, first.max_us), (2, 3_000));
        assert!((first.mean_us - 2_000.0).abs() < 1e-9);
        h.record(10);
        let second = h.take();
        assert_eq!((second.count, second.p99_us, second.max_us), (1, 10, 10));
        assert_eq!(h.take(), Summary::default());
    }
}
