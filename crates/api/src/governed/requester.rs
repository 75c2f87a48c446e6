//! Who asks for shared data: another tenant's token (any role), a partner's token, or nobody
//! (the public). A platform token reads no tenant's data, shared or not.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use beffroi_audit::AuditActor;
use beffroi_policy::Grantee;
use beffroi_store::TokenScope;

use crate::auth::{authenticate, bearer_token, Principal};
use crate::error::{ApiError, Result};
use crate::ApiState;

/// The requester of a governed read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// Who, as agreements name grantees (`public` without a token).
    pub grantee: Grantee,
    /// Who, as the audit log records it (the token, or `public`).
    pub actor: AuditActor,
}

impl Requester {
    /// The requester an authenticated token stands for; a platform token reads no tenant's
    /// data.
    pub fn of(principal: Principal) -> Result<Self> {
        let grantee = match principal.scope {
            TokenScope::Tenant { tenant, .. } => Grantee::Tenant(tenant),
            TokenScope::Partner { partner } => Grantee::Partner(partner),
            TokenScope::Platform => return Err(ApiError::PlatformToken),
        };
        Ok(Self {
            grantee,
            actor: AuditActor::Token(principal.token_id),
        })
    }

    /// An anonymous requester.
    pub fn public() -> Self {
        Self {
            grantee: Grantee::Public,
            actor: AuditActor::Public,
        }
    }
}

impl FromRequestParts<ApiState> for Requester {
    type Rejection = ApiError;

    /// No `Authorization` header: the public. A header that is there must be a valid token
    /// (401 otherwise): a client that meant to authenticate never silently reads as public.
    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self> {
        let Some(token) = bearer_token(&parts.headers)? else {
            return Ok(Self::public());
        };
        Self::of(authenticate(state, token).await?)
    }
}
