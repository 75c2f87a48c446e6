//! Metric patterns: an exact metric name (`air.pm25`), every metric under a dotted prefix
//! (`air.*`: `air.pm25`, `air.no2.hourly`, but neither `air` itself nor `airport.x`), or
//! every metric (`*`).
//!
//! Prefix sets are nested or disjoint, so the intersection of two patterns is again one
//! pattern (or nothing): scopes intersect exactly, with no approximation.

use std::collections::BTreeSet;
use std::fmt;

use beffroi_protocol::MetricName;

use crate::error::{excerpt, Error, Result};
use crate::ids::protocol_reason;

/// Which metrics a target or a request covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricPattern {
    /// Every metric (`*`).
    Any,
    /// Every metric strictly under this dotted prefix (`air.*`).
    Prefix(MetricName),
    /// This metric only.
    Exact(MetricName),
}

/// Whether `name` lies strictly under the dotted `prefix`.
fn under(prefix: &str, name: &str) -> bool {
    name.len() > prefix.len() && name.starts_with(prefix) && name.as_bytes()[prefix.len()] == b'.'
}

impl MetricPattern {
    /// Whether `metric` is covered.
    pub fn matches(&self, metric: &MetricName) -> bool {
        match self {
            MetricPattern::Any => true,
            MetricPattern::Prefix(prefix) => under(prefix.as_str(), metric.as_str()),
            MetricPattern::Exact(name) => name == metric,
        }
    }

    /// The metrics covered by both patterns, if any.
    pub fn intersect(&self, other: &MetricPattern) -> Option<MetricPattern> {
        use MetricPattern::{Any, Exact, Prefix};
        match (self, other) {
            (Any, pattern) | (pattern, Any) => Some(pattern.clone()),
            (Exact(a), Exact(b)) => (a == b).then(|| Exact(a.clone())),
            (Exact(name), prefix @ Prefix(_)) | (prefix @ Prefix(_), Exact(name)) => {
                prefix.matches(name).then(|| Exact(name.clone()))
            }
            (Prefix(a), Prefix(b)) => {
                if a == b || under(a.as_str(), b.as_str()) {
                    Some(Prefix(b.clone()))
                } else if under(b.as_str(), a.as_str()) {
                    Some(Prefix(a.clone()))
                } else {
                    None
                }
            }
        }
    }

    /// Whether every metric `other` covers is covered by `self`.
    pub fn covers(&self, other: &MetricPattern) -> bool {
        self.intersect(other).as_ref() == Some(other)
    }
}

/// The intersection of two pattern sets, without patterns covered by another one; empty
/// when they share no metric.
pub(crate) fn intersect_sets(
    a: &BTreeSet<MetricPattern>,
    b: &BTreeSet<MetricPattern>,
) -> BTreeSet<MetricPattern> {
    let all: BTreeSet<MetricPattern> = a
        .iter()
        .flat_map(|x| b.iter().filter_map(move |y| x.intersect(y)))
        .collect();
    all.iter()
        .filter(|p| !all.iter().any(|q| q != *p && q.covers(p)))
        .cloned()
        .collect()
}

impl fmt::Display for MetricPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricPattern::Any => f.write_str("*"),
            MetricPattern::Prefix(prefix) => write!(f, "{prefix}.*"),
            MetricPattern::Exact(name) => write!(f, "{name}"),
        }
    }
}

impl std::str::FromStr for MetricPattern {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        if text == "*" {
            return Ok(MetricPattern::Any);
        }
        let (name, wrap): (&str, fn(MetricName) -> MetricPattern) = match text.strip_suffix(".*") {
            Some(prefix) => (prefix, MetricPattern::Prefix),
            None => (text, MetricPattern::Exact),
        };
        MetricName::new(name)
            .map(wrap)
            .map_err(|err| Error::InvalidId {
                kind: "metric pattern",
                value: excerpt(text),
                reason: protocol_reason(&err),
            })
    }
}

impl From<MetricName> for MetricPattern {
    fn from(name: MetricName) -> Self {
        MetricPattern::Exact(name)
    }
}

impl serde::Serialize for MetricPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MetricPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> MetricPattern {
        text.parse().unwrap()
    }

    fn m(text: &str) -> MetricName {
        MetricName::new(text).unwrap()
    }

    #[test]
    fn parses_and_prints() {
        for text in ["*", "air.*", "air.pm25", "air.no2.*"] {
            assert_eq!(p(text).to_string(), text);
        }
        for bad in ["", "air.", "*.pm25", "air*", "air.*.*", "Air.*"] {
            assert!(bad.parse::<MetricPattern>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefix_matches_on_segment_boundaries() {
        assert!(p("air.*").matches(&m("air.pm25")));
        assert!(p("air.*").matches(&m("air.no2.hourly")));
        assert!(!p("air.*").matches(&m("air")));
        assert!(!p("air.*").matches(&m("airport.gate")));
        assert!(p("*").matches(&m("noise.laeq")));
    }

    #[test]
    fn intersections() {
        assert_eq!(p("air.*").intersect(&p("air.no2.*")), Some(p("air.no2.*")));
        assert_eq!(p("air.no2.*").intersect(&p("air.*")), Some(p("air.no2.*")));
        assert_eq!(p("air.*").intersect(&p("noise.*")), None);
        assert_eq!(p("air.*").intersect(&p("air.pm25")), Some(p("air.pm25")));
        assert_eq!(p("air.*").intersect(&p("air")), None);
        assert_eq!(p("*").intersect(&p("air.*")), Some(p("air.*")));
        let set = |items: &[&str]| items.iter().map(|t| p(t)).collect::<BTreeSet<_>>();
        assert_eq!(
            intersect_sets(&set(&["air.*", "noise.laeq"]), &set(&["*", "air.pm25"])),
            set(&["air.*", "noise.laeq"])
        );
    }
}
