//! A series as live views see it: its names ([`SeriesMeta`]), its latest committed value
//! ([`LiveValue`]) and, per bucket width someone watches, its bucket accumulators
//! ([`BucketTrack`]).
//!
//! Buckets are aligned on the Unix epoch like the store's (`Store::buckets`), aggregate
//! numeric values only, and close `grace` after their end. A track keeps the open buckets and
//! the last closed one: a reading for the last closed bucket revises it (sent again), a
//! reading for an older one is late (counted, left to history).

use std::sync::Arc;

use beffroi_protocol::{GatewayId, MetricName, SensorId, Timestamp, Unit, Value};

/// The names of a series, shared by every frame that carries it.
#[derive(Debug, PartialEq, Eq)]
pub struct SeriesMeta {
    /// Hub-wide id (keys the client queues).
    pub id: u32,
    /// The sensor.
    pub sensor: SensorId,
    /// The metric.
    pub metric: MetricName,
    /// The unit of its latest reading.
    pub unit: Unit,
}

/// A committed value.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveValue {
    /// When it was measured.
    pub time: Timestamp,
    /// The value.
    pub value: Value,
    /// The gateway that sent it.
    pub gateway: Arc<GatewayId>,
}

/// Aggregates of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketValue {
    /// Start, microseconds since the epoch.
    pub start_us: i64,
    /// Width, microseconds.
    pub width_us: i64,
    /// Sum of the values.
    pub sum: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Number of values.
    pub count: u64,
    /// Sent before, now with more values.
    pub revised: bool,
}

impl BucketValue {
    fn new(start_us: i64, width_us: i64) -> Self {
        Self {
            start_us,
            width_us,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            count: 0,
            revised: false,
        }
    }

    /// A bucket from stored aggregates (`avg` × `count` restores the sum).
    pub fn from_store(bucket: &beffroi_store::Bucket, width_us: i64) -> Self {
        Self {
            start_us: bucket.start.unix_micros(),
            width_us,
            sum: bucket.avg * bucket.count as f64,
            min: bucket.min,
            max: bucket.max,
            count: bucket.count,
            revised: false,
        }
    }

    fn add(&mut self, value: f64) {
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.count += 1;
    }

    /// Mean of the values.
    pub fn avg(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// End, microseconds since the epoch (exclusive).
    pub fn end_us(&self) -> i64 {
        self.start_us.saturating_add(self.width_us)
    }
}

/// The start of the bucket of `width_us` that holds `time_us`.
pub fn bucket_start(time_us: i64, width_us: i64) -> i64 {
    time_us.div_euclid(width_us) * width_us
}

/// What adding a value to a track did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Added {
    /// Into an open bucket (sent when it closes).
    Open,
    /// Into the last closed bucket, which must be sent again.
    Revised(BucketValue),
    /// Older than the last closed bucket: not tracked any more.
    Late,
}

/// The buckets of one width of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketTrack {
    width_us: i64,
    /// Open buckets, by start.
    open: Vec<BucketValue>,
    last_closed: Option<BucketValue>,
}

impl BucketTrack {
    /// An empty track of buckets `width_us` wide.
    pub fn new(width_us: i64) -> Self {
        Self {
            width_us,
            open: Vec::new(),
            last_closed: None,
        }
    }

    /// Adds a numeric value measured at `time`.
    pub fn add(&mut self, time: Timestamp, value: f64) -> Added {
        let start = bucket_start(time.unix_micros(), self.width_us);
        if let Some(closed) = &mut self.last_closed {
            if start == closed.start_us {
                closed.add(value);
                closed.revised = true;
                return Added::Revised(*closed);
            }
            if start < closed.start_us {
                return Added::Late;
            }
        }
        match self.open.iter_mut().find(|b| b.start_us == start) {
            Some(bucket) => bucket.add(value),
            None => {
                let mut bucket = BucketValue::new(start, self.width_us);
                bucket.add(value);
                self.open.push(bucket);
                self.open.sort_by_key(|b| b.start_us);
            }
        }
        Added::Open
    }

    /// Closes the buckets whose end is at least `grace_us` before `now_us`, oldest first.
    pub fn close(&mut self, now_us: i64, grace_us: i64) -> Vec<BucketValue> {
        let due = self
            .open
            .iter()
            .take_while(|b| b.end_us().saturating_add(grace_us) <= now_us)
            .count();
        let closed: Vec<BucketValue> = self.open.drain(..due).collect();
        if let Some(last) = closed.last() {
            self.last_closed = Some(*last);
        }
        closed
    }

    /// Adopts `bucket` (from the store) as the last closed one, unless a newer one is known.
    pub fn restore_closed(&mut self, bucket: BucketValue) {
        if self
            .last_closed
            .is_none_or(|known| known.start_us <= bucket.start_us)
        {
            self.last_closed = Some(bucket);
        }
    }

    /// The last closed bucket.
    pub fn last_closed(&self) -> Option<BucketValue> {
        self.last_closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    fn at(us: i64) -> Timestamp {
        Timestamp::from_unix_micros(us)
    }

    #[test]
    fn buckets_close_after_grace_and_revise_then_go_late() {
        let mut track = BucketTrack::new(MIN);
        assert_eq!(track.add(at(10), 1.0), Added::Open);
        assert_eq!(track.add(at(MIN - 1), 3.0), Added::Open);
        assert_eq!(track.add(at(MIN + 5), 10.0), Added::Open);
        let grace = 5_000_000;
        assert!(track.close(MIN + grace - 1, grace).is_empty(), "not yet");
        let closed = track.close(MIN + grace, grace);
        assert_eq!(closed.len(), 1);
        let first = closed[0];
        assert_eq!(
            (first.start_us, first.count, first.min, first.max),
            (0, 2, 1.0, 3.0)
        );
        assert_eq!(first.avg(), 2.0);
        assert!(!first.revised);
        let Added::Revised(revised) = track.add(at(20), 5.0) else {
            panic!("expected a revision")
        };
        assert_eq!(
            (revised.count, revised.max, revised.revised),
            (3, 5.0, true)
        );
        let closed = track.close(3 * MIN, grace);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].start_us, closed[0].count), (MIN, 1));
        assert_eq!(track.add(at(30), 1.0), Added::Late);
        assert_eq!(track.last_closed().map(|b| b.start_us), Some(MIN));
    }

    #[test]
    fn negative_times_align_like_the_store() {
        assert_eq!(bucket_start(-1, MIN), -MIN);
        assert_eq!(bucket_start(0, MIN), 0);
        assert_eq!(bucket_start(MIN + 1, MIN), MIN);
    }

    #[test]
    fn restored_buckets_never_replace_newer_ones() {
        let mut track = BucketTrack::new(MIN);
        track.add(at(MIN + 1), 1.0);
        track.close(3 * MIN, 0);
        let mut old = BucketValue::new(0, MIN);
        old.add(4.0);
        track.restore_closed(old);
        assert_eq!(track.last_closed().map(|b| b.start_us), Some(MIN));
        let mut newer = BucketValue::new(2 * MIN, MIN);
        newer.add(4.0);
        track.restore_closed(newer);
        assert_eq!(track.last_closed().map(|b| b.start_us), Some(2 * MIN));
    }
}
