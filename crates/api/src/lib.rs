//! The platform's HTTP API (axum): JSON under `/api/v1`, bearer tokens with roles per tenant,
//! problem+json errors, an OpenAPI 3.1 document, `/healthz`, `/readyz` and Prometheus
//! `/metrics`.
//!
//! This crate owns HTTP and nothing below it: every read and write goes through the
//! [`Store`] trait, every query is scoped to the tenant of the caller's token
//! ([`auth::Caller`]), and no handler can name another tenant. It does no SQL, no MQTT and no
//! policy decisions of its own.
//!
//! Use: build an [`ApiState`], pass [`router`] to [`serve`] with a bound listener and a
//! shutdown token. Limits: request bodies [`BODY_LIMIT_BYTES`], requests
//! [`REQUEST_TIMEOUT`]; every response is counted in `beffroi_http_requests_total` by status
//! class.

pub mod auth;
pub mod error;
pub mod json;
pub mod path;
pub mod query;
pub mod routes;
pub mod tokens;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use beffroi_store::Store;
use beffroi_telemetry::Metrics;
use tokio_util::sync::CancellationToken;

pub use error::{ApiError, Result};

/// Largest request body accepted (413 above).
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// Longest a request may take before it is answered 503 (`urn:beffroi:problem:timeout`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    /// The store (registry, readings, quarantine, security events, tokens).
    pub store: Arc<dyn Store>,
    /// The platform's metrics (rendered by `/metrics`; HTTP responses counted here).
    pub metrics: Arc<Metrics>,
    /// Set by the platform once ingest and the broker are up (and cleared when stopping);
    /// `/readyz` answers 200 only while it is set and the store answers.
    pub ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("backend", &self.store.backend())
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

/// Collects routes while recording each `(method, path)`, so that the served routes and the
/// list checked against the OpenAPI document cannot drift apart.
struct RouteTable {
    router: Router<ApiState>,
    routes: Vec<(Method, &'static str)>,
}

impl RouteTable {
    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, ApiState>,
        T: 'static,
    {
        // `MethodFilter::try_from` fails only for methods axum has no filter for; this table
        // uses GET and PUT, and a test walks every route.
        if let Ok(filter) = MethodFilter::try_from(method.clone()) {
            self.router = self.router.route(path, on(filter, handler));
            self.routes.push((method, path));
        }
        self
    }

    fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, ApiState>,
        T: 'static,
    {
        self.add(Method::GET, path, handler)
    }

    fn put<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, ApiState>,
        T: 'static,
    {
        self.add(Method::PUT, path, handler)
    }
}

fn route_table() -> RouteTable {
    use routes::*;
    RouteTable {
        router: Router::new(),
        routes: Vec::new(),
    }
    .get("/healthz", health::healthz)
    .get("/readyz", health::readyz)
    .get("/metrics", metrics::metrics)
    .get("/api/v1/openapi.json", openapi::openapi)
    .get("/api/v1/tenant", tenants::tenant)
    .get("/api/v1/gateways", gateways::list)
    .get("/api/v1/gateways/{id}", gateways::one)
    .get("/api/v1/sensors", sensors::list)
    .put("/api/v1/sensors/{id}", sensors::put)
    .get("/api/v1/zones", zones::list)
    .put("/api/v1/zones/{id}", zones::put)
    .get("/api/v1/readings", readings::raw)
    .get("/api/v1/readings/buckets", readings::buckets)
    .get("/api/v1/quarantine", quarantine::list)
    .get("/api/v1/security-events", security_events::list)
}

/// Every `(method, path)` the [`router`] serves, paths in axum/OpenAPI template syntax.
pub fn routes() -> Vec<(Method, &'static str)> {
    route_table().routes
}

/// The API's router with its limits, timeout, request counting and problem+json fallbacks.
pub fn router(state: ApiState) -> Router {
    let metrics = state.metrics.clone();
    route_table()
        .router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(middleware::from_fn(timeout))
        .layer(middleware::from_fn_with_state(metrics, count_responses))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting and
/// lets requests in flight finish (the caller bounds that with its own deadline).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see /api/v1/openapi.json".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Answers 503 problem+json when a request takes longer than [`REQUEST_TIMEOUT`].
async fn timeout(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(REQUEST_TIMEOUT).into_response(),
    }
}

/// Counts every response by status class.
async fn count_responses(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics.http_requests.incr(class);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt as _;

    #[tokio::test(start_paused = true)]
    async fn slow_requests_time_out_with_a_problem() {
        let app: Router = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(REQUEST_TIMEOUT * 2).await;
                    "late"
                }),
            )
            .layer(middleware::from_fn(timeout));
        let request = Request::builder()
            .uri("/slow")
            .body(Body::empty())
            .expect("valid request");
        let response = app.oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get("content-type").map(|v| v.as_bytes()),
            Some(error::PROBLEM_JSON.as_bytes())
        );
    }

    #[test]
    fn every_route_is_registered_once() {
        let routes = routes();
        let unique: std::collections::BTreeSet<_> =
            routes.iter().map(|(m, p)| (m.as_str(), *p)).collect();
        assert_eq!(unique.len(), routes.len());
        assert_eq!(routes.len(), 15);
    }
}
