//! Sensor placements: where each sensor stood, and since when. Pooling agreements place a
//! reading where its sensor stood when it was measured, so the registry keeps every move,
//! not only the current position.
//!
//! The history only grows. A registry write that changes a sensor's position (or gives it a
//! first one, or removes it) appends a placement from the sensor's `placed_at`, or from the
//! write's instant when the sensor does not say; the instant must follow the last move. A
//! write with the same position appends nothing. Restores write the exported history as it
//! was ([`crate::TenantRestore::placements`]).

use beffroi_protocol::{SensorId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, Sensor};

/// One move of a sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// The sensor's tenant.
    pub tenant: TenantId,
    /// The sensor.
    pub sensor: SensorId,
    /// From when it stood there (until its next placement).
    pub since: Timestamp,
    /// Latitude (WGS 84); `None` with `lon`: the position is unknown from `since`.
    pub lat: Option<f64>,
    /// Longitude (WGS 84).
    pub lon: Option<f64>,
}

impl Placement {
    /// `(lon, lat)`, when both are known.
    pub fn position(&self) -> Option<(f64, f64)> {
        self.lon.zip(self.lat)
    }
}

/// The placement a registry write of `sensor` appends after `latest`, if its position
/// changes; `now` when the sensor gives no `placed_at`.
pub(crate) fn moved(
    latest: Option<&Placement>,
    sensor: &Sensor,
    now: Timestamp,
) -> Result<Option<Placement>> {
    let position = sensor.lon.zip(sensor.lat);
    let unchanged = match latest {
        Some(latest) => latest.position() == position,
        None => position.is_none(),
    };
    if unchanged {
        return Ok(None);
    }
    let since = sensor.placed_at.unwrap_or(now);
    if let Some(latest) = latest.filter(|l| since <= l.since) {
        return Err(Error::Invalid {
            what: "placed_at",
            reason: format!(
                "sensor {} moved at {since}, not after its previous move at {}: the history of placements only grows",
                sensor.id, latest.since
            ),
        });
    }
    Ok(Some(Placement {
        tenant: sensor.tenant.clone(),
        sensor: sensor.id.clone(),
        since,
        lat: position.map(|(_, lat)| lat),
        lon: position.map(|(lon, _)| lon),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(position: Option<(f64, f64)>, placed_at: Option<i64>) -> Sensor {
        Sensor {
            tenant: TenantId::new("metro").unwrap(),
            id: SensorId::new("s1").unwrap(),
            kind: "air".into(),
            unit: None,
            lat: position.map(|p| p.1),
            lon: position.map(|p| p.0),
            zone: None,
            tags: Vec::new(),
            placed_at: placed_at.map(Timestamp::from_unix_micros),
        }
    }

    #[test]
    fn only_a_change_of_position_appends_and_never_before_the_last_move() {
        let now = Timestamp::from_unix_micros(1_000);
        assert_eq!(moved(None, &sensor(None, None), now).unwrap(), None);
        let first = moved(None, &sensor(Some((4.8, 45.7)), None), now)
            .unwrap()
            .unwrap();
        assert_eq!((first.since, first.position()), (now, Some((4.8, 45.7))));
        let same = sensor(Some((4.8, 45.7)), Some(5_000));
        assert_eq!(moved(Some(&first), &same, now).unwrap(), None);
        let later = moved(Some(&first), &sensor(Some((4.9, 45.7)), Some(2_000)), now)
            .unwrap()
            .unwrap();
        assert_eq!(later.since, Timestamp::from_unix_micros(2_000));
        let gone = moved(Some(&later), &sensor(None, Some(3_000)), now)
            .unwrap()
            .unwrap();
        assert_eq!((gone.lat, gone.lon), (None, None));
        let err = moved(Some(&later), &sensor(Some((5.0, 45.0)), Some(2_000)), now).unwrap_err();
        assert!(err.to_string().contains("only grows"), "{err}");
    }
}
