//! Integration tests of the spool: round trips, torn tails, bit flips, crashes, the full
//! policy, and a property test against an in-memory model.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use beffroi_spool::{
    Error, Gap, GapReason, RecordInfo, Spool, SpoolConfig, StateRecovery, HEADER_LEN,
};
use proptest::prelude::*;

/// Small sizes so that a few records span several segments.
const SMALL: SpoolConfig = SpoolConfig {
    max_bytes: 64 * 1024,
    segment_bytes: 8 * 1024,
    seq_block: 8,
};

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

fn open(dir: &Path) -> (Spool, beffroi_spool::Recovery) {
    Spool::open(dir, SMALL).unwrap()
}

/// Allocates and appends `n` batches of `len` bytes; readings = seq % 7 + 1.
fn append_n(spool: &mut Spool, n: usize, len: usize) -> Vec<u64> {
    (0..n)
        .map(|_| {
            let seq = spool.allocate_seq().unwrap();
            spool
                .append(seq, readings_of(seq), &payload(seq, len))
                .unwrap();
            seq
        })
        .collect()
}

fn readings_of(seq: u64) -> u32 {
    (seq % 7) as u32 + 1
}

fn unacked_seqs(spool: &Spool) -> Vec<u64> {
    spool.unacked().map(|r| r.seq).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn round_trip_append_read_ack() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, recovery) = open(dir.path());
    assert_eq!(recovery.state, StateRecovery::Fresh);
    assert_eq!(recovery.crash_gap, None);
    let seqs = append_n(&mut spool, 10, 100);
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    for &seq in &seqs {
        assert_eq!(spool.read(seq).unwrap(), Some(payload(seq, 100)));
    }
    let first: RecordInfo = spool.unacked().next().unwrap();
    assert_eq!((first.seq, first.readings, first.len), (1, 2, 100));
    let stats = spool.stats();
    assert_eq!(stats.batches, 10);
    assert_eq!(
        stats.readings,
        seqs.iter().map(|&s| u64::from(readings_of(s))).sum::<u64>()
    );
    assert_eq!(stats.bytes, 10 * (HEADER_LEN + 100));
    assert_eq!(stats.next_seq, 11);
    assert_eq!(
        stats.oldest_unacked_appended_at_ms,
        Some(first.appended_at_ms)
    );

    let outcome = spool.ack(3, &[5, 7, 99]).unwrap();
    assert_eq!(outcome.removed_batches, 5);
    let expected_readings: u64 = [1, 2, 3, 5, 7]
        .iter()
        .map(|&s| u64::from(readings_of(s)))
        .sum();
    assert_eq!(outcome.removed_readings, expected_readings);
    assert_eq!(unacked_seqs(&spool), vec![4, 6, 8, 9, 10]);
    assert_eq!(spool.read(5).unwrap(), None);
    assert_eq!(spool.read(2).unwrap(), None);
    assert_eq!(spool.read(42).unwrap(), None);
    assert_eq!(spool.stats().acked_through, 3);
    // Acking again removes nothing.
    assert_eq!(spool.ack(3, &[5]).unwrap().removed_batches, 0);
    spool.ack(4, &[]).unwrap();
    assert_eq!(spool.stats().acked_through, 5);
    spool.close().unwrap();
}

#[test]
fn reopen_keeps_unacked_and_skips_acked_through() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = open(dir.path());
    append_n(&mut spool, 10, 50);
    spool.ack(4, &[6]).unwrap();
    spool.sync().unwrap();
    spool.close().unwrap();

    let (mut spool, recovery) = open(dir.path());
    assert_eq!(recovery.state, StateRecovery::Clean);
    assert_eq!(recovery.crash_gap, None);
    assert_eq!(recovery.acked_through, 4);
    assert_eq!(recovery.skipped_acked, 4);
    // 6 was acknowledged above a hole: resent once after a restart (documented).
    assert_eq!(unacked_seqs(&spool), vec![5, 6, 7, 8, 9, 10]);
    assert_eq!(recovery.records, 6);
    assert_eq!(spool.read(9).unwrap(), Some(payload(9, 50)));
    assert_eq!(spool.allocate_seq().unwrap(), 11);
    assert!(spool.pending_gaps().is_empty());

    // Everything acked: the (sealed) segments go away, the state remembers acked_through.
    let seq = 11;
    spool.append(seq, 1, b"x").unwrap();
    spool.ack(11, &[]).unwrap();
    assert_eq!(spool.stats().batches, 0);
    spool.close().unwrap();
    let (spool, recovery) = open(dir.path());
    assert_eq!(recovery.records, 0);
    assert_eq!(spool.stats().acked_through, 11);
    assert_eq!(spool.unacked().count(), 0);
}

#[test]
fn segments_roll_and_acked_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = open(dir.path());
    // 1000-byte payloads: 7 records per 8 KiB segment.
    let seqs = append_n(&mut spool, 30, 1000);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 5);
    assert!(files[0].ends_with("00000000000000000001.seg"));
    assert!(files[1].ends_with("00000000000000000008.seg"));
    for file in &files {
        assert!(fs::metadata(file).unwrap().len() <= SMALL.segment_bytes);
    }
    // Acking the first segment entirely (partly above a hole) deletes it.
    spool.ack(2, &[3, 4, 5, 6, 7, 9]).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 4);
    spool.ack(*seqs.last().unwrap(), &[]).unwrap();
    // The active segment stays (empty of unacked records) until it is sealed.
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(spool.stats().batches, 0);
    // Once sealed by the next roll, that fully acknowledged segment is deleted too.
    let filled = append_n(&mut spool, 5, 1000); // the active segment now holds 7 records
    spool.ack(*filled.last().unwrap(), &[]).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    append_n(&mut spool, 1, 1000);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with("00000000000000000036.seg"));
    assert_eq!(spool.stats().bytes, HEADER_LEN + 1000);
    spool.close().unwrap();
    let (spool, _) = open(dir.path());
    assert_eq!(unacked_seqs(&spool), vec![36]);
}

/// Builds a spool with 5 records of 40-byte payloads in one segment, closed cleanly, and
/// returns (segment path, segment bytes, state bytes).
fn five_records(dir: &Path) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let (mut spool, _) = open(dir);
    append_n(&mut spool, 5, 40);
    spool.close().unwrap();
    let files = segment_files(dir);
    assert_eq!(files.len(), 1);
    let bytes = fs::read(&files[0]).unwrap();
    let state = fs::read(dir.join("state.json")).unwrap();
    (files[0].clone(), bytes, state)
}

fn reopen_with_segment(
    segment: &[u8],
    name: &Path,
    state: &[u8],
) -> (tempfile::TempDir, Spool, beffroi_spool::Recovery) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(name.file_name().unwrap()), segment).unwrap();
    fs::write(dir.path().join("state.json"), state).unwrap();
    let (spool, recovery) = open(dir.path());
    (dir, spool, recovery)
}

#[test]
fn torn_tail_at_every_offset_of_the_last_record() {
    let origin = tempfile::tempdir().unwrap();
    let (name, bytes, state) = five_records(origin.path());
    let record = (HEADER_LEN + 40) as usize;
    assert_eq!(bytes.len(), 5 * record);
    let last_start = 4 * record;
    for cut in last_start..bytes.len() {
        let (dir, mut spool, recovery) = reopen_with_segment(&bytes[..cut], &name, &state);
        assert_eq!(recovery.records, 4, "cut at {cut}");
        assert_eq!(
            recovery.bytes_truncated,
            (cut - last_start) as u64,
            "cut at {cut}"
        );
        assert_eq!(unacked_seqs(&spool), vec![1, 2, 3, 4]);
        // The torn seq 5 is never reused.
        let seq = spool.allocate_seq().unwrap();
        assert!(seq > 5);
        spool.append(seq, 1, b"after").unwrap();
        assert_eq!(spool.read(seq).unwrap(), Some(b"after".to_vec()));
        spool.close().unwrap();
        let (spool, recovery) = open(dir.path());
        assert_eq!(recovery.bytes_truncated, 0);
        assert_eq!(unacked_seqs(&spool), vec![1, 2, 3, 4, seq]);
    }
}

#[test]
fn garbage_after_the_last_record_is_truncated() {
    let origin = tempfile::tempdir().unwrap();
    let (name, bytes, state) = five_records(origin.path());
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for garbage_len in [1usize, 7, 35, 36, 37, 200, 5000] {
        for fill in ["zeros", "random", "header"] {
            let mut torn = bytes.clone();
            match fill {
                "zeros" => torn.resize(bytes.len() + garbage_len, 0),
                "random" => torn.extend((0..garbage_len).map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })),
                _ => torn.extend(bytes.iter().cycle().take(garbage_len)),
            }
            let (_dir, mut spool, recovery) = reopen_with_segment(&torn, &name, &state);
            assert_eq!(recovery.records, 5, "{fill} {garbage_len}");
            assert_eq!(
                recovery.bytes_truncated, garbage_len as u64,
                "{fill} {garbage_len}"
            );
            let seq = spool.allocate_seq().unwrap();
            assert_eq!(seq, 6);
            spool.append(seq, 1, b"ok").unwrap();
            assert_eq!(unacked_seqs(&spool), vec![1, 2, 3, 4, 5, 6]);
        }
    }
}

#[test]
fn bit_flips_hide_the_rest_of_the_segment_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = open(dir.path());
    append_n(&mut spool, 20, 1000); // segments start at 1, 8, 15
    spool.close().unwrap();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 3);
    let record = (HEADER_LEN + 1000) as usize;

    // A flipped payload bit in record 3 (first segment): 3..=7 are not returned.
    let mut first = fs::read(&files[0]).unwrap();
    first[2 * record + HEADER_LEN as usize + 10] ^= 0x04;
    fs::write(&files[0], &first).unwrap();
    // A flipped header bit in record 17 (last segment): torn tail from there.
    let mut last = fs::read(&files[2]).unwrap();
    last[2 * record + 13] ^= 0x80;
    fs::write(&files[2], &last).unwrap();

    let (mut spool, recovery) = open(dir.path());
    assert_eq!(recovery.corrupt_segments, 1);
    assert_eq!(recovery.bytes_unreadable, 5 * record as u64);
    assert_eq!(recovery.bytes_truncated, 4 * record as u64);
    let expected: Vec<u64> = [1, 2].into_iter().chain(8..=16).collect();
    assert_eq!(unacked_seqs(&spool), expected);
    assert_eq!(spool.read(3).unwrap(), None);
    assert!(spool.allocate_seq().unwrap() > 20);
    drop(spool);

    // Corruption appearing after open is reported by `read`, not panicked on.
    let (spool, _) = open(dir.path());
    let mut second = fs::read(&files[1]).unwrap();
    second[record + HEADER_LEN as usize] ^= 1;
    fs::write(&files[1], &second).unwrap();
    assert!(matches!(spool.read(9), Err(Error::CorruptRecord { .. })));
    assert_eq!(spool.read(8).unwrap(), Some(payload(8, 1000)));
}

#[test]
fn crash_without_close_never_reuses_seqs_and_records_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = open(dir.path());
    append_n(&mut spool, 2, 10);
    let lost = spool.allocate_seq().unwrap(); // allocated, never appended
    assert_eq!(lost, 3);
    drop(spool); // crash

    let (mut spool, recovery) = open(dir.path());
    assert_eq!(recovery.state, StateRecovery::Crash);
    let gap = Gap {
        first_seq: 3,
        last_seq: 8,
        batches: 0,
        readings: 0,
        reason: GapReason::CrashRestart,
    };
    assert_eq!(recovery.crash_gap, Some(gap));
    assert_eq!(spool.pending_gaps(), &[gap]);
    assert_eq!(spool.allocate_seq().unwrap(), 9);
    assert_eq!(unacked_seqs(&spool), vec![1, 2]);
    drop(spool); // crash again, after reserving 9..=16

    let (mut spool, recovery) = open(dir.path());
    let second = Gap {
        first_seq: 9,
        last_seq: 16,
        ..gap
    };
    assert_eq!(recovery.crash_gap, Some(second));
    // Contiguous with the first one and same reason: merged.
    assert_eq!(
        spool.pending_gaps(),
        &[Gap {
            first_seq: 3,
            last_seq: 16,
            ..gap
        }]
    );
    assert_eq!(spool.allocate_seq().unwrap(), 17);
    spool.append(17, 1, b"x").unwrap();
    // The platform acknowledges past the gap: it is cleared.
    spool.ack(17, &[]).unwrap();
    assert!(spool.pending_gaps().is_empty());
    spool.close().unwrap();

    let (mut spool, recovery) = open(dir.path());
    assert_eq!(recovery.state, StateRecovery::Clean);
    assert_eq!(recovery.crash_gap, None);
    assert!(spool.pending_gaps().is_empty());
    assert_eq!(spool.allocate_seq().unwrap(), 18);
}

#[test]
fn crash_right_after_reserving_skips_the_whole_block() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = open(dir.path());
    assert_eq!(spool.allocate_seq().unwrap(), 1);
    drop(spool);
    let (mut spool, recovery) = open(dir.path());
    assert_eq!(
        recovery.crash_gap.map(|g| (g.first_seq, g.last_seq)),
        Some((1, 8))
    );
    assert_eq!(spool.allocate_seq().unwrap(), 9);
}

#[test]
fn missing_or_corrupt_state_is_handled_conservatively() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = open(dir.path());
    append_n(&mut spool, 3, 10);
    spool.ack(1, &[]).unwrap();
    spool.close().unwrap();
    fs::write(dir.path().join("state.json"), b"{ not json").unwrap();
    let (mut spool, recovery) = open(dir.path());
    assert!(matches!(recovery.state, StateRecovery::Corrupt { .. }));
    // acked_through is lost: everything on disk is resent; next seq = 3 + 1 + seq_block.
    assert_eq!(unacked_seqs(&spool), vec![1, 2, 3]);
    assert_eq!(
        recovery.crash_gap.map(|g| (g.first_seq, g.last_seq)),
        Some((4, 11))
    );
    assert_eq!(spool.allocate_seq().unwrap(), 12);
    spool.append(12, 1, b"x").unwrap();
    spool.close().unwrap();

    fs::remove_file(dir.path().join("state.json")).unwrap();
    let (mut spool, recovery) = open(dir.path());
    assert_eq!(recovery.state, StateRecovery::Missing);
    assert_eq!(
        recovery.crash_gap.map(|g| (g.first_seq, g.last_seq)),
        Some((13, 20))
    );
    assert_eq!(spool.allocate_seq().unwrap(), 21);
}

#[test]
fn full_spool_drops_oldest_and_records_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = open(dir.path());
    let seqs = append_n(&mut spool, 100, 1000);
    let stats = spool.stats();
    assert!(stats.bytes <= SMALL.max_bytes);
    assert_eq!(stats.batches + stats.dropped_batches, 100);
    let kept = unacked_seqs(&spool);
    let first_kept = kept[0];
    assert_eq!(kept, (first_kept..=100).collect::<Vec<_>>());
    let dropped_readings: u64 = (1..first_kept).map(|s| u64::from(readings_of(s))).sum();
    assert_eq!(stats.dropped_readings, dropped_readings);
    let gap = Gap {
        first_seq: 1,
        last_seq: first_kept - 1,
        batches: first_kept - 1,
        readings: dropped_readings,
        reason: GapReason::SpoolFull,
    };
    assert_eq!(spool.pending_gaps(), &[gap]);
    assert_eq!(spool.stats().acked_through, first_kept - 1);

    // Gaps and counters survive a clean restart and a crash.
    spool.close().unwrap();
    let (mut spool, _) = open(dir.path());
    assert_eq!(spool.pending_gaps(), &[gap]);
    assert_eq!(spool.stats().dropped_batches, first_kept - 1);
    assert_eq!(spool.allocate_seq().unwrap(), 101); // then lost in the crash
    drop(spool);
    let (mut spool, recovery) = open(dir.path());
    assert_eq!(recovery.state, StateRecovery::Crash);
    assert_eq!(spool.pending_gaps()[0], gap);
    // The crash gap (unused reserved seqs) is separate: different reason.
    assert_eq!(spool.pending_gaps().len(), 2);
    assert_eq!(unacked_seqs(&spool), kept);

    // Acknowledging past the SpoolFull gap clears it; the crash gap stays.
    spool.ack(first_kept, &[]).unwrap();
    assert_eq!(spool.pending_gaps().len(), 1);
    assert_eq!(spool.pending_gaps()[0].reason, GapReason::CrashRestart);
    // More drops: a new SpoolFull gap after the crash gap, counters cumulative.
    let more = append_n(&mut spool, 60, 1000);
    let stats = spool.stats();
    assert!(stats.bytes <= SMALL.max_bytes);
    assert!(stats.dropped_batches > first_kept - 1);
    assert_eq!(
        spool.pending_gaps().last().unwrap().reason,
        GapReason::SpoolFull
    );
    assert_eq!(
        stats.batches + stats.dropped_batches + 1,
        (seqs.len() + more.len()) as u64
    );
    assert!(more[0] > 101);
}

#[test]
fn record_size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = open(dir.path());
    let seq = spool.allocate_seq().unwrap();
    let too_big = vec![0u8; SMALL.max_bytes as usize];
    let err = spool.append(seq, 1, &too_big).unwrap_err();
    assert!(matches!(err, Error::RecordTooLarge { seq: 1, .. }), "{err}");
    // Larger than a segment but within max_bytes: a segment of its own.
    let big = payload(seq, 20_000);
    spool.append(seq, 1, &big).unwrap();
    let small = append_n(&mut spool, 1, 10)[0];
    assert_eq!(segment_files(dir.path()).len(), 2);
    // A record larger than max_bytes / 2 drops the oldest segment(s) to make room.
    let huge_seq = spool.allocate_seq().unwrap();
    let huge = payload(huge_seq, 50_000);
    spool.append(huge_seq, 1, &huge).unwrap();
    assert!(spool.stats().bytes <= SMALL.max_bytes);
    assert_eq!(spool.read(huge_seq).unwrap(), Some(huge));
    assert_eq!(spool.read(seq).unwrap(), None);
    assert_eq!(spool.read(small).unwrap(), Some(payload(small, 10)));
    // Another one: dropping the segment being written is then unavoidable.
    let last = spool.allocate_seq().unwrap();
    spool.append(last, 1, &payload(last, 50_000)).unwrap();
    assert_eq!(unacked_seqs(&spool), vec![last]);
    assert_eq!(spool.stats().dropped_batches, 3);
    assert_eq!(segment_files(dir.path()).len(), 1);
    spool.close().unwrap();
}

#[test]
fn seq_rules_and_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = open(dir.path());
    assert!(matches!(
        spool.append(1, 1, b"x"),
        Err(Error::SeqNotAllocated { seq: 1, next: 1 })
    ));
    let a = spool.allocate_seq().unwrap();
    let b = spool.allocate_seq().unwrap();
    spool.append(b, 1, b"x").unwrap();
    assert!(matches!(
        spool.append(a, 1, b"x"),
        Err(Error::SeqNotIncreasing { .. })
    ));
    assert!(matches!(
        Spool::open(dir.path(), SMALL),
        Err(Error::Locked { .. })
    ));
    let bad = SpoolConfig {
        segment_bytes: 1,
        ..SMALL
    };
    assert!(matches!(
        Spool::open(dir.path(), bad),
        Err(Error::InvalidConfig {
            field: "segment_bytes",
            ..
        })
    ));
    spool.close().unwrap();
    let (spool, _) = open(dir.path());
    assert_eq!(unacked_seqs(&spool), vec![b]);
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        readings: u32,
        len: usize,
    },
    Ack {
        contiguous: usize,
        above: Vec<usize>,
    },
    Sync,
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u32..50, 0usize..700).prop_map(|(readings, len)| Op::Append { readings, len }),
        3 => (0usize..12, proptest::collection::vec(0usize..12, 0..4))
            .prop_map(|(contiguous, above)| Op::Ack { contiguous, above }),
        1 => Just(Op::Sync),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

const MODEL: SpoolConfig = SpoolConfig {
    max_bytes: 1024 * 1024,
    segment_bytes: 4096,
    seq_block: 4,
};

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn behaves_like_a_model(ops in proptest::collection::vec(op(), 1..50)) {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = Spool::open(dir.path(), MODEL).unwrap();
        // seq -> (readings, payload) of what must be unacked.
        let mut model: BTreeMap<u64, (u32, Vec<u8>)> = BTreeMap::new();
        let mut appended: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut max_allocated = 0u64;
        for op in ops {
            match op {
                Op::Append { readings, len } => {
                    let seq = spool.allocate_seq().unwrap();
                    prop_assert!(seq > max_allocated, "seq {} reused (max {})", seq, max_allocated);
                    max_allocated = seq;
                    let bytes = payload(seq, len);
                    spool.append(seq, readings, &bytes).unwrap();
                    model.insert(seq, (readings, bytes.clone()));
                    appended.insert(seq, bytes);
                }
                Op::Ack { contiguous, above } => {
                    let keys: Vec<u64> = model.keys().copied().collect();
                    let contiguous = match keys.get(contiguous) {
                        Some(&seq) if contiguous < keys.len() / 2 => seq,
                        _ => spool.stats().acked_through,
                    };
                    let above: Vec<u64> = above.iter().filter_map(|&i| keys.get(i).copied()).collect();
                    let before = model.len() as u64;
                    model.retain(|&seq, _| seq > contiguous && !above.contains(&seq));
                    let outcome = spool.ack(contiguous, &above).unwrap();
                    prop_assert_eq!(outcome.removed_batches, before - model.len() as u64);
                }
                Op::Sync => spool.sync().unwrap(),
                Op::Reopen { clean } => {
                    if clean {
                        spool.close().unwrap();
                    } else {
                        drop(spool);
                    }
                    let (reopened, recovery) = Spool::open(dir.path(), MODEL).unwrap();
                    spool = reopened;
                    prop_assert_eq!(recovery.bytes_truncated, 0);
                    prop_assert_eq!(recovery.state == StateRecovery::Clean, clean);
                    // Everything unacked survives; acked records may come back once.
                    let got: Vec<u64> = unacked_seqs(&spool);
                    for seq in model.keys() {
                        prop_assert!(got.contains(seq), "lost seq {}", seq);
                    }
                    for info in spool.unacked() {
                        let bytes = appended.get(&info.seq).expect("resent seqs were appended");
                        model.entry(info.seq).or_insert((info.readings, bytes.clone()));
                    }
                    prop_assert!(spool.stats().next_seq > max_allocated);
                }
            }
            let infos: Vec<RecordInfo> = spool.unacked().collect();
            prop_assert_eq!(
                infos.iter().map(|r| r.seq).collect::<Vec<_>>(),
                model.keys().copied().collect::<Vec<_>>()
            );
            for info in &infos {
                let (readings, bytes) = &model[&info.seq];
                prop_assert_eq!(info.readings, *readings);
                prop_assert_eq!(info.len as usize, bytes.len());
            }
            let stats = spool.stats();
            prop_assert_eq!(stats.batches, model.len() as u64);
            prop_assert_eq!(stats.readings, model.values().map(|(r, _)| u64::from(*r)).sum::<u64>());
            if let Some((&seq, (_, bytes))) = model.iter().next_back() {
                prop_assert_eq!(spool.read(seq).unwrap(), Some(bytes.clone()));
            }
        }
        for (seq, (_, bytes)) in &model {
            prop_assert_eq!(spool.read(*seq).unwrap(), Some(bytes.clone()));
        }
    }
}
