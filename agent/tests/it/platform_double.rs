//! A test double of the platform's *remote* enrollment API (docs/gateway-identity.md), to
//! test the agent's client: real TLS (rustls, certificates made with rcgen), the documented
//! routes, answers and error codes, a CA that issues from CSRs, and counters the tests read.
//! The real platform side is tested end to end in `tests/`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use beffroi_protocol::{key_id_for, Timestamp, VerifyingKey};
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use ed25519_dalek::Verifier as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A token the double knows.
struct Token {
    tenant: String,
    gateway: String,
    used: bool,
    expired: bool,
}

/// A registered signing key.
#[derive(Debug, Clone)]
pub struct RegisteredKey {
    pub key_id: String,
    pub gateway: String,
    pub retired: bool,
}

pub struct PlatformState {
    issuer: Issuer<'static, KeyPair>,
    pub ca_pem: String,
    tokens: Mutex<HashMap<String, Token>>,
    /// Lifetime of the certificates issued from now on.
    pub lifetime: Mutex<Duration>,
    /// HTTP requests received (any route, any outcome).
    pub requests: AtomicUsize,
    /// Successful renewals.
    pub renewals: AtomicUsize,
    /// The next renewals answered 503 `unavailable`.
    pub fail_renewals: AtomicUsize,
    /// Enrollment answers 200 with a body larger than any the agent accepts.
    pub oversize_answers: std::sync::atomic::AtomicBool,
    pub keys: Mutex<Vec<RegisteredKey>>,
}

pub struct Platform {
    pub url: String,
    pub pin: [u8; 32],
    pub state: Arc<PlatformState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The client certificate of a connection, if it presented one.
#[derive(Clone, Debug)]
struct Peer(Option<CertificateDer<'static>>);

struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Peer) {
        loop {
            let Ok((tcp, _)) = self.tcp.accept().await else {
                continue;
            };
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(2), handshake).await {
                let peer = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first().cloned());
                return (tls, Peer(peer));
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Peer> {
        Ok(Peer(None))
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Platform {
    /// Starts the double on 127.0.0.1 with a server certificate for `localhost`.
    pub async fn start() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "test platform CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let pin: [u8; 32] = Sha256::digest(server_cert.der()).into();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(
                vec![server_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .unwrap();

        let state = Arc::new(PlatformState {
            issuer,
            ca_pem: ca_cert.pem(),
            tokens: Mutex::new(HashMap::new()),
            lifetime: Mutex::new(Duration::from_secs(30 * 86_400)),
            requests: AtomicUsize::new(0),
            renewals: AtomicUsize::new(0),
            fail_renewals: AtomicUsize::new(0),
            oversize_answers: std::sync::atomic::AtomicBool::new(false),
            keys: Mutex::new(Vec::new()),
        });
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = tcp.local_addr().unwrap();
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(server)),
        };
        let app = Router::new()
            .route("/enroll/v1/enroll", post(enroll))
            .route("/enroll/v1/renew", post(renew))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
                .await
                .unwrap();
        });
        Self {
            url: format!("https://localhost:{}", addr.port()),
            pin,
            state,
            task,
        }
    }

    /// A fresh one-time token for `tenant`/`gateway`, pinning this double's certificate.
    pub fn token(&self, tenant: &str, gateway: &str) -> String {
        self.token_with(tenant, gateway, false)
    }

    /// A token already past its expiry.
    pub fn expired_token(&self, tenant: &str, gateway: &str) -> String {
        self.token_with(tenant, gateway, true)
    }

    fn token_with(&self, tenant: &str, gateway: &str, expired: bool) -> String {
        let secret = random_secret();
        self.state.tokens.lock().unwrap().insert(
            secret.clone(),
            Token {
                tenant: tenant.into(),
                gateway: gateway.into(),
                used: false,
                expired,
            },
        );
        format!("bfe1.{secret}.{}", hex::encode(self.pin))
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn set_lifetime(&self, lifetime: Duration) {
        *self.state.lifetime.lock().unwrap() = lifetime;
    }

    /// The key id currently registered (not retired) for `gateway`.
    pub fn current_key(&self, gateway: &str) -> Option<String> {
        self.state
            .keys
            .lock()
            .unwrap()
            .iter()
            .find(|k| k.gateway == gateway && !k.retired)
            .map(|k| k.key_id.clone())
    }
}

#[derive(Deserialize)]
struct CertificateRequest {
    csr: String,
    signing_key: Option<String>,
    proof: Option<String>,
    tenant: Option<String>,
    gateway: Option<String>,
}

/// An error answer: status and code.
struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let Refusal(status, code) = self;
        (
            status,
            Json(json!({"error": code, "message": format!("refused: {code}")})),
        )
            .into_response()
    }
}

fn refuse(status: StatusCode, code: &'static str) -> Response {
    Refusal(status, code).into_response()
}

/// Checks the CSR's self-signature and the signing key's proof; `Err` is a 400 answer.
fn check_request(
    request: &CertificateRequest,
) -> Result<(CertificateSigningRequestParams, Option<VerifyingKey>), Refusal> {
    let bad = || Refusal(StatusCode::BAD_REQUEST, "bad_request");
    let csr = CertificateSigningRequestParams::from_pem(&request.csr).map_err(|_| bad())?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(request.csr.as_bytes()).map_err(|_| bad())?;
    let key = match (&request.signing_key, &request.proof) {
        (None, None) => None,
        (Some(key), Some(proof)) => {
            let key = VerifyingKey::from_public_key_pem(key).map_err(|_| bad())?;
            let proof = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(proof)
                .map_err(|_| bad())?;
            let signature = ed25519_dalek::Signature::from_slice(&proof).map_err(|_| bad())?;
            let message = format!(
                "beffroi-signing-key-proof:v1:{}",
                hex::encode(Sha256::digest(&pem.contents))
            );
            key.verify(message.as_bytes(), &signature)
                .map_err(|_| bad())?;
            Some(key)
        }
        _ => return Err(bad()),
    };
    Ok((csr, key))
}

impl PlatformState {
    /// Registers `key` as the gateway's current key, retiring the previous one.
    fn register(&self, gateway: &str, key: &VerifyingKey) -> Result<(), Refusal> {
        let key_id = key_id_for(key).to_string();
        let mut keys = self.keys.lock().unwrap();
        if keys.iter().any(|k| k.key_id == key_id) {
            return Err(Refusal(StatusCode::CONFLICT, "key_in_use"));
        }
        for k in keys.iter_mut().filter(|k| k.gateway == gateway) {
            k.retired = true;
        }
        keys.push(RegisteredKey {
            key_id,
            gateway: gateway.into(),
            retired: false,
        });
        Ok(())
    }

    fn issue(
        &self,
        mut csr: CertificateSigningRequestParams,
        tenant: &str,
        gateway: &str,
    ) -> Response {
        let lifetime = *self.lifetime.lock().unwrap();
        let now = SystemTime::now();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, gateway);
        params
            .distinguished_name
            .push(DnType::OrganizationName, tenant);
        params.subject_alt_names = vec![SanType::URI(
            format!("urn:beffroi:gateway:{tenant}:{gateway}")
                .try_into()
                .unwrap(),
        )];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = now.into();
        params.not_after = (now + lifetime).into();
        csr.params = params;
        let cert = csr.signed_by(&self.issuer).unwrap();
        let key_id = self
            .keys
            .lock()
            .unwrap()
            .iter()
            .find(|k| k.gateway == gateway && !k.retired)
            .map(|k| k.key_id.clone())
            .unwrap_or_default();
        Json(json!({
            "tenant": tenant,
            "gateway": gateway,
            "key_id": key_id,
            "certificate_chain": cert.pem(),
            "trust_anchors": self.ca_pem,
            "not_before": Timestamp::from(now).to_string(),
            "not_after": Timestamp::from(now + lifetime).to_string(),
            "renew_after": Timestamp::from(now + lifetime * 2 / 3).to_string(),
            "gate": {"host": "localhost", "port": 8883},
        }))
        .into_response()
    }
}

async fn enroll(
    State(state): State<Arc<PlatformState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if state.oversize_answers.load(Ordering::SeqCst) {
        return (StatusCode::OK, "x".repeat(100_000)).into_response();
    }
    let secret = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let Ok(request) = serde_json::from_slice::<CertificateRequest>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request");
    };
    let (csr, key) = match check_request(&request) {
        Ok((csr, Some(key))) => (csr, key),
        Ok((_, None)) => return refuse(StatusCode::BAD_REQUEST, "bad_request"),
        Err(refusal) => return refusal.into_response(),
    };
    let (tenant, gateway) = {
        let mut tokens = state.tokens.lock().unwrap();
        let Some(token) = tokens.get_mut(&secret) else {
            return refuse(StatusCode::UNAUTHORIZED, "token_unknown");
        };
        if token.used {
            return refuse(StatusCode::UNAUTHORIZED, "token_used");
        }
        if token.expired {
            return refuse(StatusCode::UNAUTHORIZED, "token_expired");
        }
        let differs = |claimed: &Option<String>, bound: &str| {
            claimed.as_deref().is_some_and(|claimed| claimed != bound)
        };
        if differs(&request.tenant, &token.tenant) || differs(&request.gateway, &token.gateway) {
            return refuse(StatusCode::FORBIDDEN, "token_mismatch");
        }
        token.used = true;
        (token.tenant.clone(), token.gateway.clone())
    };
    if let Err(refusal) = state.register(&gateway, &key) {
        return refusal.into_response();
    }
    state.issue(csr, &tenant, &gateway)
}

/// Tenant and gateway from the client certificate's `urn:beffroi:gateway:` URI SAN.
fn identity_of(cert: &CertificateDer<'_>) -> Option<(String, String)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        x509_parser::extensions::GeneralName::URI(uri) => {
            let rest = uri.strip_prefix("urn:beffroi:gateway:")?;
            let (tenant, gateway) = rest.split_once(':')?;
            Some((tenant.to_owned(), gateway.to_owned()))
        }
        _ => None,
    })
}

async fn renew(
    State(state): State<Arc<PlatformState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    body: Bytes,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let Some((tenant, gateway)) = peer.0.as_ref().and_then(identity_of) else {
        return refuse(StatusCode::UNAUTHORIZED, "certificate_required");
    };
    if state
        .fail_renewals
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
    let Ok(request) = serde_json::from_slice::<CertificateRequest>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request");
    };
    let (csr, key) = match check_request(&request) {
        Ok(checked) => checked,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(key) = key {
        if let Err(refusal) = state.register(&gateway, &key) {
            return refusal.into_response();
        }
    }
    state.renewals.fetch_add(1, Ordering::SeqCst);
    state.issue(csr, &tenant, &gateway)
}
