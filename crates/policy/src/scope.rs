//! Scopes: the metrics, zones, sensors and tags a permit covers, with "all" written
//! explicitly ([`Selection::All`]) so that no consumer can mistake an empty list for "all"
//! or for "none".
//!
//! Intersections are exact for metrics, zones and sensors. Tags and territories are "any of"
//! sets (a sensor is in when it carries at least one listed tag, a reading when its sensor
//! stood in one listed territory), so the intersection of two such lists is conservative: a sensor tagged both `a` and `b` is excluded from `{a} ∩ {b} = {}`. It never
//! lets through a sensor that either side excludes.

use std::collections::BTreeSet;
use std::fmt;

use beffroi_protocol::SensorId;
use serde::Serialize;

use crate::ids::{SensorTag, ZoneId};
use crate::pattern::{intersect_sets, MetricPattern};
use crate::reading::ReadingFacts;
use crate::target::Target;

/// All items, or only these (never an empty set).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection<T: Ord> {
    /// No restriction.
    All,
    /// Only these (non-empty).
    Only(BTreeSet<T>),
}

impl<T: Ord + Clone> Selection<T> {
    /// `All` for an empty list (the agreement and request convention), else `Only`.
    pub fn from_list(items: &BTreeSet<T>) -> Self {
        if items.is_empty() {
            Selection::All
        } else {
            Selection::Only(items.clone())
        }
    }

    /// Whether `item` is selected.
    pub fn contains(&self, item: &T) -> bool {
        match self {
            Selection::All => true,
            Selection::Only(items) => items.contains(item),
        }
    }

    /// Whether one of `items` is selected (`All` selects even an empty list).
    pub fn contains_any(&self, items: &[T]) -> bool {
        match self {
            Selection::All => true,
            Selection::Only(set) => items.iter().any(|item| set.contains(item)),
        }
    }

    /// The items selected by both; `None` when there are none.
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        match (self, other) {
            (Selection::All, any) | (any, Selection::All) => Some(any.clone()),
            (Selection::Only(a), Selection::Only(b)) => {
                let both: BTreeSet<T> = a.intersection(b).cloned().collect();
                (!both.is_empty()).then_some(Selection::Only(both))
            }
        }
    }
}

/// A dimension of a scope, named when an intersection comes out empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dimension {
    Metrics,
    Zones,
    Sensors,
    Tags,
    Territories,
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dimension::Metrics => "metrics",
            Dimension::Zones => "zones",
            Dimension::Sensors => "sensors",
            Dimension::Tags => "tags",
            Dimension::Territories => "territories",
        })
    }
}

/// Which readings a permit, an agreement or a prohibition covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Scope {
    /// Metric patterns (never empty).
    pub metrics: BTreeSet<MetricPattern>,
    /// Zones (`All` includes sensors without a zone).
    pub zones: Selection<ZoneId>,
    /// Sensors.
    pub sensors: Selection<SensorId>,
    /// Tags: a sensor is in when it carries one of them.
    pub tags: Selection<SensorTag>,
    /// Territories (zones of the requester): a reading is in when its sensor stood inside
    /// one of them when it was measured.
    pub territories: Selection<ZoneId>,
}

impl Scope {
    /// The scope of a target (empty lists mean all).
    pub fn of_target(target: &Target) -> Self {
        Self {
            metrics: target.metrics.clone(),
            zones: Selection::from_list(&target.zones),
            sensors: Selection::from_list(&target.sensors),
            tags: Selection::from_list(&target.tags),
            territories: Selection::from_list(&target.territories),
        }
    }

    /// The readings in both scopes, or the first dimension where they share nothing.
    pub(crate) fn intersect(&self, other: &Scope) -> Result<Scope, Dimension> {
        let metrics = intersect_sets(&self.metrics, &other.metrics);
        if metrics.is_empty() {
            return Err(Dimension::Metrics);
        }
        Ok(Scope {
            metrics,
            zones: self.zones.intersect(&other.zones).ok_or(Dimension::Zones)?,
            sensors: self
                .sensors
                .intersect(&other.sensors)
                .ok_or(Dimension::Sensors)?,
            tags: self.tags.intersect(&other.tags).ok_or(Dimension::Tags)?,
            territories: self
                .territories
                .intersect(&other.territories)
                .ok_or(Dimension::Territories)?,
        })
    }

    /// Whether some reading may be in both scopes. Each dimension is compared on its own
    /// (the engine does not know which sensor is in which zone), so this may answer `true`
    /// for scopes that are in fact disjoint: it errs towards denial.
    pub fn overlaps(&self, other: &Scope) -> bool {
        self.intersect(other).is_ok()
    }

    /// Whether the reading is in scope (metric, zone, sensor, tags and territory; not time).
    pub fn admits(&self, reading: &ReadingFacts<'_>) -> bool {
        self.metrics.iter().any(|p| p.matches(reading.metric))
            && match &self.zones {
                Selection::All => true,
                Selection::Only(zones) => reading.zone.is_some_and(|z| zones.contains(z)),
            }
            && self.sensors.contains(reading.sensor)
            && self.tags.contains_any(reading.tags)
            && self.territories.contains_any(reading.territories)
    }
}
