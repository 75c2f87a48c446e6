//! `GET /api/v1/quarantine?limit&offset`: the caller's rejected messages, newest first.

use axum::extract::State;
use beffroi_store::QuarantineRecord;

use crate::auth::Caller;
use crate::error::Result;
use crate::json::ApiJson;
use crate::query::{Paging, QueryParams};
use crate::routes::OffsetPage;
use crate::ApiState;

/// One page of the caller's quarantine (the raw payload is not included).
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: QueryParams,
) -> Result<ApiJson<OffsetPage<QuarantineRecord>>> {
    let paging = Paging::from_query(&query)?;
    let page = state
        .store
        .list_quarantine(&caller.tenant, paging.limit, paging.offset)
        .await?;
    Ok(ApiJson(OffsetPage {
        items: page.items,
        next_offset: page.next_offset,
    }))
}
