//! One-time gateway enrollment tokens: format, hashing and audited creation.
//!
//! A token reads `bfe1.<secret>.<pin>` (docs/gateway-identity.md):
//! - `secret`: 32 random bytes, unpadded base64url (43 characters). It is what the gateway
//!   sends (`Authorization: Bearer <secret>`); the store keeps only the lowercase hex SHA-256
//!   of the 32 secret bytes ([`secret_hash`]);
//! - `pin`: the SHA-256 (64 lowercase hex digits) of the DER of the enrollment endpoint's
//!   certificate, so the gateway authenticates the platform before sending the secret.
//!
//! [`create_token`] is shared by `POST /api/v1/gateways` and `beffroi gateway create`: it
//! records a `gateway_change` (`create_token`, never the secret) in the tenant's audit log
//! before storing the token.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use beffroi_audit::{AuditActor, AuditKind};
use beffroi_protocol::{GatewayId, TenantId, Timestamp};
use beffroi_store::{EnrollmentToken, Store};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::audit::{audited, Change};
use crate::error::{ApiError, Result};

/// The prefix (and format version) of every enrollment token.
pub const TOKEN_PREFIX: &str = "bfe1";
/// Random bytes in a token's secret.
pub const SECRET_BYTES: usize = 32;
/// Length of a secret's text (unpadded base64url of [`SECRET_BYTES`]).
pub const SECRET_CHARS: usize = 43;
/// How long a token stays valid unless its creator asks otherwise: 24 hours.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(86_400);
/// The longest a token may stay valid: 30 days.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 86_400);

/// How this platform makes enrollment tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentSettings {
    /// SHA-256 (lowercase hex) of the enrollment endpoint's certificate DER.
    pub pin: String,
    /// Lifetime of a token when its creator names none.
    pub default_ttl: Duration,
    /// The endpoint's URL as gateways reach it (`enroll.public_url`), given with new tokens
    /// so that the operator can hand over the whole command.
    pub public_url: Option<String>,
}

/// A new token: its text (shown once, never stored) and what was stored.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    /// `bfe1.<secret>.<pin>`.
    pub token: String,
    /// The stored record (hash only).
    pub record: EnrollmentToken,
}

/// The lowercase hex SHA-256 of a secret's bytes, what the store keeps; `None` when `secret`
/// is not 32 bytes in unpadded base64url (no such token can exist).
pub fn secret_hash(secret: &str) -> Option<String> {
    if secret.len() != SECRET_CHARS {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(secret).ok()?;
    (bytes.len() == SECRET_BYTES).then(|| hex::encode(Sha256::digest(&bytes)))
}

/// Checks a requested lifetime: 1 s to [`MAX_TOKEN_TTL`].
pub fn check_ttl(ttl: Duration) -> Result<Duration> {
    if ttl < Duration::from_secs(1) || ttl > MAX_TOKEN_TTL {
        return Err(ApiError::bad_request(format!(
            "ttl_s: must be 1..={} (at most 30 days)",
            MAX_TOKEN_TTL.as_secs()
        )));
    }
    Ok(ttl)
}

/// Creates a token for `gateway` of `tenant`, valid `ttl` from `now`: audited
/// (`gateway_change`, action `create_token`, by `actor`), then stored. The store refuses a
/// revoked gateway (409) and an unknown tenant.
pub async fn create_token(
    store: &dyn Store,
    actor: AuditActor,
    tenant: &TenantId,
    gateway: &GatewayId,
    ttl: Duration,
    settings: &EnrollmentSettings,
    now: Timestamp,
) -> Result<CreatedToken> {
    let ttl = check_ttl(ttl)?;
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut secret).map_err(|e| ApiError::Random(e.to_string()))?;
    let token_hash = hex::encode(Sha256::digest(secret));
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let ttl_us = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    let record = EnrollmentToken {
        token_hash,
        tenant: tenant.clone(),
        gateway: gateway.clone(),
        created_at: now,
        expires_at: Timestamp::from_unix_micros(now.unix_micros().saturating_add(ttl_us)),
        created_by: actor.to_string(),
        used_at: None,
    };
    let change = Change::new(
        tenant.clone(),
        actor,
        AuditKind::GatewayChange,
        "create_token",
        "gateway",
        gateway.as_str(),
    )
    .with_request(&json!({ "expires_at": record.expires_at }));
    audited(store, &[change], async {
        Ok::<_, ApiError>(store.create_enrollment_token(&record).await?)
    })
    .await?;
    Ok(CreatedToken {
        token: format!("{TOKEN_PREFIX}.{secret}.{}", settings.pin),
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_hash_only_when_well_formed() {
        let secret = URL_SAFE_NO_PAD.encode([7u8; SECRET_BYTES]);
        assert_eq!(secret.len(), SECRET_CHARS);
        let hash = secret_hash(&secret).unwrap();
        assert_eq!(hash, hex::encode(Sha256::digest([7u8; SECRET_BYTES])));
        assert_eq!(secret_hash(&secret[1..]), None);
        assert_eq!(secret_hash(&"!".repeat(SECRET_CHARS)), None);
        assert_eq!(secret_hash(""), None);
    }

    #[test]
    fn ttl_bounds() {
        assert!(check_ttl(Duration::ZERO).is_err());
        assert!(check_ttl(MAX_TOKEN_TTL + Duration::from_secs(1)).is_err());
        assert_eq!(check_ttl(MAX_TOKEN_TTL).unwrap(), MAX_TOKEN_TTL);
    }
}
