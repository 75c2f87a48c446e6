//! `GET /healthz` (the process answers) and `GET /readyz` (the platform is up, its ingest is
//! connected and subscribed to the broker, and its store answers), both unauthenticated, for
//! load balancers and orchestrators.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use serde_json::{json, Value};

use crate::error::{ApiError, Result};
use crate::json::ApiJson;
use crate::ApiState;

/// How long `/readyz` waits for the store.
pub const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Always 200 `{"status":"ok"}` while the process serves HTTP.
pub async fn healthz() -> ApiJson<Value> {
    ApiJson(json!({ "status": "ok" }))
}

/// 200 `{"status":"ready"}` when the ready flag is set, the ingest holds its broker
/// subscription (`beffroi_ingest_broker_connected`) and the store answers within
/// [`STORE_PROBE_TIMEOUT`]; 503 problem+json otherwise.
pub async fn readyz(State(state): State<ApiState>) -> Result<ApiJson<Value>> {
    if !state.ready.load(Ordering::Acquire) {
        return Err(ApiError::NotReady(
            "the platform is starting or stopping: ingest and broker are not up".to_owned(),
        ));
    }
    if state.metrics.ingest_broker_connected.get() != 1 {
        return Err(ApiError::NotReady(
            "the ingest is not connected to the broker (reconnecting)".to_owned(),
        ));
    }
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, state.store.list_tenants()).await {
        Ok(Ok(_)) => Ok(ApiJson(json!({
            "status": "ready",
            "store": state.store.backend().as_str(),
        }))),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness probe: the store failed");
            Err(ApiError::NotReady("the store does not answer".to_owned()))
        }
        Err(_) => Err(ApiError::NotReady(format!(
            "the store did not answer within {STORE_PROBE_TIMEOUT:?}"
        ))),
    }
}
