//! Applying a gateway's revocation or key change at once in this process: the gate cuts the
//! gateway's live connections and refuses its handshakes, the ingest forgets its cached keys
//! (the next envelope is checked against the store: revocation time, current and retired
//! keys). Changes made by another process (the admin CLI) arrive through the revocation
//! refresher in [`crate::server`] instead.

use beffroi_api::revocation::RevocationHook;
use beffroi_gate::Revocations;
use beffroi_ingest::KeyCacheHandle;
use beffroi_protocol::{GatewayId, TenantId};

/// The gate's revoked set and the ingest's key cache of one running platform.
#[derive(Debug, Clone)]
pub struct Cutoff {
    revocations: Revocations,
    keys: KeyCacheHandle,
}

impl Cutoff {
    /// Over the running gate's `revocations` and the running ingest's `keys`.
    pub fn new(revocations: Revocations, keys: KeyCacheHandle) -> Self {
        Self { revocations, keys }
    }

    /// The gateway's signing keys changed (rotation, re-enrollment): forget the cached ones.
    pub fn keys_changed(&self, tenant: &TenantId, gateway: &GatewayId) {
        self.keys.forget_gateway(tenant, gateway);
    }
}

impl RevocationHook for Cutoff {
    fn gateway_revoked(&self, tenant: &TenantId, gateway: &GatewayId) {
        self.revocations
            .revoke_gateway(tenant.clone(), gateway.clone());
        self.keys.forget_gateway(tenant, gateway);
    }
}
