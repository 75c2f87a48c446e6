//! `/api/v1/alarm-rules`: the caller's alarm rules. Reading needs a viewer token; creating,
//! editing and deleting need admin. Every change is recorded in the audit log before it is
//! applied (`rule_change`; 503 and nothing changed when the log cannot be written), then
//! handed to the alert engine at once.

use axum::extract::State;
use axum::http::StatusCode;
use beffroi_audit::AuditKind;
use beffroi_policy::Area;
use beffroi_protocol::Timestamp;
use beffroi_store::{AlarmRule, Role, RuleCondition, RuleId, Severity};
use serde::Deserialize;

use crate::audit::{audited, change_by};
use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::json::ApiJson;
use crate::path::IdPath;
use crate::routes::Items;
use crate::ApiState;

/// The body of `POST /api/v1/alarm-rules` and `PUT /api/v1/alarm-rules/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// The rule's id (POST: generated when absent; PUT: must match the path when given).
    #[serde(default)]
    pub id: Option<RuleId>,
    /// Display name.
    pub name: String,
    /// Severity of its alarms.
    pub severity: Severity,
    /// Whether it raises alarms (default true).
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// What it watches.
    pub condition: RuleCondition,
}

const fn enabled() -> bool {
    true
}

/// The caller's rules, by id.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<ApiJson<Items<AlarmRule>>> {
    let items = state.store.list_alarm_rules(&caller.tenant).await?;
    Ok(ApiJson(Items { items }))
}

/// One of the caller's rules.
pub async fn one(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<RuleId>,
) -> Result<ApiJson<AlarmRule>> {
    state
        .store
        .alarm_rule(&caller.tenant, &id)
        .await?
        .map(ApiJson)
        .ok_or_else(|| not_found(&id))
}

fn not_found(id: &RuleId) -> ApiError {
    ApiError::NotFound(format!("alarm rule {id} not found"))
}

/// Creates a rule (admin): 201 with the rule.
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<RuleBody>,
) -> Result<(StatusCode, ApiJson<AlarmRule>)> {
    caller.require(Role::Admin)?;
    let id = match body.id.clone() {
        Some(id) => id,
        None => generated_id()?,
    };
    let rule = validated(&state, &caller, id, body).await?;
    let change = change_by(
        &caller,
        AuditKind::RuleChange,
        "create",
        "alarm_rule",
        rule.id.as_str(),
    )
    .with_request(&rule);
    audited(state.store.as_ref(), &[change], async {
        Ok::<_, ApiError>(state.store.create_alarm_rule(&rule).await?)
    })
    .await?;
    state.rules_changed(&caller.tenant);
    Ok((StatusCode::CREATED, ApiJson(rule)))
}

/// Replaces a rule (admin); its alarms keep the name they were raised with.
pub async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<RuleId>,
    ApiJson(body): ApiJson<RuleBody>,
) -> Result<ApiJson<AlarmRule>> {
    caller.require(Role::Admin)?;
    if body.id.as_ref().is_some_and(|given| *given != id) {
        return Err(ApiError::bad_request(
            "id: the body's id differs from the path's",
        ));
    }
    let rule = validated(&state, &caller, id.clone(), body).await?;
    let change = change_by(
        &caller,
        AuditKind::RuleChange,
        "update",
        "alarm_rule",
        id.as_str(),
    )
    .with_request(&rule);
    audited(state.store.as_ref(), &[change], async {
        Ok::<_, ApiError>(state.store.update_alarm_rule(&rule).await?)
    })
    .await?;
    state.rules_changed(&caller.tenant);
    // Read back: the store keeps the original `created_at`.
    state
        .store
        .alarm_rule(&caller.tenant, &id)
        .await?
        .map(ApiJson)
        .ok_or_else(|| not_found(&id))
}

/// Deletes a rule (admin): 204. Its alarms are kept as they are.
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<RuleId>,
) -> Result<StatusCode> {
    caller.require(Role::Admin)?;
    let change = change_by(
        &caller,
        AuditKind::RuleChange,
        "delete",
        "alarm_rule",
        id.as_str(),
    );
    audited(state.store.as_ref(), &[change], async {
        Ok::<_, ApiError>(state.store.delete_alarm_rule(&caller.tenant, &id).await?)
    })
    .await?;
    state.rules_changed(&caller.tenant);
    Ok(StatusCode::NO_CONTENT)
}

/// The rule `body` describes, checked: name and condition invariants, and the zone of a
/// threshold rule must exist in the caller's tenant.
async fn validated(
    state: &ApiState,
    caller: &Caller,
    id: RuleId,
    body: RuleBody,
) -> Result<AlarmRule> {
    let now = Timestamp::now();
    let rule = AlarmRule {
        tenant: caller.tenant.clone(),
        id,
        name: body.name.trim().to_owned(),
        severity: body.severity,
        enabled: body.enabled,
        condition: body.condition,
        created_at: now,
        updated_at: now,
    };
    rule.validate().map_err(ApiError::BadRequest)?;
    if let RuleCondition::Threshold {
        zone: Some(zone),
        pooled,
        ..
    } = &rule.condition
    {
        let zones = state.store.list_zones(&caller.tenant).await?;
        let Some(found) = zones.iter().find(|z| &z.id == zone) else {
            return Err(ApiError::bad_request(format!(
                "condition.zone: {zone} does not exist in this tenant"
            )));
        };
        if pooled.is_some() && Area::from_geojson(&found.geometry).is_none() {
            return Err(ApiError::bad_request(format!(
                "condition.zone: {zone} has no boundary (a GeoJSON polygon), so no pooled \
                 sensor can stand in it"
            )));
        }
    }
    Ok(rule)
}

/// `rule-` and 8 random hex digits.
fn generated_id() -> Result<RuleId> {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes).map_err(|e| ApiError::Random(e.to_string()))?;
    RuleId::new(format!("rule-{}", hex::encode(bytes)))
        .map_err(|e| ApiError::Random(format!("generated an invalid id: {e}")))
}
