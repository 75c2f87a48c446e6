//! Gateway identity lifecycle on the agent side (`docs/gateway-identity.md`): first
//! enrollment with a one-time token ([`enroll`]), automatic certificate renewal and
//! signing-key rotation ([`renewal`]).
//!
//! ```text
//! enroll : parse token → keys in memory → TLS to the URL, leaf SHA-256 == pin?
//!          → keys staged as *.new (0600) → POST /enroll/v1/enroll (bearer secret)
//!          → check the answer (leaf certifies our TLS key, key id is ours)
//!          → ca.crt, tls.key+tls.crt, signing.key committed → agent config written
//! renew  : TLS to the URL (platform CA, current certificate) → POST /enroll/v1/renew
//!          → same checks → files committed → signer swapped if rotated → uplink reconnects
//! ```
//! Private keys never leave the gateway: the platform gets a CSR and a public key with a
//! proof of possession. Nothing is written before the platform's certificate matched the pin,
//! and a failed enrollment removes what it staged.

mod config_file;
pub mod csr;
pub mod endpoint;
pub mod files;
pub mod https;
pub mod renewal;
pub mod token;
pub mod wire;

use std::path::{Path, PathBuf};
use std::time::Duration;

use beffroi_protocol::{key_id_for, GatewayId, SigningKey, TenantId};
use rcgen::KeyPair;

pub use config_file::{ConfigFileError, Outcome as ConfigOutcome};
pub use endpoint::{Endpoint, EndpointError};
pub use token::{EnrollmentToken, TokenError};

use crate::keys::{self, KeyError};
use csr::{CsrError, Validity};
use files::{FileError, TlsPair};
use https::{Connection, HttpsError};
use wire::{CertificateAnswer, CertificateRequest, ErrorAnswer};

/// Why enrollment or a renewal failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// `--tenant`/`--gateway` differ from what the existing config names.
    #[error(
        "--{field} {flag:?} differs from identity.{field} {config:?} in the existing configuration"
    )]
    Conflict {
        /// `tenant` or `gateway`.
        field: &'static str,
        /// The config's value.
        config: String,
        /// The flag's value.
        flag: String,
    },
    /// A key file problem (permissions, randomness, format).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The CSR could not be built, or the certificate does not fit the key.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// An identity file could not be written.
    #[error(transparent)]
    File(#[from] FileError),
    /// The agent config could not be read or written.
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
    /// The TLS client could not be configured.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The endpoint's certificate is not the one the token pins: nothing was sent.
    #[error("the server's certificate does not match the token's pin (expected SHA-256 {expected}, got {presented}): refusing to send the token; check the URL, or ask for a new token")]
    PinMismatch {
        /// The token's pin, hex.
        expected: String,
        /// What the server presented, hex.
        presented: String,
    },
    /// The endpoint could not be reached.
    #[error(transparent)]
    Https(#[from] HttpsError),
    /// The platform refused the request.
    #[error("the platform refused: {code} (HTTP {status}): {message}")]
    Platform {
        /// HTTP status.
        status: u16,
        /// Stable error code (`token_used`, `gateway_revoked`…).
        code: String,
        /// The platform's explanation.
        message: String,
    },
    /// The platform had registered the pending signing key already (a rotation interrupted
    /// after the platform answered): it was installed, and the renewal must be retried.
    #[error("the pending signing key was registered by an interrupted rotation; installed it, renewing again")]
    InterruptedRotation,
    /// The platform's answer is malformed or inconsistent with what was asked.
    #[error("unusable answer from the platform: {0}")]
    BadAnswer(String),
}

/// Files of a gateway identity.
#[derive(Debug, Clone)]
pub struct IdentityFiles {
    /// Ed25519 signing key (0600).
    pub signing_key: PathBuf,
    /// TLS key and certificate chain.
    pub tls: TlsPair,
    /// Trust anchors (the platform CAs).
    pub ca: PathBuf,
}

impl IdentityFiles {
    /// The standard layout of a state directory.
    pub fn in_state_dir(dir: &Path) -> Self {
        Self {
            signing_key: dir.join("signing.key"),
            tls: TlsPair {
                certificate: dir.join("tls.crt"),
                key: dir.join("tls.key"),
            },
            ca: dir.join("ca.crt"),
        }
    }
}

/// A new signing key to register, with its proof over the CSR.
struct NewSigningKey {
    public_pem: String,
    proof: String,
}

impl NewSigningKey {
    fn new(key: &SigningKey, csr_der: &[u8]) -> Result<Self, KeyError> {
        Ok(Self {
            public_pem: keys::public_key_pem(key)?,
            proof: wire::proof(key, csr_der),
        })
    }
}

/// Sends one request over `connection` and decodes the answer, turning refusals into
/// [`EnrollError::Platform`].
async fn exchange(
    connection: Connection,
    route: &str,
    bearer: Option<&str>,
    request: &CertificateRequest,
    timeout: Duration,
) -> Result<CertificateAnswer, EnrollError> {
    let body = serde_json::to_vec(request).map_err(|e| EnrollError::BadAnswer(e.to_string()))?;
    let answer = connection.post_json(route, bearer, body, timeout).await?;
    if answer.status.is_success() {
        return serde_json::from_slice(&answer.body)
            .map_err(|e| EnrollError::BadAnswer(format!("HTTP {}: {e}", answer.status)));
    }
    match serde_json::from_slice::<ErrorAnswer>(&answer.body) {
        Ok(refusal) => Err(EnrollError::Platform {
            status: answer.status.as_u16(),
            code: refusal.error,
            message: refusal.message,
        }),
        Err(_) => Err(EnrollError::Platform {
            status: answer.status.as_u16(),
            code: "http_error".into(),
            message: String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
                .into_owned(),
        }),
    }
}

/// What an answer was checked to hold.
struct Checked {
    tenant: TenantId,
    gateway: GatewayId,
    validity: Validity,
}

/// Checks that the answer certifies `tls_key`, registers `signing_key` (when given) and names
/// valid identities and trust anchors.
fn check_answer(
    answer: &CertificateAnswer,
    tls_key: &KeyPair,
    signing_key: Option<&SigningKey>,
) -> Result<Checked, EnrollError> {
    let bad = |what: String| EnrollError::BadAnswer(what);
    let tenant = TenantId::new(answer.tenant.clone()).map_err(|e| bad(format!("tenant: {e}")))?;
    let gateway =
        GatewayId::new(answer.gateway.clone()).map_err(|e| bad(format!("gateway: {e}")))?;
    let validity = csr::check_leaf(&answer.certificate_chain, tls_key)?;
    if let Some(key) = signing_key {
        let ours = key_id_for(&key.verifying_key());
        if answer.key_id != ours.as_str() {
            return Err(bad(format!(
                "key id {} is not our signing key's {ours}",
                answer.key_id
            )));
        }
    }
    let anchors = rustls_pemfile::certs(&mut answer.trust_anchors.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("trust anchors: {e}")))?;
    if anchors.is_empty() {
        return Err(bad("no trust anchor".into()));
    }
    if answer.gate.host.trim().is_empty() || answer.gate.port == 0 {
        return Err(bad("no gate address".into()));
    }
    Ok(Checked {
        tenant,
        gateway,
        validity,
    })
}

/// Opens the TLS connection, telling a pin mismatch apart from other handshake failures.
async fn open_pinned(
    endpoint: &Endpoint,
    token: &EnrollmentToken,
    timeout: Duration,
) -> Result<Connection, EnrollError> {
    let (tls, observer) =
        https::pinned_client_config(*token.pin()).map_err(|e| EnrollError::Tls(e.to_string()))?;
    match Connection::open(endpoint, tls, timeout).await {
        Ok(connection) => Ok(connection),
        Err(error @ HttpsError::Handshake { .. }) => match observer.seen() {
            Some(presented) if presented != *token.pin() => Err(EnrollError::PinMismatch {
                expected: hex::encode(token.pin()),
                presented: hex::encode(presented),
            }),
            _ => Err(error.into()),
        },
        Err(error) => Err(error.into()),
    }
}

/// What `beffroi-agent enroll` was asked to do.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The platform's enrollment endpoint.
    pub endpoint: Endpoint,
    /// The one-time token.
    pub token: EnrollmentToken,
    /// The agent config file to create or update.
    pub config: PathBuf,
    /// Where the keys and certificates go.
    pub state_dir: PathBuf,
    /// The tenant to claim (checked by the platform against the token).
    pub tenant: Option<String>,
    /// The gateway to claim.
    pub gateway: Option<String>,
    /// Time allowed for TCP + TLS.
    pub connect_timeout: Duration,
    /// Time allowed for the whole request.
    pub request_timeout: Duration,
}

/// The result of a successful enrollment.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The tenant.
    pub tenant: TenantId,
    /// The gateway.
    pub gateway: GatewayId,
    /// The registered signing key's id.
    pub key_id: String,
    /// The certificate's validity.
    pub validity: Validity,
    /// The config file written.
    pub config: PathBuf,
    /// Whether it was created or updated.
    pub config_outcome: ConfigOutcome,
}

fn claim(
    field: &'static str,
    config: Option<String>,
    flag: Option<String>,
) -> Result<Option<String>, EnrollError> {
    match (config, flag) {
        (Some(config), Some(flag)) if config != flag => Err(EnrollError::Conflict {
            field,
            config,
            flag,
        }),
        (config, flag) => Ok(flag.or(config)),
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_owned())
    }
}

/// Enrolls this gateway: see the module documentation for the steps.
pub async fn enroll(options: &EnrollOptions) -> Result<Enrolled, EnrollError> {
    let (config_tenant, config_gateway) = config_file::named_identity(&options.config)?;
    let tenant = claim("tenant", config_tenant, options.tenant.clone())?;
    let gateway = claim("gateway", config_gateway, options.gateway.clone())?;
    let state_dir = absolute(&options.state_dir);
    let identity = IdentityFiles::in_state_dir(&state_dir);
    for key in [&identity.signing_key, &identity.tls.key] {
        if key.exists() {
            keys::check_private_mode(key)?;
        }
    }

    let signing_key = keys::random_signing_key()?;
    let request = csr::tls_request(gateway.as_deref().unwrap_or("beffroi-gateway"))?;
    let new_key = NewSigningKey::new(&signing_key, &request.csr_der)?;
    let body = CertificateRequest {
        csr: request.csr_pem.clone(),
        signing_key: Some(new_key.public_pem),
        proof: Some(new_key.proof),
        tenant,
        gateway,
        agent_version: env!("CARGO_PKG_VERSION"),
    };

    let connection =
        open_pinned(&options.endpoint, &options.token, options.connect_timeout).await?;
    // The platform is authenticated: keys go to disk (0600) before the token is spent, so
    // an answer is never left without the keys it certifies.
    files::create_state_dir(&state_dir)?;
    let pending_signing_key = files::pending(&identity.signing_key);
    let staged = async {
        keys::write_private(
            &pending_signing_key,
            &keys::signing_key_pem(&signing_key)?,
            true,
        )?;
        identity.tls.stage_key(&request.key.serialize_pem())?;
        let answer = exchange(
            connection,
            wire::ENROLL_ROUTE,
            Some(options.token.secret()),
            &body,
            options.request_timeout,
        )
        .await?;
        let checked = check_answer(&answer, &request.key, Some(&signing_key))?;
        files::write_atomic(&identity.ca, answer.trust_anchors.as_bytes(), files::PUBLIC)?;
        identity.tls.stage_certificate(&answer.certificate_chain)?;
        Ok::<_, EnrollError>((answer, checked))
    }
    .await;
    let (answer, checked) = match staged {
        Ok(done) => done,
        Err(error) => {
            let _ = identity.tls.discard();
            let _ = files::remove_if_present(&pending_signing_key);
            return Err(error);
        }
    };
    files::rename(&pending_signing_key, &identity.signing_key)?;
    identity.tls.commit()?;
    files::give_to_dir_owner(
        &state_dir,
        &[
            &identity.signing_key,
            &identity.tls.key,
            &identity.tls.certificate,
            &identity.ca,
        ],
    )?;

    let values = config_file::Values {
        tenant: checked.tenant.to_string(),
        gateway: checked.gateway.to_string(),
        signing_key: identity.signing_key.clone(),
        gate_host: answer.gate.host.clone(),
        gate_port: answer.gate.port,
        ca: identity.ca.clone(),
        certificate: identity.tls.certificate.clone(),
        private_key: identity.tls.key.clone(),
        spool_dir: state_dir.join("spool"),
        url: options.endpoint.to_string(),
    };
    let config_outcome = config_file::write(&options.config, &values)?;
    Ok(Enrolled {
        tenant: checked.tenant,
        gateway: checked.gateway,
        key_id: answer.key_id,
        validity: checked.validity,
        config: options.config.clone(),
        config_outcome,
    })
}
