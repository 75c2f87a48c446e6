//! The commit-ack arithmetic shared by every backend: how far a gateway's seqs are
//! contiguous, from its committed batches and the gaps it reported.
//!
//! The `gaps` table holds every seq accounted for without a committed batch: the ranges
//! gateways report in health messages, and the single seqs of authentic batches the platform
//! quarantined but acknowledged ([`QuarantineRecord::settles_seq`](crate::QuarantineRecord),
//! reason `quarantine-{reason}`, see [`settled_gap`]). Both count the same here.
//!
//! Each gateway row keeps a watermark `ack_contiguous`: every seq at or below it is committed
//! or inside a recorded gap. It only moves up, inside the transactions of `commit`,
//! `record_health` and `quarantine`, so finding the acknowledgement of a gateway with millions of batches
//! reads only what lies above the watermark (usually nothing, or the batches beyond a hole).
//! The watermark is a lower bound: readers always walk up from it, so a lagging watermark
//! costs a little time, never a wrong ack.

use beffroi_protocol::{GatewayId, TenantId};

use crate::{QuarantineReason, QuarantineRecord};

/// Prefix of the `gaps.reason` of a seq settled by a quarantine record (then the quarantine
/// reason: `quarantine-stale`); gateway-reported reasons (`spool-full`, …) never start so.
pub(crate) const SETTLED_PREFIX: &str = "quarantine-";

/// A seq a quarantine record settles, to be stored as the one-seq gap `(seq, seq)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SettledSeq<'a> {
    pub tenant: &'a TenantId,
    pub gateway: &'a GatewayId,
    pub seq: u64,
    pub reason: QuarantineReason,
}

impl SettledSeq<'_> {
    /// The `gaps.reason` it is stored with.
    pub(crate) fn gap_reason(&self) -> String {
        format!("{SETTLED_PREFIX}{}", self.reason.as_str())
    }
}

/// The seq `record` settles, if it settles one ([`QuarantineRecord::settles_seq`]).
pub(crate) fn settled_gap(record: &QuarantineRecord) -> crate::Result<Option<SettledSeq<'_>>> {
    if !record.settles_seq {
        return Ok(None);
    }
    match (&record.tenant, &record.gateway, record.seq) {
        (Some(tenant), Some(gateway), Some(seq)) => Ok(Some(SettledSeq {
            tenant,
            gateway,
            seq,
            reason: record.reason,
        })),
        _ => Err(crate::Error::Invalid {
            what: "quarantine record",
            reason: "settles_seq needs a tenant, a gateway and a seq".into(),
        }),
    }
}

/// Seqs fetched per round while walking up from the watermark; also the most seqs listed
/// above the contiguous mark in an ack (the protocol's `MAX_ACK_ABOVE`).
pub(crate) const SEQ_CHUNK: usize = 4096;

/// A recorded gap: an inclusive range of seqs that will never arrive (or, for a settled
/// quarantine seq, will never be stored).
pub(crate) type GapRange = (u64, u64);

/// Walks up from `contiguous` over `seqs` (ascending committed seqs) and `gaps` (any order):
/// returns the new contiguous mark and how many of `seqs` lie at or below it.
pub(crate) fn walk(mut contiguous: u64, seqs: &[u64], gaps: &[GapRange]) -> (u64, usize) {
    let mut gaps: Vec<GapRange> = gaps.iter().copied().filter(|g| g.0 <= g.1).collect();
    gaps.sort_unstable();
    let (mut i, mut j) = (0, 0);
    loop {
        while i < seqs.len() && seqs[i] <= contiguous {
            i += 1;
        }
        let mut moved = false;
        let next = contiguous.saturating_add(1);
        while j < gaps.len() && gaps[j].0 <= next {
            if gaps[j].1 > contiguous {
                contiguous = gaps[j].1;
                moved = true;
            }
            j += 1;
        }
        if moved {
            continue;
        }
        if i < seqs.len() && seqs[i] == next && next != contiguous {
            contiguous = next;
            i += 1;
            continue;
        }
        return (contiguous, i);
    }
}

/// The state of a gateway row before a commit, for the fast path of [`advance_on_commit`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Watermark {
    /// `ack_contiguous`.
    pub contiguous: u64,
    /// Highest committed seq (`last_committed_seq`), 0 when none.
    pub last_committed: u64,
    /// Highest seq inside a recorded gap (`gap_max`), 0 when none.
    pub gap_max: u64,
}

impl Watermark {
    /// The new contiguous mark after committing `new_seqs` (ascending), when it can be
    /// computed without reading the database: nothing committed or reported above the
    /// watermark before. `None`: walk the stored batches instead.
    pub(crate) fn advance_on_commit(self, new_seqs: &[u64]) -> Option<u64> {
        if self.last_committed > self.contiguous || self.gap_max > self.contiguous {
            return None;
        }
        Some(walk(self.contiguous, new_seqs, &[]).0)
    }
}

/// Where a backend reads a gateway's committed seqs and recorded gaps from.
pub(crate) trait SeqSource {
    /// Recorded gaps of the gateway ending above `from`.
    async fn gaps_above(&mut self, from: u64) -> crate::Result<Vec<GapRange>>;
    /// Up to [`SEQ_CHUNK`] committed seqs above `after`, ascending.
    async fn seqs_above(&mut self, after: u64) -> crate::Result<Vec<u64>>;
}

/// Walks a gateway's committed seqs and gaps up from the watermark `from`: the contiguous
/// mark and up to [`SEQ_CHUNK`] committed seqs above it.
pub(crate) async fn walk_stored(
    source: &mut impl SeqSource,
    from: u64,
) -> crate::Result<(u64, Vec<u64>)> {
    let gaps = source.gaps_above(from).await?;
    let mut contiguous = from;
    loop {
        let seqs = source.seqs_above(contiguous).await?;
        let (next, consumed) = walk(contiguous, &seqs, &gaps);
        contiguous = next;
        let full = seqs.len() == SEQ_CHUNK;
        if consumed == seqs.len() && full {
            continue;
        }
        let above = if consumed > 0 && full {
            source.seqs_above(contiguous).await?
        } else {
            seqs[consumed..].to_vec()
        };
        return Ok((contiguous, above));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_committed_seqs_and_gaps() {
        assert_eq!(walk(0, &[1, 2, 3, 5], &[]), (3, 3));
        assert_eq!(walk(0, &[1, 2, 3, 5], &[(4, 4)]), (5, 4));
        assert_eq!(walk(0, &[2, 3], &[(1, 1)]), (3, 2));
        assert_eq!(walk(0, &[10], &[(1, 9)]), (10, 1));
        assert_eq!(walk(0, &[7], &[(1, 4)]), (4, 0));
        assert_eq!(walk(2, &[1, 2, 3], &[]), (3, 3));
        assert_eq!(walk(0, &[1, 4], &[(2, 3), (3, 8), (9, 9)]), (9, 2));
        assert_eq!(walk(0, &[], &[(5, 4)]), (0, 0));
        assert_eq!(walk(u64::MAX - 1, &[u64::MAX], &[]), (u64::MAX, 1));
        assert_eq!(walk(u64::MAX, &[], &[(1, 2)]), (u64::MAX, 0));
    }

    #[test]
    fn fast_path_only_when_nothing_lies_above() {
        let clean = Watermark {
            contiguous: 4,
            last_committed: 4,
            gap_max: 2,
        };
        assert_eq!(clean.advance_on_commit(&[5, 6, 8]), Some(6));
        assert_eq!(clean.advance_on_commit(&[7]), Some(4));
        let holed = Watermark {
            last_committed: 9,
            ..clean
        };
        assert_eq!(holed.advance_on_commit(&[5]), None);
    }
}
