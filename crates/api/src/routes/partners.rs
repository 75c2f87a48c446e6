//! Partners: organisations that are not tenants of this platform and may be granted data.
//! `GET /api/v1/partners` lists them for grantors choosing a grantee (any tenant token);
//! `POST /api/v1/partners` creates one (platform operators; also `beffroi partner create`).

use axum::extract::State;
use axum::http::StatusCode;
use beffroi_policy::PartnerId;
use beffroi_protocol::Timestamp;
use beffroi_store::Partner;
use serde::Deserialize;

use crate::auth::{Caller, PlatformOperator};
use crate::error::{ApiError, Result};
use crate::json::ApiJson;
use crate::routes::Items;
use crate::ApiState;

/// Longest partner name.
pub const MAX_NAME_LEN: usize = 200;

/// The body of `POST /api/v1/partners`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerBody {
    /// Its id (slug).
    pub id: PartnerId,
    /// Its display name (1..=200 characters).
    pub name: String,
}

/// Every partner.
pub async fn list(
    State(state): State<ApiState>,
    _caller: Caller,
) -> Result<ApiJson<Items<Partner>>> {
    Ok(ApiJson(Items {
        items: state.store.list_partners().await?,
    }))
}

/// Creates a partner (platform operators).
pub async fn create(
    State(state): State<ApiState>,
    _operator: PlatformOperator,
    ApiJson(body): ApiJson<PartnerBody>,
) -> Result<(StatusCode, ApiJson<Partner>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::bad_request(format!(
            "name: 1 to {MAX_NAME_LEN} characters"
        )));
    }
    let partner = Partner {
        id: body.id,
        name: name.to_owned(),
        created_at: Timestamp::now(),
    };
    state.store.create_partner(&partner).await?;
    Ok((StatusCode::CREATED, ApiJson(partner)))
}
