//! Bearer-token authentication and role checks.
//!
//! Every `/api/v1` endpoint except the OpenAPI document takes a [`Caller`]: the tenant and
//! role of the token in `Authorization: Bearer …`. The tenant comes from the token and from
//! nothing else, so no request can name another tenant's data. Roles are ordered
//! viewer < operator < admin; [`Caller::require`] checks one.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use beffroi_protocol::TenantId;
use beffroi_store::Role;

use crate::error::{ApiError, Result};
use crate::{tokens, ApiState};

/// Who is calling: the authenticated token's tenant and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant whose data every query of this request is scoped to.
    pub tenant: TenantId,
    /// What the token may do.
    pub role: Role,
    /// The token id (public), for logs.
    pub token_id: String,
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

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthorized(
                "missing Authorization: Bearer <token> header",
            ))?;
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
        let parsed =
            tokens::parse(token.trim()).ok_or(ApiError::Unauthorized("malformed bearer token"))?;
        let record = state
            .store
            .token_by_hash(&parsed.secret_sha256)
            .await?
            .filter(|record| tokens::matches(record, &parsed))
            .ok_or(ApiError::Unauthorized("unknown bearer token"))?;
        Ok(Caller {
            tenant: record.tenant,
            role: record.role,
            token_id: record.id,
        })
    }
}
