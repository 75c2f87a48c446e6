//! Integration tests: the real router served on 127.0.0.1:0 over a SQLite store (temp file),
//! seeded with two tenants, exercised with a real HTTP/1.1 client. The governance and audit
//! tests run on PostgreSQL too, with and without TimescaleDB (`on_each_backend!`, `database`).
//!
//! Tenant A is `lyon`, tenant B is `paris`. Every name of B's data carries the marker
//! `paris` so that a leak shows up as the marker in a 2xx body. The router runs with its live
//! hub, alert task and (when a test asks) dashboard files; the alarm routes, the live
//! websocket and the session routes have their own modules.

/// Declares, for each case (an `async fn(Harness) -> Result<()>` of the enclosing module),
/// one test per backend: `case::sqlite`, `case::postgres` and `case::timescale`, each with a
/// harness started on a fresh database of that backend ([`Harness::run`]).
macro_rules! on_each_backend {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use crate::database::Backend;

            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                crate::Harness::run(Backend::Sqlite, super::$case).await
            }

            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                crate::Harness::run(Backend::Postgres, super::$case).await
            }

            #[tokio::test]
            async fn timescale() -> anyhow::Result<()> {
                crate::Harness::run(Backend::Timescale, super::$case).await
            }
        }
    )*};
}

#[path = "api/alarms.rs"]
mod alarms;
#[path = "api/audit.rs"]
mod audit;
#[path = "api/database.rs"]
mod database;
#[path = "api/gateways.rs"]
mod gateways;
#[path = "api/governance.rs"]
mod governance;
#[path = "api/live.rs"]
mod live;
#[path = "api/pooling.rs"]
mod pooling;
#[path = "api/pooling_aggregates.rs"]
mod pooling_aggregates;
#[path = "api/pooling_alarms.rs"]
mod pooling_alarms;
#[path = "api/retention.rs"]
mod retention;
#[path = "api/session.rs"]
mod session;
#[path = "api/shared_export.rs"]
mod shared_export;
#[path = "api/shared_live.rs"]
mod shared_live;
#[path = "api/timescale.rs"]
mod timescale;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::body::Bytes;
use axum::http::{header, Method, Request, StatusCode};
use beffroi_alerts::Alerts;
use beffroi_api::clock::Clock;
use beffroi_api::governed::{AgreementCache, PoolAlarms};
use beffroi_api::routes::dashboard::DashboardConfig;
use beffroi_api::{router, serve, tokens, ApiState};
use beffroi_live::{Hub, LiveConfig};
use beffroi_protocol::{
    Gap, GapReason, GatewayId, Health, KeyId, MetricName, Reading, SensorId, TenantId, Timestamp,
    Unit, Value as ReadingValue,
};
use beffroi_store::{
    AlarmRule, AlarmSubject, CommitBatch, Comparison, NewAlarm, NewGateway, QuarantineReason,
    QuarantineRecord, Role, RuleCondition, RuleId, SecurityEvent, SecurityEventKind, Severity,
    Store, TokenScope, Zone,
};
use beffroi_telemetry::Metrics;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use self::database::{Backend, TestDatabase};

const A: &str = "lyon";
const B: &str = "paris";
const MINUTE_US: i64 = 60_000_000;
/// Readings per (gateway, sensor, metric) series in tenant A: one every 30 s for 30 min.
const STEPS: i64 = 60;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

struct Tokens {
    a_viewer: String,
    a_operator: String,
    a_admin: String,
    b_viewer: String,
    b_admin: String,
}

struct Harness {
    addr: SocketAddr,
    store: Arc<dyn Store>,
    live: Hub,
    /// The alert engine (pooled rules decided by the API's governor), fed by tests as the
    /// platform's fan-out feeds it.
    alerts: Alerts,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    /// The API clock, in microseconds since the epoch; 0: the system clock.
    now_us: Arc<AtomicI64>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    tokens: Tokens,
    /// Start of tenant A's readings (aligned on the hour).
    t0: Timestamp,
    /// Readings stored for tenant A.
    a_readings: usize,
    /// The gateways the API revoked, as the platform's revocation hook heard them.
    revoked: Arc<RevokedHere>,
    /// The store's database, reachable beside it (dropped last).
    database: TestDatabase,
}

/// The enrollment pin the harness's tokens carry.
const PIN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// What the API told the platform to cut off (the platform's own hook, the gate and the
/// ingest, is tested in the platform crate).
#[derive(Debug, Default)]
struct RevokedHere(std::sync::Mutex<Vec<(TenantId, GatewayId)>>);

impl beffroi_api::revocation::RevocationHook for RevokedHere {
    fn gateway_revoked(&self, tenant: &TenantId, gateway: &GatewayId) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((tenant.clone(), gateway.clone()));
    }
}

impl RevokedHere {
    fn heard(&self) -> Vec<(TenantId, GatewayId)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

struct Response {
    status: StatusCode,
    content_type: String,
    www_authenticate: Option<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a problem+json body with this status; returns its detail.
    fn problem(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.content_type,
            "application/problem+json",
            "{}",
            self.text()
        );
        let body = self.json();
        assert_eq!(keys(&body), ["detail", "status", "title", "type"], "{body}");
        assert_eq!(body["status"], status.as_u16());
        assert!(body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:beffroi:problem:")));
        body["detail"].as_str().unwrap_or_default().to_owned()
    }
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn ts(t: Timestamp) -> String {
    t.to_string()
}

fn at(t0: Timestamp, minutes: i64) -> Timestamp {
    Timestamp::from_unix_micros(t0.unix_micros() + minutes * MINUTE_US)
}

impl Harness {
    async fn start() -> Result<Self> {
        Self::start_with(LiveConfig::default(), DashboardConfig::default()).await
    }

    async fn start_with(live_config: LiveConfig, dashboard: DashboardConfig) -> Result<Self> {
        let database = TestDatabase::create(Backend::Sqlite)
            .await?
            .context("SQLite is always available")?;
        Self::start_on(database, live_config, dashboard).await
    }

    /// Runs `case` on a harness over a fresh database of `backend`; a PostgreSQL run without
    /// `TEST_DATABASE_URL` is skipped (a notice), or fails under CI.
    async fn run<F, Fut>(backend: Backend, case: F) -> Result<()>
    where
        F: FnOnce(Harness) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let Some(database) = TestDatabase::create(backend).await? else {
            return Ok(());
        };
        let h = Self::start_on(database, LiveConfig::default(), DashboardConfig::default()).await?;
        case(h).await
    }

    async fn start_on(
        database: TestDatabase,
        live_config: LiveConfig,
        dashboard: DashboardConfig,
    ) -> Result<Self> {
        let store = beffroi_store::open(database.url(), database.options()).await?;
        let now = Timestamp::now().unix_micros();
        let hour = 60 * MINUTE_US;
        let t0 = Timestamp::from_unix_micros(now.div_euclid(hour) * hour - 2 * hour);
        let a_readings = seed(&*store, t0).await?;

        let tokens = Tokens {
            a_viewer: issue_token(&*store, A, Role::Viewer).await?,
            a_operator: issue_token(&*store, A, Role::Operator).await?,
            a_admin: issue_token(&*store, A, Role::Admin).await?,
            b_viewer: issue_token(&*store, B, Role::Viewer).await?,
            b_admin: issue_token(&*store, B, Role::Admin).await?,
        };

        let ready = Arc::new(AtomicBool::new(true));
        let now_us = Arc::new(AtomicI64::new(0));
        let metrics = Arc::new(Metrics::default());
        // The platform's ingest sets it once subscribed to the broker; here there is none.
        metrics.ingest_broker_connected.set(1);
        let live = Hub::new(live_config, store.clone(), metrics.clone());
        let (alerts, alert_task) = Alerts::new(store.clone(), live.clone(), metrics.clone());
        let clock = {
            let now_us = now_us.clone();
            Clock::new(move || match now_us.load(Ordering::SeqCst) {
                0 => Timestamp::now(),
                us => Timestamp::from_unix_micros(us),
            })
        };
        let agreements = AgreementCache::new(store.clone());
        let alert_task = alert_task.pooling(Arc::new(PoolAlarms::new(
            store.clone(),
            agreements.clone(),
            clock.clone(),
        )));
        let shutdown = CancellationToken::new();
        tokio::spawn(alert_task.run(shutdown.clone()));
        tokio::spawn(live.clone().maintain(shutdown.clone()));
        let revoked = Arc::new(RevokedHere::default());
        let state = ApiState {
            store: store.clone(),
            metrics: metrics.clone(),
            ready: ready.clone(),
            live: live.clone(),
            alerts: alerts.clone(),
            dashboard: Arc::new(dashboard),
            audit_keys: Arc::new(audit::audit_keys()),
            clock,
            agreements,
            enrollment: Arc::new(beffroi_api::enrollment::EnrollmentSettings {
                pin: PIN.to_owned(),
                default_ttl: beffroi_api::enrollment::DEFAULT_TOKEN_TTL,
                public_url: Some("https://beffroi.example:8443".to_owned()),
            }),
            revocation: revoked.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(serve(listener, router(state), shutdown.clone()));
        Ok(Self {
            addr,
            store,
            live,
            alerts,
            metrics,
            ready,
            now_us,
            shutdown,
            server,
            tokens,
            t0,
            a_readings,
            revoked,
            database,
        })
    }

    /// A request with a bearer token (or none) and an optional body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Response> {
        let authorization = token.map(|t| format!("Bearer {t}"));
        self.request(method, path, authorization.as_deref(), body)
            .await
    }

    /// A request with this exact Authorization header (or none).
    async fn request(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Response> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr.to_string());
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let bytes = match body {
            Some((content_type, bytes)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Vec::new(),
        };
        let response = sender
            .send_request(request.body(Full::new(Bytes::from(bytes)))?)
            .await?;
        let status = response.status();
        let header_text = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header_text(header::CONTENT_TYPE).unwrap_or_default();
        let www_authenticate = header_text(header::WWW_AUTHENTICATE);
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Response {
            status,
            content_type,
            www_authenticate,
            headers,
            body,
        })
    }

    async fn get(&self, path: &str, token: &str) -> Result<Response> {
        self.send(Method::GET, path, Some(token), None).await
    }

    async fn get_json(&self, path: &str, token: &str) -> Result<Value> {
        let response = self.get(path, token).await?;
        anyhow::ensure!(
            response.status == StatusCode::OK,
            "GET {path}: {} {}",
            response.status,
            response.text()
        );
        assert_eq!(response.content_type, "application/json");
        Ok(response.json())
    }

    async fn put_json(&self, path: &str, token: &str, body: &Value) -> Result<Response> {
        let bytes = serde_json::to_vec(body)?;
        self.send(
            Method::PUT,
            path,
            Some(token),
            Some(("application/json", bytes)),
        )
        .await
    }

    async fn post_json(&self, path: &str, token: &str, body: &Value) -> Result<Response> {
        let bytes = serde_json::to_vec(body)?;
        self.send(
            Method::POST,
            path,
            Some(token),
            Some(("application/json", bytes)),
        )
        .await
    }

    async fn delete(&self, path: &str, token: &str) -> Result<Response> {
        self.send(Method::DELETE, path, Some(token), None).await
    }

    /// `from`/`to` covering all of A's readings.
    fn range(&self) -> String {
        format!("from={}&to={}", ts(self.t0), ts(at(self.t0, 60)))
    }

    async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.server)
            .await
            .context("graceful shutdown took too long")???;
        self.store.close().await;
        Ok(())
    }
}

async fn issue_token(store: &dyn Store, tenant: &str, role: Role) -> Result<String> {
    let scope = TokenScope::Tenant {
        tenant: TenantId::new(tenant)?,
        role,
    };
    let (text, record) = tokens::issue(scope, "test")?;
    store.create_token(&record).await?;
    Ok(text)
}

fn polygon(lon: f64, lat: f64) -> Value {
    json!({ "type": "Polygon", "coordinates": [[
        [lon, lat], [lon + 0.1, lat], [lon + 0.1, lat + 0.1], [lon, lat + 0.1], [lon, lat]
    ]] })
}

fn reading(
    sensor: &str,
    metric: &str,
    unit: &str,
    time: Timestamp,
    value: ReadingValue,
) -> Reading {
    Reading {
        sensor: SensorId::new(sensor).expect("valid sensor"),
        metric: MetricName::new(metric).expect("valid metric"),
        unit: Unit::new(unit).expect("valid unit"),
        time,
        value,
    }
}

/// Value of A's numeric series at `step`: distinct per series so buckets can be checked.
fn a_value(sensor: &str, metric: &str, step: i64) -> f64 {
    let base = match (sensor, metric) {
        ("s-a1", "air.pm25") => 0.0,
        ("s-a1", _) => 100.0,
        ("shared", "air.pm25") => 200.0,
        _ => 300.0,
    };
    base + step as f64
}

/// Gives `tenant` a threshold rule `r-{tenant}` and an open alarm from it whose message names
/// the tenant; returns the alarm's id.
async fn seed_alarm(store: &dyn Store, tenant: &str) -> Result<i64> {
    let now = Timestamp::now();
    let rule = RuleId::new(format!("r-{tenant}"))?;
    store
        .create_alarm_rule(&AlarmRule {
            tenant: TenantId::new(tenant)?,
            id: rule.clone(),
            name: format!("{tenant} PM2.5"),
            severity: Severity::Major,
            enabled: true,
            condition: RuleCondition::Threshold {
                metric: MetricName::new("air.pm25")?,
                zone: None,
                sensors: Vec::new(),
                op: Comparison::Gt,
                value: 50.0,
                for_s: 0,
                pooled: None,
            },
            created_at: now,
            updated_at: now,
        })
        .await?;
    let raised = store
        .raise_alarm(&NewAlarm {
            tenant: TenantId::new(tenant)?,
            rule,
            rule_name: format!("{tenant} PM2.5"),
            severity: Severity::Major,
            subject: AlarmSubject::Series {
                sensor: SensorId::new("shared")?,
                metric: MetricName::new("air.pm25")?,
            },
            zone: None,
            message: format!("air.pm25 = 9000 in {tenant}"),
            value: Some(9000.0),
            at: now,
        })
        .await?;
    Ok(raised.alarm.id)
}

/// Seeds both tenants; returns how many readings tenant A has.
async fn seed(store: &dyn Store, t0: Timestamp) -> Result<usize> {
    let now = Timestamp::now();
    store
        .create_tenant(&TenantId::new(A)?, "Ville de Lyon")
        .await?;
    store
        .create_tenant(&TenantId::new(B)?, "Ville de Paris")
        .await?;
    for (tenant, gateway, key, fill) in [
        (A, "gw-a1", "k-a1", 1u8),
        (A, "gw-a2", "k-a2", 2),
        (B, "gw-paris", "k-paris", 3),
    ] {
        store
            .register_gateway(&NewGateway {
                tenant: TenantId::new(tenant)?,
                id: GatewayId::new(gateway)?,
                key_id: KeyId::new(key)?,
                public_key: [fill; 32],
                cert_fingerprint: None,
                cert_not_after: None,
            })
            .await?;
    }
    for (tenant, zone, name, lon) in [
        (A, "centre", "Centre", 4.8),
        (B, "z-paris", "paris nord", 2.3),
    ] {
        store
            .upsert_zone(&Zone {
                tenant: TenantId::new(tenant)?,
                id: SensorId::new(zone)?,
                name: name.into(),
                geometry: polygon(lon, 45.0),
            })
            .await?;
    }

    // Tenant A: gw-a1 carries s-a1 and shared, gw-a2 carries s-a2 (same times: ties).
    let mut batches = Vec::new();
    let mut a_count = 0;
    for (gateway, sensors) in [("gw-a1", vec!["s-a1", "shared"]), ("gw-a2", vec!["s-a2"])] {
        let mut readings = Vec::new();
        for step in 0..STEPS {
            let time = Timestamp::from_unix_micros(t0.unix_micros() + step * 30_000_000);
            for sensor in &sensors {
                readings.push(reading(
                    sensor,
                    "air.pm25",
                    "ug/m3",
                    time,
                    ReadingValue::Number(a_value(sensor, "air.pm25", step)),
                ));
                readings.push(reading(
                    sensor,
                    "noise.laeq",
                    "dB",
                    time,
                    ReadingValue::Number(a_value(sensor, "noise.laeq", step)),
                ));
            }
        }
        // A boolean: counted in raw readings, not in numeric buckets.
        readings.push(reading(
            sensors[0],
            "parking.occupied",
            "",
            at(t0, 1),
            ReadingValue::Bool(true),
        ));
        for (seq, chunk) in readings.chunks(50).enumerate() {
            a_count += chunk.len();
            batches.push(CommitBatch {
                tenant: TenantId::new(A)?,
                gateway: GatewayId::new(gateway)?,
                seq: seq as u64 + 1,
                key_id: KeyId::new(if gateway == "gw-a1" { "k-a1" } else { "k-a2" })?,
                signature: [9; 64],
                received_at: now,
                readings: chunk.to_vec(),
            });
        }
    }
    // Tenant B: the same metric names, a sensor named like one of A's, and its own sensor;
    // values 9000+ so that they stand out.
    let mut b_readings = Vec::new();
    for step in 0..STEPS {
        let time = Timestamp::from_unix_micros(t0.unix_micros() + step * 30_000_000);
        for sensor in ["shared", "s-paris"] {
            b_readings.push(reading(
                sensor,
                "air.pm25",
                "ug/m3",
                time,
                ReadingValue::Number(9000.0 + step as f64),
            ));
        }
    }
    // And one reading within the last 24 h of "now" on both sides, for the default range.
    b_readings.push(reading(
        "s-paris",
        "air.pm25",
        "ug/m3",
        Timestamp::from_unix_micros(now.unix_micros() - 10 * MINUTE_US),
        ReadingValue::Number(9999.0),
    ));
    batches.push(CommitBatch {
        tenant: TenantId::new(B)?,
        gateway: GatewayId::new("gw-paris")?,
        seq: 1,
        key_id: KeyId::new("k-paris")?,
        signature: [8; 64],
        received_at: now,
        readings: b_readings,
    });
    store.commit(&batches).await?;

    store
        .record_health(
            &Health {
                tenant: TenantId::new(A)?,
                gateway: GatewayId::new("gw-a1")?,
                time: now,
                uptime_s: 3600,
                agent_version: "0.1.0".into(),
                spool_batches: 3,
                spool_bytes: 4096,
                oldest_unacked_age_s: Some(12),
                batches_dropped: 2,
                readings_dropped: 100,
                rss_bytes: 5_000_000,
                next_seq: 10,
                gaps: vec![Gap {
                    first_seq: 4,
                    last_seq: 5,
                    batches: 2,
                    readings: 100,
                    reason: GapReason::SpoolFull,
                }],
                counters: BTreeMap::new(),
            },
            now,
        )
        .await?;

    for (tenant, count) in [(A, 3), (B, 2)] {
        for i in 0..count {
            let gateway = if tenant == A { "gw-a1" } else { "gw-paris" };
            store
                .quarantine(&QuarantineRecord {
                    tenant: Some(TenantId::new(tenant)?),
                    gateway: Some(GatewayId::new(gateway)?),
                    topic: format!("beffroi/v1/{tenant}/{gateway}/batch"),
                    seq: Some(100 + i),
                    reason: QuarantineReason::BadSignature,
                    detail: format!("{tenant} bad signature {i}"),
                    received_at: Timestamp::from_unix_micros(now.unix_micros() - i as i64),
                    payload: vec![1, 2, 3],
                    settles_seq: false,
                })
                .await?;
            store
                .security_event(&SecurityEvent {
                    time: Timestamp::from_unix_micros(now.unix_micros() - i as i64),
                    tenant: Some(TenantId::new(tenant)?),
                    gateway: Some(GatewayId::new(gateway)?),
                    address: Some("127.0.0.1:5000".into()),
                    kind: SecurityEventKind::AclViolation,
                    detail: format!("{tenant} acl violation {i}"),
                })
                .await?;
        }
    }
    Ok(a_count)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn registry_endpoints_have_stable_shapes() -> Result<()> {
    let h = Harness::start().await?;
    let token = &h.tokens.a_viewer;

    let tenant = h.get_json("/api/v1/tenant", token).await?;
    assert_eq!(keys(&tenant), ["created_at", "id", "name"]);
    assert_eq!(tenant["id"], A);
    assert_eq!(tenant["name"], "Ville de Lyon");

    let gateways = h.get_json("/api/v1/gateways", token).await?;
    assert_eq!(keys(&gateways), ["items"]);
    let ids: Vec<&str> = gateways["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|g| g["id"].as_str())
        .collect();
    assert_eq!(ids, ["gw-a1", "gw-a2"]);

    let gateway = h.get_json("/api/v1/gateways/gw-a1", token).await?;
    assert_eq!(
        keys(&gateway),
        [
            "cert_fingerprint",
            "cert_not_after",
            "created_at",
            "id",
            "key_id",
            "keys",
            "pending_enrollment",
            "public_key_hex",
            "rejected_batches",
            "revoked",
            "revoked_at",
            "state",
            "tenant"
        ]
    );
    assert_eq!(gateway["revoked_at"], Value::Null);
    assert_eq!(gateway["pending_enrollment"], Value::Null);
    assert_eq!(
        gateway["keys"].as_array().map(Vec::len),
        Some(1),
        "{gateway}"
    );
    assert_eq!(gateway["keys"][0]["key_id"], "k-a1");
    assert_eq!(gateway["keys"][0]["retired_at"], Value::Null);
    assert_eq!(gateway["tenant"], A);
    assert_eq!(gateway["key_id"], "k-a1");
    assert_eq!(gateway["revoked"], false);
    assert_eq!(gateway["public_key_hex"], "01".repeat(32));
    let state = &gateway["state"];
    assert_eq!(state["spool_batches"], 3);
    assert_eq!(state["spool_bytes"], 4096);
    assert_eq!(state["agent_version"], "0.1.0");
    assert_eq!(state["batches_dropped"], 2);
    assert!(state["last_seen"].is_string(), "{state}");
    assert_eq!(
        state["gaps"],
        json!([{ "first_seq": 4, "last_seq": 5, "batches": 2, "readings": 100, "reason": "spool-full" }])
    );

    h.store
        .revoke_gateway(
            &TenantId::new(A)?,
            &GatewayId::new("gw-a1")?,
            Timestamp::now(),
        )
        .await?;
    let gateway = h.get_json("/api/v1/gateways/gw-a1", token).await?;
    assert_eq!(gateway["revoked"], true);
    h.get("/api/v1/gateways/gw-none", token)
        .await?
        .problem(StatusCode::NOT_FOUND);

    // Sensors were registered by the commits with kind "unknown".
    let sensors = h.get_json("/api/v1/sensors", token).await?;
    let items = sensors["items"].as_array().context("items")?;
    let ids: BTreeSet<&str> = items.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["s-a1", "s-a2", "shared"]));
    for sensor in items {
        assert_eq!(sensor["tenant"], A);
        assert_eq!(sensor["kind"], "unknown");
        for key in ["id", "kind", "tenant"] {
            assert!(keys(sensor).contains(&key.to_owned()), "{sensor}");
        }
    }

    let zones = h.get_json("/api/v1/zones", token).await?;
    assert_eq!(zones["items"].as_array().map(Vec::len), Some(1));
    let zone = &zones["items"][0];
    assert_eq!(keys(zone), ["geometry", "id", "name", "tenant"]);
    assert_eq!(zone["id"], "centre");
    assert_eq!(zone["geometry"]["type"], "Polygon");
    h.stop().await
}

#[tokio::test]
async fn admins_write_sensors_and_zones_with_validation() -> Result<()> {
    let h = Harness::start().await?;
    let admin = &h.tokens.a_admin;

    let zone = h
        .put_json(
            "/api/v1/zones/gare",
            admin,
            &json!({ "name": "Part-Dieu", "geometry": polygon(4.85, 45.76) }),
        )
        .await?;
    assert_eq!(zone.status, StatusCode::OK, "{}", zone.text());
    assert_eq!(zone.json()["tenant"], A);

    let moved_at = at(h.t0, 5);
    let body = json!({ "kind": "air", "unit": "ug/m3", "lat": 45.76, "lon": 4.86, "zone": "gare",
                       "placed_at": ts(moved_at) });
    let sensor = h.put_json("/api/v1/sensors/s-a1", admin, &body).await?;
    assert_eq!(sensor.status, StatusCode::OK, "{}", sensor.text());
    assert_eq!(
        sensor.json(),
        json!({ "tenant": A, "id": "s-a1", "kind": "air", "unit": "ug/m3",
                "lat": 45.76, "lon": 4.86, "zone": "gare", "tags": [],
                "placed_at": ts(moved_at) })
    );
    // A move into the future, or before the last one, is refused.
    for placed_at in [at(Timestamp::now(), 10), at(h.t0, 1)] {
        let body = json!({ "kind": "air", "lat": 45.0, "lon": 4.0, "placed_at": ts(placed_at) });
        h.put_json("/api/v1/sensors/s-a1", admin, &body)
            .await?
            .problem(StatusCode::BAD_REQUEST);
    }
    let sensors = h.get_json("/api/v1/sensors", &h.tokens.a_viewer).await?;
    let stored = sensors["items"]
        .as_array()
        .context("items")?
        .iter()
        .find(|s| s["id"] == "s-a1")
        .cloned()
        .context("s-a1")?;
    assert_eq!(stored["zone"], "gare");
    assert_eq!(stored["lat"], 45.76);

    // Zone filter on readings now selects s-a1 only.
    let page = h
        .get_json(
            &format!("/api/v1/readings?zone=gare&limit=10000&{}", h.range()),
            &h.tokens.a_viewer,
        )
        .await?;
    let items = page["items"].as_array().context("items")?;
    assert!(!items.is_empty());
    assert!(items.iter().all(|r| r["sensor"] == "s-a1"));

    // Roles: viewer and operator may not write.
    for token in [&h.tokens.a_viewer, &h.tokens.a_operator] {
        let detail = h
            .put_json("/api/v1/sensors/s-a1", token, &body)
            .await?
            .problem(StatusCode::FORBIDDEN);
        assert!(detail.contains("admin"), "{detail}");
        h.put_json(
            "/api/v1/zones/gare",
            token,
            &json!({ "name": "x", "geometry": polygon(4.0, 45.0) }),
        )
        .await?
        .problem(StatusCode::FORBIDDEN);
    }

    // Validation.
    let bad_sensors = [
        (json!({ "kind": "air", "lat": 91.0, "lon": 4.0 }), "lat"),
        (json!({ "kind": "air", "lat": 45.0, "lon": -181.0 }), "lon"),
        (json!({ "kind": "air", "lat": 45.0 }), "together"),
        (json!({ "kind": "Air Quality" }), "kind"),
        (json!({ "kind": "" }), "kind"),
        (json!({ "kind": "air", "zone": "z-paris" }), "zone"),
        (
            json!({ "kind": "air", "zone": "Bad Zone" }),
            "invalid zone id",
        ),
        (json!({ "kind": "air", "unit": "a b" }), "unit"),
        (json!({ "kind": "air", "colour": "red" }), "colour"),
        (json!({ "unit": "dB" }), "kind"),
        (json!([1, 2]), "schema"),
    ];
    for (body, expected) in bad_sensors {
        let detail = h
            .put_json("/api/v1/sensors/s-a1", admin, &body)
            .await?
            .problem(StatusCode::BAD_REQUEST);
        assert!(detail.contains(expected), "{body}: {detail}");
    }
    let open_ring =
        json!({ "type": "Polygon", "coordinates": [[[4.0, 45.0], [4.1, 45.0], [4.0, 45.0]]] });
    let unclosed = json!({ "type": "Polygon", "coordinates": [[[4.0, 45.0], [4.1, 45.0], [4.1, 45.1], [4.0, 45.1], [4.0, 45.2]]] });
    let bad_zones = [
        (json!({ "name": "x", "geometry": open_ring }), "at least 4"),
        (json!({ "name": "x", "geometry": unclosed }), "not closed"),
        (
            json!({ "name": "x", "geometry": { "type": "Point", "coordinates": [4.0, 45.0] } }),
            "Point",
        ),
        (
            json!({ "name": "x", "geometry": { "type": "Polygon", "coordinates": [[[200.0, 45.0], [4.1, 45.0], [4.1, 45.1], [200.0, 45.0]]] } }),
            "longitude",
        ),
        (
            json!({ "name": "", "geometry": polygon(4.0, 45.0) }),
            "name",
        ),
        (json!({ "geometry": polygon(4.0, 45.0) }), "name"),
    ];
    for (body, expected) in bad_zones {
        let detail = h
            .put_json("/api/v1/zones/gare", admin, &body)
            .await?
            .problem(StatusCode::BAD_REQUEST);
        assert!(detail.contains(expected), "{body}: {detail}");
    }
    let detail = h
        .put_json(
            "/api/v1/zones/Bad_Id",
            admin,
            &json!({ "name": "x", "geometry": polygon(4.0, 45.0) }),
        )
        .await?
        .problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("invalid zone id"), "{detail}");

    // Malformed JSON, wrong media type, oversized body.
    let detail = h
        .send(
            Method::PUT,
            "/api/v1/sensors/s-a1",
            Some(admin),
            Some(("application/json", b"{\"kind\": ".to_vec())),
        )
        .await?
        .problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("JSON"), "{detail}");
    h.send(
        Method::PUT,
        "/api/v1/sensors/s-a1",
        Some(admin),
        Some(("text/plain", b"{}".to_vec())),
    )
    .await?
    .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut huge = b"{\"name\": \"".to_vec();
    huge.resize(2 * 1024 * 1024, b'a');
    huge.extend_from_slice(b"\"}");
    let detail = h
        .send(
            Method::PUT,
            "/api/v1/zones/big",
            Some(admin),
            Some(("application/json", huge)),
        )
        .await?
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(detail.contains("1048576"), "{detail}");
    h.stop().await
}

#[tokio::test]
async fn pagination_walks_every_reading_exactly_once() -> Result<()> {
    let h = Harness::start().await?;
    let token = &h.tokens.a_viewer;
    let mut seen = BTreeSet::new();
    let mut last_time = String::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v1/readings?limit=7&{}", h.range());
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = h.get_json(&path, token).await?;
        pages += 1;
        assert_eq!(keys(&page), ["from", "items", "next_cursor", "to"]);
        let items = page["items"].as_array().context("items")?;
        assert!(items.len() <= 7);
        for r in items {
            assert_eq!(
                keys(r),
                ["gateway", "metric", "sensor", "seq", "time", "unit", "value"]
            );
            let time = r["time"].as_str().context("time")?.to_owned();
            assert!(time >= last_time, "out of order: {time} after {last_time}");
            last_time = time.clone();
            let key = (
                r["gateway"].to_string(),
                r["sensor"].to_string(),
                r["metric"].to_string(),
                time,
            );
            assert!(seen.insert(key), "reading returned twice: {r}");
            assert_ne!(r["gateway"], "gw-paris");
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
        assert!(pages < 1000, "pagination does not end");
    }
    assert_eq!(seen.len(), h.a_readings);
    assert!(pages >= h.a_readings / 7);

    // Filters: repeated sensor and metric parameters.
    let page = h
        .get_json(
            &format!(
                "/api/v1/readings?sensor=s-a1&sensor=s-a2&metric=air.pm25&limit=10000&{}",
                h.range()
            ),
            token,
        )
        .await?;
    let items = page["items"].as_array().context("items")?;
    assert_eq!(items.len() as i64, 2 * STEPS);
    assert!(items
        .iter()
        .all(|r| r["metric"] == "air.pm25" && r["unit"] == "ug/m3"));
    assert_eq!(page["next_cursor"], Value::Null);
    let first = &items[0];
    assert_eq!(first["time"], ts(h.t0));
    assert!(first["value"].is_number());

    // Defaults: the last 24 h (B has a reading 10 minutes ago; A's are 1–2 h old).
    let page = h
        .get_json("/api/v1/readings?metric=air.pm25", token)
        .await?;
    let from = Timestamp::parse_rfc3339(page["from"].as_str().context("from")?).context("time")?;
    let to = Timestamp::parse_rfc3339(page["to"].as_str().context("to")?).context("time")?;
    assert_eq!(to.micros_since(from), 24 * 60 * MINUTE_US);
    // Three air.pm25 series in A (s-a1, shared, s-a2), none of B's.
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(3 * STEPS as usize)
    );
    h.stop().await
}

#[tokio::test]
async fn buckets_aggregate_numeric_values() -> Result<()> {
    let h = Harness::start().await?;
    let token = &h.tokens.a_viewer;
    let response = h
        .get_json(
            &format!(
                "/api/v1/readings/buckets?sensor=s-a1&metric=air.pm25&bucket=15m&{}",
                h.range()
            ),
            token,
        )
        .await?;
    assert_eq!(keys(&response), ["bucket", "from", "items", "to"]);
    assert_eq!(response["bucket"], "15m");
    let items = response["items"].as_array().context("items")?;
    assert_eq!(items.len(), 2, "{response}");
    // 30 readings per 15 min: values 0..=29, then 30..=59.
    assert_eq!(
        items[0],
        json!({ "start": ts(h.t0), "sensor": "s-a1", "metric": "air.pm25",
                "avg": 14.5, "min": 0.0, "max": 29.0, "count": 30 })
    );
    assert_eq!(
        items[1],
        json!({ "start": ts(at(h.t0, 15)), "sensor": "s-a1", "metric": "air.pm25",
                "avg": 44.5, "min": 30.0, "max": 59.0, "count": 30 })
    );

    // One hour, every series, default bucket 1h: the boolean metric gives no bucket.
    let response = h
        .get_json(&format!("/api/v1/readings/buckets?{}", h.range()), token)
        .await?;
    assert_eq!(response["bucket"], "1h");
    let items = response["items"].as_array().context("items")?;
    assert_eq!(items.len(), 6, "{response}");
    assert!(items
        .iter()
        .all(|b| b["count"] == STEPS && b["metric"] != "parking.occupied"));
    let shared = items
        .iter()
        .find(|b| b["sensor"] == "shared" && b["metric"] == "air.pm25")
        .context("shared bucket")?;
    assert_eq!(shared["min"], 200.0);
    assert_eq!(shared["max"], 259.0);
    h.stop().await
}

/// Whether a body holds one of tenant B's values (9000 to 9999) as a number of its own: random
/// ids and times that merely contain the digits do not count.
fn carries_b_value(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .filter_map(|word| word.parse::<f64>().ok())
        .any(|number| (9000.0..10_000.0).contains(&number))
}

#[tokio::test]
async fn a_tenant_never_sees_another_tenants_data() -> Result<()> {
    let h = Harness::start().await?;
    let range = h.range();
    // Sanity: B's token does see B's data carrying the marker.
    let b_page = h
        .get_json(&format!("/api/v1/readings?{range}"), &h.tokens.b_viewer)
        .await?;
    let b_text = serde_json::to_string(&b_page)?;
    assert!(b_text.contains(B) && carries_b_value(&b_text), "{b_text}");
    assert!(!carries_b_value(
        "{\"id\":\"tok-a9000f\",\"at\":\"2026-12-04T09:00:00Z\"}"
    ));

    // Every GET route, with B's ids substituted into paths and named in parameters (the live
    // websocket has its own isolation tests).
    let b_alarm = seed_alarm(&*h.store, B).await?;
    let mut paths = Vec::new();
    for (method, route) in beffroi_api::routes() {
        if method != Method::GET || route.ends_with("/live") {
            continue;
        }
        let id = if route.starts_with("/api/v1/alarm-rules") {
            "r-paris".to_owned()
        } else if route.starts_with("/api/v1/alarms") {
            b_alarm.to_string()
        } else {
            "gw-paris".to_owned()
        };
        let path = route.replace("{id}", &id).replace("{grantor}", B);
        if route.starts_with("/api/v1/shared/") {
            // B shares nothing with A: every governed read is denied.
            let time = if route.ends_with("/sensors") {
                ""
            } else {
                &range
            };
            paths.push(format!("{path}?purpose=research&{time}"));
            continue;
        }
        paths.push(path.clone());
        if route.contains("/readings") {
            for params in [
                "sensor=s-paris".to_owned(),
                "sensor=shared&sensor=s-paris".to_owned(),
                "zone=z-paris".to_owned(),
                "metric=air.pm25".to_owned(),
                String::new(),
            ] {
                paths.push(format!("{path}?{params}&{range}"));
            }
        }
        if route.ends_with("quarantine") || route.ends_with("security-events") {
            paths.push(format!("{path}?limit=1000"));
        }
    }
    assert!(paths.len() > 15);
    for token in [&h.tokens.a_viewer, &h.tokens.a_admin] {
        for path in &paths {
            let response = h.get(path, token).await?;
            if path.starts_with("/api/v1/shared/") {
                // B's data under no agreement: denied (the problem names the reason).
                assert_eq!(
                    response.status,
                    StatusCode::FORBIDDEN,
                    "{}",
                    response.text()
                );
                assert_eq!(response.json()["reason"], "no_agreement");
            } else if path.starts_with("/api/v1/platform/") {
                // Platform operators only; a tenant token reads none of it.
                response.problem(StatusCode::FORBIDDEN);
            } else if path == "/api/v1/audit"
                || path == "/api/v1/audit/verify"
                || path == "/api/v1/pooling/usage"
            {
                // The log, and the usage report read from it, are the admins' (A's own:
                // checked in `audit` and `pooling`).
                if token == &h.tokens.a_viewer {
                    response.problem(StatusCode::FORBIDDEN);
                } else {
                    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
                    assert!(
                        !response.text().contains(B),
                        "GET {path}: {}",
                        response.text()
                    );
                }
            } else if response.status.is_success() {
                let text = response.text();
                if path.starts_with("/api/v1/openapi") || path == "/metrics" {
                    continue;
                }
                assert!(
                    !text.contains(B),
                    "GET {path} leaked tenant B's data: {text}"
                );
                assert!(
                    !carries_b_value(&text),
                    "GET {path} leaked B's values: {text}"
                );
            } else {
                assert_eq!(
                    response.status,
                    StatusCode::NOT_FOUND,
                    "GET {path}: {}",
                    response.text()
                );
            }
        }
    }

    // Specific checks: the sensor named alike in both tenants gives only A's values.
    let page = h
        .get_json(
            &format!("/api/v1/readings?sensor=shared&metric=air.pm25&limit=10000&{range}"),
            &h.tokens.a_viewer,
        )
        .await?;
    let values: Vec<f64> = page["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|r| r["value"].as_f64())
        .collect();
    assert_eq!(values.len() as i64, STEPS);
    assert!(
        values.iter().all(|v| (200.0..300.0).contains(v)),
        "{values:?}"
    );
    h.get("/api/v1/gateways/gw-paris", &h.tokens.a_viewer)
        .await?
        .problem(StatusCode::NOT_FOUND);
    h.get(
        &format!("/api/v1/readings?zone=z-paris&{range}"),
        &h.tokens.a_viewer,
    )
    .await?
    .problem(StatusCode::NOT_FOUND);
    let quarantine = h.get_json("/api/v1/quarantine", &h.tokens.a_viewer).await?;
    assert_eq!(quarantine["items"].as_array().map(Vec::len), Some(3));
    let events = h
        .get_json("/api/v1/security-events", &h.tokens.b_viewer)
        .await?;
    assert_eq!(events["items"].as_array().map(Vec::len), Some(2));
    assert!(events["items"]
        .as_array()
        .context("items")?
        .iter()
        .all(|e| e["tenant"] == B));

    // Writes stay in the writer's tenant: A's admin writing a sensor id B uses creates A's.
    let response = h
        .put_json(
            "/api/v1/sensors/s-paris",
            &h.tokens.a_admin,
            &json!({ "kind": "noise" }),
        )
        .await?;
    assert_eq!(response.status, StatusCode::OK);
    let b_sensors = h.get_json("/api/v1/sensors", &h.tokens.b_admin).await?;
    let b_sensor = b_sensors["items"]
        .as_array()
        .context("items")?
        .iter()
        .find(|s| s["id"] == "s-paris")
        .cloned()
        .context("B's sensor")?;
    assert_eq!(b_sensor["kind"], "unknown");
    assert_eq!(b_sensor["tenant"], B);
    h.stop().await
}

#[tokio::test]
async fn listings_page_by_offset() -> Result<()> {
    let h = Harness::start().await?;
    let token = &h.tokens.a_viewer;
    let first = h.get_json("/api/v1/quarantine?limit=2", token).await?;
    assert_eq!(keys(&first), ["items", "next_offset"]);
    assert_eq!(first["next_offset"], 2);
    let record = &first["items"][0];
    assert_eq!(
        keys(record),
        [
            "detail",
            "gateway",
            "reason",
            "received_at",
            "seq",
            "settles_seq",
            "tenant",
            "topic"
        ]
    );
    assert_eq!(record["reason"], "bad_signature");
    assert_eq!(record["detail"], "lyon bad signature 0", "newest first");
    let rest = h
        .get_json("/api/v1/quarantine?limit=2&offset=2", token)
        .await?;
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["next_offset"], Value::Null);

    let events = h.get_json("/api/v1/security-events?limit=1", token).await?;
    let event = &events["items"][0];
    assert_eq!(
        keys(event),
        ["address", "detail", "gateway", "kind", "tenant", "time"]
    );
    assert_eq!(event["kind"], "acl_violation");
    assert_eq!(events["next_offset"], 1);
    h.stop().await
}

#[tokio::test]
async fn bad_credentials_are_401_problems() -> Result<()> {
    let h = Harness::start().await?;
    let scope = TokenScope::Tenant {
        tenant: TenantId::new(A)?,
        role: Role::Admin,
    };
    let (_, unknown) = tokens::issue(scope, "never stored")?;
    // `bfr_` + 16 hex digits is the id part; keep it and change the secret.
    let wrong_secret = format!("{}_{}", &h.tokens.a_admin[..20], "A".repeat(43));
    let unknown_text = format!("bfr_{}_{}", unknown.id, "A".repeat(43));
    let authed: Vec<(Method, &str)> = beffroi_api::routes()
        .into_iter()
        .filter(|(_, p)| {
            p.starts_with("/api/v1/")
                && !p.ends_with("openapi.json")
                && !p.ends_with("dashboard-config")
                // Shared data is readable without a token (as the public).
                && !p.starts_with("/api/v1/shared")
        })
        .collect();
    assert_eq!(authed.len(), 46);
    for (method, route) in &authed {
        let path = route.replace("{id}", "x1");
        for header in [
            None,
            Some("Basic dXNlcjpwYXNz".to_owned()),
            Some("Bearer".to_owned()),
            Some("Bearer garbage".to_owned()),
            Some(format!("Bearer {wrong_secret}")),
            Some(format!("Bearer {unknown_text}")),
        ] {
            let body = matches!(*method, Method::PUT | Method::POST)
                .then(|| ("application/json", br#"{"kind":"air"}"#.to_vec()));
            let response = h
                .request(method.clone(), &path, header.as_deref(), body)
                .await?;
            response.problem(StatusCode::UNAUTHORIZED);
            assert_eq!(
                response.www_authenticate.as_deref(),
                Some("Bearer realm=\"beffroi\"")
            );
        }
    }
    h.stop().await
}

#[tokio::test]
async fn platform_tokens_are_403_on_tenant_routes() -> Result<()> {
    let h = Harness::start().await?;
    let (text, record) = tokens::issue(TokenScope::Platform, "operations")?;
    h.store.create_token(&record).await?;
    for path in ["/api/v1/gateways", "/api/v1/security-events"] {
        let detail = h.get(path, &text).await?.problem(StatusCode::FORBIDDEN);
        assert!(detail.contains("platform token"), "{detail}");
    }
    h.stop().await
}

#[tokio::test]
async fn bad_queries_are_400_problems_with_useful_details() -> Result<()> {
    let h = Harness::start().await?;
    let token = &h.tokens.a_viewer;
    let range = h.range();
    let far_from = ts(at(h.t0, -40 * 24 * 60));
    let cases = [
        ("/api/v1/gateways/Not_An_Id".to_owned(), "gateway id"),
        (format!("/api/v1/gateways/{}", "a".repeat(64)), "63"),
        ("/api/v1/readings?from=yesterday".to_owned(), "from"),
        ("/api/v1/readings?to=2026-02-30T00:00:00Z".to_owned(), "to"),
        (
            format!("/api/v1/readings?from={}&to={}", ts(at(h.t0, 10)), ts(h.t0)),
            "before",
        ),
        (
            format!("/api/v1/readings?from={far_from}&to={}", ts(h.t0)),
            "31 days",
        ),
        (format!("/api/v1/readings?limit=0&{range}"), "limit"),
        (format!("/api/v1/readings?limit=10001&{range}"), "10000"),
        (format!("/api/v1/readings?limit=ten&{range}"), "limit"),
        (format!("/api/v1/readings?cursor=%21%21&{range}"), "cursor"),
        (format!("/api/v1/readings?sensors=s-a1&{range}"), "sensors"),
        (format!("/api/v1/readings?sensor=S%20A&{range}"), "sensor"),
        (format!("/api/v1/readings?metric=Air.PM&{range}"), "metric"),
        (
            format!("/api/v1/readings?from={}&from={}", ts(h.t0), ts(h.t0)),
            "once",
        ),
        (
            format!("/api/v1/readings/buckets?bucket=2m&{range}"),
            "bucket",
        ),
        (
            format!(
                "/api/v1/readings/buckets?bucket=1m&from={}&to={}",
                ts(at(h.t0, -30 * 24 * 60)),
                ts(h.t0)
            ),
            "buckets",
        ),
        (
            format!(
                "/api/v1/readings/buckets?bucket=1d&from={}&to={}",
                ts(at(h.t0, -400 * 24 * 60)),
                ts(h.t0)
            ),
            "366 days",
        ),
        (
            format!("/api/v1/readings/buckets?cursor=x&{range}"),
            "cursor",
        ),
        ("/api/v1/quarantine?limit=1001".to_owned(), "limit"),
        ("/api/v1/security-events?offset=-1".to_owned(), "offset"),
        ("/api/v1/security-events?page=2".to_owned(), "page"),
    ];
    for (path, expected) in cases {
        let detail = h.get(&path, token).await?.problem(StatusCode::BAD_REQUEST);
        assert!(detail.contains(expected), "GET {path}: {detail}");
    }
    // An offset with an unescaped '+' still parses; an escaped one too.
    for to in ["2026-01-31T09:00:00+01:00", "2026-01-31T09:00:00%2B01:00"] {
        let response = h
            .get(
                &format!("/api/v1/readings?from=2026-01-31T07:00:00Z&to={to}"),
                token,
            )
            .await?;
        assert_eq!(response.status, StatusCode::OK, "{to}: {}", response.text());
    }
    // Unknown routes and methods.
    h.get("/api/v1/nothing", token)
        .await?
        .problem(StatusCode::NOT_FOUND);
    h.send(Method::DELETE, "/api/v1/sensors", Some(token), None)
        .await?
        .problem(StatusCode::METHOD_NOT_ALLOWED);
    h.stop().await
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() -> Result<()> {
    let h = Harness::start().await?;
    let health = h.send(Method::GET, "/healthz", None, None).await?;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json(), json!({ "status": "ok" }));

    let ready = h.send(Method::GET, "/readyz", None, None).await?;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert_eq!(ready.json()["status"], "ready");
    h.ready.store(false, Ordering::Release);
    let detail = h
        .send(Method::GET, "/readyz", None, None)
        .await?
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(detail.contains("not up"), "{detail}");
    h.ready.store(true, Ordering::Release);
    // The ingest lost the broker: not ready until it is subscribed again.
    h.metrics.ingest_broker_connected.set(0);
    let detail = h
        .send(Method::GET, "/readyz", None, None)
        .await?
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(detail.contains("broker"), "{detail}");
    h.metrics.ingest_broker_connected.set(1);
    assert_eq!(
        h.send(Method::GET, "/readyz", None, None).await?.status,
        StatusCode::OK
    );

    // A 401 and a 404 so that several classes are counted.
    h.send(Method::GET, "/api/v1/tenant", None, None).await?;
    let metrics = h.send(Method::GET, "/metrics", None, None).await?;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .content_type
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        metrics.content_type
    );
    let text = metrics.text();
    assert!(
        text.contains("# TYPE beffroi_http_requests_total counter"),
        "{text}"
    );
    let count = |class: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("beffroi_http_requests_total{") && l.contains(&format!("\"{class}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(count("2xx") >= 2, "{text}");
    assert!(count("4xx") >= 1, "{text}");
    assert!(count("5xx") >= 1, "{text}");

    // The OpenAPI document describes every route and the shared pieces.
    let doc = h
        .send(Method::GET, "/api/v1/openapi.json", None, None)
        .await?;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Problem"]["properties"]["detail"].is_object());
    let routes = beffroi_api::routes();
    assert_eq!(routes.len(), 56);
    for (method, path) in &routes {
        let operation = &doc["paths"][*path][method.as_str().to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {path} is not in the OpenAPI document"
        );
        assert!(operation["responses"].is_object(), "{method} {path}");
        if path.contains("{id}") {
            assert_eq!(operation["parameters"][0]["name"], "id", "{path}");
        }
    }
    let readings = &doc["paths"]["/api/v1/readings"]["get"]["parameters"];
    assert_eq!(readings.as_array().map(Vec::len), Some(7));
    h.stop().await
}

#[tokio::test]
async fn graceful_shutdown_stops_the_server() -> Result<()> {
    let h = Harness::start().await?;
    let addr = h.addr;
    h.stop().await?;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    Ok(())
}
