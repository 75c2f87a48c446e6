//! Revoked certificates, and the live connections to cut when one is revoked.
//!
//! Every established connection registers a cancellation token under its certificate's
//! fingerprint; [`Revocations::revoke`] (or [`Revocations::replace`]) cancels the tokens of
//! newly revoked certificates, so their connections close at once. Registration checks the
//! revoked set under the same lock, so a revocation racing with a handshake cannot be missed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio_util::sync::CancellationToken;

use crate::identity::Fingerprint;

/// A cloneable handle on the revoked set, shared by the platform and the gate.
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    revoked: HashSet<Fingerprint>,
    live: HashMap<Fingerprint, Vec<(u64, CancellationToken)>>,
    next_id: u64,
}

impl Revocations {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the whole revoked set (e.g. loaded from the store at start or on reload) and
    /// cuts the live connections of every certificate in it.
    pub fn replace(&self, fingerprints: impl IntoIterator<Item = Fingerprint>) {
        let mut state = self.lock();
        state.revoked = fingerprints.into_iter().collect();
        let State { revoked, live, .. } = &mut *state;
        for fingerprint in revoked.iter() {
            cut(live, fingerprint);
        }
    }

    /// Revokes one certificate and cuts its live connections.
    pub fn revoke(&self, fingerprint: Fingerprint) {
        let mut state = self.lock();
        cut(&mut state.live, &fingerprint);
        state.revoked.insert(fingerprint);
    }

    /// Whether a certificate is revoked.
    pub fn is_revoked(&self, fingerprint: &Fingerprint) -> bool {
        self.lock().revoked.contains(fingerprint)
    }

    /// Registers a live connection: `None` if the certificate is revoked, else a guard that
    /// keeps `token` registered until dropped.
    pub(crate) fn register(
        &self,
        fingerprint: &Fingerprint,
        token: CancellationToken,
    ) -> Option<LiveConnection> {
        let mut state = self.lock();
        if state.revoked.contains(fingerprint) {
            return None;
        }
        let id = state.next_id;
        state.next_id += 1;
        state
            .live
            .entry(fingerprint.clone())
            .or_default()
            .push((id, token));
        Some(LiveConnection {
            revocations: self.clone(),
            fingerprint: fingerprint.clone(),
            id,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics under this lock; a poisoned set is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Cancels and forgets every live connection of `fingerprint`.
fn cut(live: &mut HashMap<Fingerprint, Vec<(u64, CancellationToken)>>, fingerprint: &Fingerprint) {
    if let Some(tokens) = live.remove(fingerprint) {
        for (_, token) in tokens {
            token.cancel();
        }
    }
}

/// A registered live connection; unregisters itself when dropped.
#[derive(Debug)]
pub(crate) struct LiveConnection {
    revocations: Revocations,
    fingerprint: Fingerprint,
    id: u64,
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        let mut state = self.revocations.lock();
        if let Some(tokens) = state.live.get_mut(&self.fingerprint) {
            tokens.retain(|(id, _)| *id != self.id);
            if tokens.is_empty() {
                state.live.remove(&self.fingerprint);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(byte: u8) -> Fingerprint {
        Fingerprint::of_der(&[byte])
    }

    #[test]
    fn revoke_cuts_live_connections_and_refuses_new_ones() {
        let revocations = Revocations::new();
        let (a, b) = (CancellationToken::new(), CancellationToken::new());
        let guard_a = revocations.register(&fp(1), a.clone()).unwrap();
        let _guard_b = revocations.register(&fp(2), b.clone()).unwrap();
        revocations.revoke(fp(1));
        assert!(a.is_cancelled() && !b.is_cancelled());
        assert!(revocations
            .register(&fp(1), CancellationToken::new())
            .is_none());
        drop(guard_a);
        revocations.replace([fp(2)]);
        assert!(b.is_cancelled());
        assert!(!revocations.is_revoked(&fp(1)) && revocations.is_revoked(&fp(2)));
    }

    #[test]
    fn dropped_guards_unregister() {
        let revocations = Revocations::new();
        let token = CancellationToken::new();
        drop(revocations.register(&fp(1), token.clone()).unwrap());
        assert!(revocations.lock().live.is_empty());
        revocations.revoke(fp(1));
        assert!(!token.is_cancelled());
    }
}
