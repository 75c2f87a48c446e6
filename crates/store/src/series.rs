//! The series dictionary, shared by both SQL backends.
//!
//! A series is one `(tenant, sensor, metric, unit)`. Readings rows carry the series' integer id
//! and the tenant's integer key instead of four text columns, so the hot insert path writes
//! narrow rows into indexes that compare integers. Series are never deleted or renumbered, so
//! an id, once read from the database, can be remembered for the life of the store.
//!
//! A commit first maps the distinct series of its batches through [`SeriesCache`]; the
//! backend resolves the ones not remembered yet ([`SeriesMap::missing`]) in one round trip of
//! its own, which also registers their sensors (kind `unknown`, the unit of the first
//! reading), and only then writes readings.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::{CommitBatch, Error, Result};

/// Most series remembered before the cache starts over.
const MAX_REMEMBERED: usize = 1 << 20;

/// A series as text, borrowed from a batch or a result row: `(tenant, sensor, metric, unit)`.
pub(crate) type SeriesKey<'a> = (&'a str, &'a str, &'a str, &'a str);

/// The integer keys a reading row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeriesIds {
    /// `series.id`.
    pub series: i32,
    /// `tenants.key` of the series' tenant.
    pub tenant: i32,
}

type OwnedKey = (String, String, String, String);

/// Series ids known to be committed in the database.
#[derive(Debug, Default)]
pub(crate) struct SeriesCache(Mutex<HashMap<OwnedKey, SeriesIds>>);

/// The distinct series of one call, with their ids where known.
#[derive(Debug)]
pub(crate) struct SeriesMap<'a> {
    ids: HashMap<SeriesKey<'a>, Option<SeriesIds>>,
}

impl SeriesCache {
    /// The distinct series of `batches`, with the ids this cache remembers.
    pub(crate) fn map<'a>(&self, batches: &'a [CommitBatch]) -> SeriesMap<'a> {
        let mut ids: HashMap<SeriesKey<'a>, Option<SeriesIds>> = HashMap::new();
        for batch in batches {
            for r in &batch.readings {
                ids.entry((
                    batch.tenant.as_str(),
                    r.sensor.as_str(),
                    r.metric.as_str(),
                    r.unit.as_str(),
                ))
                .or_insert(None);
            }
        }
        let known = self.lock();
        for (key, slot) in &mut ids {
            *slot = known.get(&owned(*key)).copied();
        }
        SeriesMap { ids }
    }

    /// Remembers ids read from the database (committed: series rows are written outside the
    /// commit's transaction).
    pub(crate) fn remember<'a>(&self, found: impl IntoIterator<Item = (SeriesKey<'a>, SeriesIds)>) {
        let mut known = self.lock();
        if known.len() > MAX_REMEMBERED {
            known.clear();
        }
        for (key, ids) in found {
            known.insert(owned(key), ids);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OwnedKey, SeriesIds>> {
        // The map stays consistent whatever panicked while holding the lock.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn owned((t, s, m, u): SeriesKey<'_>) -> OwnedKey {
    (t.to_owned(), s.to_owned(), m.to_owned(), u.to_owned())
}

impl<'a> SeriesMap<'a> {
    /// The series without an id yet, sorted (a fixed order for the rows they lock).
    pub(crate) fn missing(&self) -> Vec<SeriesKey<'a>> {
        let mut missing: Vec<_> = self
            .ids
            .iter()
            .filter(|(_, ids)| ids.is_none())
            .map(|(key, _)| *key)
            .collect();
        missing.sort_unstable();
        missing
    }

    /// Fills in ids resolved by the backend, and has `cache` remember them.
    pub(crate) fn fill(&mut self, found: Vec<(SeriesKey<'_>, SeriesIds)>, cache: &SeriesCache) {
        let resolved: HashMap<SeriesKey<'_>, SeriesIds> = found.iter().copied().collect();
        for (key, slot) in &mut self.ids {
            if let Some(ids) = resolved.get(key) {
                *slot = Some(*ids);
            }
        }
        cache.remember(found);
    }

    /// The ids of one series of the call; [`Error::NotFound`] when its tenant does not exist
    /// (the backend could not create the series).
    pub(crate) fn ids(&self, key: SeriesKey<'_>) -> Result<SeriesIds> {
        self.ids
            .get(&key)
            .copied()
            .flatten()
            .ok_or_else(|| Error::NotFound {
                what: "tenant",
                id: key.0.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use beffroi_protocol::{
        GatewayId, KeyId, MetricName, Reading, SensorId, TenantId, Timestamp, Unit, Value,
    };

    use super::*;

    fn batch(tenant: &str, sensors: &[&str]) -> CommitBatch {
        CommitBatch {
            tenant: TenantId::new(tenant).unwrap(),
            gateway: GatewayId::new("gw").unwrap(),
            seq: 1,
            key_id: KeyId::new("k").unwrap(),
            signature: [0; 64],
            received_at: Timestamp::from_unix_micros(0),
            readings: sensors
                .iter()
                .map(|s| Reading {
                    sensor: SensorId::new(*s).unwrap(),
                    metric: MetricName::new("air.pm25").unwrap(),
                    unit: Unit::new("ug/m3").unwrap(),
                    time: Timestamp::from_unix_micros(1),
                    value: Value::Number(1.0),
                })
                .collect(),
        }
    }

    #[test]
    fn distinct_series_are_resolved_once_then_remembered() {
        let cache = SeriesCache::default();
        let batches = [batch("a", &["s1", "s2", "s1"]), batch("b", &["s1"])];
        let mut map = cache.map(&batches);
        let missing = map.missing();
        assert_eq!(
            missing,
            vec![
                ("a", "s1", "air.pm25", "ug/m3"),
                ("a", "s2", "air.pm25", "ug/m3"),
                ("b", "s1", "air.pm25", "ug/m3"),
            ]
        );
        assert!(map.ids(missing[0]).is_err(), "unresolved");
        let found = missing
            .iter()
            .zip(1..)
            .map(|(k, n)| {
                (
                    *k,
                    SeriesIds {
                        series: n,
                        tenant: 7,
                    },
                )
            })
            .collect();
        map.fill(found, &cache);
        assert_eq!(
            map.ids(("a", "s2", "air.pm25", "ug/m3")).unwrap(),
            SeriesIds {
                series: 2,
                tenant: 7
            }
        );
        let again = cache.map(&batches);
        assert!(again.missing().is_empty(), "remembered");
    }
}
