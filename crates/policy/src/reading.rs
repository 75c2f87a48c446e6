//! What the per-reading predicate needs to know about one reading: the live path builds it
//! for every value it is about to push, the store for every row it is about to return.

use beffroi_protocol::{MetricName, SensorId, Timestamp};

use crate::ids::{SensorTag, ZoneId};

/// One reading, as seen by [`Scope::admits`](crate::Scope::admits) and
/// [`Transforms::admits`](crate::Transforms::admits). Borrowed: building it costs nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadingFacts<'a> {
    /// Its metric.
    pub metric: &'a MetricName,
    /// Its sensor (the real id, never a pseudonym).
    pub sensor: &'a SensorId,
    /// The sensor's zone, if it has one.
    pub zone: Option<&'a ZoneId>,
    /// The sensor's tags.
    pub tags: &'a [SensorTag],
    /// The requester's zones the sensor stood inside when the reading was measured (only
    /// pooling agreements with territories ask; empty when the position is unknown).
    pub territories: &'a [ZoneId],
    /// When it was measured.
    pub time: Timestamp,
}
