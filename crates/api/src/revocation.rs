//! What the platform does at once, in this process, when the API revokes a gateway: the gate
//! cuts its live connections and the ingest forgets its cached keys. Other processes learn of
//! the revocation from the store (the platform reloads it every 500 ms).

use beffroi_protocol::{GatewayId, TenantId};

/// Told of every revocation the API has just stored.
pub trait RevocationHook: Send + Sync {
    /// `gateway` of `tenant` was revoked: cut it off now.
    fn gateway_revoked(&self, tenant: &TenantId, gateway: &GatewayId);
}
