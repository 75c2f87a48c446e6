//! The offline verifier: recomputes a tenant's chain entry by entry and checks it against
//! the signed checkpoints.
//!
//! Entries are read once, in seq order, and not kept: memory depends on the number of
//! checkpoints and of access groups, not on the length of the log. For each entry:
//!
//! - its stored hash must be the hash of its content and stored `prev_hash`, otherwise it was
//!   edited ([`Problem::Altered`]);
//! - its seq must follow the previous one ([`Problem::Missing`], [`Problem::OutOfOrder`]) and
//!   its `prev_hash` must be the previous entry's hash ([`Problem::ChainBroken`]);
//! - the head recomputed from content alone (never trusting a stored hash) must equal the
//!   signed head of every valid checkpoint at that seq ([`Problem::CheckpointMismatch`]):
//!   this is what catches an entry rewritten together with every hash after it.
//!
//! At the end, a valid checkpoint above the last entry means the tail was cut
//! ([`Problem::Truncated`]); entries above the highest valid checkpoint are reported as not
//! yet checkpointed, which is not a problem.

use beffroi_protocol::{key_id_for, TenantId};
use ed25519_dalek::VerifyingKey;

use crate::chain::entry_hash;
use crate::{
    verify_checkpoint, AuditEntry, AuditHead, Checkpoint, Digest, Problem, SeqRange, VerifyReport,
};

/// Checks a tenant's whole log: `entries` in seq order from seq 1, `checkpoints` in any
/// order, signatures against `keys` (the platform's public keys, current and past).
pub fn verify(
    tenant: &TenantId,
    entries: impl IntoIterator<Item = AuditEntry>,
    checkpoints: &[Checkpoint],
    keys: &[VerifyingKey],
) -> VerifyReport {
    let mut verifier = Verifier::new(tenant.clone(), AuditHead::GENESIS, checkpoints, keys);
    for entry in entries {
        verifier.push(&entry);
    }
    verifier.finish()
}

/// A verification fed one entry at a time (e.g. page by page from the store).
#[derive(Debug)]
pub struct Verifier {
    /// Checkpoints still ahead `(seq, head)`, highest seq first.
    pending: Vec<(u64, Digest)>,
    /// The highest seq vouched for: the highest valid checkpoint's, or the anchor's.
    vouched: u64,
    /// The seq of the last entry read in order (the anchor's at first).
    last: u64,
    /// The stored hash of the last entry read in order (the anchor's hash at first).
    last_hash: Digest,
    /// The head recomputed from content, over every entry read.
    running: Digest,
    /// The seq known good: the anchor or the last matching checkpoint.
    last_good: u64,
    report: VerifyReport,
}

impl Verifier {
    /// Starts verifying `tenant`'s log after `anchor`: [`AuditHead::GENESIS`] for the whole
    /// log, or the head of a checkpoint already verified, to check only what came after it
    /// (the next entry must then be `anchor.seq + 1`, and checkpoints below the anchor are
    /// ignored). Checkpoints are checked here, against `keys`.
    pub fn new(
        tenant: TenantId,
        anchor: AuditHead,
        checkpoints: &[Checkpoint],
        keys: &[VerifyingKey],
    ) -> Self {
        let mut report = VerifyReport::new(tenant, anchor);
        let trusted: Vec<_> = keys.iter().map(|k| (key_id_for(k), k)).collect();
        let mut pending = Vec::with_capacity(checkpoints.len());
        for cp in checkpoints {
            if cp.tenant != report.tenant {
                report.problem(Problem::CheckpointForeign {
                    seq: cp.seq,
                    tenant: cp.tenant.clone(),
                });
                continue;
            }
            let key = trusted.iter().find(|(id, _)| *id == cp.key_id);
            if key.is_none_or(|(_, key)| verify_checkpoint(cp, key).is_err()) {
                report.problem(Problem::CheckpointForged {
                    seq: cp.seq,
                    key_id: cp.key_id.clone(),
                });
                continue;
            }
            if cp.seq >= anchor.seq {
                pending.push((cp.seq, cp.head));
            }
        }
        pending.sort_unstable_by_key(|cp| std::cmp::Reverse(cp.0));
        let mut verifier = Self {
            vouched: pending.first().map_or(anchor.seq, |cp| cp.0),
            pending,
            last: anchor.seq,
            last_hash: anchor.hash,
            running: anchor.hash,
            last_good: anchor.seq,
            report,
        };
        verifier.reach(anchor.seq);
        verifier
    }

    /// Checks the next entry of the log.
    pub fn push(&mut self, entry: &AuditEntry) {
        let report = &mut self.report;
        report.entries += 1;
        if entry.tenant != report.tenant {
            report.problem(Problem::ForeignTenant {
                seq: entry.seq,
                tenant: entry.tenant.clone(),
            });
        }
        let computed = entry.computed_hash();
        if computed != entry.hash {
            report.problem(Problem::Altered { seq: entry.seq });
        }
        self.running = if entry.prev_hash == self.running {
            computed
        } else {
            entry_hash(&self.running, &entry.content())
        };
        report.accesses.record(entry);
        if entry.seq <= self.last {
            report.problem(Problem::OutOfOrder {
                seq: entry.seq,
                after: self.last,
            });
            return;
        }
        if entry.seq - self.last > 1 {
            report.problem(Problem::Missing {
                first: self.last + 1,
                last: entry.seq - 1,
            });
        }
        if entry.prev_hash != self.last_hash {
            report.problem(Problem::ChainBroken { seq: entry.seq });
        }
        self.last_hash = entry.hash;
        self.last = entry.seq;
        self.reach(entry.seq);
    }

    /// Ends the verification.
    pub fn finish(mut self) -> VerifyReport {
        let last = self.last;
        if let Some(&(checkpoint, _)) = self.pending.first() {
            self.report.problem(Problem::Truncated { last, checkpoint });
        }
        self.report.not_checkpointed = (last > self.vouched).then_some(SeqRange {
            first: self.vouched + 1,
            last,
        });
        self.report.head = AuditHead {
            seq: last,
            hash: self.running,
        };
        self.report
    }

    /// The log has been read up to `seq` (in order): checks the checkpoints at or below it.
    fn reach(&mut self, seq: u64) {
        while let Some(&(cp_seq, head)) = self.pending.last() {
            if cp_seq > seq {
                break;
            }
            self.pending.pop();
            if cp_seq == seq && head == self.running {
                self.report.checkpoints_matched += 1;
                self.report.last_checkpoint = Some(seq);
                self.last_good = seq;
            } else {
                self.report.problem(Problem::CheckpointMismatch {
                    seq: cp_seq,
                    since: self.last_good,
                });
            }
        }
    }
}
