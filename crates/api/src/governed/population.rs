//! From a permit's scope to what the store can filter on: the grantor's registry (zone and
//! tags of each sensor, what `Transforms::admits` needs per reading), the concrete metric
//! names its patterns cover and the sensors its zone, sensor and tag selections admit.
//!
//! The store filters by these lists; every row or cell it returns is still checked against
//! the scope here, so a sensor moved to another zone between the two reads is never served
//! under the wrong terms.

use std::collections::BTreeMap;

use beffroi_policy::{ReadingFacts, Scope, Selection, TimeRange};
use beffroi_protocol::{MetricName, SensorId, TenantId, Timestamp};
use beffroi_store::{ReadingFilter, Result, Sensor, Store};

/// A grantor's sensors by id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registry {
    sensors: BTreeMap<SensorId, Sensor>,
}

/// The readings a scope covers, as store filters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Population {
    /// The grantor's metrics the scope's patterns match.
    pub(crate) metrics: Vec<MetricName>,
    /// `None`: every sensor; `Some`: only these.
    pub(crate) sensors: Option<Vec<SensorId>>,
}

impl Population {
    /// Whether it selects nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.metrics.is_empty() || self.sensors.as_ref().is_some_and(Vec::is_empty)
    }

    /// The store filter of its readings measured in `range`.
    pub(crate) fn filter(&self, grantor: &TenantId, range: TimeRange) -> ReadingFilter {
        ReadingFilter {
            tenant: grantor.clone(),
            sensors: self.sensors.clone().unwrap_or_default(),
            metrics: self.metrics.clone(),
            zone: None,
            from: range.from,
            to: range.to,
        }
    }
}

impl Registry {
    /// The grantor's registry.
    pub(crate) async fn load(store: &dyn Store, grantor: &TenantId) -> Result<Self> {
        let sensors = store.list_sensors(grantor).await?;
        Ok(Self {
            sensors: sensors.into_iter().map(|s| (s.id.clone(), s)).collect(),
        })
    }

    /// The facts `Transforms::admits` checks for a reading of `sensor` (unregistered: no
    /// zone, no tags).
    pub(crate) fn facts<'a>(
        &'a self,
        metric: &'a MetricName,
        sensor: &'a SensorId,
        time: Timestamp,
    ) -> ReadingFacts<'a> {
        let registered = self.sensors.get(sensor);
        ReadingFacts {
            metric,
            sensor,
            zone: registered.and_then(|s| s.zone.as_ref()),
            tags: registered.map_or(&[], |s| s.tags.as_slice()),
            time,
        }
    }

    /// Whether `scope` admits `sensor` (with `metric`, which the scope must match too).
    pub(crate) fn admits(&self, scope: &Scope, metric: &MetricName, sensor: &SensorId) -> bool {
        scope.admits(&self.facts(metric, sensor, Timestamp::from_unix_micros(0)))
    }

    /// The registered sensors `scope` admits for some of `metrics`, by id.
    pub(crate) fn sensors_in<'a>(
        &'a self,
        scope: &'a Scope,
        metrics: &'a [MetricName],
    ) -> impl Iterator<Item = &'a Sensor> + 'a {
        self.sensors
            .values()
            .filter(move |s| metrics.iter().any(|m| self.admits(scope, m, &s.id)))
    }

    /// The store filters for `scope`.
    pub(crate) async fn population(
        &self,
        store: &dyn Store,
        grantor: &TenantId,
        scope: &Scope,
    ) -> Result<Population> {
        let metrics: Vec<MetricName> = store
            .series_metrics(grantor)
            .await?
            .into_iter()
            .filter(|m| scope.metrics.iter().any(|p| p.matches(m)))
            .collect();
        let unrestricted = scope.zones == Selection::All
            && scope.sensors == Selection::All
            && scope.tags == Selection::All;
        let sensors = (!unrestricted).then(|| {
            self.sensors_in(scope, &metrics)
                .map(|s| s.id.clone())
                .collect()
        });
        Ok(Population { metrics, sensors })
    }
}
