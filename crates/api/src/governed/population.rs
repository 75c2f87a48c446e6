//! From a permit's scope to what the store can filter on: the grantor's registry (zone and
//! tags of each sensor, what `Transforms::admits` needs per reading), the concrete metric
//! names its patterns cover and the sensors its zone, sensor and tag selections admit.
//!
//! The store filters by these lists; every row or cell it returns is still checked against
//! the scope here, so a sensor moved to another zone between the two reads is never served
//! under the wrong terms.
//!
//! A pooling permit whose scope names territories (zones of the requester) places each
//! reading where its sensor stood when it was measured: the registry then also holds every
//! move of the grantor's sensors with the territories each position lies in. The store is
//! asked for every sensor that ever stood in one, and each row is admitted by the placement
//! in force at its time.

use std::collections::BTreeMap;

use beffroi_policy::{
    Area, Grantee, ReadingFacts, Scope, Selection, Territories, TimeRange, ZoneId,
};
use beffroi_protocol::{MetricName, SensorId, TenantId, Timestamp};
use beffroi_store::{Placement, ReadingFilter, Result, Sensor, Store, Zone};

/// Every instant.
const ALL_TIME: TimeRange = TimeRange::new(
    Timestamp::from_unix_micros(i64::MIN),
    Timestamp::from_unix_micros(i64::MAX),
);

/// A grantor's sensors by id, and where they stood when the permit places readings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registry {
    sensors: BTreeMap<SensorId, Sensor>,
    /// Each sensor's moves in time order: from when, and inside which territories.
    moves: BTreeMap<SensorId, Vec<(Timestamp, Vec<ZoneId>)>>,
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

/// The areas of the territories `scope` names, read from `requester`'s zones; none when the
/// scope names none (or the requester is not a tenant: it has no zones). A named zone that
/// is missing or unreadable places nothing inside it.
pub(crate) async fn territories(
    store: &dyn Store,
    requester: &Grantee,
    scope: &Scope,
) -> Result<Territories> {
    let (Selection::Only(_), Grantee::Tenant(tenant)) = (&scope.territories, requester) else {
        return Ok(Territories::default());
    };
    Ok(territories_in(store.list_zones(tenant).await?, scope))
}

/// The areas of the territories `scope` names among `zones` (the requester's).
pub(crate) fn territories_in(zones: Vec<Zone>, scope: &Scope) -> Territories {
    areas_of(
        zones
            .into_iter()
            .filter(|z| scope.territories.contains(&z.id)),
    )
}

/// The areas of `zones` that have a boundary.
pub(crate) fn areas_of(zones: impl IntoIterator<Item = Zone>) -> Territories {
    Territories::new(
        zones
            .into_iter()
            .filter_map(|z| Some((z.id, Area::from_geojson(&z.geometry)?))),
    )
}

impl Registry {
    /// The grantor's registry as a read of `requester` within `scope` sees it: with every
    /// move of its sensors placed in the scope's territories when it names any.
    pub(crate) async fn load(
        store: &dyn Store,
        grantor: &TenantId,
        requester: &Grantee,
        scope: &Scope,
    ) -> Result<Self> {
        let territories = territories(store, requester, scope).await?;
        let sensors = store.list_sensors(grantor).await?;
        let placements = if territories.is_empty() {
            Vec::new()
        } else {
            store.sensor_placements(grantor).await?
        };
        Ok(Self::new(sensors, &placements, &territories))
    }

    /// A registry of `sensors`, their `placements` (in time order per sensor) placed in
    /// `territories`.
    pub(crate) fn new(
        sensors: Vec<Sensor>,
        placements: &[Placement],
        territories: &Territories,
    ) -> Self {
        let mut moves: BTreeMap<SensorId, Vec<_>> = BTreeMap::new();
        if !territories.is_empty() {
            for placement in placements {
                let inside = territories.containing(placement.position());
                moves
                    .entry(placement.sensor.clone())
                    .or_default()
                    .push((placement.since, inside));
            }
        }
        Self {
            sensors: sensors.into_iter().map(|s| (s.id.clone(), s)).collect(),
            moves,
        }
    }

    /// `sensor`'s moves, oldest first (none unless the permit places readings).
    fn moves(&self, sensor: &SensorId) -> &[(Timestamp, Vec<ZoneId>)] {
        self.moves.get(sensor).map_or(&[], Vec::as_slice)
    }

    /// The territories `sensor` stood in at `time` (none before its first placement).
    fn territories_at(&self, sensor: &SensorId, time: Timestamp) -> &[ZoneId] {
        self.moves(sensor)
            .iter()
            .rev()
            .find(|(since, _)| *since <= time)
            .map_or(&[], |(_, inside)| inside.as_slice())
    }

    /// The facts of a reading of `sensor` measured at `time` in `territories`.
    fn facts_in<'a>(
        &'a self,
        metric: &'a MetricName,
        sensor: &'a SensorId,
        time: Timestamp,
        territories: &'a [ZoneId],
    ) -> ReadingFacts<'a> {
        let registered = self.sensors.get(sensor);
        ReadingFacts {
            metric,
            sensor,
            zone: registered.and_then(|s| s.zone.as_ref()),
            tags: registered.map_or(&[], |s| s.tags.as_slice()),
            territories,
            time,
        }
    }

    /// The facts `Transforms::admits` checks for a reading of `sensor` measured at `time`
    /// (unregistered: no zone, no tags, no position).
    pub(crate) fn facts<'a>(
        &'a self,
        metric: &'a MetricName,
        sensor: &'a SensorId,
        time: Timestamp,
    ) -> ReadingFacts<'a> {
        self.facts_in(metric, sensor, time, self.territories_at(sensor, time))
    }

    /// Whether `scope` admits `sensor` where it stands now (with `metric`, which the scope
    /// must match too).
    pub(crate) fn admits(&self, scope: &Scope, metric: &MetricName, sensor: &SensorId) -> bool {
        let now = self
            .moves(sensor)
            .last()
            .map_or(&[][..], |(_, inside)| inside);
        scope.admits(&self.facts_in(metric, sensor, Timestamp::from_unix_micros(0), now))
    }

    /// The registered sensors `scope` admits where they stand now, for some of `metrics`.
    pub(crate) fn sensors_in<'a>(
        &'a self,
        scope: &'a Scope,
        metrics: &'a [MetricName],
    ) -> impl Iterator<Item = &'a Sensor> + 'a {
        self.sensors
            .values()
            .filter(move |s| metrics.iter().any(|m| self.admits(scope, m, &s.id)))
    }

    /// The territories `sensor` stood in during `range`, one slice per placement (an empty
    /// one for the time before its first: it stood nowhere known).
    fn stood_during(
        &self,
        sensor: &SensorId,
        range: TimeRange,
    ) -> impl Iterator<Item = &[ZoneId]> + '_ {
        let moves = self.moves(sensor);
        let first = moves.first().map_or(range.to, |(since, _)| *since);
        let unplaced = (range.from < first).then_some(&[][..]);
        let placed = moves
            .iter()
            .enumerate()
            .filter_map(move |(i, (since, inside))| {
                let until = moves.get(i + 1).map_or(range.to, |(next, _)| *next);
                (*since < range.to && range.from < until).then_some(inside.as_slice())
            });
        unplaced.into_iter().chain(placed)
    }

    /// Whether `scope` admits some reading of `sensor` with one of `metrics` measured in
    /// `range`, wherever the sensor stood then.
    pub(crate) fn admits_during(
        &self,
        scope: &Scope,
        metrics: &[MetricName],
        sensor: &SensorId,
        range: TimeRange,
    ) -> bool {
        let epoch = Timestamp::from_unix_micros(0);
        self.stood_during(sensor, range).any(|inside| {
            metrics
                .iter()
                .any(|m| scope.admits(&self.facts_in(m, sensor, epoch, inside)))
        })
    }

    /// Whether `scope` admits every reading of `sensor` with `metric` measured in `range`:
    /// wherever the sensor stood during it, it stood inside the scope (an aggregate cell of
    /// `range` then holds only readings the scope admits).
    pub(crate) fn admits_throughout(
        &self,
        scope: &Scope,
        metric: &MetricName,
        sensor: &SensorId,
        range: TimeRange,
    ) -> bool {
        let epoch = Timestamp::from_unix_micros(0);
        !range.is_empty()
            && self
                .stood_during(sensor, range)
                .all(|inside| scope.admits(&self.facts_in(metric, sensor, epoch, inside)))
    }

    /// How many registered sensors `scope` admits for some of `metrics` at some time of
    /// `range`.
    pub(crate) fn count_during(
        &self,
        scope: &Scope,
        metrics: &[MetricName],
        range: TimeRange,
    ) -> u64 {
        let admitted = self
            .sensors
            .keys()
            .filter(|id| self.admits_during(scope, metrics, id, range));
        u64::try_from(admitted.count()).unwrap_or(u64::MAX)
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
            && scope.tags == Selection::All
            && scope.territories == Selection::All;
        let sensors = (!unrestricted).then(|| {
            self.sensors
                .keys()
                .filter(|id| self.admits_during(scope, &metrics, id, ALL_TIME))
                .cloned()
                .collect()
        });
        Ok(Population { metrics, sensors })
    }
}
