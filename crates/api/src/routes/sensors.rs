//! `GET /api/v1/sensors` and `PUT /api/v1/sensors/{id}` (admin): the sensor registry. A put
//! is recorded in the audit log (`registry_change`) before it is applied.
//!
//! A put that changes a sensor's position records a move (`placed_at`: when it was moved,
//! default now, never in the future nor before its previous move): pooling agreements place
//! each reading where its sensor stood when it was measured.

use axum::extract::State;
use beffroi_audit::AuditKind;
use beffroi_policy::SensorTag;
use beffroi_protocol::{SensorId, Timestamp, Unit};
use beffroi_store::{Role, Sensor, ZoneId};
use serde::Deserialize;

use crate::audit::{audited, change_by};
use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::json::ApiJson;
use crate::path::IdPath;
use crate::routes::zones::parse_zone_id;
use crate::routes::Items;
use crate::ApiState;

/// Longest sensor kind.
pub const MAX_KIND_LEN: usize = 32;
/// Most tags on one sensor.
pub const MAX_TAGS: usize = 32;

/// The body of `PUT /api/v1/sensors/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorBody {
    /// What it is: 1..=32 of `a-z 0-9 _ -` (`air`, `noise`, `traffic`, `parking`…).
    pub kind: String,
    /// Its usual unit.
    #[serde(default)]
    pub unit: Option<Unit>,
    /// Latitude, −90..=90 (WGS 84); given together with `lon`.
    #[serde(default)]
    pub lat: Option<f64>,
    /// Longitude, −180..=180 (WGS 84); given together with `lat`.
    #[serde(default)]
    pub lon: Option<f64>,
    /// A zone of the caller's tenant.
    #[serde(default)]
    pub zone: Option<String>,
    /// Tags (slugs) that sharing agreements may target; at most [`MAX_TAGS`].
    #[serde(default)]
    pub tags: Vec<SensorTag>,
    /// When it was moved to `lat`/`lon`, if this put moves it (default: now).
    #[serde(default)]
    pub placed_at: Option<Timestamp>,
}

impl SensorBody {
    /// Checks what needs no store (kind grammar, coordinate ranges, zone id grammar) and
    /// returns the zone id.
    pub fn validate(&self) -> Result<Option<ZoneId>> {
        let kind_ok = !self.kind.is_empty()
            && self.kind.len() <= MAX_KIND_LEN
            && self
                .kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !kind_ok {
            return Err(ApiError::bad_request(format!(
                "kind: must be 1 to {MAX_KIND_LEN} of a-z, 0-9, '_' and '-'"
            )));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(ApiError::bad_request(format!(
                "tags: at most {MAX_TAGS}, got {}",
                self.tags.len()
            )));
        }
        match (self.lat, self.lon) {
            (None, None) => {}
            (Some(lat), Some(lon)) => {
                if !(-90.0..=90.0).contains(&lat) {
                    return Err(ApiError::bad_request(format!(
                        "lat: {lat} is outside -90..=90"
                    )));
                }
                if !(-180.0..=180.0).contains(&lon) {
                    return Err(ApiError::bad_request(format!(
                        "lon: {lon} is outside -180..=180"
                    )));
                }
            }
            _ => return Err(ApiError::bad_request("lat and lon must be given together")),
        }
        self.zone
            .as_deref()
            .map(parse_zone_id)
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("zone: {e}")))
    }
}

/// The caller's sensors.
pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<ApiJson<Items<Sensor>>> {
    let items = state.store.list_sensors(&caller.tenant).await?;
    Ok(ApiJson(Items { items }))
}

/// Creates or replaces one of the caller's sensors (admin). The zone, when given, must be one
/// of the caller's zones.
pub async fn put(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<SensorId>,
    ApiJson(body): ApiJson<SensorBody>,
) -> Result<ApiJson<Sensor>> {
    caller.require(Role::Admin)?;
    let zone = body.validate()?;
    if let Some(zone) = &zone {
        let zones = state.store.list_zones(&caller.tenant).await?;
        if !zones.iter().any(|z| &z.id == zone) {
            return Err(ApiError::bad_request(format!(
                "zone: {zone} does not exist in this tenant"
            )));
        }
    }
    let now = state.clock.now();
    if let Some(placed_at) = body.placed_at.filter(|at| *at > now) {
        return Err(ApiError::bad_request(format!(
            "placed_at: {placed_at} is in the future (now is {now})"
        )));
    }
    let sensor = Sensor {
        tenant: caller.tenant.clone(),
        id,
        kind: body.kind,
        unit: body.unit,
        lat: body.lat,
        lon: body.lon,
        zone,
        tags: body.tags,
        placed_at: Some(body.placed_at.unwrap_or(now)),
    };
    let change = change_by(
        &caller,
        AuditKind::RegistryChange,
        "upsert",
        "sensor",
        sensor.id.as_str(),
    )
    .with_request(&sensor);
    audited(state.store.as_ref(), &[change], async {
        Ok::<_, ApiError>(state.store.upsert_sensor(&sensor).await?)
    })
    .await?;
    state.registry_changed(&sensor.tenant);
    let stored = state.store.list_sensors(&sensor.tenant).await?;
    Ok(ApiJson(
        stored
            .into_iter()
            .find(|s| s.id == sensor.id)
            .unwrap_or(sensor),
    ))
}
