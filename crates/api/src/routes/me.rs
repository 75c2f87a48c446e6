//! `GET /api/v1/me`: who the token is (tenant and role, partner, or platform operator), so
//! that a client such as the dashboard shows what the token may do.

use axum::extract::State;
use beffroi_store::{Partner, Role, Tenant, TokenScope};
use serde::Serialize;

use crate::auth::Principal;
use crate::error::{ApiError, Result};
use crate::json::ApiJson;
use crate::ApiState;

/// The answer.
#[derive(Debug, Serialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum Me {
    /// A tenant's token.
    Tenant {
        /// The tenant.
        tenant: Tenant,
        /// The token's role there.
        role: Role,
        /// The token id (public).
        token_id: String,
        /// The token's name.
        name: String,
    },
    /// A partner's token: it reads only what agreements share with it (`/api/v1/shared`).
    Partner {
        /// The partner.
        partner: Partner,
        /// The token id (public).
        token_id: String,
        /// The token's name.
        name: String,
    },
    /// A platform operator's token.
    Platform {
        /// The token id (public).
        token_id: String,
        /// The token's name.
        name: String,
    },
}

/// Who the caller is.
pub async fn me(State(state): State<ApiState>, principal: Principal) -> Result<ApiJson<Me>> {
    Ok(ApiJson(match principal.scope {
        TokenScope::Tenant { tenant, role } => {
            let record = state
                .store
                .tenant(&tenant)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("tenant {tenant} not found")))?;
            Me::Tenant {
                tenant: record,
                role,
                token_id: principal.token_id,
                name: principal.name,
            }
        }
        TokenScope::Partner { partner } => {
            let record = state
                .store
                .partner(&partner)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("partner {partner} not found")))?;
            Me::Partner {
                partner: record,
                token_id: principal.token_id,
                name: principal.name,
            }
        }
        TokenScope::Platform => Me::Platform {
            token_id: principal.token_id,
            name: principal.name,
        },
    }))
}
