//! The enrollment endpoint (docs/gateway-identity.md): HTTPS with the gate's certificate, so
//! that the pin in every enrollment token is that certificate's SHA-256.
//!
//! - `POST /enroll/v1/enroll`: a one-time token (bearer secret), a CSR and a signing key
//!   with its proof → the gateway's first certificate;
//! - `POST /enroll/v1/renew`: the gateway's current client certificate (mutual TLS) and a
//!   CSR, optionally a new signing key → a new certificate (and key rotation);
//! - `GET /enroll/v1/trust`: the trust anchors.
//!
//! ```text
//! enroll: body checked (400, token kept) → signing key free (409, token kept)
//!         → token redeemed atomically (401 unknown/used/expired)
//!         → bound to what the request names (403 mismatch) → gateway not revoked (403)
//!         → certificate issued in memory → audit entries written (503: nothing changed)
//!         → gateway enrolled (new, or re-enrolled: previous keys retired) → 200
//! renew:  client certificate verified at the handshake (chain, validity; 401 without)
//!         → gateway not revoked (403) → body checked (400) → [new key free (409)]
//!         → certificate issued → audit entries → [key rotated] → certificate recorded → 200
//! ```
//!
//! Every answer is counted in `beffroi_enroll_requests_total{route,outcome}`; refusals about
//! a token are security events (`enrollment_refused`; the token's tenant when it has one).
//! Limits: bodies [`BODY_LIMIT_BYTES`], requests [`REQUEST_TIMEOUT`], TLS handshakes and
//! request headers [`HANDSHAKE_TIMEOUT`], [`MAX_CONNECTIONS`] at once.
//!
//! Known limit: a store failure between redeeming a token and enrolling the gateway leaves
//! the token spent (the store offers no transaction across both); the admin makes another.

mod csr;
mod error;
mod listener;
mod routes;
mod signing_key;
mod token;

use std::sync::Arc;
use std::time::Duration;

use beffroi_gate::Revocations;
use beffroi_store::Store;
use beffroi_telemetry::{Metrics, SecurityEvents};

use crate::cutoff::Cutoff;
use crate::pki::Ca;

pub use error::{Code, Refusal};
pub use listener::serve;
pub use routes::{router, Answer, EnrollRequest, GateEndpoint, RenewRequest};
pub use signing_key::{proof_message, PROOF_CONTEXT};
pub use token::pin_of;

/// Largest request body accepted (a CSR and a public key are about 1 KiB).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;
/// Longest a request may take once its headers are read.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a TLS handshake, and then the request headers, may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 1024;

/// What every request of the endpoint shares.
#[derive(Clone)]
pub struct EnrollState {
    /// The store (tokens, gateways, keys, audit log).
    pub store: Arc<dyn Store>,
    /// The CA that issues gateway certificates.
    pub ca: Arc<Ca>,
    /// Lifetime of issued certificates.
    pub certificate_lifetime: Duration,
    /// Where gateways reach the gate, as told in every answer.
    pub gate: GateEndpoint,
    /// The platform metrics.
    pub metrics: Arc<Metrics>,
    /// Security events (token refusals).
    pub events: SecurityEvents,
    /// The gate's revoked set (renewal is refused to what it refuses).
    pub revocations: Revocations,
    /// Applies key changes at once to the running ingest.
    pub cutoff: Cutoff,
}

impl std::fmt::Debug for EnrollState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollState")
            .field("certificate_lifetime", &self.certificate_lifetime)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}
