//! Revoked certificates and gateways, and the live connections to cut when one is revoked.
//!
//! A revocation names a certificate (by fingerprint) or a whole gateway (tenant and gateway
//! id, whatever certificate it presents: a revoked gateway's older certificates, still within
//! their validity, are refused too). Every established connection registers a cancellation
//! token with its identity; [`Revocations::revoke`], [`Revocations::revoke_gateway`] and
//! [`Revocations::replace`] cancel the tokens of newly revoked connections, so they close at
//! once. Registration checks the revoked sets under the same lock, so a revocation racing with
//! a handshake cannot be missed.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use beffroi_protocol::{GatewayId, TenantId};
use tokio_util::sync::CancellationToken;

use crate::identity::{Fingerprint, Identity};

/// A cloneable handle on the revoked sets, shared by the platform and the gate.
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    inner: Arc<Mutex<State>>,
}

/// Why a connection is refused or cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Its certificate is revoked.
    Certificate,
    /// Its gateway is revoked (any certificate).
    Gateway,
}

impl fmt::Display for Revoked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Revoked::Certificate => "certificate revoked",
            Revoked::Gateway => "gateway revoked",
        })
    }
}

#[derive(Debug, Default)]
struct State {
    revoked: RevokedSets,
    live: HashMap<u64, (Identity, CancellationToken)>,
    next_id: u64,
}

/// What is revoked: certificates, and gateways whatever their certificate.
#[derive(Debug, Default)]
struct RevokedSets {
    certificates: HashSet<Fingerprint>,
    gateways: HashSet<(TenantId, GatewayId)>,
}

impl RevokedSets {
    fn check(&self, identity: &Identity) -> Option<Revoked> {
        if self.certificates.contains(&identity.fingerprint) {
            Some(Revoked::Certificate)
        } else if self
            .gateways
            .contains(&(identity.tenant.clone(), identity.gateway.clone()))
        {
            Some(Revoked::Gateway)
        } else {
            None
        }
    }
}

impl State {
    /// Cancels and forgets every live connection revoked now.
    fn cut(&mut self) {
        let Self { revoked, live, .. } = self;
        live.retain(|_, (identity, token)| {
            let cut = revoked.check(identity).is_some();
            if cut {
                token.cancel();
            }
            !cut
        });
    }
}

impl Revocations {
    /// Empty sets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces both revoked sets (loaded from the store at start and on every reload) and
    /// cuts the live connections they cover.
    pub fn replace(
        &self,
        certificates: impl IntoIterator<Item = Fingerprint>,
        gateways: impl IntoIterator<Item = (TenantId, GatewayId)>,
    ) {
        let mut state = self.lock();
        state.revoked = RevokedSets {
            certificates: certificates.into_iter().collect(),
            gateways: gateways.into_iter().collect(),
        };
        state.cut();
    }

    /// Revokes one certificate and cuts its live connections.
    pub fn revoke(&self, fingerprint: Fingerprint) {
        let mut state = self.lock();
        state.revoked.certificates.insert(fingerprint);
        state.cut();
    }

    /// Revokes a gateway, whatever its certificate, and cuts its live connections.
    pub fn revoke_gateway(&self, tenant: TenantId, gateway: GatewayId) {
        let mut state = self.lock();
        state.revoked.gateways.insert((tenant, gateway));
        state.cut();
    }

    /// Whether, and why, a connection with this identity is revoked.
    pub fn check(&self, identity: &Identity) -> Option<Revoked> {
        self.lock().revoked.check(identity)
    }

    /// Registers a live connection: why it is revoked, or a guard that keeps `token`
    /// registered until dropped.
    pub(crate) fn register(
        &self,
        identity: &Identity,
        token: CancellationToken,
    ) -> Result<LiveConnection, Revoked> {
        let mut state = self.lock();
        if let Some(revoked) = state.revoked.check(identity) {
            return Err(revoked);
        }
        let id = state.next_id;
        state.next_id += 1;
        state.live.insert(id, (identity.clone(), token));
        Ok(LiveConnection {
            revocations: self.clone(),
            id,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics under this lock; a poisoned set is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A registered live connection; unregisters itself when dropped.
#[derive(Debug)]
pub(crate) struct LiveConnection {
    revocations: Revocations,
    id: u64,
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        self.revocations.lock().live.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(gateway: &str, cert: u8) -> Identity {
        Identity {
            tenant: TenantId::new("lyon").unwrap(),
            gateway: GatewayId::new(gateway).unwrap(),
            fingerprint: Fingerprint::of_der(&[cert]),
            not_after: beffroi_protocol::Timestamp::from_unix_micros(i64::MAX),
        }
    }

    fn pair(gateway: &str) -> (TenantId, GatewayId) {
        (
            TenantId::new("lyon").unwrap(),
            GatewayId::new(gateway).unwrap(),
        )
    }

    #[test]
    fn revoke_cuts_live_connections_and_refuses_new_ones() {
        let revocations = Revocations::new();
        let (a, b) = (CancellationToken::new(), CancellationToken::new());
        let guard_a = revocations
            .register(&identity("gw-1", 1), a.clone())
            .unwrap();
        let _guard_b = revocations
            .register(&identity("gw-2", 2), b.clone())
            .unwrap();
        revocations.revoke(Fingerprint::of_der(&[1]));
        assert!(a.is_cancelled() && !b.is_cancelled());
        assert_eq!(
            revocations
                .register(&identity("gw-1", 1), CancellationToken::new())
                .unwrap_err(),
            Revoked::Certificate
        );
        drop(guard_a);
        revocations.replace([Fingerprint::of_der(&[2])], []);
        assert!(b.is_cancelled());
        assert_eq!(revocations.check(&identity("gw-1", 1)), None);
        assert_eq!(
            revocations.check(&identity("gw-2", 2)),
            Some(Revoked::Certificate)
        );
    }

    #[test]
    fn a_revoked_gateway_is_refused_with_any_certificate() {
        let revocations = Revocations::new();
        let (old, other) = (CancellationToken::new(), CancellationToken::new());
        // An older certificate of gw-1 (fingerprint 7), still connected.
        let _old = revocations
            .register(&identity("gw-1", 7), old.clone())
            .unwrap();
        let _other = revocations
            .register(&identity("gw-2", 8), other.clone())
            .unwrap();
        revocations.replace([Fingerprint::of_der(&[9])], [pair("gw-1")]);
        assert!(old.is_cancelled() && !other.is_cancelled());
        for cert in [7, 9, 10] {
            assert!(revocations
                .register(&identity("gw-1", cert), CancellationToken::new())
                .is_err());
        }
        assert_eq!(
            revocations.check(&identity("gw-1", 10)),
            Some(Revoked::Gateway)
        );
        revocations.replace([], []);
        assert!(revocations
            .register(&identity("gw-1", 7), CancellationToken::new())
            .is_ok());
        revocations.revoke_gateway(pair("gw-2").0, pair("gw-2").1);
        assert!(other.is_cancelled());
    }

    #[test]
    fn dropped_guards_unregister() {
        let revocations = Revocations::new();
        let token = CancellationToken::new();
        drop(
            revocations
                .register(&identity("gw-1", 1), token.clone())
                .unwrap(),
        );
        assert!(revocations.lock().live.is_empty());
        revocations.revoke(Fingerprint::of_der(&[1]));
        assert!(!token.is_cancelled());
    }
}
