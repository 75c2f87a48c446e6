//! Per-gateway sequence tracking: which seqs are committed, in flight or accounted for by a
//! gap, to deduplicate without a store round trip and to compute commit acks.
//!
//! ```text
//!             ┌──────────── contiguous ────────────┐
//! seqs:  1 2 3 4 5 6 7 8 9 │ 10 11 12 13 14 15 16 …
//!        every seq ≤ the mark is committed, in a     above: committed (or accounted) seqs
//!        reported gap or accounted by an acked       beyond a hole; pending: verified, in
//!        quarantine                                   the commit queue, not yet committed
//! ```
//! A tracker is loaded from [`Store::seq_state`](beffroi_store::Store::seq_state) the first
//! time a gateway is seen, then kept in memory. A seq above the mark that is neither in `above`
//! nor pending is new: no store lookup. A seq at or below the mark, or in `above`, was settled
//! before; only then does the pipeline ask the store for its signature, to tell a re-sent
//! batch (same signature: duplicate, ack again) from a replay (different content).
//!
//! When several platform nodes share the subscription, each node commits part of a gateway's
//! seqs, so a node's tracker has holes the other nodes filled; while it has holes, the
//! committer refreshes it from the store (at most once per [`REFRESH_EVERY`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use beffroi_protocol::{Gap, GatewayId, TenantId};
use beffroi_store::SeqState;

/// Most seqs an ack lists above the contiguous mark (the protocol's limit).
pub(crate) const MAX_ACK_ABOVE: usize = 4096;
/// Shortest time between two refreshes of a tracker with holes from the store.
pub(crate) const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// A gateway, as the key of per-gateway state.
pub(crate) type GatewayKey = (TenantId, GatewayId);

/// What the tracker says about an incoming seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqCheck {
    /// Never seen: verify the time window, then commit.
    New,
    /// In the commit queue already; `same` if with the same signature.
    Pending {
        /// Same signature as the queued batch.
        same: bool,
    },
    /// Committed or accounted before: compare with the stored signature.
    Settled,
}

/// One gateway's seqs.
#[derive(Debug)]
pub(crate) struct GatewaySeqs {
    contiguous: u64,
    above: BTreeSet<u64>,
    /// Reported gaps not yet passed by `contiguous`, sorted by first seq.
    gaps: Vec<(u64, u64)>,
    pending: HashMap<u64, [u8; 64]>,
    refreshed: Instant,
}

impl GatewaySeqs {
    /// A tracker starting from what the store says.
    pub(crate) fn from_state(state: SeqState) -> Self {
        let mut seqs = Self {
            contiguous: 0,
            above: BTreeSet::new(),
            gaps: Vec::new(),
            pending: HashMap::new(),
            refreshed: Instant::now(),
        };
        seqs.merge(state);
        seqs
    }

    /// Classifies an incoming seq carrying `signature`.
    pub(crate) fn check(&self, seq: u64, signature: &[u8; 64]) -> SeqCheck {
        if let Some(queued) = self.pending.get(&seq) {
            return SeqCheck::Pending {
                same: queued == signature,
            };
        }
        if seq <= self.contiguous || self.above.contains(&seq) {
            SeqCheck::Settled
        } else {
            SeqCheck::New
        }
    }

    /// Records a verified batch handed to the committer.
    pub(crate) fn begin(&mut self, seq: u64, signature: [u8; 64]) {
        self.pending.insert(seq, signature);
    }

    /// Records a seq as committed (or accounted for by an acked quarantine).
    pub(crate) fn settle(&mut self, seq: u64) {
        self.pending.remove(&seq);
        if seq > self.contiguous {
            self.above.insert(seq);
            self.advance();
        }
    }

    /// Adds reported gaps; returns whether the contiguous mark moved.
    pub(crate) fn add_gaps(&mut self, gaps: &[Gap]) -> bool {
        let before = self.contiguous;
        for gap in gaps {
            if gap.first_seq <= gap.last_seq && gap.last_seq > self.contiguous {
                self.gaps.push((gap.first_seq, gap.last_seq));
            }
        }
        self.gaps.sort_unstable();
        self.gaps.dedup();
        self.advance();
        self.contiguous != before
    }

    /// Merges the store's view (which includes other nodes' commits and recorded gaps).
    pub(crate) fn merge(&mut self, state: SeqState) {
        self.contiguous = self.contiguous.max(state.contiguous);
        self.above.extend(state.above);
        self.refreshed = Instant::now();
        self.advance();
    }

    /// Whether seqs above a hole are waiting and the last refresh is old enough to ask the
    /// store again.
    pub(crate) fn wants_refresh(&self) -> bool {
        !self.above.is_empty() && self.refreshed.elapsed() >= REFRESH_EVERY
    }

    /// The acknowledgement: the contiguous mark and up to [`MAX_ACK_ABOVE`] seqs above it.
    pub(crate) fn ack(&self) -> (u64, Vec<u64>) {
        (
            self.contiguous,
            self.above.iter().copied().take(MAX_ACK_ABOVE).collect(),
        )
    }

    /// The contiguous mark.
    #[cfg(test)]
    pub(crate) fn contiguous(&self) -> u64 {
        self.contiguous
    }

    /// Moves the mark over settled seqs and gaps, and forgets what it passed.
    fn advance(&mut self) {
        loop {
            let next = self.contiguous.saturating_add(1);
            if next == self.contiguous {
                break;
            }
            if self.above.remove(&next) {
                self.contiguous = next;
                continue;
            }
            match self.gaps.iter().find(|g| g.0 <= next && g.1 >= next) {
                Some(&(_, last)) => self.contiguous = last,
                None => break,
            }
        }
        let mark = self.contiguous;
        self.gaps.retain(|g| g.1 > mark);
        while self.above.first().is_some_and(|&s| s <= mark) {
            self.above.pop_first();
        }
    }
}

/// Every gateway's tracker, shared by the pipeline and the committer. Nothing awaits under
/// the lock.
#[derive(Debug, Default)]
pub(crate) struct Trackers(Mutex<HashMap<GatewayKey, GatewaySeqs>>);

impl Trackers {
    /// Runs `f` on the gateway's tracker, if loaded.
    pub(crate) fn with<R>(
        &self,
        gateway: &GatewayKey,
        f: impl FnOnce(&mut GatewaySeqs) -> R,
    ) -> Option<R> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get_mut(gateway).map(f)
    }

    /// Whether the gateway's tracker is loaded.
    pub(crate) fn contains(&self, gateway: &GatewayKey) -> bool {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.contains_key(gateway)
    }

    /// Installs a tracker loaded from the store, unless one appeared meanwhile.
    pub(crate) fn install(&self, gateway: GatewayKey, state: SeqState) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(gateway)
            .or_insert_with(|| GatewaySeqs::from_state(state));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beffroi_protocol::GapReason;

    fn gap(first_seq: u64, last_seq: u64) -> Gap {
        Gap {
            first_seq,
            last_seq,
            batches: 0,
            readings: 0,
            reason: GapReason::SpoolFull,
        }
    }

    #[test]
    fn dedupe_and_contiguous_marks() {
        let mut seqs = GatewaySeqs::from_state(SeqState {
            contiguous: 2,
            above: vec![5],
        });
        assert_eq!(seqs.check(1, &[0; 64]), SeqCheck::Settled);
        assert_eq!(seqs.check(5, &[0; 64]), SeqCheck::Settled);
        assert_eq!(seqs.check(3, &[0; 64]), SeqCheck::New);
        seqs.begin(3, [1; 64]);
        assert_eq!(seqs.check(3, &[1; 64]), SeqCheck::Pending { same: true });
        assert_eq!(seqs.check(3, &[2; 64]), SeqCheck::Pending { same: false });
        seqs.settle(3);
        assert_eq!(seqs.ack(), (3, vec![5]));
        seqs.settle(7);
        assert_eq!(seqs.ack(), (3, vec![5, 7]));
        assert!(seqs.add_gaps(&[gap(4, 4), gap(6, 6), gap(9, 8)]));
        assert_eq!(seqs.ack(), (7, vec![]));
        assert!(!seqs.add_gaps(&[gap(1, 3)]));
        assert!(!seqs.add_gaps(&[gap(10, 12)]));
        assert_eq!(seqs.contiguous(), 7);
        seqs.settle(8);
        seqs.settle(9);
        assert_eq!(seqs.ack(), (12, vec![]));
    }

    #[test]
    fn merge_takes_the_union() {
        let mut seqs = GatewaySeqs::from_state(SeqState::default());
        seqs.settle(1);
        seqs.settle(3);
        seqs.merge(SeqState {
            contiguous: 2,
            above: vec![4, 6],
        });
        assert_eq!(seqs.ack(), (4, vec![6]));
    }

    #[test]
    fn ack_list_is_capped() {
        let mut seqs = GatewaySeqs::from_state(SeqState::default());
        for seq in (2..20_000).step_by(2) {
            seqs.settle(seq);
        }
        let (contiguous, above) = seqs.ack();
        assert_eq!(contiguous, 0);
        assert_eq!(above.len(), MAX_ACK_ABOVE);
        assert_eq!(above[0], 2);
    }
}
