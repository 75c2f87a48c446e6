//! The endpoint's routes and their request and answer shapes (see the module docs of
//! [`crate::enroll`] for the order of the checks).

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use beffroi_api::audit::{audited, Audited, Change, ChangeFailure};
use beffroi_audit::{AuditActor, AuditKind};
use beffroi_gate::Identity;
use beffroi_protocol::{key_id_for, GatewayId, KeyId, TenantId, Timestamp, VerifyingKey};
use beffroi_store::{NewGateway, Redeemed, SecurityEvent, SecurityEventKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{Code, Refusal};
use super::listener::Peer;
use super::{csr, signing_key, token, EnrollState, BODY_LIMIT_BYTES};
use crate::pki::Issued;

/// The body of `POST /enroll/v1/enroll`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// PKCS#10 CSR, PEM, for the gateway's TLS key.
    pub csr: String,
    /// The Ed25519 signing public key, SubjectPublicKeyInfo PEM.
    pub signing_key: String,
    /// The signing key's proof over the CSR (unpadded base64url).
    pub proof: String,
    /// The tenant the gateway believes it belongs to (checked against the token).
    #[serde(default)]
    pub tenant: Option<String>,
    /// The gateway id it believes it has (checked against the token).
    #[serde(default)]
    pub gateway: Option<String>,
    /// The agent's version, for the log.
    #[serde(default)]
    pub agent_version: Option<String>,
}

/// The body of `POST /enroll/v1/renew`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewRequest {
    /// PKCS#10 CSR, PEM, for the gateway's new TLS key.
    pub csr: String,
    /// A new signing key, when the gateway rotates it (with `proof`).
    #[serde(default)]
    pub signing_key: Option<String>,
    /// The new signing key's proof over the CSR.
    #[serde(default)]
    pub proof: Option<String>,
    /// The agent's version, for the log.
    #[serde(default)]
    pub agent_version: Option<String>,
}

/// Where gateways reach the gate: the names of its certificate and its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateEndpoint {
    /// The gate certificate's names; the first is the default host.
    pub names: Vec<String>,
    /// The gate's port.
    pub port: u16,
}

impl GateEndpoint {
    /// The host the gateway used to reach this endpoint when the gate's certificate names
    /// it (same platform, same name), else the gate's first name.
    fn address(&self, headers: &HeaderMap) -> GateAddress {
        let requested = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(host_of);
        let host = requested
            .and_then(|host| self.names.iter().find(|name| name.as_str() == host))
            .or(self.names.first())
            .cloned()
            .unwrap_or_default();
        GateAddress {
            host,
            port: self.port,
        }
    }
}

/// `host` of `host[:port]` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// The gate's address in an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateAddress {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// The answer to an enrollment or a renewal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    /// The tenant the certificate names.
    pub tenant: TenantId,
    /// The gateway it names.
    pub gateway: GatewayId,
    /// The gateway's current signing key id.
    pub key_id: KeyId,
    /// The certificate chain, PEM, leaf first.
    pub certificate_chain: String,
    /// Every CA the gateway must trust, PEM.
    pub trust_anchors: String,
    /// Start of the certificate's validity.
    pub not_before: Timestamp,
    /// End of its validity.
    pub not_after: Timestamp,
    /// When to renew it (two thirds of its validity).
    pub renew_after: Timestamp,
    /// Where to reach the gate.
    pub gate: GateAddress,
}

/// `GET /enroll/v1/trust`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trust {
    /// Every CA the gateway must trust, PEM.
    pub trust_anchors: String,
}

/// The endpoint's router (the listener adds the [`Peer`] extension to every request).
pub fn router(state: EnrollState) -> Router {
    Router::new()
        .route("/enroll/v1/enroll", post(enroll))
        .route("/enroll/v1/renew", post(renew))
        .route("/enroll/v1/trust", get(trust))
        .fallback(|| async { Refusal::bad_request("no such endpoint").into_response() })
        .with_state(state)
}

impl EnrollState {
    fn count<T>(&self, route: &'static str, result: &Result<T, Refusal>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(refusal) => refusal.code.as_str(),
        };
        self.metrics.enroll_requests.incr(route, outcome);
    }

    /// Records a token refusal as a security event.
    fn token_refused(&self, peer: SocketAddr, tenant: Option<&TenantId>, refusal: &Refusal) {
        self.events.record(SecurityEvent {
            time: Timestamp::now(),
            tenant: tenant.cloned(),
            gateway: None,
            address: Some(peer.to_string()),
            kind: SecurityEventKind::EnrollmentRefused,
            detail: refusal.to_string(),
        });
    }

    fn answer(
        &self,
        headers: &HeaderMap,
        tenant: TenantId,
        gateway: GatewayId,
        key_id: KeyId,
        issued: Issued,
    ) -> Answer {
        Answer {
            tenant,
            gateway,
            key_id,
            renew_after: issued.renew_after(),
            not_before: issued.not_before,
            not_after: issued.not_after,
            certificate_chain: issued.cert_pem,
            trust_anchors: self.ca.cert_pem().to_owned(),
            gate: self.gate.address(headers),
        }
    }
}

fn respond(result: Result<Answer, Refusal>) -> Response {
    match result {
        Ok(answer) => Json(answer).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// The body as JSON of `T`, at most [`BODY_LIMIT_BYTES`]; 400 otherwise.
async fn json_body<T: DeserializeOwned>(body: Body) -> Result<T, Refusal> {
    let bytes: Bytes = axum::body::to_bytes(body, BODY_LIMIT_BYTES)
        .await
        .map_err(|_| {
            Refusal::bad_request(format!(
                "the body is unreadable or larger than {BODY_LIMIT_BYTES} bytes"
            ))
        })?;
    serde_json::from_slice(&bytes).map_err(|e| Refusal::bad_request(format!("body: {e}")))
}

/// A failed audited change: 503 when the log or the store is unavailable, the store's
/// refusal otherwise.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(Refusal);

impl ChangeFailure for Failure {
    fn summary(&self) -> String {
        match self.0.code {
            Code::Unavailable => "internal error".to_owned(),
            _ => self.0.to_string(),
        }
    }
}

impl From<Audited<Failure>> for Refusal {
    fn from(error: Audited<Failure>) -> Self {
        match error {
            Audited::Unavailable(cause) => Refusal::unavailable(&cause),
            Audited::Failed(Failure(refusal)) => refusal,
        }
    }
}

/// A store refusal of an enrollment, renewal or rotation: revoked (`Conflict`), key taken
/// (`AlreadyExists`), or unavailable.
fn store_refusal(error: beffroi_store::Error) -> Failure {
    Failure(match error {
        beffroi_store::Error::Conflict { .. } => {
            Refusal::new(Code::GatewayRevoked, "the gateway is revoked")
        }
        beffroi_store::Error::AlreadyExists { .. } => key_in_use(),
        other => Refusal::from(other),
    })
}

fn key_in_use() -> Refusal {
    Refusal::new(
        Code::KeyInUse,
        "this signing key is registered already; generate a new one",
    )
}

fn issue_error(error: crate::pki::PkiError) -> Refusal {
    Refusal::unavailable(&error)
}

async fn enroll(
    State(state): State<EnrollState>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = enroll_checked(&state, &peer, &headers, body).await;
    state.count("enroll", &result);
    respond(result)
}

async fn enroll_checked(
    state: &EnrollState,
    peer: &Peer,
    headers: &HeaderMap,
    body: Body,
) -> Result<Answer, Refusal> {
    let request: EnrollRequest = json_body(body).await?;
    let csr = csr::verify(&request.csr)?;
    let signing_key = signing_key::verify(&request.signing_key, &request.proof, &csr.der)?;
    let token_hash = token::presented_hash(headers).inspect_err(|refusal| {
        state.token_refused(peer.address, None, refusal);
    })?;
    let key_id = key_id_for(&signing_key);
    if state.store.gateway_key(&key_id).await?.is_some() {
        return Err(key_in_use());
    }
    let now = Timestamp::now();
    let (tenant, gateway) = match state
        .store
        .redeem_enrollment_token(&token_hash, now)
        .await?
    {
        Redeemed::Bound { tenant, gateway } => (tenant, gateway),
        refused => {
            let refusal = match refused {
                Redeemed::Used { used_at } => Refusal::new(
                    Code::TokenUsed,
                    format!("this enrollment token was used at {used_at}"),
                ),
                Redeemed::Expired { expires_at } => Refusal::new(
                    Code::TokenExpired,
                    format!("this enrollment token expired at {expires_at}"),
                ),
                _ => Refusal::new(Code::TokenUnknown, "no such enrollment token"),
            };
            state.token_refused(peer.address, None, &refusal);
            return Err(refusal);
        }
    };
    let named_other =
        |named: &Option<String>, bound: &str| named.as_deref().is_some_and(|named| named != bound);
    if named_other(&request.tenant, tenant.as_str())
        || named_other(&request.gateway, gateway.as_str())
    {
        let refusal = Refusal::new(
            Code::TokenMismatch,
            "this token enrolls another tenant or gateway than the request names",
        );
        state.token_refused(peer.address, Some(&tenant), &refusal);
        return Err(refusal);
    }
    if state
        .store
        .gateway(&tenant, &gateway)
        .await?
        .is_some_and(|g| g.revoked)
    {
        return Err(Refusal::new(Code::GatewayRevoked, "the gateway is revoked"));
    }
    let issued = state
        .ca
        .issue_gateway_for_spki(&tenant, &gateway, &csr.spki_der, state.certificate_lifetime)
        .map_err(issue_error)?;
    let actor = AuditActor::Gateway(gateway.clone());
    let changes = [
        Change::new(
            tenant.clone(),
            actor.clone(),
            AuditKind::GatewayChange,
            "enroll",
            "gateway",
            gateway.as_str(),
        )
        .with_request(&json!({ "key_id": key_id, "agent_version": request.agent_version })),
        certificate_change(&tenant, actor, "issue", &gateway, &issued),
    ];
    let row = NewGateway {
        tenant: tenant.clone(),
        id: gateway.clone(),
        key_id: key_id.clone(),
        public_key: signing_key.to_bytes(),
        cert_fingerprint: Some(issued.fingerprint.clone()),
        cert_not_after: Some(issued.not_after),
    };
    audited(state.store.as_ref(), &changes, async {
        state
            .store
            .enroll_gateway(&row, now)
            .await
            .map_err(store_refusal)
    })
    .await?;
    // A re-enrollment retired the previous keys: the ingest must not trust its cache.
    state.cutoff.keys_changed(&tenant, &gateway);
    tracing::info!(%tenant, %gateway, %key_id, "gateway enrolled");
    Ok(state.answer(headers, tenant, gateway, key_id, issued))
}

fn certificate_change(
    tenant: &TenantId,
    actor: AuditActor,
    action: &'static str,
    gateway: &GatewayId,
    issued: &Issued,
) -> Change {
    Change::new(
        tenant.clone(),
        actor,
        AuditKind::CertificateChange,
        action,
        "certificate",
        gateway.as_str(),
    )
    .with_request(&json!({
        "fingerprint": issued.fingerprint,
        "not_after": issued.not_after,
    }))
}

async fn renew(
    State(state): State<EnrollState>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = renew_checked(&state, &peer, &headers, body).await;
    state.count("renew", &result);
    respond(result)
}

async fn renew_checked(
    state: &EnrollState,
    peer: &Peer,
    headers: &HeaderMap,
    body: Body,
) -> Result<Answer, Refusal> {
    let required = |why: String| Refusal::new(Code::CertificateRequired, why);
    let der = peer.certificate.as_ref().ok_or_else(|| {
        required("renewal needs the gateway's current client certificate".to_owned())
    })?;
    let identity = Identity::from_certificate(der)
        .map_err(|e| required(format!("the client certificate names no gateway: {e}")))?;
    let Identity {
        tenant, gateway, ..
    } = identity.clone();
    let revoked = || Refusal::new(Code::GatewayRevoked, "the gateway is revoked");
    if state.revocations.check(&identity).is_some() {
        return Err(revoked());
    }
    let record = state
        .store
        .gateway(&tenant, &gateway)
        .await?
        .ok_or_else(revoked)?;
    if record.revoked {
        return Err(revoked());
    }
    let request: RenewRequest = json_body(body).await?;
    let csr = csr::verify(&request.csr)?;
    let rotation: Option<VerifyingKey> = match (&request.signing_key, &request.proof) {
        (Some(key), Some(proof)) => Some(signing_key::verify(key, proof, &csr.der)?),
        (None, None) => None,
        _ => return Err(Refusal::bad_request("signing_key and proof go together")),
    };
    let new_key = rotation.map(|key| (key_id_for(&key), key));
    if let Some((key_id, _)) = &new_key {
        if state.store.gateway_key(key_id).await?.is_some() {
            return Err(key_in_use());
        }
    }
    let issued = state
        .ca
        .issue_gateway_for_spki(&tenant, &gateway, &csr.spki_der, state.certificate_lifetime)
        .map_err(issue_error)?;
    let actor = AuditActor::Gateway(gateway.clone());
    let mut changes = vec![certificate_change(
        &tenant,
        actor.clone(),
        "renew",
        &gateway,
        &issued,
    )];
    if let Some((key_id, _)) = &new_key {
        changes.push(
            Change::new(
                tenant.clone(),
                actor,
                AuditKind::GatewayChange,
                "rotate_key",
                "gateway",
                gateway.as_str(),
            )
            .with_request(&json!({ "key_id": key_id, "previous_key_id": record.key_id })),
        );
    }
    let now = Timestamp::now();
    audited(state.store.as_ref(), &changes, async {
        if let Some((key_id, key)) = &new_key {
            state
                .store
                .rotate_gateway_key(&tenant, &gateway, key_id, &key.to_bytes(), now)
                .await
                .map_err(store_refusal)?;
        }
        state
            .store
            .set_gateway_certificate(&tenant, &gateway, &issued.fingerprint, issued.not_after)
            .await
            .map_err(store_refusal)
    })
    .await?;
    let key_id = match new_key {
        Some((key_id, _)) => {
            state.cutoff.keys_changed(&tenant, &gateway);
            key_id
        }
        None => record.key_id,
    };
    tracing::info!(%tenant, %gateway, %key_id, agent_version = ?request.agent_version, "gateway certificate renewed");
    Ok(state.answer(headers, tenant, gateway, key_id, issued))
}

async fn trust(State(state): State<EnrollState>) -> Response {
    state.metrics.enroll_requests.incr("trust", "ok");
    Json(Trust {
        trust_anchors: state.ca.cert_pem().to_owned(),
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_gate_host_follows_the_request_when_the_gate_is_named_so() {
        let gate = GateEndpoint {
            names: vec!["localhost".into(), "platform.example".into(), "::1".into()],
            port: 8883,
        };
        let mut headers = HeaderMap::new();
        assert_eq!(gate.address(&headers).host, "localhost");
        headers.insert(
            header::HOST,
            HeaderValue::from_static("platform.example:8443"),
        );
        assert_eq!(gate.address(&headers).host, "platform.example");
        headers.insert(header::HOST, HeaderValue::from_static("[::1]:8443"));
        assert_eq!(gate.address(&headers).host, "::1");
        headers.insert(header::HOST, HeaderValue::from_static("elsewhere.example"));
        assert_eq!(gate.address(&headers).host, "localhost");
        assert_eq!(gate.address(&headers).port, 8883);
    }
}
