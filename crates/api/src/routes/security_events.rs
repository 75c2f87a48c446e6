//! `GET /api/v1/security-events?limit&offset`: the caller's security events, newest first.

use axum::extract::State;
use beffroi_store::{EventScope, SecurityEvent};

use crate::auth::Caller;
use crate::error::Result;
use crate::json::ApiJson;
use crate::query::{Paging, QueryParams};
use crate::routes::OffsetPage;
use crate::ApiState;

/// One page of the caller's security events.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: QueryParams,
) -> Result<ApiJson<OffsetPage<SecurityEvent>>> {
    let paging = Paging::from_query(&query)?;
    let page = state
        .store
        .list_security_events(
            &EventScope::Tenant(caller.tenant),
            paging.limit,
            paging.offset,
        )
        .await?;
    Ok(ApiJson(OffsetPage {
        items: page.items,
        next_offset: page.next_offset,
    }))
}
