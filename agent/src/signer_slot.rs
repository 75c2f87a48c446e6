//! The gateway's current signer, replaceable while the agent runs (signing-key rotation).
//!
//! The batcher and the health reporter take the current [`Signer`] for each envelope; a
//! rotation swaps it in one step. What was sealed before keeps the signature it was made
//! with: the spool holds finished envelopes, never re-signed.
//!
//! The platform retires the old key at the instant it registers the new one, and accepts an
//! old-key envelope only if it was signed at or before that instant. So while a rotation
//! request is in flight the renewal [`pause`](SignerSlot::pause)s sealing: the batcher stops
//! taking readings (sources wait: backpressure, nothing is dropped) and the health reporter
//! skips its tick, until the new signer is in place or the request failed.

use std::sync::{Arc, PoisonError, RwLock};

use beffroi_protocol::Signer;
use tokio::sync::watch;

/// Holds the signer new envelopes are sealed with.
#[derive(Debug)]
pub struct SignerSlot {
    signer: RwLock<Arc<Signer>>,
    paused: watch::Sender<bool>,
}

impl SignerSlot {
    /// A slot holding `signer`.
    pub fn new(signer: Signer) -> Self {
        Self {
            signer: RwLock::new(Arc::new(signer)),
            paused: watch::Sender::new(false),
        }
    }

    /// The signer to seal with now.
    pub fn current(&self) -> Arc<Signer> {
        self.signer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `signer` the one every later envelope is sealed with.
    pub fn replace(&self, signer: Signer) {
        *self.signer.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(signer);
    }

    /// Holds sealing until the returned guard is dropped.
    pub fn pause(&self) -> Paused<'_> {
        self.paused.send_replace(true);
        Paused(self)
    }

    /// Whether sealing is on hold.
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Follows the pause state.
    pub fn watch_pause(&self) -> watch::Receiver<bool> {
        self.paused.subscribe()
    }
}

/// Sealing is on hold while this lives.
#[must_use = "sealing resumes when the guard is dropped"]
pub struct Paused<'a>(&'a SignerSlot);

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.0.paused.send_replace(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beffroi_protocol::SigningKey;

    #[test]
    fn replaces_the_signer_and_pauses_until_the_guard_drops() {
        let slot = SignerSlot::new(Signer::new(SigningKey::from_bytes(&[1; 32])));
        let first = slot.current().key_id().clone();
        let mut watch = slot.watch_pause();
        {
            let _paused = slot.pause();
            assert!(slot.is_paused());
            assert!(watch.has_changed().unwrap_or(false));
            watch.mark_unchanged();
            slot.replace(Signer::new(SigningKey::from_bytes(&[2; 32])));
        }
        assert!(!slot.is_paused());
        assert!(!*watch.borrow_and_update());
        assert_ne!(slot.current().key_id(), &first);
    }
}
