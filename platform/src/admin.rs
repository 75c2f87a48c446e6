//! Administration over the same code the server runs: tenants, gateway registration (with
//! certificate issuance from the platform CA), revocation and API tokens.
//!
//! These functions take an open store and CA, so the CLI, the demo and the tests share them.

use std::path::Path;
use std::sync::Arc;

use beffroi_protocol::{key_id_for, GatewayId, KeyId, TenantId, VerifyingKey};
use beffroi_store::{GatewayRecord, NewGateway, Role, Store, Tenant, TokenScope};
use ed25519_dalek::pkcs8::DecodePublicKey as _;

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
    /// The tenant does not exist.
    #[error("tenant {0} does not exist")]
    NoTenant(TenantId),
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
    store
        .register_gateway(&NewGateway {
            tenant: tenant.clone(),
            id: gateway.clone(),
            key_id: key_id.clone(),
            public_key: signing_key.to_bytes(),
            cert_fingerprint: Some(certificate.fingerprint.clone()),
            cert_not_after: Some(certificate.not_after),
        })
        .await?;
    Ok(Registration {
        key_id,
        certificate,
    })
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
    Ok(store.revoke_gateway(tenant, gateway).await?)
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
