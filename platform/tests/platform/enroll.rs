//! The enrollment endpoint in a running platform, over real HTTPS: a tokio-rustls client that
//! trusts the endpoint only through the pin of the token (as the agent does), CSRs and keys
//! made with rcgen and ed25519-dalek, the real store (SQLite), CA, gate and API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use beffroi::config::PlatformConfig;
use beffroi::server::Running;
use beffroi_gate::{Fingerprint, Identity};
use beffroi_protocol::{GatewayId, SigningKey, TenantId, Timestamp};
use beffroi_store::{EnrollmentToken, EventScope, Role, SecurityEventKind};
use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey as _};
use ed25519_dalek::Signer as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, KeyPair, PublicKeyData as _};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::free_port;

/// Accepts the server only if its end-entity certificate has this SHA-256 (the token's pin),
/// and still checks the handshake signatures with that certificate's key.
#[derive(Debug)]
struct Pinned {
    pin: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Fingerprint::of_der(end_entity).as_str() == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("pin mismatch".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A gateway's client identity: its certificate chain and TLS key, PEM.
#[derive(Clone)]
struct ClientIdentity {
    chain_pem: String,
    key_pem: String,
}

/// A running platform and what the tests need of it.
struct Harness {
    running: Running,
    config: PlatformConfig,
    lyon: TenantId,
    paris: TenantId,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = PlatformConfig::from_toml(&format!(
            "data_dir = {dir:?}\n[gate]\nlisten = \"127.0.0.1:0\"\nnames = [\"localhost\"]\n\
             [broker]\nlisten_v4 = \"127.0.0.1:{}\"\nlisten_v5 = \"127.0.0.1:{}\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\n[enroll]\nlisten = \"127.0.0.1:0\"\n\
             [pki]\ncertificate_lifetime_s = 3600\n",
            free_port(),
            free_port(),
            dir = dir.path().display().to_string(),
        ))
        .unwrap();
        let running = beffroi::server::start(config.clone()).await.unwrap();
        let (lyon, paris) = (
            TenantId::new("lyon").unwrap(),
            TenantId::new("paris").unwrap(),
        );
        for tenant in [&lyon, &paris] {
            beffroi::admin::create_tenant(running.store.as_ref(), tenant, tenant.as_str())
                .await
                .unwrap();
        }
        Self {
            running,
            config,
            lyon,
            paris,
            _dir: dir,
        }
    }

    fn enroll_addr(&self) -> SocketAddr {
        self.running.enroll_addr.unwrap()
    }

    /// A new token for `gateway` of `tenant`, as `beffroi gateway create` makes it.
    async fn token(&self, tenant: &TenantId, gateway: &str) -> String {
        beffroi::admin::create_enrollment_token(
            self.running.store.as_ref(),
            &self.config,
            &self.running.enroll_pin,
            tenant,
            &GatewayId::new(gateway).unwrap(),
            None,
        )
        .await
        .unwrap()
        .token
    }

    /// An HTTPS request to the enrollment endpoint, trusting it by `pin` only.
    async fn https(
        &self,
        pin: &str,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        client: Option<&ClientIdentity>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                pin: pin.to_owned(),
                provider,
            }));
        let config = match client {
            Some(identity) => {
                let chain = CertificateDer::pem_slice_iter(identity.chain_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(self.enroll_addr()).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        request(tls, method, path, bearer, body).await
    }

    /// An enrollment with the token's pin and secret.
    async fn enroll(&self, token: &str, body: &Value) -> (u16, Value) {
        let (secret, pin) = split(token);
        self.https(
            &pin,
            "POST",
            "/enroll/v1/enroll",
            Some(&secret),
            None,
            Some(body),
        )
        .await
    }

    async fn renew(&self, client: Option<&ClientIdentity>, body: &Value) -> (u16, Value) {
        let pin = self.running.enroll_pin.clone();
        self.https(&pin, "POST", "/enroll/v1/renew", None, client, Some(body))
            .await
    }
}

/// One HTTP/1.1 request over `stream`; the answer's status and JSON body.
async fn request<S>(
    stream: S,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if let Some(bearer) = bearer {
        builder = builder.header("authorization", format!("Bearer {bearer}"));
    }
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let response = sender
        .send_request(builder.body(Full::new(Bytes::from(bytes))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

/// (secret, pin) of `bfe1.<secret>.<pin>`.
fn split(token: &str) -> (String, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    assert_eq!(parts[0], "bfe1");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// What a gateway generates: a TLS key and its CSR, a signing key and its proof.
struct GatewayKeys {
    tls: KeyPair,
    csr_pem: String,
    signing: SigningKey,
}

impl GatewayKeys {
    fn new(seed: u8) -> Self {
        let tls = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr_pem = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&tls)
            .unwrap()
            .pem()
            .unwrap();
        Self {
            tls,
            csr_pem,
            signing: SigningKey::from_bytes(&[seed; 32]),
        }
    }

    fn csr_der(&self) -> Vec<u8> {
        rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(self.csr_pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn signing_pem(&self) -> String {
        self.signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    fn proof(&self) -> String {
        let message = beffroi::enroll::proof_message(&self.csr_der());
        URL_SAFE_NO_PAD.encode(self.signing.sign(&message).to_bytes())
    }

    /// The body of an enrollment.
    fn enrollment(&self) -> Value {
        json!({
            "csr": self.csr_pem,
            "signing_key": self.signing_pem(),
            "proof": self.proof(),
            "agent_version": "test",
        })
    }

    /// The body of a renewal that rotates the signing key to this one's.
    fn rotation(&self) -> Value {
        self.enrollment()
    }

    /// The body of a renewal that keeps the signing key.
    fn renewal(&self) -> Value {
        json!({ "csr": self.csr_pem })
    }

    fn identity(&self, answer: &Value) -> ClientIdentity {
        ClientIdentity {
            chain_pem: answer["certificate_chain"].as_str().unwrap().to_owned(),
            key_pem: self.tls.serialize_pem(),
        }
    }
}

/// The chain of an answer, checked: leaf then issuing CA, signed in turn up to the answer's
/// trust anchor; the leaf names `tenant`/`gateway` and certifies `keys`' TLS key.
fn check_certificate(answer: &Value, tenant: &str, gateway: &str, keys: &GatewayKeys) {
    let chain =
        CertificateDer::pem_slice_iter(answer["certificate_chain"].as_str().unwrap().as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
    assert_eq!(chain.len(), 2, "leaf and issuing CA");
    let anchor =
        CertificateDer::from_pem_slice(answer["trust_anchors"].as_str().unwrap().as_bytes())
            .unwrap();
    let (_, cert) = X509Certificate::from_der(&chain[0]).unwrap();
    let (_, issuing) = X509Certificate::from_der(&chain[1]).unwrap();
    let (_, root) = X509Certificate::from_der(&anchor).unwrap();
    cert.verify_signature(Some(issuing.public_key())).unwrap();
    issuing.verify_signature(Some(root.public_key())).unwrap();
    assert_eq!(
        cert.public_key().raw,
        keys.tls.subject_public_key_info().as_slice()
    );
    let identity = Identity::from_certificate(&chain[0]).unwrap();
    assert_eq!(
        (identity.tenant.as_str(), identity.gateway.as_str()),
        (tenant, gateway)
    );
    let subject = cert.subject().to_string();
    assert!(subject.contains(&format!("CN={gateway}")), "{subject}");
    assert!(subject.contains(&format!("O={tenant}")), "{subject}");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
}

fn code(answer: &(u16, Value)) -> (u16, &str) {
    (answer.0, answer.1["error"].as_str().unwrap_or_default())
}

/// Waits for an `enrollment_refused` event of `tenant` (none: the platform's) whose detail
/// contains `detail`.
async fn security_event(running: &Running, tenant: Option<&TenantId>, detail: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let scope = match tenant {
            Some(tenant) => EventScope::Tenant(tenant.clone()),
            None => EventScope::Platform,
        };
        let events = running
            .store
            .list_security_events(&scope, 100, 0)
            .await
            .unwrap()
            .items;
        if events
            .iter()
            .any(|e| e.kind == SecurityEventKind::EnrollmentRefused && e.detail.contains(detail))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no event with {detail:?}: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_enrolls_once_then_renews_and_rotates_over_its_identity() {
    let h = Harness::start().await;
    let token = h.token(&h.lyon, "gw-1").await;
    let keys = GatewayKeys::new(1);

    let before = Timestamp::now();
    let (status, answer) = h.enroll(&token, &keys.enrollment()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["tenant"], "lyon");
    assert_eq!(answer["gateway"], "gw-1");
    assert_eq!(answer["gate"]["host"], "localhost");
    assert_eq!(answer["gate"]["port"], h.running.gate_addr.port());
    check_certificate(&answer, "lyon", "gw-1", &keys);
    let time =
        |field: &str| -> Timestamp { serde_json::from_value(answer[field].clone()).unwrap() };
    let (not_before, not_after, renew_after) =
        (time("not_before"), time("not_after"), time("renew_after"));
    assert!(not_before <= before && renew_after > before && not_after > renew_after);
    let lifetime = not_after.unix_micros() - before.unix_micros();
    assert!(
        (3_598_000_000..=3_601_000_000).contains(&lifetime),
        "{lifetime}"
    );
    let stored = h
        .running
        .store
        .gateway(&h.lyon, &GatewayId::new("gw-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.key_id.as_str(), answer["key_id"]);
    let identity = keys.identity(&answer);
    let leaf = CertificateDer::from_pem_slice(identity.chain_pem.as_bytes()).unwrap();
    assert_eq!(
        stored.cert_fingerprint.as_deref(),
        Some(Fingerprint::of_der(&leaf).as_str())
    );

    // The token is spent, even for another request.
    let again = h.enroll(&token, &GatewayKeys::new(2).enrollment()).await;
    assert_eq!(code(&again), (401, "token_used"), "{}", again.1);
    security_event(&h.running, None, "token_used").await;

    // The certificate opens the gate.
    gate_handshake(&h, &identity).await;

    // Renewal over the current identity: a new certificate for a new TLS key, same key id.
    let renewed_keys = GatewayKeys::new(1);
    let (status, renewed) = h.renew(Some(&identity), &renewed_keys.renewal()).await;
    assert_eq!(status, 200, "{renewed}");
    check_certificate(&renewed, "lyon", "gw-1", &renewed_keys);
    assert_eq!(renewed["key_id"], answer["key_id"]);
    assert_ne!(renewed["certificate_chain"], answer["certificate_chain"]);
    let renewed_identity = renewed_keys.identity(&renewed);

    // Rotation: a new signing key, the previous one retired.
    let rotated_keys = GatewayKeys::new(3);
    let (status, rotated) = h
        .renew(Some(&renewed_identity), &rotated_keys.rotation())
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_ne!(rotated["key_id"], answer["key_id"]);
    let stored = h
        .running
        .store
        .gateway(&h.lyon, &GatewayId::new("gw-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.key_id.as_str(), rotated["key_id"]);
    assert_eq!(stored.keys.len(), 2, "{:?}", stored.keys);
    assert!(stored
        .keys
        .iter()
        .any(|k| k.key_id.as_str() == answer["key_id"] && k.retired_at.is_some()));
    // The same key again is refused.
    let taken = h
        .renew(Some(&renewed_identity), &rotated_keys.rotation())
        .await;
    assert_eq!(code(&taken), (409, "key_in_use"), "{}", taken.1);

    // No certificate: no renewal.
    let anonymous = h.renew(None, &renewed_keys.renewal()).await;
    assert_eq!(
        code(&anonymous),
        (401, "certificate_required"),
        "{}",
        anonymous.1
    );

    // Trust anchors, for anyone.
    let pin = h.running.enroll_pin.clone();
    let (status, trust) = h
        .https(&pin, "GET", "/enroll/v1/trust", None, None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(trust["trust_anchors"], h.running.ca.cert_pem());

    // Every enrollment and renewal is in the tenant's audit log, by the gateway.
    let entries = h
        .running
        .store
        .audit_entries(&h.lyon, &beffroi_store::AuditFilter::default(), 0, 100)
        .await
        .unwrap();
    let actions: Vec<String> = entries
        .iter()
        .filter(|e| e.actor.to_string() == "gateway:gw-1")
        .map(|e| e.detail["action"].as_str().unwrap_or_default().to_owned())
        .collect();
    for action in ["enroll", "issue", "renew", "rotate_key"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} not in {actions:?}"
        );
    }

    let metrics = &h.running.metrics.enroll_requests;
    assert_eq!(metrics.get("enroll", "ok"), 1);
    assert_eq!(metrics.get("enroll", "token_used"), 1);
    assert_eq!(metrics.get("renew", "ok"), 2);
    assert_eq!(metrics.get("renew", "certificate_required"), 1);
    assert!(h.running.stop().await);
}

/// A TLS handshake with the gate under `identity` (the gate accepts it and counts it).
async fn gate_handshake(h: &Harness, identity: &ClientIdentity) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(h.running.ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let chain = CertificateDer::pem_slice_iter(identity.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let tcp = TcpStream::connect(h.running.gate_addr).await.unwrap();
    let _tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.running.metrics.gate_accepted.get() == 0 {
        assert!(
            Instant::now() < deadline,
            "the gate did not accept the certificate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_their_cause_and_keep_the_token_when_nothing_was_done() {
    let h = Harness::start().await;
    let token = h.token(&h.lyon, "gw-1").await;
    let keys = GatewayKeys::new(1);

    // A CSR whose self-signature does not match: 400, the token still works afterwards.
    let mut body = keys.enrollment();
    let other = GatewayKeys::new(1);
    let mut tampered = keys.csr_der();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    body["csr"] = json!(pem("CERTIFICATE REQUEST", &tampered));
    let bad = h.enroll(&token, &body).await;
    assert_eq!(code(&bad), (400, "bad_request"), "{}", bad.1);
    assert!(
        bad.1["message"]
            .as_str()
            .unwrap()
            .contains("self-signature"),
        "{}",
        bad.1
    );
    // A proof over another CSR, a missing field, not JSON: 400 too.
    let mut wrong_proof = keys.enrollment();
    wrong_proof["proof"] = json!(other.proof());
    assert_eq!(
        code(&h.enroll(&token, &wrong_proof).await),
        (400, "bad_request")
    );
    let mut missing = keys.enrollment();
    missing.as_object_mut().unwrap().remove("signing_key");
    assert_eq!(
        code(&h.enroll(&token, &missing).await),
        (400, "bad_request")
    );

    // No token, an unknown one.
    let pin = h.running.enroll_pin.clone();
    let none = h
        .https(
            &pin,
            "POST",
            "/enroll/v1/enroll",
            None,
            None,
            Some(&keys.enrollment()),
        )
        .await;
    assert_eq!(code(&none), (401, "token_unknown"), "{}", none.1);
    let unknown = format!("bfe1.{}.{pin}", URL_SAFE_NO_PAD.encode([0u8; 32]));
    assert_eq!(
        code(&h.enroll(&unknown, &keys.enrollment()).await),
        (401, "token_unknown")
    );

    // A token of lyon for an agent configured for paris: refused.
    let mismatch_token = h.token(&h.lyon, "gw-2").await;
    let mut mismatch = GatewayKeys::new(4).enrollment();
    mismatch["tenant"] = json!("paris");
    let refused = h.enroll(&mismatch_token, &mismatch).await;
    assert_eq!(code(&refused), (403, "token_mismatch"), "{}", refused.1);
    security_event(&h.running, Some(&h.lyon), "token_mismatch").await;

    // An expired token (stored with a past expiry).
    let secret = URL_SAFE_NO_PAD.encode([9u8; 32]);
    let past = Timestamp::from_unix_micros(Timestamp::now().unix_micros() - 60_000_000);
    h.running
        .store
        .create_enrollment_token(&EnrollmentToken {
            token_hash: beffroi_api::enrollment::secret_hash(&secret).unwrap(),
            tenant: h.lyon.clone(),
            gateway: GatewayId::new("gw-3").unwrap(),
            created_at: Timestamp::from_unix_micros(past.unix_micros() - 60_000_000),
            expires_at: past,
            created_by: "user:test".into(),
            used_at: None,
        })
        .await
        .unwrap();
    let expired = h
        .enroll(
            &format!("bfe1.{secret}.{pin}"),
            &GatewayKeys::new(5).enrollment(),
        )
        .await;
    assert_eq!(code(&expired), (401, "token_expired"), "{}", expired.1);

    // The first token was never spent by the refusals above.
    let (status, answer) = h.enroll(&token, &keys.enrollment()).await;
    assert_eq!(status, 200, "{answer}");

    // A signing key registered already: 409, and that token is not spent either.
    let paris_token = h.token(&h.paris, "gw-p").await;
    let taken = h
        .enroll(&paris_token, &GatewayKeys::new(1).enrollment())
        .await;
    assert_eq!(code(&taken), (409, "key_in_use"), "{}", taken.1);
    let (status, answer) = h
        .enroll(&paris_token, &GatewayKeys::new(6).enrollment())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["tenant"], "paris");

    let metrics = &h.running.metrics.enroll_requests;
    assert_eq!(metrics.get("enroll", "bad_request"), 3);
    assert_eq!(metrics.get("enroll", "token_unknown"), 2);
    assert_eq!(metrics.get("enroll", "token_expired"), 1);
    assert!(h
        .running
        .metrics
        .render()
        .contains("beffroi_enroll_requests_total{route=\"enroll\",outcome=\"ok\"} 2"));
    assert!(h.running.stop().await);
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<String> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_gateway_is_cut_and_cannot_renew() {
    let h = Harness::start().await;
    let mut identities = Vec::new();
    for gateway in ["gw-api", "gw-cli"] {
        let token = h.token(&h.lyon, gateway).await;
        let keys = GatewayKeys::new(if gateway == "gw-api" { 1 } else { 2 });
        let (status, answer) = h.enroll(&token, &keys.enrollment()).await;
        assert_eq!(status, 200, "{answer}");
        identities.push(keys.identity(&answer));
    }
    let identity_of = |i: usize| {
        Identity::from_certificate(
            &CertificateDer::from_pem_slice(identities[i].chain_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };

    // Through the API: cut at once, in this process.
    let admin = beffroi::admin::create_token(&h.running.store, &h.lyon, Role::Admin, "ops")
        .await
        .unwrap();
    let tcp = TcpStream::connect(h.running.api_addr).await.unwrap();
    let (status, revoked) = request(
        tcp,
        "POST",
        "/api/v1/gateways/gw-api/revoke",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["revoked"], true);
    assert!(h.running.revocations.check(&identity_of(0)).is_some());
    let refused = h
        .renew(Some(&identities[0]), &GatewayKeys::new(3).renewal())
        .await;
    assert_eq!(code(&refused), (403, "gateway_revoked"), "{}", refused.1);
    // A new token for it is refused.
    let again = beffroi::admin::create_enrollment_token(
        h.running.store.as_ref(),
        &h.config,
        &h.running.enroll_pin,
        &h.lyon,
        &GatewayId::new("gw-api").unwrap(),
        None,
    )
    .await;
    assert!(again.is_err());

    // From another process (the CLI writes the store): the gate follows within a second.
    assert!(h.running.revocations.check(&identity_of(1)).is_none());
    let started = Instant::now();
    beffroi::admin::revoke_gateway(
        h.running.store.as_ref(),
        &h.lyon,
        &GatewayId::new("gw-cli").unwrap(),
    )
    .await
    .unwrap();
    while h.running.revocations.check(&identity_of(1)).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not cut within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = h
        .renew(Some(&identities[1]), &GatewayKeys::new(4).renewal())
        .await;
    assert_eq!(code(&refused), (403, "gateway_revoked"), "{}", refused.1);
    assert!(h.running.stop().await);
}

/// The agent's own enrollment client (`beffroi-agent enroll`) against the real endpoint: the
/// files it writes open the gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_enrolls_against_the_endpoint_and_its_files_open_the_gate() {
    use beffroi_agent::enroll::{enroll, Endpoint, EnrollOptions};
    let h = Harness::start().await;
    let token = h.token(&h.lyon, "gw-agent").await;
    let state = tempfile::tempdir().unwrap();
    let options = EnrollOptions {
        endpoint: Endpoint::parse(&format!("https://localhost:{}", h.enroll_addr().port()))
            .unwrap(),
        token: token.parse().unwrap(),
        config: state.path().join("agent.toml"),
        state_dir: state.path().join("state"),
        tenant: Some("lyon".into()),
        gateway: None,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
    };
    let enrolled = enroll(&options).await.unwrap();
    assert_eq!(enrolled.tenant.as_str(), "lyon");
    assert_eq!(enrolled.gateway.as_str(), "gw-agent");
    let stored = h
        .running
        .store
        .gateway(&h.lyon, &GatewayId::new("gw-agent").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.key_id.as_str(), enrolled.key_id);
    let read = |name: &str| std::fs::read_to_string(state.path().join("state").join(name)).unwrap();
    let identity = ClientIdentity {
        chain_pem: read("tls.crt"),
        key_pem: read("tls.key"),
    };
    gate_handshake(&h, &identity).await;
    // The same token again, through the agent: refused with its code.
    let again = EnrollOptions {
        state_dir: state.path().join("again"),
        config: state.path().join("again.toml"),
        ..options
    };
    let error = enroll(&again).await.unwrap_err().to_string();
    assert!(error.contains("token_used"), "{error}");
    assert!(h.running.stop().await);
}
