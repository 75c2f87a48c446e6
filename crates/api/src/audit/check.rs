//! Verifying a tenant's audit log straight from the store: entries are read page by page into
//! a streaming [`Verifier`], so memory stays flat however long the log is.
//!
//! A row the store can no longer decode ([`beffroi_store::Error::Corrupt`]) is tampering
//! too: it is listed in [`LogCheck::unreadable`] at its seq and skipped, so the verifier also
//! reports that seq missing and reads on.

use std::fmt;

use beffroi_audit::{verify_checkpoint, AuditHead, Checkpoint, Verifier, VerifyReport};
use beffroi_protocol::{TenantId, VerifyingKey};
use beffroi_store::{AuditFilter, Store};
use serde::Serialize;

/// Entries read per page.
pub const PAGE_ENTRIES: u32 = 1000;

/// A stored entry that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadableEntry {
    /// Its seq (from the store's message; when it names none, the seq after the last entry
    /// read before it).
    pub seq: u64,
    /// What the store says is wrong with it.
    pub reason: String,
}

/// The outcome of checking a log from the store: the verifier's report and the entries that
/// could not even be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogCheck {
    /// What the verifier found.
    #[serde(flatten)]
    pub report: VerifyReport,
    /// Rows that no longer decode.
    pub unreadable: Vec<UnreadableEntry>,
}

impl LogCheck {
    /// Whether the log is intact.
    pub fn is_ok(&self) -> bool {
        self.report.is_ok() && self.unreadable.is_empty()
    }

    /// The lowest seq with a problem.
    pub fn first_bad_seq(&self) -> Option<u64> {
        let unreadable = self.unreadable.iter().map(|u| u.seq).min();
        match (self.report.first_bad_seq, unreadable) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl fmt::Display for LogCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.report)?;
        for entry in &self.unreadable {
            writeln!(f, "seq {}: unreadable ({})", entry.seq, entry.reason)?;
        }
        if self.report.is_ok() && !self.unreadable.is_empty() {
            writeln!(f, "result: TAMPERED (unreadable entries)")?;
        }
        Ok(())
    }
}

/// Checks `tenant`'s log after `anchor` ([`AuditHead::GENESIS`]: all of it) against
/// `checkpoints` signed by any of `keys`. Fails only when the store fails otherwise than on
/// a corrupt row.
pub async fn check_log(
    store: &dyn Store,
    tenant: &TenantId,
    anchor: AuditHead,
    checkpoints: &[Checkpoint],
    keys: &[VerifyingKey],
) -> Result<LogCheck, beffroi_store::Error> {
    let mut verifier = Verifier::new(tenant.clone(), anchor, checkpoints, keys);
    let mut unreadable = Vec::new();
    let filter = AuditFilter::default();
    let mut after = anchor.seq;
    // A corrupt row ahead, named by the store: the rows before it are read, then it is
    // skipped.
    let mut skip: Option<(u64, String)> = None;
    // After a corrupt row that names no seq: one row at a time, so that the failing row is
    // the next one.
    let mut probing = false;
    loop {
        let limit = match &skip {
            Some((seq, _)) => u32::try_from(seq - after - 1)
                .unwrap_or(PAGE_ENTRIES)
                .min(if probing { 1 } else { PAGE_ENTRIES }),
            None if probing => 1,
            None => PAGE_ENTRIES,
        };
        if limit == 0 {
            if let Some((seq, reason)) = skip.take() {
                unreadable.push(UnreadableEntry { seq, reason });
                after = seq;
            }
            probing = false;
            continue;
        }
        match store.audit_entries(tenant, &filter, after, limit).await {
            Ok(page) => {
                for entry in &page {
                    verifier.push(entry);
                    after = after.max(entry.seq);
                }
                let last_page = page.len() < limit as usize;
                if let Some((seq, _)) = &skip {
                    if last_page {
                        // Nothing else below the corrupt row.
                        after = after.max(seq - 1);
                    }
                    continue;
                }
                probing = false;
                if last_page {
                    break;
                }
            }
            Err(beffroi_store::Error::Corrupt { reason, .. }) => {
                let named = seq_named(&reason).filter(|&seq| seq > after);
                if limit == 1 {
                    // The failing row is the next one: skip it.
                    let seq = named.unwrap_or(after.saturating_add(1));
                    unreadable.push(UnreadableEntry { seq, reason });
                    after = seq;
                    probing = false;
                    if skip.as_ref().is_some_and(|(ahead, _)| *ahead <= seq) {
                        skip = None;
                    }
                } else if let Some(seq) =
                    named.filter(|seq| skip.as_ref().is_none_or(|(ahead, _)| seq < ahead))
                {
                    skip = Some((seq, reason));
                } else {
                    // Rows are missing below it, or it names no seq: one row at a time.
                    probing = true;
                }
            }
            Err(error) => return Err(error),
        }
    }
    Ok(LogCheck {
        report: verifier.finish(),
        unreadable,
    })
}

/// The head of the highest checkpoint at or below `seq` whose signature verifies with one of
/// `keys`; [`AuditHead::GENESIS`] when there is none. A verification anchored there is as
/// sound as one from the start for everything after it.
pub fn anchor_at_or_below(
    checkpoints: &[Checkpoint],
    seq: u64,
    keys: &[VerifyingKey],
) -> AuditHead {
    checkpoints
        .iter()
        .filter(|cp| cp.seq <= seq)
        .filter(|cp| keys.iter().any(|key| verify_checkpoint(cp, key).is_ok()))
        .max_by_key(|cp| cp.seq)
        .map_or(AuditHead::GENESIS, |cp| AuditHead {
            seq: cp.seq,
            hash: cp.head,
        })
}

/// The seq a store's corruption message starts with (`seq 42: detail: …`).
fn seq_named(reason: &str) -> Option<u64> {
    let rest = reason.strip_prefix("seq ")?;
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_seq_of_a_corruption_message() {
        assert_eq!(seq_named("seq 42: detail: expected value"), Some(42));
        assert_eq!(seq_named("seq x"), None);
        assert_eq!(seq_named("bad hash length"), None);
    }
}
