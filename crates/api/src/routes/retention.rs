//! `/api/v1/retention`: the caller's retention policies, per metric class (`air.pm25`,
//! `air.*` or `*`; the class is the URL-encoded path segment, e.g. `air.%2A`). Reading needs
//! a viewer token; setting and deleting need admin. Every change is recorded in the audit log
//! before it is applied (`retention_change`; 503 and nothing changed when the log cannot be
//! written). The platform's retention task applies the policies, each purge batch leaving a
//! `purge` receipt in the same log.

use axum::extract::State;
use axum::http::StatusCode;
use beffroi_audit::AuditKind;
use beffroi_policy::MetricPattern;
use beffroi_protocol::Timestamp;
use beffroi_store::RetentionPolicy;
use serde::Deserialize;

use crate::audit::{audited, change_by};
use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::json::ApiJson;
use crate::path::IdPath;
use crate::routes::Items;
use crate::ApiState;

/// The body of `PUT /api/v1/retention/{class}`: how many days each kind of data is kept;
/// absent or `null`: kept (up to the instance-wide retention).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// Days raw readings are kept.
    #[serde(default)]
    pub raw_days: Option<u32>,
    /// Days stored aggregates are kept.
    #[serde(default)]
    pub aggregate_days: Option<u32>,
}

/// The caller's policies, by class.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<ApiJson<Items<RetentionPolicy>>> {
    let items = state.store.retention_policies(&caller.tenant).await?;
    Ok(ApiJson(Items { items }))
}

/// Creates or replaces the policy of a class (admin).
pub async fn put(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(class): IdPath<MetricPattern>,
    ApiJson(body): ApiJson<RetentionBody>,
) -> Result<ApiJson<RetentionPolicy>> {
    caller.require(beffroi_store::Role::Admin)?;
    let policy = RetentionPolicy {
        tenant: caller.tenant.clone(),
        class,
        raw_days: body.raw_days,
        aggregate_days: body.aggregate_days,
        updated_at: Timestamp::now(),
    };
    policy
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let change = change_by(
        &caller,
        AuditKind::RetentionChange,
        "upsert",
        "retention_policy",
        policy.class.to_string(),
    )
    .with_request(&body_of(&policy));
    audited(state.store.as_ref(), &[change], async {
        Ok::<_, ApiError>(state.store.set_retention_policy(&policy).await?)
    })
    .await?;
    Ok(ApiJson(policy))
}

/// Deletes the policy of a class (admin): 204; its metrics then follow the next most
/// specific class.
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(class): IdPath<MetricPattern>,
) -> Result<StatusCode> {
    caller.require(beffroi_store::Role::Admin)?;
    let change = change_by(
        &caller,
        AuditKind::RetentionChange,
        "delete",
        "retention_policy",
        class.to_string(),
    );
    audited(state.store.as_ref(), &[change], async {
        Ok::<_, ApiError>(
            state
                .store
                .delete_retention_policy(&caller.tenant, &class)
                .await?,
        )
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the audit entry of a change records: the durations asked for.
fn body_of(policy: &RetentionPolicy) -> serde_json::Value {
    serde_json::json!({
        "raw_days": policy.raw_days,
        "aggregate_days": policy.aggregate_days,
    })
}
