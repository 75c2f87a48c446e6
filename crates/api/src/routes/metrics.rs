//! `GET /metrics`: every platform metric in the Prometheus text format. Unauthenticated (it
//! carries no tenant data); restrict it at the load balancer if needed.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::ApiState;

/// The Prometheus text exposition format's media type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics, rendered.
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, PROMETHEUS_TEXT)], state.metrics.render())
}
