//! The soak's verdicts, as pure functions of the samples: memory flat, no growing queue, rate
//! held, clients kept. Trends are least-squares lines over the second half of the run (the
//! first half holds start-up: caches filling, the allocator finding its size).
//!
//! ```text
//! memory flat    : RSS slope (2nd half) ≤ RSS_SLOPE_MIB_PER_H  and  max − min after warm-up
//!                  ≤ RSS_BAND_MIB
//! queue bounded  : max after warm-up ≤ its bound (a capacity, or one second of load)
//! queue growing  : slope significantly > 0 (slope > 2 standard errors) AND the fitted line
//!                  reaches the bound within HORIZON_H hours from the last sample
//! rate held      : every interval after warm-up commits within RATE_TOLERANCE of the target
//! ```
//! Why these thresholds:
//! - `RSS_SLOPE_MIB_PER_H` = 10 MiB/h, i.e. 240 MiB a day: a leak at that rate would take a
//!   small node out within days and must fail. Smaller slopes are not told apart from the
//!   allocator's jitter (a few MiB up and down) over the 15 minutes a 30-minute run fits the
//!   line on; the standard error is printed beside the slope, and a longer `--minutes` tightens
//!   it.
//! - `RSS_BAND_MIB` = 32 MiB: the platform's bounded buffers (broker segments, ingest inbound
//!   channel, per-client live queues, connection pools) are sized once warm; a band wider than
//!   that after warm-up is growth, not jitter.
//! - A queue's slope alone is noise at a 10 s sampling (a gauge read between two commits
//!   differs from one read during one); it fails only when the growth is statistically clear
//!   *and* would fill the queue within a day.
//! - `RATE_TOLERANCE` = 5 %: the feeds make up late ticks at once, so an interval's offered
//!   load is exact to a batch per gateway; commits fall on interval edges by a few batches
//!   (< 1 % at 10 s), so a 5 % shortfall is the pipeline falling behind.

/// Largest RSS slope over the second half that still counts as flat, MiB/h.
pub(crate) const RSS_SLOPE_MIB_PER_H: f64 = 10.0;
/// Largest RSS spread (max − min) after warm-up, MiB.
pub(crate) const RSS_BAND_MIB: f64 = 32.0;
/// How far a growing queue's line is extrapolated before it fails, hours.
pub(crate) const HORIZON_H: f64 = 24.0;
/// Largest shortfall or excess of an interval's committed rate, as a share of the target.
pub(crate) const RATE_TOLERANCE: f64 = 0.05;

/// A least-squares line through points (x, y).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fit {
    /// dy/dx.
    pub slope: f64,
    /// Standard error of the slope (0 with fewer than 3 points).
    pub slope_se: f64,
    /// y at x = 0.
    pub intercept: f64,
}

impl Fit {
    /// The line through `points`; `None` with fewer than 2 points or a single x.
    pub(crate) fn of(points: &[(f64, f64)]) -> Option<Self> {
        let n = points.len();
        if n < 2 {
            return None;
        }
        let count = n as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / count;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / count;
        let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        if sxx <= 0.0 {
            return None;
        }
        let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
        let slope = sxy / sxx;
        let intercept = mean_y - slope * mean_x;
        let slope_se = if n > 2 {
            let residuals: f64 = points
                .iter()
                .map(|p| (p.1 - (intercept + slope * p.0)).powi(2))
                .sum();
            (residuals / (count - 2.0) / sxx).sqrt()
        } else {
            0.0
        };
        Some(Self {
            slope,
            slope_se,
            intercept,
        })
    }
}

/// The points of the second half of a run of `seconds` (x in s).
pub(crate) fn second_half(points: &[(f64, f64)], seconds: f64) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|p| p.0 >= seconds / 2.0)
        .collect()
}

/// The points after the warm-up.
pub(crate) fn after(points: &[(f64, f64)], warmup_s: f64) -> Vec<(f64, f64)> {
    points.iter().copied().filter(|p| p.0 >= warmup_s).collect()
}

/// Memory over the run, judged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemoryVerdict {
    /// The line over the second half, MiB per hour (slope and its standard error).
    pub slope_mib_per_h: Option<(f64, f64)>,
    /// max − min after warm-up, MiB.
    pub band_mib: f64,
    /// First sample after warm-up, MiB.
    pub first_mib: f64,
    /// Last sample, MiB.
    pub last_mib: f64,
}

impl MemoryVerdict {
    /// Judges RSS samples `(s, MiB)` of a run of `seconds`.
    pub(crate) fn of(points: &[(f64, f64)], seconds: f64, warmup_s: f64) -> Self {
        let slope_mib_per_h = Fit::of(&second_half(points, seconds))
            .map(|fit| (fit.slope * 3600.0, fit.slope_se * 3600.0));
        let warm = after(points, warmup_s);
        let (min, max) = warm
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p.1), hi.max(p.1))
            });
        Self {
            slope_mib_per_h,
            band_mib: if warm.is_empty() { 0.0 } else { max - min },
            first_mib: warm.first().map_or(0.0, |p| p.1),
            last_mib: points.last().map_or(0.0, |p| p.1),
        }
    }

    /// Slope and band within their thresholds.
    pub(crate) fn flat(&self) -> bool {
        self.slope_mib_per_h
            .is_some_and(|(slope, _)| slope <= RSS_SLOPE_MIB_PER_H)
            && self.band_mib <= RSS_BAND_MIB
    }
}

/// A queue over the run, judged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueVerdict {
    /// The bound it is judged against.
    pub bound: f64,
    /// Largest sample after warm-up.
    pub max: f64,
    /// Last sample.
    pub last: f64,
    /// The line over the second half, per hour (slope and its standard error).
    pub slope_per_h: Option<(f64, f64)>,
}

impl QueueVerdict {
    /// Judges samples `(s, depth)` of a run of `seconds` against `bound`.
    pub(crate) fn of(points: &[(f64, f64)], seconds: f64, warmup_s: f64, bound: f64) -> Self {
        Self {
            bound,
            max: after(points, warmup_s)
                .iter()
                .map(|p| p.1)
                .fold(0.0, f64::max),
            last: points.last().map_or(0.0, |p| p.1),
            slope_per_h: Fit::of(&second_half(points, seconds))
                .map(|fit| (fit.slope * 3600.0, fit.slope_se * 3600.0)),
        }
    }

    /// Never past its bound after warm-up.
    pub(crate) fn bounded(&self) -> bool {
        self.max <= self.bound
    }

    /// Growing significantly, fast enough to reach its bound within [`HORIZON_H`].
    pub(crate) fn growing(&self) -> bool {
        self.slope_per_h.is_some_and(|(slope, se)| {
            slope > 2.0 * se && slope > 0.0 && self.last + slope * HORIZON_H >= self.bound
        })
    }

    /// Bounded and not growing.
    pub(crate) fn ok(&self) -> bool {
        self.bounded() && !self.growing()
    }
}

/// The committed rate per interval, judged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateVerdict {
    /// The target, readings/s.
    pub target: f64,
    /// Slowest interval after warm-up.
    pub min: f64,
    /// Fastest interval after warm-up.
    pub max: f64,
    /// Mean over the intervals after warm-up.
    pub mean: f64,
    /// Intervals after warm-up outside the tolerance.
    pub outside: usize,
    /// Intervals after warm-up.
    pub intervals: usize,
}

impl RateVerdict {
    /// Judges per-interval rates `(s, readings/s)` against `target`.
    pub(crate) fn of(points: &[(f64, f64)], warmup_s: f64, target: f64) -> Self {
        let warm = after(points, warmup_s);
        let rates: Vec<f64> = warm.iter().map(|p| p.1).collect();
        let outside = rates
            .iter()
            .filter(|&&r| (r - target).abs() > target * RATE_TOLERANCE)
            .count();
        Self {
            target,
            min: rates.iter().copied().fold(f64::INFINITY, f64::min),
            max: rates.iter().copied().fold(0.0, f64::max),
            mean: rates.iter().sum::<f64>() / rates.len().max(1) as f64,
            outside,
            intervals: rates.len(),
        }
    }

    /// Every interval within the tolerance (and at least one interval).
    pub(crate) fn held(&self) -> bool {
        self.intervals > 0 && self.outside == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_line_and_its_error() {
        let exact: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i), 3.0 + 2.0 * f64::from(i)))
            .collect();
        let fit = Fit::of(&exact).unwrap();
        assert!((fit.slope - 2.0).abs() < 1e-12 && fit.slope_se < 1e-9);
        assert!((fit.intercept - 3.0).abs() < 1e-9);
        let noisy: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i), if i % 2 == 0 { 1.0 } else { -1.0 }))
            .collect();
        let fit = Fit::of(&noisy).unwrap();
        assert!(fit.slope.abs() < 2.0 * fit.slope_se, "{fit:?}");
        assert_eq!(Fit::of(&[(1.0, 1.0)]), None);
        assert_eq!(Fit::of(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn memory_flat_and_leaking() {
        // 30 min, every 10 s: flat around 100 MiB with ±1 MiB of jitter.
        let flat: Vec<(f64, f64)> = (0..180)
            .map(|i| (f64::from(i) * 10.0, 100.0 + f64::from(i % 3) - 1.0))
            .collect();
        let v = MemoryVerdict::of(&flat, 1800.0, 60.0);
        assert!(v.flat(), "{v:?}");
        assert!((v.band_mib - 2.0).abs() < 1e-9);
        // 20 MiB/h.
        let leak: Vec<(f64, f64)> = (0..180)
            .map(|i| {
                (
                    f64::from(i) * 10.0,
                    100.0 + f64::from(i) * 10.0 * 20.0 / 3600.0,
                )
            })
            .collect();
        let v = MemoryVerdict::of(&leak, 1800.0, 60.0);
        assert!(!v.flat());
        assert!((v.slope_mib_per_h.unwrap().0 - 20.0).abs() < 1e-6);
    }

    #[test]
    fn queues_judged_on_bound_and_clear_growth() {
        let noisy: Vec<(f64, f64)> = (0..180)
            .map(|i| (f64::from(i) * 10.0, f64::from(i % 5)))
            .collect();
        let v = QueueVerdict::of(&noisy, 1800.0, 60.0, 200.0);
        assert!(v.ok(), "{v:?}");
        let growing: Vec<(f64, f64)> = (0..180)
            .map(|i| (f64::from(i) * 10.0, f64::from(i) * 0.5))
            .collect();
        let v = QueueVerdict::of(&growing, 1800.0, 60.0, 200.0);
        assert!(v.bounded() && v.growing() && !v.ok(), "{v:?}");
        let over = [(0.0, 0.0), (100.0, 300.0), (200.0, 0.0)];
        assert!(!QueueVerdict::of(&over, 200.0, 10.0, 200.0).ok());
    }

    #[test]
    fn rate_held_within_tolerance_after_warm_up() {
        let points = [(10.0, 5_000.0), (20.0, 9_900.0), (30.0, 10_200.0)];
        let v = RateVerdict::of(&points, 15.0, 10_000.0);
        assert!(v.held() && v.intervals == 2 && (v.mean - 10_050.0).abs() < 1e-9);
        assert!(!RateVerdict::of(&points, 0.0, 10_000.0).held());
        assert!(!RateVerdict::of(&[], 0.0, 10_000.0).held());
    }
}
