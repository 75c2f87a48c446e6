//! The ingest's own figure for the middle of the path: `beffroi_ingest_commit_latency_seconds`
//! (time from the ingest's receipt of a batch to its commit), read from the platform's
//! Prometheus text at both ends of the window. Its buckets are coarse (0.5, 1, 2.5, 5, 10,
//! 25 … ms), so percentiles are interpolated inside a bucket the way Prometheus's
//! `histogram_quantile` does; the mean is exact.

use beffroi_telemetry::Metrics;

const NAME: &str = "beffroi_ingest_commit_latency_seconds";

/// The histogram at one instant: cumulative counts per upper bound (s), sum (s), count.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CommitLatency {
    buckets: Vec<(f64, u64)>,
    sum_s: f64,
    count: u64,
}

impl CommitLatency {
    /// Reads it from the platform's metrics now.
    pub(crate) fn read(metrics: &Metrics) -> Self {
        Self::parse(&metrics.render())
    }

    /// Parses the histogram's lines out of Prometheus text.
    fn parse(text: &str) -> Self {
        let mut out = Self::default();
        let bucket_prefix = format!("{NAME}_bucket{{le=\"");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(&bucket_prefix) {
                let Some((bound, count)) = rest.split_once("\"} ") else {
                    continue;
                };
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().unwrap_or(f64::NAN)
                };
                if let Ok(count) = count.trim().parse() {
                    out.buckets.push((bound, count));
                }
            } else if let Some(sum) = line.strip_prefix(&format!("{NAME}_sum ")) {
                out.sum_s = sum.trim().parse().unwrap_or(0.0);
            } else if let Some(count) = line.strip_prefix(&format!("{NAME}_count ")) {
                out.count = count.trim().parse().unwrap_or(0);
            }
        }
        out
    }

    /// What was observed between `earlier` and `self`.
    pub(crate) fn since(&self, earlier: &Self) -> Self {
        Self {
            buckets: self
                .buckets
                .iter()
                .map(|&(bound, count)| {
                    let before = earlier
                        .buckets
                        .iter()
                        .find(|(b, _)| b.to_bits() == bound.to_bits())
                        .map_or(0, |(_, c)| *c);
                    (bound, count.saturating_sub(before))
                })
                .collect(),
            sum_s: self.sum_s - earlier.sum_s,
            count: self.count.saturating_sub(earlier.count),
        }
    }

    /// Batches observed.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Mean, ms.
    pub(crate) fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_s / self.count as f64 * 1000.0)
    }

    /// Quantile `q`, ms, interpolated inside its bucket (`None` without observations or when
    /// it falls in the open-ended bucket).
    pub(crate) fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let (mut lower, mut below) = (0.0, 0u64);
        for &(bound, cumulative) in &self.buckets {
            if cumulative as f64 >= rank {
                if bound.is_infinite() {
                    return None;
                }
                let inside = (cumulative - below) as f64;
                let share = if inside > 0.0 {
                    (rank - below as f64) / inside
                } else {
                    1.0
                };
                return Some((lower + (bound - lower) * share) * 1000.0);
            }
            (lower, below) = (bound, cumulative);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(counts: [u64; 3], sum: f64) -> String {
        format!(
            "# TYPE {NAME} histogram\n{NAME}_bucket{{le=\"0.001\"}} {}\n{NAME}_bucket{{le=\"0.005\"}} {}\n\
             {NAME}_bucket{{le=\"+Inf\"}} {}\n{NAME}_sum {sum}\n{NAME}_count {}\n",
            counts[0], counts[1], counts[2], counts[2]
        )
    }

    #[test]
    fn differences_and_interpolated_quantiles() {
        let before = CommitLatency::parse(&text([10, 10, 10], 0.005));
        let after = CommitLatency::parse(&text([10, 110, 110], 0.305));
        let window = after.since(&before);
        assert_eq!(window.count(), 100);
        assert!((window.mean_ms().unwrap_or(0.0) - 3.0).abs() < 1e-9);
        // All 100 fell in (1 ms, 5 ms]: the median is interpolated halfway.
        assert!((window.quantile_ms(0.5).unwrap_or(0.0) - 3.0).abs() < 1e-9);
        assert!((window.quantile_ms(0.99).unwrap_or(0.0) - 4.96).abs() < 1e-9);
        let tail = CommitLatency::parse(&text([0, 0, 5], 1.0));
        assert_eq!(tail.quantile_ms(0.5), None, "open-ended bucket");
        assert_eq!(CommitLatency::default().quantile_ms(0.5), None);
    }
}
