//! `GET /api/v1/zones` and `PUT /api/v1/zones/{id}` (admin): named GeoJSON areas.
//!
//! A zone's geometry is a GeoJSON (RFC 7946) `Polygon` or `MultiPolygon`: every linear ring
//! has at least 4 positions and is closed (first = last); positions are `[lon, lat]` or
//! `[lon, lat, alt]` with lon in −180..=180 and lat in −90..=90. Only `type` and
//! `coordinates` are kept.
//!
//! A put is recorded in the audit log (`registry_change`) before it is applied, with the
//! zone's name and the SHA-256 of its geometry (not the geometry itself, up to 1 MiB).

use axum::extract::State;
use beffroi_audit::{AuditKind, Digest};
use beffroi_store::{Role, Zone, ZoneId};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit::{audited, change_by};
use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::json::ApiJson;
use crate::path::IdPath;
use crate::routes::Items;
use crate::ApiState;

/// A zone id from a path or parameter: the slug grammar, with errors that say "zone id"
/// (zone ids reuse the sensor id type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneKey(pub ZoneId);

impl std::str::FromStr for ZoneKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_zone_id(text).map(ZoneKey)
    }
}

/// Parses a zone id; the error names a zone id, not the sensor id type it reuses.
pub fn parse_zone_id(text: &str) -> Result<ZoneId, String> {
    ZoneId::new(text).map_err(|error| match error {
        beffroi_protocol::Error::InvalidId { value, reason, .. } => {
            format!("invalid zone id {value:?}: {reason}")
        }
        other => other.to_string(),
    })
}

/// Longest zone name, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Most positions in one zone geometry.
pub const MAX_POSITIONS: usize = 50_000;

/// The body of `PUT /api/v1/zones/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneBody {
    /// Display name, 1..=200 bytes.
    pub name: String,
    /// GeoJSON `Polygon` or `MultiPolygon`.
    pub geometry: Value,
}

/// The caller's zones.
pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<ApiJson<Items<Zone>>> {
    let items = state.store.list_zones(&caller.tenant).await?;
    Ok(ApiJson(Items { items }))
}

/// Creates or replaces one of the caller's zones (admin).
pub async fn put(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(ZoneKey(id)): IdPath<ZoneKey>,
    ApiJson(body): ApiJson<ZoneBody>,
) -> Result<ApiJson<Zone>> {
    caller.require(Role::Admin)?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "name: must be 1 to {MAX_NAME_LEN} bytes without control characters"
        )));
    }
    let geometry = validate_geometry(&body.geometry)
        .map_err(|reason| ApiError::bad_request(format!("geometry: {reason}")))?;
    let zone = Zone {
        tenant: caller.tenant.clone(),
        id,
        name: name.to_owned(),
        geometry,
    };
    let geometry_sha256 = Digest::of(zone.geometry.to_string().as_bytes());
    let change = change_by(
        &caller,
        AuditKind::RegistryChange,
        "upsert",
        "zone",
        zone.id.as_str(),
    )
    .with_request(&json!({ "name": zone.name, "geometry_sha256": geometry_sha256 }));
    audited(state.store.as_ref(), &[change], async {
        Ok::<_, ApiError>(state.store.upsert_zone(&zone).await?)
    })
    .await?;
    Ok(ApiJson(zone))
}

/// Validates a GeoJSON `Polygon` or `MultiPolygon` and returns it with only `type` and
/// `coordinates`.
pub fn validate_geometry(geometry: &Value) -> Result<Value, String> {
    let object = geometry.as_object().ok_or("must be a GeoJSON object")?;
    let kind = object
        .get("type")
        .and_then(Value::as_str)
        .ok_or("missing \"type\"")?;
    let coordinates = object.get("coordinates").ok_or("missing \"coordinates\"")?;
    let mut positions = 0usize;
    match kind {
        "Polygon" => check_polygon(coordinates, "coordinates", &mut positions)?,
        "MultiPolygon" => {
            let polygons = coordinates
                .as_array()
                .filter(|p| !p.is_empty())
                .ok_or("coordinates: a MultiPolygon needs a non-empty array of polygons")?;
            for (i, polygon) in polygons.iter().enumerate() {
                check_polygon(polygon, &format!("coordinates[{i}]"), &mut positions)?;
            }
        }
        other => {
            return Err(format!(
                "type {other:?} is not supported: use Polygon or MultiPolygon"
            ))
        }
    }
    Ok(json!({ "type": kind, "coordinates": coordinates }))
}

fn check_polygon(polygon: &Value, at: &str, positions: &mut usize) -> Result<(), String> {
    let rings = polygon
        .as_array()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| format!("{at}: a polygon is a non-empty array of linear rings"))?;
    for (r, ring) in rings.iter().enumerate() {
        let at = format!("{at}[{r}]");
        let points = ring
            .as_array()
            .ok_or_else(|| format!("{at}: a linear ring is an array of positions"))?;
        if points.len() < 4 {
            return Err(format!(
                "{at}: a linear ring needs at least 4 positions, has {}",
                points.len()
            ));
        }
        *positions += points.len();
        if *positions > MAX_POSITIONS {
            return Err(format!("more than {MAX_POSITIONS} positions"));
        }
        let mut parsed = Vec::with_capacity(points.len());
        for (p, point) in points.iter().enumerate() {
            parsed.push(check_position(point).map_err(|e| format!("{at}[{p}]: {e}"))?);
        }
        if parsed.first() != parsed.last() {
            return Err(format!(
                "{at}: the ring is not closed (first and last positions differ)"
            ));
        }
    }
    Ok(())
}

fn check_position(point: &Value) -> Result<(f64, f64), String> {
    let numbers = point
        .as_array()
        .filter(|n| (2..=3).contains(&n.len()))
        .ok_or("a position is [lon, lat] or [lon, lat, alt]")?;
    let mut values = numbers.iter().map(Value::as_f64);
    let (Some(Some(lon)), Some(Some(lat))) = (values.next(), values.next()) else {
        return Err("a position holds numbers".to_owned());
    };
    if values.any(|alt| alt.is_none()) {
        return Err("a position holds numbers".to_owned());
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(format!("longitude {lon} is outside -180..=180"));
    }
    if !(-90.0..=90.0).contains(&lat) {
        return Err(format!("latitude {lat} is outside -90..=90"));
    }
    Ok((lon, lat))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Value {
        json!([
            [4.8, 45.7],
            [4.9, 45.7],
            [4.9, 45.8],
            [4.8, 45.8],
            [4.8, 45.7]
        ])
    }

    #[test]
    fn accepts_polygons_and_multipolygons() {
        let polygon = json!({ "type": "Polygon", "coordinates": [square()], "extra": 1 });
        let kept = validate_geometry(&polygon).expect("valid");
        assert!(kept.get("extra").is_none());
        let multi = json!({ "type": "MultiPolygon", "coordinates": [[square()], [square()]] });
        assert!(validate_geometry(&multi).is_ok());
    }

    #[test]
    fn refuses_bad_geometries() {
        let bad = [
            json!(1),
            json!({ "type": "Point", "coordinates": [1, 2] }),
            json!({ "type": "Polygon" }),
            json!({ "type": "Polygon", "coordinates": [] }),
            json!({ "type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]] }),
            json!({ "type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]] }),
            json!({ "type": "Polygon", "coordinates": [[[0, 0], [181, 0], [1, 1], [0, 0]]] }),
            json!({ "type": "Polygon", "coordinates": [[[0, 0], [1, 91], [1, 1], [0, 0]]] }),
            json!({ "type": "Polygon", "coordinates": [[[0, 0], [1, "a"], [1, 1], [0, 0]]] }),
            json!({ "type": "MultiPolygon", "coordinates": [] }),
        ];
        for geometry in bad {
            assert!(validate_geometry(&geometry).is_err(), "{geometry}");
        }
    }
}
