//! The outcome of a verification: what was checked, every problem with its seq, and the
//! accesses summary.

use std::fmt;

use beffroi_protocol::{KeyId, TenantId};
use serde::Serialize;

use crate::{AccessSummary, AuditHead};

/// Problems a report lists in full; past this many it only counts them
/// ([`VerifyReport::problems_omitted`]), so that a badly damaged log of millions of entries
/// still verifies in flat memory.
pub const MAX_PROBLEMS: usize = 1000;

/// Seqs `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeqRange {
    /// The first.
    pub first: u64,
    /// The last.
    pub last: u64,
}

impl fmt::Display for SeqRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "seq {}", self.first)
        } else {
            write!(f, "seq {}..={}", self.first, self.last)
        }
    }
}

/// Something wrong with a log, located by seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The entry's stored hash is not the hash of its content: it was edited after it was
    /// written (or its hash was).
    Altered {
        /// The entry.
        seq: u64,
    },
    /// The entry's `prev_hash` is not the hash of the entry before it: something before it
    /// was removed, replaced or rewritten.
    ChainBroken {
        /// The entry.
        seq: u64,
    },
    /// Seqs skipped: these entries are not in the log.
    Missing {
        /// The first missing seq.
        first: u64,
        /// The last missing seq.
        last: u64,
    },
    /// The entry comes after one with a higher or equal seq: entries reordered or repeated.
    OutOfOrder {
        /// The entry.
        seq: u64,
        /// The highest seq read before it.
        after: u64,
    },
    /// The entry belongs to another tenant's chain.
    ForeignTenant {
        /// The entry.
        seq: u64,
        /// Its tenant.
        tenant: TenantId,
    },
    /// The checkpoint's signature does not verify with the trusted key it names, or it names
    /// no trusted key. It is ignored.
    CheckpointForged {
        /// The checkpoint's seq.
        seq: u64,
        /// The key id it names.
        key_id: KeyId,
    },
    /// The checkpoint is another tenant's. It is ignored.
    CheckpointForeign {
        /// The checkpoint's seq.
        seq: u64,
        /// Its tenant.
        tenant: TenantId,
    },
    /// The log read up to the checkpoint's seq does not lead to the signed head: entries in
    /// `since + 1..=seq` were changed, removed, reordered or rewritten with new hashes.
    CheckpointMismatch {
        /// The checkpoint's seq.
        seq: u64,
        /// The last seq known good: the previous matching checkpoint (0 if none).
        since: u64,
    },
    /// The log ends below a checkpoint: its tail was cut.
    Truncated {
        /// The last seq read (0: none).
        last: u64,
        /// The highest checkpoint's seq.
        checkpoint: u64,
    },
}

impl Problem {
    /// The first seq the problem concerns (for a checkpoint, the checkpoint's seq).
    pub fn seq(&self) -> u64 {
        match self {
            Problem::Altered { seq }
            | Problem::ChainBroken { seq }
            | Problem::OutOfOrder { seq, .. }
            | Problem::ForeignTenant { seq, .. }
            | Problem::CheckpointForged { seq, .. }
            | Problem::CheckpointForeign { seq, .. }
            | Problem::CheckpointMismatch { seq, .. } => *seq,
            Problem::Missing { first, .. } => *first,
            Problem::Truncated { last, .. } => last.saturating_add(1),
        }
    }

    /// A stable label: `altered`, `chain_broken`, `missing`, `out_of_order`,
    /// `foreign_tenant`, `checkpoint_forged`, `checkpoint_foreign`, `checkpoint_mismatch`,
    /// `truncated`.
    pub fn label(&self) -> &'static str {
        match self {
            Problem::Altered { .. } => "altered",
            Problem::ChainBroken { .. } => "chain_broken",
            Problem::Missing { .. } => "missing",
            Problem::OutOfOrder { .. } => "out_of_order",
            Problem::ForeignTenant { .. } => "foreign_tenant",
            Problem::CheckpointForged { .. } => "checkpoint_forged",
            Problem::CheckpointForeign { .. } => "checkpoint_foreign",
            Problem::CheckpointMismatch { .. } => "checkpoint_mismatch",
            Problem::Truncated { .. } => "truncated",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Altered { seq } => {
                write!(
                    f,
                    "seq {seq}: altered (its hash does not match its content)"
                )
            }
            Problem::ChainBroken { seq } => write!(
                f,
                "seq {seq}: chain broken (does not link to the entry before it)"
            ),
            Problem::Missing { first, last } => {
                write!(
                    f,
                    "{}: missing",
                    SeqRange {
                        first: *first,
                        last: *last
                    }
                )
            }
            Problem::OutOfOrder { seq, after } => {
                write!(f, "seq {seq}: out of order (read after seq {after})")
            }
            Problem::ForeignTenant { seq, tenant } => {
                write!(f, "seq {seq}: entry of another tenant ({tenant})")
            }
            Problem::CheckpointForged { seq, key_id } => write!(
                f,
                "checkpoint at seq {seq}: forged (key {key_id} is not trusted or the \
                 signature is invalid)"
            ),
            Problem::CheckpointForeign { seq, tenant } => {
                write!(f, "checkpoint at seq {seq}: of another tenant ({tenant})")
            }
            Problem::CheckpointMismatch { seq, since } => write!(
                f,
                "checkpoint at seq {seq}: the log does not lead to the signed head (changed \
                 within {})",
                SeqRange {
                    first: since.saturating_add(1),
                    last: *seq
                }
            ),
            Problem::Truncated { last, checkpoint } => write!(
                f,
                "truncated: the log ends at seq {last}, below the checkpoint at seq \
                 {checkpoint} ({} removed)",
                SeqRange {
                    first: last.saturating_add(1),
                    last: *checkpoint
                }
            ),
        }
    }
}

/// What [`crate::verify`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// The tenant whose log was checked.
    pub tenant: TenantId,
    /// Entries read.
    pub entries: u64,
    /// The head the log leads to, recomputed from the entries' content (the anchor when no
    /// entry was read).
    pub head: AuditHead,
    /// Checkpoints whose signature verified and whose head the log leads to.
    pub checkpoints_matched: u64,
    /// The seq of the last of them.
    pub last_checkpoint: Option<u64>,
    /// Entries after the highest valid checkpoint: not an error, but nothing vouches for them
    /// yet (removing them, for instance, cannot be detected).
    pub not_checkpointed: Option<SeqRange>,
    /// The problems, in the order found (at most [`MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
    /// Problems found beyond [`MAX_PROBLEMS`].
    pub problems_omitted: u64,
    /// The lowest [`Problem::seq`] of all problems, listed or omitted.
    pub first_bad_seq: Option<u64>,
    /// Who accessed what, when, under which agreement.
    pub accesses: AccessSummary,
}

impl VerifyReport {
    /// An empty report for `tenant`'s log from `anchor`.
    pub(crate) fn new(tenant: TenantId, anchor: AuditHead) -> Self {
        Self {
            tenant,
            entries: 0,
            head: anchor,
            checkpoints_matched: 0,
            last_checkpoint: None,
            not_checkpointed: None,
            problems: Vec::new(),
            problems_omitted: 0,
            first_bad_seq: None,
            accesses: AccessSummary::default(),
        }
    }

    /// Whether the log is intact (entries not yet checkpointed are no problem).
    pub fn is_ok(&self) -> bool {
        self.first_bad_seq.is_none()
    }

    /// Records a problem.
    pub(crate) fn problem(&mut self, problem: Problem) {
        let seq = problem.seq();
        self.first_bad_seq = Some(self.first_bad_seq.map_or(seq, |s| s.min(seq)));
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(problem);
        } else {
            self.problems_omitted += 1;
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "audit log of tenant {}: {} entries, head seq {} {}",
            self.tenant, self.entries, self.head.seq, self.head.hash
        )?;
        match self.last_checkpoint {
            Some(seq) => writeln!(
                f,
                "checkpoints: {} verified, the last at seq {seq}",
                self.checkpoints_matched
            )?,
            None => writeln!(f, "checkpoints: none verified")?,
        }
        if let Some(range) = self.not_checkpointed {
            writeln!(f, "not yet checkpointed: {range}")?;
        }
        match self.first_bad_seq {
            None => writeln!(f, "result: OK")?,
            Some(seq) => {
                let count = self.problems.len() as u64 + self.problems_omitted;
                writeln!(f, "result: TAMPERED, {count} problems, first at seq {seq}")?;
                for problem in &self.problems {
                    writeln!(f, "  {problem}")?;
                }
                if self.problems_omitted > 0 {
                    writeln!(f, "  … and {} more", self.problems_omitted)?;
                }
            }
        }
        writeln!(f, "accesses:")?;
        write!(f, "{}", self.accesses)
    }
}
