//! What a statement's outcome means for the caller, shared by both backends: a row that had
//! to exist, a referenced tenant, a duplicate key.

use beffroi_protocol::{GatewayId, TenantId};

use crate::decode::{is_foreign_key_violation, is_unique_violation};
use crate::{Error, Result, TokenRecord};

/// Fails with [`Error::NotFound`] unless an update touched the gateway's row.
pub(crate) fn gateway_found(rows_affected: u64, gateway: &GatewayId) -> Result<()> {
    if rows_affected == 0 {
        return Err(Error::NotFound {
            what: "gateway",
            id: gateway.to_string(),
        });
    }
    Ok(())
}

/// Fails with [`Error::NotFound`] unless the tenant lookup found a row.
pub(crate) fn tenant_found<T>(row: Option<T>, tenant: &TenantId) -> Result<()> {
    match row {
        Some(_) => Ok(()),
        None => Err(Error::NotFound {
            what: "tenant",
            id: tenant.to_string(),
        }),
    }
}

/// The outcome of inserting `token`: a taken id is [`Error::AlreadyExists`], an unknown
/// tenant [`Error::NotFound`].
pub(crate) fn token_inserted<T>(done: Result<T, sqlx::Error>, token: &TokenRecord) -> Result<()> {
    match done {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(Error::AlreadyExists {
            what: "token",
            id: token.id.clone(),
        }),
        Err(e) if is_foreign_key_violation(&e) => Err(Error::NotFound {
            what: "tenant",
            id: token.tenant.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}
