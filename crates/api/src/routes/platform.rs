//! `GET /api/v1/platform/security-events`: for platform operators, the security events that
//! belong to no tenant (clients without a certificate, unknown CAs, flooding sources). Tenant
//! tokens get 403 here, and platform tokens never see a tenant's events.

use axum::extract::State;
use beffroi_store::{EventScope, SecurityEvent};

use crate::auth::PlatformOperator;
use crate::error::Result;
use crate::json::ApiJson;
use crate::query::{Paging, QueryParams};
use crate::routes::OffsetPage;
use crate::ApiState;

/// One page of the security events of no tenant, newest first.
pub async fn security_events(
    State(state): State<ApiState>,
    _operator: PlatformOperator,
    query: QueryParams,
) -> Result<ApiJson<OffsetPage<SecurityEvent>>> {
    let paging = Paging::from_query(&query)?;
    let page = state
        .store
        .list_security_events(&EventScope::Platform, paging.limit, paging.offset)
        .await?;
    Ok(ApiJson(OffsetPage {
        items: page.items,
        next_offset: page.next_offset,
    }))
}
