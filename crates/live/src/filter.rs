//! Readings filters: a [`FilterSpec`] as sent, validated and compiled into a [`Filter`] that
//! decides whether a series (sensor, metric) belongs to a view.
//!
//! A series matches when it matches every field the filter gives; within a list, any entry.
//! Zones and the bounding box use the sensor's registry entry ([`SensorInfo`]); a sensor the
//! registry does not know (auto-registered, not yet reloaded) has no zone and no position, so
//! it matches only filters without zones and bbox.

use std::collections::HashSet;

use beffroi_policy::SensorTag;
use beffroi_protocol::{MetricName, SensorId, Timestamp};
use beffroi_store::{Sensor, ZoneId};

use crate::protocol::{FilterSpec, MAX_FILTER_LIST};

/// What the registry says about a sensor, as far as views care.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SensorInfo {
    /// The zone it is registered in.
    pub zone: Option<ZoneId>,
    /// Its position, `(lon, lat)`.
    pub position: Option<(f64, f64)>,
    /// Its tags (sharing agreements may target them).
    pub tags: Vec<SensorTag>,
    /// Since when it stands at `position` (pooling agreements place readings where their
    /// sensor stood when measured).
    pub placed_since: Option<Timestamp>,
}

impl SensorInfo {
    /// Its position when a reading measured at `time` was taken, as far as the current
    /// entry tells: unknown for a time before its last move.
    pub fn position_at(&self, time: Timestamp) -> Option<(f64, f64)> {
        self.position
            .filter(|_| self.placed_since.is_none_or(|since| since <= time))
    }
}

impl From<&Sensor> for SensorInfo {
    fn from(sensor: &Sensor) -> Self {
        Self {
            zone: sensor.zone.clone(),
            position: sensor.lon.zip(sensor.lat),
            tags: sensor.tags.clone(),
            placed_since: sensor.placed_at,
        }
    }
}

/// A metric name or a `prefix.*` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MetricPattern {
    Exact(MetricName),
    /// Matches names starting with this prefix followed by a dot.
    Prefix(String),
}

impl MetricPattern {
    fn parse(text: &str) -> Result<Self, String> {
        match text.strip_suffix(".*") {
            Some(prefix) => {
                // A valid prefix is itself a valid metric name.
                MetricName::new(prefix).map_err(|e| format!("filter.metrics: {e}"))?;
                Ok(MetricPattern::Prefix(format!("{prefix}.")))
            }
            None => MetricName::new(text)
                .map(MetricPattern::Exact)
                .map_err(|e| format!("filter.metrics: {e}")),
        }
    }

    fn matches(&self, metric: &str) -> bool {
        match self {
            MetricPattern::Exact(name) => name.as_str() == metric,
            MetricPattern::Prefix(prefix) => metric.starts_with(prefix.as_str()),
        }
    }
}

/// A validated readings filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    metrics: Vec<MetricPattern>,
    zones: HashSet<ZoneId>,
    sensors: HashSet<SensorId>,
    /// `[west, south, east, north]`.
    bbox: Option<[f64; 4]>,
}

impl Filter {
    /// Validates `spec`; the error names the field and the reason.
    pub fn compile(spec: &FilterSpec) -> Result<Self, String> {
        for (field, len) in [
            ("filter.metrics", spec.metrics.len()),
            ("filter.zones", spec.zones.len()),
            ("filter.sensors", spec.sensors.len()),
        ] {
            if len > MAX_FILTER_LIST {
                return Err(format!("{field}: at most {MAX_FILTER_LIST} entries"));
            }
        }
        let metrics = spec
            .metrics
            .iter()
            .map(|m| MetricPattern::parse(m))
            .collect::<Result<_, _>>()?;
        let zones = spec
            .zones
            .iter()
            .map(|z| ZoneId::new(z.as_str()).map_err(|e| format!("filter.zones: {e}")))
            .collect::<Result<_, _>>()?;
        let sensors = spec
            .sensors
            .iter()
            .map(|s| SensorId::new(s.as_str()).map_err(|e| format!("filter.sensors: {e}")))
            .collect::<Result<_, _>>()?;
        if let Some([west, south, east, north]) = spec.bbox {
            if ![west, south, east, north].iter().all(|v| v.is_finite()) {
                return Err("filter.bbox: coordinates must be finite numbers".into());
            }
            if !(-180.0..=180.0).contains(&west) || !(-180.0..=180.0).contains(&east) {
                return Err("filter.bbox: longitudes must be within -180..=180".into());
            }
            if !(-90.0..=90.0).contains(&south) || !(-90.0..=90.0).contains(&north) {
                return Err("filter.bbox: latitudes must be within -90..=90".into());
            }
            if west > east || south > north {
                return Err("filter.bbox: expected [west, south, east, north] with west ≤ east and south ≤ north".into());
            }
        }
        Ok(Self {
            metrics,
            zones,
            sensors,
            bbox: spec.bbox,
        })
    }

    /// Whether the series `(sensor, metric)` of a sensor described by `info` is in the view.
    pub fn matches(&self, sensor: &str, metric: &str, info: &SensorInfo) -> bool {
        if !self.metrics.is_empty() && !self.metrics.iter().any(|m| m.matches(metric)) {
            return false;
        }
        if !self.sensors.is_empty() && !self.sensors.iter().any(|s| s.as_str() == sensor) {
            return false;
        }
        if !self.zones.is_empty() && !info.zone.as_ref().is_some_and(|z| self.zones.contains(z)) {
            return false;
        }
        match (self.bbox, info.position) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some([west, south, east, north]), Some((lon, lat))) => {
                (west..=east).contains(&lon) && (south..=north).contains(&lat)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(json: &str) -> Result<Filter, String> {
        let spec: FilterSpec = serde_json::from_str(json).expect("parses");
        Filter::compile(&spec)
    }

    fn at(zone: Option<&str>, position: Option<(f64, f64)>) -> SensorInfo {
        SensorInfo {
            zone: zone.map(|z| ZoneId::new(z).expect("valid")),
            position,
            tags: Vec::new(),
            placed_since: None,
        }
    }

    #[test]
    fn every_given_field_must_match() {
        let f = filter(
            r#"{"metrics":["air.*","noise.laeq"],"zones":["centre"],"bbox":[4.8,45.7,4.9,45.8]}"#,
        )
        .expect("valid");
        let inside = at(Some("centre"), Some((4.85, 45.75)));
        assert!(f.matches("s1", "air.pm25", &inside));
        assert!(f.matches("s1", "noise.laeq", &inside));
        assert!(!f.matches("s1", "noise.lmax", &inside), "not in the list");
        assert!(
            !f.matches("s1", "airx.pm25", &inside),
            "prefix stops at the dot"
        );
        assert!(!f.matches("s1", "air.pm25", &at(Some("north"), Some((4.85, 45.75)))));
        assert!(!f.matches("s1", "air.pm25", &at(Some("centre"), Some((4.95, 45.75)))));
        assert!(
            !f.matches("s1", "air.pm25", &at(Some("centre"), None)),
            "no position"
        );
        assert!(!f.matches("s1", "air.pm25", &SensorInfo::default()));
    }

    #[test]
    fn empty_filter_matches_everything_and_sensors_narrow() {
        let all = filter("{}").expect("valid");
        assert!(all.matches("s1", "air.pm25", &SensorInfo::default()));
        let one = filter(r#"{"sensors":["s2"]}"#).expect("valid");
        assert!(one.matches("s2", "x", &SensorInfo::default()));
        assert!(!one.matches("s1", "x", &SensorInfo::default()));
    }

    #[test]
    fn invalid_fields_are_named() {
        for (json, field) in [
            (r#"{"metrics":["Air"]}"#, "filter.metrics"),
            (r#"{"metrics":[".*"]}"#, "filter.metrics"),
            (r#"{"zones":["A B"]}"#, "filter.zones"),
            (r#"{"sensors":[""]}"#, "filter.sensors"),
            (r#"{"bbox":[5,45,4,46]}"#, "filter.bbox"),
            (r#"{"bbox":[4,95,5,96]}"#, "filter.bbox"),
            (r#"{"bbox":[-190,45,5,46]}"#, "filter.bbox"),
        ] {
            let err = filter(json).expect_err(json);
            assert!(err.starts_with(field), "{json}: {err}");
        }
        let many = format!(r#"{{"sensors":[{}]}}"#, vec!["\"s\""; 1001].join(","));
        assert!(filter(&many).expect_err("too many").contains("at most"));
    }
}
