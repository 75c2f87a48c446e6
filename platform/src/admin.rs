//! Administration over the same code the server runs: tenants, gateway creation (one-time
//! enrollment tokens) and registration (with certificate issuance from the platform CA),
//! revocation and API tokens.
//!
//! These functions take an open store and CA, so the CLI, the demo and the tests share them.
//!
//! Every change of a tenant's configuration is recorded in its audit log before it is
//! applied, through the same `beffroi_api::audit::audited` as the API: enrollment tokens
//! (`gateway_change`, `create_token`), registration
//! (`gateway_change` and `certificate_change`: the certificate is issued in memory first, and
//! leaves only once both entries are written), revocation (`gateway_change`) and tenant token
//! creation (`token_change`; never the secret). The actor is the local operator
//! (`user:$USER`). If the log cannot be written, nothing is changed. Platform tokens belong
//! to no tenant and are in no tenant's log.

use std::path::Path;
use std::sync::Arc;

use beffroi_api::audit::{audited, Audited, Change, ChangeFailure};
use beffroi_api::enrollment::{self, CreatedToken, EnrollmentSettings};
use beffroi_audit::{AuditActor, AuditKind};
use beffroi_policy::PartnerId;
use beffroi_protocol::{key_id_for, GatewayId, KeyId, TenantId, Timestamp, VerifyingKey};
use beffroi_store::{GatewayRecord, NewGateway, Partner, Role, Store, Tenant, TokenScope};
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use serde_json::json;

use crate::config::PlatformConfig;
use crate::pki::{Ca, Issued, PkiError};

/// An administration failure.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The store refused the change.
    #[error(transparent)]
    Store(#[from] beffroi_store::Error),
    /// Certificate issuance failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The node's PKI directory is incomplete or unusable.
    #[error(transparent)]
    NodePki(#[from] crate::node_pki::NodePkiError),
    /// A public key file is unreadable or not an Ed25519 SubjectPublicKeyInfo PEM.
    #[error("{path}: {reason}")]
    PublicKey {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A token could not be generated.
    #[error("token: {0}")]
    Token(#[from] beffroi_api::ApiError),
    /// An enrollment token was refused or could not be stored.
    #[error("{0}")]
    Enrollment(beffroi_api::ApiError),
    /// The tenant does not exist.
    #[error("tenant {0} does not exist")]
    NoTenant(TenantId),
    /// The change could not be recorded in the audit log, so it was not applied.
    #[error("audit log unavailable, nothing was changed: {0}")]
    AuditUnavailable(beffroi_store::Error),
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The key-encryption key of the pseudonym keys could not be loaded or created.
    #[error(transparent)]
    Kek(#[from] crate::kek::KekFileError),
}

impl ChangeFailure for AdminError {
    fn summary(&self) -> String {
        match self {
            AdminError::Store(error) => error.summary(),
            AdminError::Token(error) | AdminError::Enrollment(error) => error.summary(),
            AdminError::NoTenant(_) | AdminError::PublicKey { .. } => self.to_string(),
            _ => "internal error".to_owned(),
        }
    }
}

impl From<Audited<AdminError>> for AdminError {
    fn from(error: Audited<AdminError>) -> Self {
        match error {
            Audited::Unavailable(cause) => AdminError::AuditUnavailable(cause),
            Audited::Failed(error) => error,
        }
    }
}

/// Creates the data directory and opens the configured store.
pub async fn open_store(config: &PlatformConfig) -> Result<Arc<dyn Store>, AdminError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| AdminError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let options = crate::kek::store_options(config)?;
    Ok(beffroi_store::open(&config.database, options).await?)
}

/// Who runs an admin command, as its audit entries name them: `user:` and the login name
/// (`$USER`, else `$LOGNAME`, else `unknown`).
pub fn local_operator() -> AuditActor {
    let name = ["USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    AuditActor::User(name)
}

/// A registered gateway and its freshly issued client certificate.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The signing key id the gateway's envelopes carry.
    pub key_id: KeyId,
    /// The client certificate (PEM) and its fingerprint.
    pub certificate: Issued,
}

/// Creates a tenant.
pub async fn create_tenant(
    store: &dyn Store,
    id: &TenantId,
    name: &str,
) -> Result<Tenant, AdminError> {
    Ok(store.create_tenant(id, name).await?)
}

/// Reads an Ed25519 public key (SubjectPublicKeyInfo PEM, as `beffroi-agent keygen` writes).
pub fn read_signing_public_key(path: &Path) -> Result<VerifyingKey, AdminError> {
    let error = |reason: String| AdminError::PublicKey {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    VerifyingKey::from_public_key_pem(&pem)
        .map_err(|e| error(format!("not an Ed25519 public key PEM: {e}")))
}

/// Registers a gateway with its signing key and issues its client certificate for
/// `tls_public_key_pem`. The tenant must exist.
pub async fn register_gateway(
    store: &dyn Store,
    ca: &Ca,
    config: &PlatformConfig,
    tenant: &TenantId,
    gateway: &GatewayId,
    signing_key: &VerifyingKey,
    tls_public_key_pem: &str,
) -> Result<Registration, AdminError> {
    if store.tenant(tenant).await?.is_none() {
        return Err(AdminError::NoTenant(tenant.clone()));
    }
    let certificate = ca.issue_gateway(
        tenant,
        gateway,
        tls_public_key_pem,
        config.certificate_lifetime,
    )?;
    let key_id = key_id_for(signing_key);
    let actor = local_operator();
    let changes = [
        Change::new(
            tenant.clone(),
            actor.clone(),
            AuditKind::GatewayChange,
            "register",
            "gateway",
            gateway.as_str(),
        )
        .with_request(&json!({ "key_id": key_id })),
        Change::new(
            tenant.clone(),
            actor,
            AuditKind::CertificateChange,
            "issue",
            "certificate",
            gateway.as_str(),
        )
        .with_request(&json!({
            "fingerprint": certificate.fingerprint,
            "not_after": certificate.not_after,
        })),
    ];
    let gateway_row = NewGateway {
        tenant: tenant.clone(),
        id: gateway.clone(),
        key_id: key_id.clone(),
        public_key: signing_key.to_bytes(),
        cert_fingerprint: Some(certificate.fingerprint.clone()),
        cert_not_after: Some(certificate.not_after),
    };
    audited(store, &changes, async {
        Ok::<_, AdminError>(store.register_gateway(&gateway_row).await?)
    })
    .await?;
    Ok(Registration {
        key_id,
        certificate,
    })
}

/// The enrollment pin of this platform: the SHA-256 of the gate certificate in the PKI
/// directory (a managed directory is completed on first use, as the server would).
pub fn enrollment_pin(config: &PlatformConfig) -> Result<String, AdminError> {
    let (_, (gate_cert, _)) = crate::node_pki::load_gate(config)?;
    Ok(crate::enroll::pin_of(&gate_cert)?)
}

/// Creates a one-time enrollment token for `gateway` of `tenant` (a new gateway, or the
/// re-enrollment of an existing one), valid `ttl` (default `enroll.token_ttl_s`); returns the
/// token text (shown once) and what was stored. The tenant must exist; a revoked gateway is
/// refused.
pub async fn create_enrollment_token(
    store: &dyn Store,
    config: &PlatformConfig,
    pin: &str,
    tenant: &TenantId,
    gateway: &GatewayId,
    ttl: Option<std::time::Duration>,
) -> Result<CreatedToken, AdminError> {
    if store.tenant(tenant).await?.is_none() {
        return Err(AdminError::NoTenant(tenant.clone()));
    }
    let settings = EnrollmentSettings {
        pin: pin.to_owned(),
        default_ttl: config.enroll.token_ttl,
        public_url: config.enroll.public_url.clone(),
    };
    enrollment::create_token(
        store,
        local_operator(),
        tenant,
        gateway,
        ttl.unwrap_or(settings.default_ttl),
        &settings,
        Timestamp::now(),
    )
    .await
    .map_err(AdminError::Enrollment)
}

/// A tenant's gateways.
pub async fn list_gateways(
    store: &dyn Store,
    tenant: &TenantId,
) -> Result<Vec<GatewayRecord>, AdminError> {
    Ok(store.list_gateways(tenant).await?)
}

/// Revokes a gateway: the running gate refuses its certificate at the next revocation refresh
/// and cuts its live connections; ingest rejects its signatures.
pub async fn revoke_gateway(
    store: &dyn Store,
    tenant: &TenantId,
    gateway: &GatewayId,
) -> Result<(), AdminError> {
    let change = Change::new(
        tenant.clone(),
        local_operator(),
        AuditKind::GatewayChange,
        "revoke",
        "gateway",
        gateway.as_str(),
    );
    audited(store, &[change], async {
        let at = Timestamp::now();
        Ok::<_, AdminError>(store.revoke_gateway(tenant, gateway, at).await?)
    })
    .await?;
    Ok(())
}

/// Creates an API token; returns the secret, shown once (only its hash is stored).
pub async fn create_token(
    store: &Arc<dyn Store>,
    tenant: &TenantId,
    role: Role,
    name: &str,
) -> Result<String, AdminError> {
    if store.tenant(tenant).await?.is_none() {
        return Err(AdminError::NoTenant(tenant.clone()));
    }
    let scope = TokenScope::Tenant {
        tenant: tenant.clone(),
        role,
    };
    let (secret, record) = beffroi_api::tokens::issue(scope, name)?;
    let change = Change::new(
        tenant.clone(),
        local_operator(),
        AuditKind::TokenChange,
        "create",
        "token",
        record.id.as_str(),
    )
    .with_request(&json!({ "name": name, "role": role }));
    audited(store.as_ref(), &[change], async {
        Ok::<_, AdminError>(store.create_token(&record).await?)
    })
    .await?;
    Ok(secret)
}

/// Creates a partner (an organisation that is not a tenant and may be granted data).
pub async fn create_partner(
    store: &dyn Store,
    id: &PartnerId,
    name: &str,
) -> Result<Partner, AdminError> {
    let partner = Partner {
        id: id.clone(),
        name: name.to_owned(),
        created_at: Timestamp::now(),
    };
    store.create_partner(&partner).await?;
    Ok(partner)
}

/// Creates a partner's token (it reads only what agreements grant the partner, under
/// `/api/v1/shared`); returns the secret, shown once. The partner must exist.
pub async fn create_partner_token(
    store: &dyn Store,
    partner: &PartnerId,
    name: &str,
) -> Result<String, AdminError> {
    let scope = TokenScope::Partner {
        partner: partner.clone(),
    };
    let (secret, record) = beffroi_api::tokens::issue(scope, name)?;
    store.create_token(&record).await?;
    Ok(secret)
}

/// Creates a platform operator's token (security events of no tenant; no tenant's data);
/// returns the secret, shown once.
pub async fn create_platform_token(store: &dyn Store, name: &str) -> Result<String, AdminError> {
    let (secret, record) = beffroi_api::tokens::issue(TokenScope::Platform, name)?;
    store.create_token(&record).await?;
    Ok(secret)
}
