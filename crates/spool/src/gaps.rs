//! Pending gaps: seq ranges the platform will never receive, kept (bounded) until a
//! contiguous acknowledgement shows the platform has heard of them.

use crate::{Gap, GapReason};

/// At most this many gaps are pending; beyond it the two oldest are merged.
pub const MAX_PENDING_GAPS: usize = 64;

/// Adds `gap` after `gaps`, merging it into the last one when that one has the same reason
/// and ends before it starts, then enforces [`MAX_PENDING_GAPS`].
///
/// Merging is safe because the spool drops from the oldest end: nothing it still holds lies
/// between two consecutive drops, so the merged range is an envelope whose counts stay exact.
pub fn push(gaps: &mut Vec<Gap>, gap: Gap) {
    match gaps.last_mut() {
        Some(last) if last.reason == gap.reason && last.last_seq < gap.first_seq => {
            *last = merge(*last, gap);
        }
        _ => gaps.push(gap),
    }
    while gaps.len() > MAX_PENDING_GAPS {
        let second = gaps.remove(1);
        gaps[0] = merge(gaps[0], second);
    }
}

/// Merges two gaps into their envelope; counts add up. The result is `SpoolFull` if either
/// lost batches to a full spool, so the loss stays visible.
fn merge(a: Gap, b: Gap) -> Gap {
    let reason = if a.reason == GapReason::SpoolFull || b.reason == GapReason::SpoolFull {
        GapReason::SpoolFull
    } else {
        GapReason::CrashRestart
    };
    Gap {
        first_seq: a.first_seq.min(b.first_seq),
        last_seq: a.last_seq.max(b.last_seq),
        batches: a.batches.saturating_add(b.batches),
        readings: a.readings.saturating_add(b.readings),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(first_seq: u64, last_seq: u64, batches: u64, reason: GapReason) -> Gap {
        Gap {
            first_seq,
            last_seq,
            batches,
            readings: batches * 10,
            reason,
        }
    }

    #[test]
    fn merges_same_reason_and_keeps_others_apart() {
        let mut gaps = Vec::new();
        push(&mut gaps, gap(1, 4, 4, GapReason::SpoolFull));
        push(&mut gaps, gap(5, 9, 5, GapReason::SpoolFull));
        assert_eq!(gaps, vec![gap(1, 9, 9, GapReason::SpoolFull)]);
        push(&mut gaps, gap(10, 20, 0, GapReason::CrashRestart));
        push(&mut gaps, gap(21, 22, 2, GapReason::SpoolFull));
        assert_eq!(gaps.len(), 3);
    }

    #[test]
    fn bounded() {
        let mut gaps = Vec::new();
        for i in 0..200u64 {
            let reason = if i % 2 == 0 {
                GapReason::SpoolFull
            } else {
                GapReason::CrashRestart
            };
            push(&mut gaps, gap(i * 10, i * 10 + 5, 1, reason));
        }
        assert_eq!(gaps.len(), MAX_PENDING_GAPS);
        assert_eq!(gaps[0].first_seq, 0);
        assert_eq!(gaps.iter().map(|g| g.batches).sum::<u64>(), 200);
        assert_eq!(gaps.last().map(|g| g.last_seq), Some(1995));
    }
}
