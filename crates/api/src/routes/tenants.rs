//! `GET /api/v1/tenant`: the caller's own tenant.

use axum::extract::State;
use beffroi_store::Tenant;

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::json::ApiJson;
use crate::ApiState;

/// The tenant of the caller's token.
pub async fn tenant(State(state): State<ApiState>, caller: Caller) -> Result<ApiJson<Tenant>> {
    state
        .store
        .tenant(&caller.tenant)
        .await?
        .map(ApiJson)
        .ok_or_else(|| ApiError::NotFound(format!("tenant {} not found", caller.tenant)))
}
