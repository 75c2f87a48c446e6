//! `/api/v1/gateways`: registered gateways and the state they last reported (last seen, spool
//! depth, gaps, agent version, certificate expiry, signing keys, revocation); creating a
//! gateway (a one-time enrollment token, see [`crate::enrollment`]), pending enrollments and
//! revocation. Reading needs a viewer token; creating and revoking need admin, and are
//! recorded in the audit log (`gateway_change`) before they are applied.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use beffroi_audit::AuditKind;
use beffroi_protocol::{GatewayId, Timestamp};
use beffroi_store::{GatewayRecord, Role};
use serde::{Deserialize, Serialize};

use crate::audit::{actor_of, audited, change_by};
use crate::auth::Caller;
use crate::enrollment;
use crate::error::{ApiError, Result};
use crate::json::ApiJson;
use crate::path::IdPath;
use crate::routes::Items;
use crate::ApiState;

/// The caller's gateways.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<ApiJson<Items<GatewayRecord>>> {
    let items = state.store.list_gateways(&caller.tenant).await?;
    Ok(ApiJson(Items { items }))
}

/// One of the caller's gateways; 404 when the caller's tenant has none with this id.
pub async fn one(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<GatewayId>,
) -> Result<ApiJson<GatewayRecord>> {
    state
        .store
        .gateway(&caller.tenant, &id)
        .await?
        .map(ApiJson)
        .ok_or_else(|| not_found(&id))
}

fn not_found(id: &GatewayId) -> ApiError {
    ApiError::NotFound(format!("gateway {id} not found"))
}

/// The body of `POST /api/v1/gateways`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// The gateway id (new, or an existing gateway to re-enroll).
    pub id: GatewayId,
    /// The token's lifetime in seconds (default: the platform's `enroll.token_ttl_s`).
    #[serde(default)]
    pub ttl_s: Option<u64>,
}

/// The answer to `POST /api/v1/gateways`: the one-time token, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    /// `bfe1.<secret>.<pin>`, for `beffroi-agent enroll --token`.
    pub token: String,
    /// When the token stops being accepted.
    pub expires_at: Timestamp,
    /// The gateway it enrolls.
    pub gateway: GatewayId,
    /// The enrollment endpoint's URL (`enroll.public_url`), when the platform knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enroll_url: Option<String>,
}

/// Creates a gateway's one-time enrollment token (admin): 201. A gateway that exists and is
/// not revoked is re-enrolled when the token is redeemed; a revoked one is refused (409).
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, ApiJson<Created>)> {
    caller.require(Role::Admin)?;
    let ttl = body
        .ttl_s
        .map_or(state.enrollment.default_ttl, Duration::from_secs);
    let created = enrollment::create_token(
        state.store.as_ref(),
        actor_of(&caller),
        &caller.tenant,
        &body.id,
        ttl,
        &state.enrollment,
        Timestamp::now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(Created {
            token: created.token,
            expires_at: created.record.expires_at,
            gateway: body.id,
            enroll_url: state.enrollment.public_url.clone(),
        }),
    ))
}

/// A gateway waiting for its enrollment (never the token or its hash).
#[derive(Debug, Clone, Serialize)]
pub struct PendingEnrollment {
    /// The gateway the token enrolls.
    pub gateway: GatewayId,
    /// When the token was made.
    pub created_at: Timestamp,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
    /// Who made it (`token:…`, `user:…`).
    pub created_by: String,
}

/// The caller's unused, unexpired enrollment tokens.
pub async fn enrollments(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<ApiJson<Items<PendingEnrollment>>> {
    let pending = state
        .store
        .pending_enrollments(&caller.tenant, Timestamp::now())
        .await?;
    let items = pending
        .into_iter()
        .map(|t| PendingEnrollment {
            gateway: t.gateway,
            created_at: t.created_at,
            expires_at: t.expires_at,
            created_by: t.created_by,
        })
        .collect();
    Ok(ApiJson(Items { items }))
}

/// Revokes one of the caller's gateways (admin): stored (it survives restarts), then cut off
/// at once in this process (live connections closed, cached keys forgotten). Answers the
/// gateway as it is now; 404 when the caller's tenant has none with this id.
pub async fn revoke(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<GatewayId>,
) -> Result<ApiJson<GatewayRecord>> {
    caller.require(Role::Admin)?;
    if state.store.gateway(&caller.tenant, &id).await?.is_none() {
        return Err(not_found(&id));
    }
    let change = change_by(
        &caller,
        AuditKind::GatewayChange,
        "revoke",
        "gateway",
        id.as_str(),
    );
    audited(state.store.as_ref(), &[change], async {
        Ok::<_, ApiError>(
            state
                .store
                .revoke_gateway(&caller.tenant, &id, Timestamp::now())
                .await?,
        )
    })
    .await?;
    state.revocation.gateway_revoked(&caller.tenant, &id);
    state
        .store
        .gateway(&caller.tenant, &id)
        .await?
        .map(ApiJson)
        .ok_or_else(|| not_found(&id))
}
