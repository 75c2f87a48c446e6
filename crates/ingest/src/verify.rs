//! Gateway keys and signatures: the key cache and the verification of a chunk of messages.
//!
//! The cache maps a key id to the registered key (or to its absence) for `key_cache_ttl`, so
//! the hot path never waits for the store; a miss is resolved by the pipeline with one store
//! lookup per distinct key id. Keys of small order ("weak" keys) are treated as absent.
//! [`KeyCacheHandle::forget_gateway`] drops a gateway's keys at once (the platform calls it
//! when it revokes a gateway or rotates its key), so that a long TTL does not delay a
//! revocation; a lookup that was in flight when it was called is not cached.
//!
//! Signatures of messages received together are checked with ed25519 batch verification
//! (one multiscalar multiplication for the group, about twice as fast as one by one). When a
//! group fails, it is split in halves until the bad signatures are isolated, and a single
//! signature is always checked with `verify_strict`, exactly as [`Opened::verify`] does. A
//! group that passes batch verification uses the same, non-cofactored equation as
//! `verify_strict`; the only signatures it accepts that `verify_strict` refuses carry a
//! small-order `R`, which only the holder of the private key can produce for its own message
//! (no forgery, no third-party malleability).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use beffroi_protocol::{GatewayId, KeyId, Opened, TenantId, Timestamp, Topic, VerifyingKey};
use beffroi_store::Store;

/// Most key ids remembered before the cache starts over (bounds memory against random kids).
const MAX_ENTRIES: usize = 100_000;
/// Most signatures checked in one batch verification. From 95 signatures on (191 points in
/// the multiscalar multiplication), curve25519-dalek switches from Straus to Pippenger; 128
/// costs about 18 µs a signature here against 22 µs at 64 (`cargo bench -p beffroi-ingest`).
pub(crate) const VERIFY_GROUP: usize = 128;

/// A registered gateway key.
#[derive(Debug)]
pub(crate) struct KeyEntry {
    /// The key owner's tenant.
    pub tenant: TenantId,
    /// The key owner.
    pub gateway: GatewayId,
    /// The key.
    pub key: VerifyingKey,
    /// When the gateway was revoked; `None` while it is not.
    pub revoked_at: Option<Timestamp>,
    /// When the key was retired (rotation, re-enrollment); `None` for the current key.
    pub retired_at: Option<Timestamp>,
}

/// What the cache knows about a key id.
#[derive(Debug, Clone)]
pub(crate) enum Lookup {
    /// A registered, usable key.
    Known(Arc<KeyEntry>),
    /// No usable key under this id (recently checked).
    Absent,
    /// Not cached or expired: ask the store.
    Miss,
}

/// A cached answer (`None`: no usable key) and when it was fetched.
type Cached = (Option<Arc<KeyEntry>>, Instant);

/// The cached answers, and how many times gateways were forgotten (a lookup started before
/// a forget must not cache what it read).
#[derive(Debug, Default)]
struct Entries {
    by_kid: HashMap<KeyId, Cached>,
    forgets: u64,
}

/// Key id → key, with a time to live.
#[derive(Debug)]
pub(crate) struct KeyCache {
    ttl: Duration,
    entries: Mutex<Entries>,
}

impl KeyCache {
    /// An empty cache whose entries live `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(Entries::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached answer for `kid`.
    pub(crate) fn get(&self, kid: &KeyId) -> Lookup {
        let entries = self.lock();
        match entries.by_kid.get(kid) {
            Some((entry, at)) if at.elapsed() < self.ttl => match entry {
                Some(key) => Lookup::Known(key.clone()),
                None => Lookup::Absent,
            },
            _ => Lookup::Miss,
        }
    }

    /// Looks `kid` up in the store and caches the answer.
    pub(crate) async fn fetch(
        &self,
        store: &dyn Store,
        kid: &KeyId,
    ) -> beffroi_store::Result<Option<Arc<KeyEntry>>> {
        let forgets = self.lock().forgets;
        let entry = store.gateway_key(kid).await?.and_then(|record| {
            let key = VerifyingKey::from_bytes(&record.public_key).ok()?;
            if key.is_weak() {
                tracing::warn!(key_id = %kid, "registered key has small order; refused");
                return None;
            }
            Some(Arc::new(KeyEntry {
                tenant: record.tenant,
                gateway: record.gateway,
                key,
                revoked_at: record.revoked_at,
                retired_at: record.retired_at,
            }))
        });
        let mut entries = self.lock();
        if entries.forgets == forgets {
            if entries.by_kid.len() >= MAX_ENTRIES {
                entries.by_kid.clear();
            }
            entries
                .by_kid
                .insert(kid.clone(), (entry.clone(), Instant::now()));
        }
        Ok(entry)
    }

    /// Drops the gateway's cached keys, and every cached absence (one may be the gateway's
    /// new key id).
    fn forget_gateway(&self, tenant: &TenantId, gateway: &GatewayId) {
        let mut entries = self.lock();
        entries.by_kid.retain(|_, (entry, _)| {
            entry
                .as_ref()
                .is_some_and(|e| (&e.tenant, &e.gateway) != (tenant, gateway))
        });
        entries.forgets += 1;
    }
}

/// A handle on a running ingest's key cache, for the platform to apply a revocation or a
/// key rotation at once instead of after `key_cache_ttl`.
#[derive(Debug, Clone)]
pub struct KeyCacheHandle(pub(crate) Arc<KeyCache>);

impl KeyCacheHandle {
    /// Forgets what the cache holds about the gateway's keys: the next envelope of the
    /// gateway is checked against the store (its revocation time, its current and retired
    /// keys).
    pub fn forget_gateway(&self, tenant: &TenantId, gateway: &GatewayId) {
        self.0.forget_gateway(tenant, gateway);
    }
}

/// One envelope whose key is known, waiting for its signature check.
pub(crate) struct Candidate<'a> {
    /// The parsed envelope.
    pub opened: &'a Opened,
    /// The topic it arrived on (the `external_aad`).
    pub topic: &'a Topic,
    /// The key to check it with.
    pub key: &'a VerifyingKey,
}

/// Checks every candidate's signature; `result[i]` says whether candidate `i` is authentic.
pub(crate) fn verify_all(candidates: &[Candidate<'_>]) -> Vec<bool> {
    let messages: Vec<Vec<u8>> = candidates
        .iter()
        .map(|c| c.opened.signed_bytes(c.topic))
        .collect();
    let mut ok = vec![false; candidates.len()];
    for (start, group) in candidates.chunks(VERIFY_GROUP).enumerate() {
        let at = start * VERIFY_GROUP;
        verify_group(
            group,
            &messages[at..at + group.len()],
            &mut ok[at..at + group.len()],
        );
    }
    ok
}

/// Batch-verifies a group, splitting it in halves when it fails.
fn verify_group(group: &[Candidate<'_>], messages: &[Vec<u8>], ok: &mut [bool]) {
    match group {
        [] => {}
        [one] => {
            ok[0] = one
                .key
                .verify_strict(&messages[0], one.opened.signature())
                .is_ok();
        }
        _ => {
            let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            let signatures: Vec<_> = group.iter().map(|c| *c.opened.signature()).collect();
            let keys: Vec<VerifyingKey> = group.iter().map(|c| *c.key).collect();
            if ed25519_dalek::verify_batch(&refs, &signatures, &keys).is_ok() {
                ok.fill(true);
                return;
            }
            let mid = group.len() / 2;
            let (ok_left, ok_right) = ok.split_at_mut(mid);
            verify_group(&group[..mid], &messages[..mid], ok_left);
            verify_group(&group[mid..], &messages[mid..], ok_right);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beffroi_protocol::{Batch, MetricName, Reading, SensorId, Signer, SigningKey};
    use beffroi_protocol::{Unit, Value};

    fn sealed(signer: &Signer, seq: u64) -> (Topic, Opened) {
        let reading = Reading {
            sensor: SensorId::new("s-1").unwrap(),
            metric: MetricName::new("air.pm25").unwrap(),
            unit: Unit::new("ug/m3").unwrap(),
            time: Timestamp::now(),
            value: Value::Number(seq as f64),
        };
        let batch = Batch::new(
            TenantId::new("lyon").unwrap(),
            GatewayId::new("gw-1").unwrap(),
            seq,
            vec![reading],
        )
        .unwrap();
        let (topic, envelope) = signer.seal_batch(&batch).unwrap();
        (topic, Opened::parse(&envelope).unwrap())
    }

    #[test]
    fn batch_verification_isolates_bad_signatures() {
        let signer = Signer::new(SigningKey::from_bytes(&[7; 32]));
        let other = Signer::new(SigningKey::from_bytes(&[8; 32]));
        let key = signer.verifying_key();
        let wrong = other.verifying_key();
        let messages: Vec<(Topic, Opened)> = (1..=300).map(|seq| sealed(&signer, seq)).collect();
        let bad = [3usize, 130, 131, 299];
        let candidates: Vec<Candidate<'_>> = messages
            .iter()
            .enumerate()
            .map(|(i, (topic, opened))| Candidate {
                opened,
                topic,
                key: if bad.contains(&i) { &wrong } else { &key },
            })
            .collect();
        let ok = verify_all(&candidates);
        for (i, ok) in ok.iter().enumerate() {
            assert_eq!(*ok, !bad.contains(&i), "message {i}");
        }
    }
}
