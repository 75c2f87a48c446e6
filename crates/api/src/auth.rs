//! Bearer-token authentication and role checks.
//!
//! A token is a tenant's (with a role), the platform's (platform operators) or a partner's
//! (reads only what agreements share with it, see `crate::governed`). Extractors:
//! - [`Principal`]: any valid token (`/api/v1/me`, the live websocket);
//! - [`Caller`]: a tenant's token. The tenant comes from the token and from nothing else, so
//!   no request can name another tenant's data. Roles are ordered viewer < operator < admin;
//!   [`Caller::require`] checks one. A platform or partner token gets 403: it reads no
//!   tenant's data as its own.
//! - [`PlatformOperator`]: a platform token (`/api/v1/platform/…`); a tenant token gets 403.
//!
//! [`authenticate`] is the one check behind all of them, also used by the websocket's first
//! message.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use beffroi_protocol::TenantId;
use beffroi_store::{Role, TokenScope};

use crate::error::{ApiError, Result};
use crate::{tokens, ApiState};

/// An authenticated token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// What it grants.
    pub scope: TokenScope,
    /// The token id (public), for logs and alarm actions.
    pub token_id: String,
    /// The token's name ("control room").
    pub name: String,
}

/// Who is calling: a tenant's token, its tenant and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant whose data every query of this request is scoped to.
    pub tenant: TenantId,
    /// What the token may do.
    pub role: Role,
    /// The token id (public), for logs.
    pub token_id: String,
    /// The token's name, recorded with what it does (acknowledging an alarm).
    pub token_name: String,
}

impl Caller {
    /// Fails with 403 unless the caller's role is at least `required`.
    pub fn require(&self, required: Role) -> Result<()> {
        if self.role >= required {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                required: required.as_str(),
                actual: self.role.as_str(),
            })
        }
    }
}

/// A platform operator's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformOperator {
    /// The token id (public), for logs.
    pub token_id: String,
}

/// The token of an `Authorization: Bearer …` header, if there is one; 401 when the header
/// is there but malformed.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>> {
    let Some(header) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let text = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or(ApiError::Unauthorized("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized(
            "the Authorization scheme must be Bearer",
        ));
    }
    Ok(Some(token.trim()))
}

/// Checks a token against the store.
pub async fn authenticate(state: &ApiState, token: &str) -> Result<Principal> {
    let parsed = tokens::parse(token).ok_or(ApiError::Unauthorized("malformed bearer token"))?;
    let record = state
        .store
        .token_by_hash(&parsed.secret_sha256)
        .await?
        .filter(|record| tokens::matches(record, &parsed))
        .ok_or(ApiError::Unauthorized("unknown bearer token"))?;
    Ok(Principal {
        scope: record.scope,
        token_id: record.id,
        name: record.name,
    })
}

impl FromRequestParts<ApiState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self> {
        let token = bearer_token(&parts.headers)?.ok_or(ApiError::Unauthorized(
            "missing Authorization: Bearer <token> header",
        ))?;
        authenticate(state, token).await
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self> {
        let principal = Principal::from_request_parts(parts, state).await?;
        match principal.scope {
            TokenScope::Tenant { tenant, role } => Ok(Caller {
                tenant,
                role,
                token_id: principal.token_id,
                token_name: principal.name,
            }),
            TokenScope::Platform => Err(ApiError::PlatformToken),
            TokenScope::Partner { .. } => Err(ApiError::PartnerToken),
        }
    }
}

impl FromRequestParts<ApiState> for PlatformOperator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self> {
        let principal = Principal::from_request_parts(parts, state).await?;
        match principal.scope {
            TokenScope::Platform => Ok(PlatformOperator {
                token_id: principal.token_id,
            }),
            TokenScope::Tenant { .. } => Err(ApiError::TenantToken),
            TokenScope::Partner { .. } => Err(ApiError::PartnerToken),
        }
    }
}
