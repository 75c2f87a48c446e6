//! Gateway identity in the store, shared by both backends: what the `enrollment_tokens` and
//! `gateway_keys` writers decide (docs/gateway-identity.md).
//!
//! A gateway has one current signing key (`gateway_keys.retired_at` NULL, also copied into
//! `gateways.key_id`/`public_key`) and any number of retired ones; every key id is unique
//! across all gateways, retired or not. A revoked gateway (`gateways.revoked_at`) gets no new
//! token, enrollment or key. Tokens are redeemed by one conditional `UPDATE`, so that two
//! racing redeems cannot both win.

use beffroi_protocol::{GatewayId, KeyId, Timestamp};

use crate::decode::{is_foreign_key_violation, is_unique_violation};
use crate::{Error, GatewayKeyRecord, GatewayRecord, NewGateway, Redeemed, Result};

/// A row of `gateway_keys` to insert.
#[derive(Debug, Clone)]
pub(crate) struct GatewayKeyRow {
    /// Its key id.
    pub key_id: KeyId,
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it was retired; `None` for the current key.
    pub retired_at: Option<Timestamp>,
}

/// What a token that the redeeming `UPDATE` did not take is: unknown when there is no row,
/// else used or expired at `now`. A row neither used nor expired means the `UPDATE` lost a
/// race to another redeem, which used it.
pub(crate) fn not_redeemed(
    row: Option<(Option<Timestamp>, Timestamp)>,
    now: Timestamp,
) -> Redeemed {
    match row {
        None => Redeemed::Unknown,
        Some((Some(used_at), _)) => Redeemed::Used { used_at },
        Some((None, expires_at)) if expires_at <= now => Redeemed::Expired { expires_at },
        Some((None, _)) => Redeemed::Used { used_at: now },
    }
}

/// Fails with [`Error::Conflict`] when the gateway is revoked: a revoked gateway id gets no
/// new token, enrollment or signing key.
pub(crate) fn refuse_revoked(gateway: &GatewayId, revoked_at: Option<Timestamp>) -> Result<()> {
    match revoked_at {
        Some(at) => Err(Error::Conflict {
            what: "gateway",
            id: gateway.to_string(),
            reason: format!("revoked at {at}"),
        }),
        None => Ok(()),
    }
}

/// The outcome of inserting a signing key: a unique violation means its key id is taken
/// ([`Error::AlreadyExists`]).
pub(crate) fn key_registered<T>(done: sqlx::Result<T>, key_id: &KeyId) -> Result<T> {
    done.map_err(|e| {
        if is_unique_violation(&e) {
            Error::AlreadyExists {
                what: "key id",
                id: key_id.to_string(),
            }
        } else {
            e.into()
        }
    })
}

/// The outcome of inserting a new gateway's row: a foreign-key violation means its tenant
/// does not exist ([`Error::NotFound`]), a unique violation that its id (constraint
/// `gateways_pkey`, PostgreSQL) or else its key id is taken ([`Error::AlreadyExists`]).
pub(crate) fn gateway_inserted(done: sqlx::Result<()>, gateway: &NewGateway) -> Result<()> {
    let Err(e) = done else { return Ok(()) };
    if is_foreign_key_violation(&e) {
        return Err(Error::NotFound {
            what: "tenant",
            id: gateway.tenant.to_string(),
        });
    }
    let constraint = e.as_database_error().and_then(|d| d.constraint());
    if is_unique_violation(&e) && constraint == Some("gateways_pkey") {
        return Err(Error::AlreadyExists {
            what: "gateway",
            id: gateway.id.to_string(),
        });
    }
    key_registered(Err(e), &gateway.key_id)
}

/// Gives each gateway its keys from `keys`, which are ordered by gateway and then newest
/// first, as the listings select them.
pub(crate) fn attach_keys(
    gateways: &mut [GatewayRecord],
    keys: Vec<(GatewayId, GatewayKeyRecord)>,
) {
    let mut keys = keys.into_iter().peekable();
    for gateway in gateways.iter_mut() {
        while let Some((owner, key)) = keys.next_if(|(owner, _)| owner <= &gateway.id) {
            if owner == gateway.id {
                gateway.keys.push(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(seconds * 1_000_000)
    }

    #[test]
    fn a_token_not_taken_is_unknown_used_or_expired() {
        assert_eq!(not_redeemed(None, at(10)), Redeemed::Unknown);
        assert_eq!(
            not_redeemed(Some((Some(at(5)), at(20))), at(10)),
            Redeemed::Used { used_at: at(5) }
        );
        assert_eq!(
            not_redeemed(Some((None, at(10))), at(10)),
            Redeemed::Expired { expires_at: at(10) }
        );
        assert_eq!(
            not_redeemed(Some((None, at(20))), at(10)),
            Redeemed::Used { used_at: at(10) }
        );
    }
}
