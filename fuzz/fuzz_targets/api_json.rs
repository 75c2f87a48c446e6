//! Fuzzes the API's JSON request bodies through the real router (`beffroi_api::router`) over
//! an in-memory SQLite store, as a tenant admin: the `ApiJson` extractor, each route's body
//! type and its validation, and the store calls behind them.
//!
//! Input: a first line `METHOD /api/v1/…` (any route and path parameters), then the body.
//! Properties: no panic; no 500 (bad input is the client's error, a 4xx); every error is a
//! problem+json body.

#![no_main]

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use beffroi_alerts::Alerts;
use beffroi_api::audit::AuditKeys;
use beffroi_api::clock::Clock;
use beffroi_api::enrollment::{EnrollmentSettings, DEFAULT_TOKEN_TTL};
use beffroi_api::governed::AgreementCache;
use beffroi_api::revocation::RevocationHook;
use beffroi_api::{router, tokens, ApiState};
use beffroi_live::{Hub, LiveConfig};
use beffroi_protocol::{GatewayId, SigningKey, TenantId};
use beffroi_store::{OpenOptions, Role, TokenScope};
use beffroi_telemetry::Metrics;
use libfuzzer_sys::fuzz_target;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// The tenant the admin token belongs to.
const TENANT: &str = "lyon";

/// Revocations go nowhere: there is no gate here.
struct NoGate;

impl RevocationHook for NoGate {
    fn gateway_revoked(&self, _: &TenantId, _: &GatewayId) {}
}

/// The runtime, the router and an admin token of `TENANT`, made once.
struct Api {
    runtime: tokio::runtime::Runtime,
    router: Router,
    bearer: String,
}

static API: LazyLock<Api> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let (router, bearer) = runtime.block_on(start());
    Api {
        runtime,
        router,
        bearer,
    }
});

async fn start() -> (Router, String) {
    let store = beffroi_store::open("sqlite::memory:", OpenOptions::default())
        .await
        .expect("an in-memory store opens");
    let tenant = TenantId::new(TENANT).expect("a valid tenant id");
    store
        .create_tenant(&tenant, "Ville de Lyon")
        .await
        .expect("a new store takes a tenant");
    let (bearer, record) = tokens::issue(
        TokenScope::Tenant {
            tenant,
            role: Role::Admin,
        },
        "fuzz",
    )
    .expect("a token is issued");
    store
        .create_token(&record)
        .await
        .expect("the token is stored");

    let metrics = Arc::new(Metrics::default());
    let live = Hub::new(LiveConfig::default(), store.clone(), metrics.clone());
    let (alerts, alert_task) = Alerts::new(store.clone(), live.clone(), metrics.clone());
    let shutdown = CancellationToken::new();
    tokio::spawn(alert_task.run(shutdown.clone()));
    tokio::spawn(live.clone().maintain(shutdown));
    // TEST KEY (audit): seed 7, 7, …, 7; nothing is signed with it here.
    let audit_key = SigningKey::from_bytes(&[7; 32]).verifying_key();
    let state = ApiState {
        store: store.clone(),
        metrics,
        ready: Arc::new(AtomicBool::new(true)),
        live,
        alerts,
        dashboard: Arc::default(),
        audit_keys: Arc::new(AuditKeys::new(audit_key, [])),
        clock: Clock::system(),
        agreements: AgreementCache::new(store),
        enrollment: Arc::new(EnrollmentSettings {
            pin: "00".repeat(32),
            default_ttl: DEFAULT_TOKEN_TTL,
            public_url: None,
        }),
        revocation: Arc::new(NoGate),
    };
    (router(state), format!("Bearer {bearer}"))
}

fuzz_target!(|data: &[u8]| {
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[][..]),
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return;
    };
    let Some((method, path)) = line.split_once(' ') else {
        return;
    };
    let method = match method {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        _ => return,
    };
    if !path.starts_with("/api/v1/") {
        return;
    }
    let api = &*API;
    let Ok(request) = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, &api.bearer)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
    else {
        // Not a URI: the HTTP server would refuse it before any route.
        return;
    };
    api.runtime.block_on(async {
        let response = api
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{line}: a 500 on client input"
        );
        if status.is_client_error() && status != StatusCode::METHOD_NOT_ALLOWED {
            let content_type = response.headers().get(header::CONTENT_TYPE);
            assert_eq!(
                content_type.and_then(|v| v.to_str().ok()),
                Some("application/problem+json"),
                "{line}: a {status} without a problem+json body"
            );
        }
    });
});
