//! What an agreement (or one of its prohibitions) is about: which metrics, zones, tagged
//! sensors and sensors of the grantor, and for a pooling agreement which territories of the
//! grantee its sensors must stand in.

use std::collections::BTreeSet;

use beffroi_protocol::SensorId;
use serde::{Deserialize, Serialize};

use crate::agreement::UnknownTerms;
use crate::ids::{SensorTag, ZoneId};
use crate::pattern::MetricPattern;

/// A slice of the grantor's readings. Every non-empty list narrows the slice; an empty list
/// of zones, tags or sensors means "any". `metrics` must not be empty (write `*` for all).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Target {
    /// Metric patterns (`air.pm25`, `air.*`, `*`).
    pub metrics: BTreeSet<MetricPattern>,
    /// Zones of the grantor; empty: every zone, and sensors without a zone.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub zones: BTreeSet<ZoneId>,
    /// Sensor tags: a sensor is in the target if it carries at least one; empty: any sensor.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub tags: BTreeSet<SensorTag>,
    /// Explicit sensors; empty: any sensor.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub sensors: BTreeSet<SensorId>,
    /// Pooling agreements only: zones of the grantee (a commune's boundary). A reading is in
    /// the target when its sensor stood inside one of them when it was measured; empty: any
    /// position.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub territories: BTreeSet<ZoneId>,
    /// Keys this build does not know (see [`UnknownTerms`]).
    #[serde(flatten)]
    pub unknown_terms: UnknownTerms,
}

impl Target {
    /// A target of these metric patterns, with no other restriction.
    pub fn of_metrics(patterns: impl IntoIterator<Item = MetricPattern>) -> Self {
        Self {
            metrics: patterns.into_iter().collect(),
            ..Self::default()
        }
    }
}
