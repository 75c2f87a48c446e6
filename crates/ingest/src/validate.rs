//! Checks on the content of an authentic batch: every reading's time must lie in
//! `[now − max_age, now + max_future_skew]`.
//!
//! A batch is signed as a whole, so it is accepted or quarantined as a whole: storing part of
//! it would leave rows whose batch signature can no longer be verified. Values, sizes and
//! identifiers were already checked by the protocol decoder.

use std::time::Duration;

use beffroi_protocol::{Batch, Timestamp};
use beffroi_store::QuarantineReason;

/// The accepted window of reading times.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeWindow {
    /// Oldest accepted time.
    pub earliest: Timestamp,
    /// Latest accepted time.
    pub latest: Timestamp,
}

impl TimeWindow {
    /// The window around `now`.
    pub(crate) fn around(now: Timestamp, max_age: Duration, max_future_skew: Duration) -> Self {
        let age = i64::try_from(max_age.as_micros()).unwrap_or(i64::MAX);
        Self {
            earliest: Timestamp::from_unix_micros(now.unix_micros().saturating_sub(age)),
            latest: now.saturating_add(max_future_skew),
        }
    }

    /// `Ok` when every reading is inside the window; otherwise the reason and a detail naming
    /// the first offending reading.
    pub(crate) fn check(&self, batch: &Batch) -> Result<(), (QuarantineReason, String)> {
        for (index, reading) in batch.readings().iter().enumerate() {
            if reading.time < self.earliest {
                return Err((
                    QuarantineReason::Stale,
                    format!(
                        "reading {index} at {} is older than {}",
                        reading.time, self.earliest
                    ),
                ));
            }
            if reading.time > self.latest {
                return Err((
                    QuarantineReason::Future,
                    format!(
                        "reading {index} at {} is later than {}",
                        reading.time, self.latest
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beffroi_protocol::{GatewayId, MetricName, Reading, SensorId, TenantId, Unit, Value};

    fn batch_at(times: &[i64]) -> Batch {
        let readings = times
            .iter()
            .map(|&t| Reading {
                sensor: SensorId::new("s").unwrap(),
                metric: MetricName::new("air.pm25").unwrap(),
                unit: Unit::new("ug/m3").unwrap(),
                time: Timestamp::from_unix_micros(t),
                value: Value::Number(1.0),
            })
            .collect();
        Batch::new(
            TenantId::new("t").unwrap(),
            GatewayId::new("g").unwrap(),
            1,
            readings,
        )
        .unwrap()
    }

    #[test]
    fn window_edges() {
        let now = Timestamp::from_unix_micros(1_000_000_000_000);
        let window = TimeWindow::around(now, Duration::from_secs(10), Duration::from_secs(1));
        let ok = [
            now.unix_micros() - 10_000_000,
            now.unix_micros() + 1_000_000,
        ];
        assert!(window.check(&batch_at(&ok)).is_ok());
        let stale = window.check(&batch_at(&[
            now.unix_micros(),
            now.unix_micros() - 10_000_001,
        ]));
        assert_eq!(stale.map_err(|e| e.0), Err(QuarantineReason::Stale));
        let future = window.check(&batch_at(&[now.unix_micros() + 1_000_001]));
        assert_eq!(future.map_err(|e| e.0), Err(QuarantineReason::Future));
    }
}
