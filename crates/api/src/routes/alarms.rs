//! `/api/v1/alarms`: the caller's alarms (active and history), acknowledging and clearing
//! them (operator role). Every change is pushed to live views at once.

use axum::extract::State;
use beffroi_protocol::Timestamp;
use beffroi_store::{Actor, Alarm, AlarmAction, AlarmFilter, AlarmState, Role, MAX_COMMENT_CHARS};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::json::ApiJson;
use crate::path::IdPath;
use crate::query::{Paging, QueryParams};
use crate::routes::OffsetPage;
use crate::ApiState;

/// The body of `POST /api/v1/alarms/{id}/acknowledge` and `…/clear`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Why, in words (optional).
    #[serde(default)]
    pub comment: Option<String>,
}

impl ActionBody {
    fn comment(self) -> Result<Option<String>> {
        let comment = self
            .comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if let Some(text) = &comment {
            if text.chars().count() > MAX_COMMENT_CHARS {
                return Err(ApiError::bad_request(format!(
                    "comment: at most {MAX_COMMENT_CHARS} characters"
                )));
            }
        }
        Ok(comment)
    }
}

/// One page of the caller's alarms, newest opened first; `state` (repeatable: `open`,
/// `acknowledged`, `cleared`) filters.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: QueryParams,
) -> Result<ApiJson<OffsetPage<Alarm>>> {
    let paging = Paging::with_keys(&query, &["state"])?;
    let states = query
        .all("state")
        .map(|s| {
            AlarmState::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "state: {s:?} is not one of open, acknowledged, cleared"
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let page = state
        .store
        .list_alarms(
            &caller.tenant,
            &AlarmFilter { states },
            paging.limit,
            paging.offset,
        )
        .await?;
    Ok(ApiJson(OffsetPage {
        items: page.items,
        next_offset: page.next_offset,
    }))
}

/// One of the caller's alarms.
pub async fn one(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<i64>,
) -> Result<ApiJson<Alarm>> {
    state
        .store
        .alarm(&caller.tenant, id)
        .await?
        .map(ApiJson)
        .ok_or_else(|| ApiError::NotFound(format!("alarm {id} not found")))
}

/// Acknowledges an open alarm (operator): who, when, comment. 409 unless it is open.
pub async fn acknowledge(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<i64>,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<ApiJson<Alarm>> {
    caller.require(Role::Operator)?;
    let action = action(&caller, body)?;
    let alarm = state
        .store
        .acknowledge_alarm(&caller.tenant, id, &action)
        .await?;
    state.live.alarm_changed(&alarm);
    Ok(ApiJson(alarm))
}

/// Clears an active alarm by hand (operator). 409 if it is already cleared.
pub async fn clear(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<i64>,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<ApiJson<Alarm>> {
    caller.require(Role::Operator)?;
    let action = action(&caller, body)?;
    let alarm = state.store.clear_alarm(&caller.tenant, id, &action).await?;
    state.live.alarm_changed(&alarm);
    Ok(ApiJson(alarm))
}

fn action(caller: &Caller, body: ActionBody) -> Result<AlarmAction> {
    Ok(AlarmAction {
        at: Timestamp::now(),
        by: Some(Actor {
            token_id: caller.token_id.clone(),
            name: caller.token_name.clone(),
        }),
        comment: body.comment()?,
    })
}
