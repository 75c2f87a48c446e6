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
//! class. The live-view websocket is `/api/v1/live` ([`routes::live`], protocol in
//! `docs/live.md`); the operators' dashboard is served at `/` from
//! [`routes::dashboard::DashboardConfig::dir`].

pub mod audit;
pub mod auth;
pub mod clock;
pub mod enrollment;
pub mod error;
pub mod governed;
pub mod json;
pub mod path;
pub mod query;
pub mod revocation;
pub mod routes;
pub mod tokens;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::serve::ListenerExt;
use axum::Router;
use beffroi_alerts::Alerts;
use beffroi_live::Hub;
use beffroi_store::Store;
use beffroi_telemetry::Metrics;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::routes::dashboard::DashboardConfig;

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
    /// Live views (websocket clients; alarm changes are pushed to it).
    pub live: Hub,
    /// The alert engine (told when rules change).
    pub alerts: Alerts,
    /// How the dashboard is served.
    pub dashboard: Arc<DashboardConfig>,
    /// "Now" for governed reads (the system clock; tests set it).
    pub clock: clock::Clock,
    /// The sharing agreements governed reads are decided against (see
    /// [`governed::AgreementCache`]).
    pub agreements: governed::AgreementCache,
    /// The platform's audit public keys (`/api/v1/audit/public-key`, `/api/v1/audit/verify`).
    pub audit_keys: Arc<audit::AuditKeys>,
    /// How enrollment tokens are made (`POST /api/v1/gateways`).
    pub enrollment: Arc<enrollment::EnrollmentSettings>,
    /// Cuts a gateway off in this process once its revocation is stored.
    pub revocation: Arc<dyn revocation::RevocationHook>,
}

impl ApiState {
    /// A tenant's sensors or zones changed: live views and alarm rules scoped by zone follow.
    pub fn registry_changed(&self, tenant: &beffroi_protocol::TenantId) {
        self.live.registry_changed(tenant);
        self.alerts.registry_changed(tenant.clone());
    }

    /// A tenant's alarm rules changed: the alert engine reloads them (and, in a cluster, the
    /// other nodes' engines hear of it through the live hub's notices).
    pub fn rules_changed(&self, tenant: &beffroi_protocol::TenantId) {
        self.live.rules_changed(tenant);
        self.alerts.rules_changed(tenant.clone());
    }
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

    fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, ApiState>,
        T: 'static,
    {
        self.add(Method::POST, path, handler)
    }

    fn delete<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, ApiState>,
        T: 'static,
    {
        self.add(Method::DELETE, path, handler)
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
    .get("/api/v1/dashboard-config", dashboard::config)
    .get("/api/v1/me", me::me)
    .get("/api/v1/live", live::live)
    .get("/api/v1/tenant", tenants::tenant)
    .get("/api/v1/gateways", gateways::list)
    .post("/api/v1/gateways", gateways::create)
    .get("/api/v1/gateways/enrollments", gateways::enrollments)
    .get("/api/v1/gateways/{id}", gateways::one)
    .post("/api/v1/gateways/{id}/revoke", gateways::revoke)
    .get("/api/v1/sensors", sensors::list)
    .put("/api/v1/sensors/{id}", sensors::put)
    .get("/api/v1/zones", zones::list)
    .put("/api/v1/zones/{id}", zones::put)
    .get("/api/v1/readings", readings::raw)
    .get("/api/v1/readings/buckets", readings::buckets)
    .get("/api/v1/quarantine", quarantine::list)
    .get("/api/v1/security-events", security_events::list)
    .get("/api/v1/alarm-rules", alarm_rules::list)
    .post("/api/v1/alarm-rules", alarm_rules::create)
    .get("/api/v1/alarm-rules/{id}", alarm_rules::one)
    .put("/api/v1/alarm-rules/{id}", alarm_rules::update)
    .delete("/api/v1/alarm-rules/{id}", alarm_rules::delete)
    .get("/api/v1/alarms", alarms::list)
    .get("/api/v1/alarms/{id}", alarms::one)
    .post("/api/v1/alarms/{id}/acknowledge", alarms::acknowledge)
    .post("/api/v1/alarms/{id}/clear", alarms::clear)
    .get(
        "/api/v1/platform/security-events",
        platform::security_events,
    )
    .get("/api/v1/agreements", agreements::list)
    .post("/api/v1/agreements", agreements::create)
    .post("/api/v1/agreements/import", agreements::import)
    .get("/api/v1/agreements/{id}", agreements::one)
    .put("/api/v1/agreements/{id}", agreements::update)
    .post("/api/v1/agreements/{id}/state", agreements::set_state)
    .get("/api/v1/agreements/{id}/odrl", agreements::odrl)
    .post(
        "/api/v1/agreements/{id}/keys/rotate",
        agreements::rotate_key,
    )
    .get(
        "/api/v1/agreements/{id}/preview/readings",
        agreements::preview_readings,
    )
    .get(
        "/api/v1/agreements/{id}/preview/aggregates",
        agreements::preview_aggregates,
    )
    .get("/api/v1/partners", partners::list)
    .post("/api/v1/partners", partners::create)
    .get("/api/v1/shared", shared::list)
    .get("/api/v1/shared/{grantor}/sensors", shared::sensors)
    .get("/api/v1/shared/{grantor}/readings", shared::readings)
    .get("/api/v1/shared/{grantor}/aggregates", shared::aggregates)
    .get("/api/v1/shared/{grantor}/export", shared::export)
    .get("/api/v1/audit", routes::audit::list)
    .get("/api/v1/audit/verify", routes::audit::verify)
    .get("/api/v1/audit/checkpoints", routes::audit::checkpoints)
    .get("/api/v1/audit/public-key", routes::audit::public_key)
    .get("/api/v1/pooling/usage", pooling::usage)
    .get("/api/v1/retention", retention::list)
    .put("/api/v1/retention/{class}", retention::put)
    .delete("/api/v1/retention/{class}", retention::delete)
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
        .fallback(fallback)
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
    // Live frames are small writes the client never answers: without TCP_NODELAY each would
    // wait for the ACK of the one before (Nagle), which the client's kernel delays up to 40 ms.
    let listener = listener.tap_io(|socket| {
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an API connection");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see /api/v1/openapi.json".to_owned())
}

/// What no route matched: the dashboard's files (GET and HEAD outside `/api/`), else a 404
/// problem.
async fn fallback(State(state): State<ApiState>, request: Request) -> Response {
    let Some(dir) = &state.dashboard.dir else {
        return not_found().into_response();
    };
    if request.uri().path().starts_with("/api/") {
        return not_found().into_response();
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return ApiError::MethodNotAllowed.into_response();
    }
    let immutable = request.uri().path().starts_with("/assets/");
    let files = tower_http::services::ServeDir::new(dir).append_index_html_on_directories(true);
    let response = match files.oneshot(request).await {
        Ok(response) if response.status() != StatusCode::NOT_FOUND => {
            response.map(axum::body::Body::new)
        }
        _ => return not_found().into_response(),
    };
    let mut response = routes::dashboard::secure(
        response,
        &routes::dashboard::content_security_policy(&state.dashboard),
    );
    // Vite names assets by content hash: they never change; the page itself is revalidated.
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
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
    use axum::routing::get;

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
        assert_eq!(routes.len(), 56);
    }
}
