//! API bearer tokens: issuance and parsing.
//!
//! A token reads `bfr_<id>_<secret>`: `id` is 16 lowercase hex digits (8 random bytes, public,
//! for listing and revocation), `secret` is 32 random bytes in unpadded base64url. The store
//! keeps only SHA-256 of the 32 secret bytes ([`TokenRecord::secret_sha256`]); the full token
//! is shown once, at issuance. Authentication looks the record up by that hash and then
//! compares the id and the hash in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use beffroi_protocol::Timestamp;
use beffroi_store::{TokenRecord, TokenScope};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, Result};

/// The prefix of every token (lets secret scanners recognise leaked tokens).
pub const TOKEN_PREFIX: &str = "bfr_";
/// Bytes of randomness in a secret.
pub const SECRET_BYTES: usize = 32;
const ID_BYTES: usize = 8;

/// Issues a new token with `scope` (a tenant and a role, or the platform): returns the token
/// text (shown once, never stored) and the record to store with `Store::create_token`.
pub fn issue(scope: TokenScope, name: impl Into<String>) -> Result<(String, TokenRecord)> {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut id).map_err(|e| ApiError::Random(e.to_string()))?;
    getrandom::getrandom(&mut secret).map_err(|e| ApiError::Random(e.to_string()))?;
    let id = hex::encode(id);
    let text = format!("{TOKEN_PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(secret));
    let record = TokenRecord {
        id,
        scope,
        name: name.into(),
        secret_sha256: hash_secret(&secret),
        created_at: Timestamp::now(),
    };
    Ok((text, record))
}

/// SHA-256 of a token's secret bytes: what the store keeps.
pub fn hash_secret(secret: &[u8; SECRET_BYTES]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// A token split into its public id and its secret; `None` when it is not well formed.
#[derive(Debug)]
pub(crate) struct ParsedToken<'a> {
    pub(crate) id: &'a str,
    pub(crate) secret_sha256: [u8; 32],
}

/// Parses `bfr_<id>_<secret>`.
pub(crate) fn parse(text: &str) -> Option<ParsedToken<'_>> {
    let rest = text.strip_prefix(TOKEN_PREFIX)?;
    // The id is hex, so the first '_' ends it; the secret may contain '_' (base64url).
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 2 * ID_BYTES || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(secret).ok()?;
    let secret: [u8; SECRET_BYTES] = bytes.try_into().ok()?;
    Some(ParsedToken {
        id,
        secret_sha256: hash_secret(&secret),
    })
}

/// Whether `record` is the token that `parsed` names, in constant time over the secret hash.
pub(crate) fn matches(record: &TokenRecord, parsed: &ParsedToken<'_>) -> bool {
    let hash_ok = record.secret_sha256.ct_eq(&parsed.secret_sha256);
    let id_ok = record.id.as_bytes().ct_eq(parsed.id.as_bytes());
    bool::from(hash_ok & id_ok)
}

#[cfg(test)]
mod tests {
    use beffroi_protocol::TenantId;
    use beffroi_store::Role;

    use super::*;

    fn scope(role: Role) -> TokenScope {
        TokenScope::Tenant {
            tenant: TenantId::new("lyon").expect("valid id"),
            role,
        }
    }

    #[test]
    fn issued_tokens_parse_and_match() {
        for i in 0..50 {
            let scope = if i % 2 == 0 {
                scope(Role::Viewer)
            } else {
                TokenScope::Platform
            };
            let (text, record) = issue(scope.clone(), "wall").expect("entropy");
            assert_eq!(record.scope, scope);
            assert!(text.starts_with("bfr_"));
            let parsed = parse(&text).expect("parses");
            assert_eq!(parsed.id, record.id);
            assert!(matches(&record, &parsed));
        }
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let (text, record) = issue(scope(Role::Admin), "x").expect("entropy");
        assert!(parse("").is_none());
        assert!(parse("bfr_").is_none());
        assert!(parse(&text[..text.len() - 1]).is_none());
        assert!(parse(&text.replacen("bfr_", "xyz_", 1)).is_none());
        assert!(parse("bfr_zzzzzzzzzzzzzzzz_AAAA").is_none());
        // Same id, different secret: parses, does not match.
        let other = format!("bfr_{}_{}", record.id, URL_SAFE_NO_PAD.encode([7u8; 32]));
        let parsed = parse(&other).expect("well formed");
        assert!(!matches(&record, &parsed));
    }
}
