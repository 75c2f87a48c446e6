//! `GET /api/v1/gateways` and `GET /api/v1/gateways/{id}`: registered gateways and the state
//! they last reported (last seen, spool depth, gaps, agent version, revocation).

use axum::extract::State;
use beffroi_protocol::GatewayId;
use beffroi_store::GatewayRecord;

use crate::auth::Caller;
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
        .ok_or_else(|| ApiError::NotFound(format!("gateway {id} not found")))
}
