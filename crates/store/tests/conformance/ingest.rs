//! Ingest cases: group commit, duplicates, signatures, commit-ack state, health, bad input.

use std::sync::Arc;

use beffroi_protocol::Value;
use beffroi_store::{CommitOutcome, Error, QuarantineReason, QuarantineRecord, SeqState, Store};

use crate::fixtures::*;

const DAY: i64 = 86_400 * SEC;

pub async fn commit_and_duplicates(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    let b1 = batch(
        "lyon",
        "gw-1",
        1,
        vec![
            num("pm-1", "air.pm25", T0, 12.5),
            num("pm-2", "air.pm25", T0, 8.0),
            reading("door-1", "door.open", T0 + SEC, Value::Bool(true)),
        ],
    );
    let b2 = batch(
        "lyon",
        "gw-1",
        2,
        vec![reading(
            "lcd-1",
            "display.text",
            T0 + 2 * SEC,
            Value::Text("Bonjour".into()),
        )],
    );
    let out = store
        .commit(&[b1.clone(), b2.clone()])
        .await
        .expect("commit");
    assert_eq!(out, [CommitOutcome::Stored, CommitOutcome::Stored]);

    let b3 = small_batch("lyon", "gw-1", 3);
    let out = store
        .commit(&[b2.clone(), b3.clone(), b3.clone(), b1.clone()])
        .await
        .expect("commit");
    assert_eq!(
        out,
        [
            CommitOutcome::Duplicate,
            CommitOutcome::Stored,
            CommitOutcome::Duplicate,
            CommitOutcome::Duplicate
        ]
    );
    let all = read_all(&store, &all_of("lyon", T0 - DAY, T0 + DAY), 100).await;
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(all[0].gateway.as_str(), "gw-1");
    assert_eq!(all[0].seq, 1);
    assert_eq!(all[0].unit.as_str(), "ug/m3");
    assert_eq!(all[2].value, Value::Bool(true));
    assert_eq!(all[3].value, Value::Text("Bonjour".into()));

    // Sensors seen first here are registered, with kind `unknown`.
    let sensors = store.list_sensors(&tenant("lyon")).await.expect("sensors");
    let ids: Vec<&str> = sensors.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["door-1", "lcd-1", "pm-1", "pm-2", "s1"]);
    assert!(sensors.iter().all(|s| s.kind == "unknown"));
    assert_eq!(sensors[2].unit.as_ref().map(|u| u.as_str()), Some("ug/m3"));
    assert_eq!(sensors[0].unit, None);

    let state = store
        .gateway(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("gateway")
        .expect("present")
        .state;
    assert_eq!(state.last_committed_seq, Some(3));
    assert_eq!(state.last_seen, Some(b1.received_at));
    assert_eq!(
        store
            .seq_state(&tenant("lyon"), &gw("gw-1"))
            .await
            .expect("seq"),
        SeqState {
            contiguous: 3,
            above: vec![]
        }
    );
    assert!(store.commit(&[]).await.expect("empty").is_empty());
}

pub async fn signature_stored_once(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    let readings: Vec<_> = (0..50)
        .map(|i| {
            num(
                &format!("s{}", i % 5),
                "air.no2",
                T0 + i / 10 * SEC,
                i as f64,
            )
        })
        .collect();
    let b = batch("lyon", "gw-1", 42, readings);
    store
        .commit(std::slice::from_ref(&b))
        .await
        .expect("commit");
    let sig = store
        .batch_signature(&tenant("lyon"), &gw("gw-1"), 42)
        .await
        .expect("signature");
    assert_eq!(sig, Some(b.signature));
    assert_eq!(
        store
            .batch_signature(&tenant("lyon"), &gw("gw-1"), 43)
            .await
            .expect("none"),
        None
    );
    assert_eq!(
        store
            .batch_signature(&tenant("other"), &gw("gw-1"), 42)
            .await
            .expect("none"),
        None
    );
    // The batch comes back in batch order, so it can be re-encoded and verified again.
    let stored = store
        .batch(&tenant("lyon"), &gw("gw-1"), 42)
        .await
        .expect("batch")
        .expect("present");
    assert_eq!(stored.readings, b.readings);
    assert_eq!(stored.signature, b.signature);
    assert_eq!(stored.key_id, b.key_id);
    assert_eq!(stored.received_at, b.received_at);
    // A re-sent batch with another signature changes nothing.
    let mut forged = b.clone();
    forged.signature = [0xff; 64];
    assert_eq!(
        store.commit(&[forged]).await.expect("commit"),
        [CommitOutcome::Duplicate]
    );
    assert_eq!(
        store
            .batch_signature(&tenant("lyon"), &gw("gw-1"), 42)
            .await
            .expect("sig"),
        Some(b.signature)
    );
}

pub async fn seq_state_holes_and_gaps(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    let (t, g) = (tenant("lyon"), gw("gw-1"));
    let state = |contiguous, above: &[u64]| SeqState {
        contiguous,
        above: above.to_vec(),
    };
    assert_eq!(store.seq_state(&t, &g).await.expect("seq"), state(0, &[]));
    let commit = |seqs: &[u64]| {
        let batches: Vec<_> = seqs
            .iter()
            .map(|&s| small_batch("lyon", "gw-1", s))
            .collect();
        let store = store.clone();
        async move { store.commit(&batches).await.expect("commit") }
    };
    commit(&[1, 2, 4, 5, 9]).await;
    assert_eq!(
        store.seq_state(&t, &g).await.expect("seq"),
        state(2, &[4, 5, 9])
    );
    // The gateway reports that 3 was dropped from its spool.
    store
        .record_health(&health("lyon", "gw-1", &[(3, 3)]), at(T0))
        .await
        .expect("health");
    assert_eq!(store.seq_state(&t, &g).await.expect("seq"), state(5, &[9]));
    commit(&[7]).await;
    assert_eq!(
        store.seq_state(&t, &g).await.expect("seq"),
        state(5, &[7, 9])
    );
    commit(&[6]).await;
    assert_eq!(store.seq_state(&t, &g).await.expect("seq"), state(7, &[9]));
    // A gap reaching past committed seqs, reported again (idempotent).
    for _ in 0..2 {
        store
            .record_health(&health("lyon", "gw-1", &[(8, 8), (10, 12)]), at(T0))
            .await
            .expect("health");
    }
    assert_eq!(store.seq_state(&t, &g).await.expect("seq"), state(12, &[]));
    commit(&[13, 15]).await;
    assert_eq!(
        store.seq_state(&t, &g).await.expect("seq"),
        state(13, &[15])
    );
    // Another gateway's seqs are its own.
    tenant_with_gateway(&store, "lyon", "gw-2").await;
    assert_eq!(
        store.seq_state(&t, &gw("gw-2")).await.expect("seq"),
        state(0, &[])
    );
    // A gateway never registered has an empty state.
    assert_eq!(
        store.seq_state(&t, &gw("gw-9")).await.expect("seq"),
        state(0, &[])
    );
}

pub async fn quarantine_settles_seq(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    let (t, g) = (tenant("lyon"), gw("gw-1"));
    let state = |contiguous, above: &[u64]| SeqState {
        contiguous,
        above: above.to_vec(),
    };
    let record = |seq: u64, reason, settles_seq| QuarantineRecord {
        tenant: Some(tenant("lyon")),
        gateway: Some(gw("gw-1")),
        topic: "beffroi/v1/lyon/gw-1/batch".into(),
        seq: Some(seq),
        reason,
        detail: format!("seq {seq}"),
        received_at: at(T0 + seq as i64 * SEC),
        payload: vec![seq as u8],
        settles_seq,
    };
    store
        .commit(&[1, 3, 4, 6].map(|s| small_batch("lyon", "gw-1", s)))
        .await
        .expect("commit");
    assert_eq!(
        store.seq_state(&t, &g).await.expect("seq"),
        state(1, &[3, 4, 6])
    );
    // A stale batch acknowledged in quarantine settles its seq: contiguous passes it.
    store
        .quarantine(&record(2, QuarantineReason::Stale, true))
        .await
        .expect("quarantine");
    assert_eq!(store.seq_state(&t, &g).await.expect("seq"), state(4, &[6]));
    // A badly signed one under seq 5 settles nothing: the hole stays.
    store
        .quarantine(&record(5, QuarantineReason::BadSignature, false))
        .await
        .expect("quarantine");
    assert_eq!(store.seq_state(&t, &g).await.expect("seq"), state(4, &[6]));
    // Settled above a hole, then the hole filled by a commit: the commit walks over it.
    store
        .quarantine(&record(8, QuarantineReason::Future, true))
        .await
        .expect("quarantine");
    assert_eq!(store.seq_state(&t, &g).await.expect("seq"), state(4, &[6]));
    store
        .commit(&[5, 7].map(|s| small_batch("lyon", "gw-1", s)))
        .await
        .expect("commit");
    assert_eq!(store.seq_state(&t, &g).await.expect("seq"), state(8, &[]));
    // Written twice (after a restart): idempotent; the commit fast path still holds.
    store
        .quarantine(&record(2, QuarantineReason::Stale, true))
        .await
        .expect("quarantine");
    store
        .commit(&[small_batch("lyon", "gw-1", 9)])
        .await
        .expect("commit");
    assert_eq!(store.seq_state(&t, &g).await.expect("seq"), state(9, &[]));
    // The records say which ones settled their seq.
    let page = store.list_quarantine(&t, 10, 0).await.expect("list");
    let listed: Vec<_> = page
        .items
        .iter()
        .map(|r| (r.seq, r.reason, r.settles_seq))
        .collect();
    assert_eq!(
        listed,
        [
            (Some(8), QuarantineReason::Future, true),
            (Some(5), QuarantineReason::BadSignature, false),
            (Some(2), QuarantineReason::Stale, true),
            (Some(2), QuarantineReason::Stale, true),
        ]
    );
    // Settling needs a gateway and a seq; an invalid record writes nothing.
    let invalid = QuarantineRecord {
        gateway: None,
        ..record(20, QuarantineReason::Stale, true)
    };
    assert!(matches!(
        store.quarantine(&invalid).await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(
        store
            .list_quarantine(&t, 10, 0)
            .await
            .expect("list")
            .items
            .len(),
        4
    );
    // Another gateway's seqs are untouched.
    tenant_with_gateway(&store, "lyon", "gw-2").await;
    assert_eq!(
        store.seq_state(&t, &gw("gw-2")).await.expect("seq"),
        state(0, &[])
    );
}

pub async fn seq_state_beyond_one_chunk(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    let (t, g) = (tenant("lyon"), gw("gw-1"));
    // 1 and 6000 missing: more than 4096 committed seqs above the hole.
    let batches: Vec<_> = (2..=7000u64)
        .filter(|&s| s != 6000)
        .map(|s| small_batch("lyon", "gw-1", s))
        .collect();
    for chunk in batches.chunks(2000) {
        store.commit(chunk).await.expect("commit");
    }
    let state = store.seq_state(&t, &g).await.expect("seq");
    assert_eq!(state.contiguous, 0);
    assert_eq!(state.above.len(), 4096);
    assert_eq!(state.above[0], 2);
    assert_eq!(state.above[4095], 4097);
    store
        .commit(&[small_batch("lyon", "gw-1", 1)])
        .await
        .expect("commit");
    let state = store.seq_state(&t, &g).await.expect("seq");
    assert_eq!(state.contiguous, 5999);
    assert_eq!(state.above, (6001..=7000).collect::<Vec<_>>());
    store
        .record_health(&health("lyon", "gw-1", &[(6000, 6000)]), at(T0))
        .await
        .expect("health");
    let state = store.seq_state(&t, &g).await.expect("seq");
    assert_eq!(state.contiguous, 7000);
    assert!(state.above.is_empty());
}

pub async fn concurrent_commits(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    tenant_with_gateway(&store, "lyon", "gw-2").await;
    // Four writers commit interleaved seqs of two gateways, each batch twice.
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored = 0;
            for round in 0..10u64 {
                let seq = round * 4 + w + 1;
                let calls = [
                    vec![
                        small_batch("lyon", "gw-1", seq),
                        small_batch("lyon", "gw-2", seq),
                    ],
                    vec![
                        small_batch("lyon", "gw-2", seq),
                        small_batch("lyon", "gw-1", seq),
                    ],
                ];
                for call in calls {
                    let out = store.commit(&call).await.expect("commit");
                    stored += out.iter().filter(|o| **o == CommitOutcome::Stored).count();
                }
            }
            stored
        }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += task.await.expect("task");
    }
    assert_eq!(stored, 80);
    for g in ["gw-1", "gw-2"] {
        let state = store.seq_state(&tenant("lyon"), &gw(g)).await.expect("seq");
        assert_eq!(
            state,
            SeqState {
                contiguous: 40,
                above: vec![]
            }
        );
        let record = store
            .gateway(&tenant("lyon"), &gw(g))
            .await
            .expect("gw")
            .expect("present");
        assert_eq!(record.state.last_committed_seq, Some(40));
    }
    let all = read_all(&store, &all_of("lyon", T0 - DAY, T0 + DAY), 1000).await;
    assert_eq!(all.len(), 80);
}

pub async fn health_recording(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    let report = health("lyon", "gw-1", &[(3, 4)]);
    store
        .record_health(&report, at(T0 + 5 * SEC))
        .await
        .expect("health");
    let state = store
        .gateway(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("gateway")
        .expect("present")
        .state;
    assert_eq!(state.last_seen, Some(at(T0 + 5 * SEC)));
    assert_eq!(state.spool_batches, 3);
    assert_eq!(state.spool_bytes, 4096);
    assert_eq!(state.oldest_unacked_age_s, Some(12));
    assert_eq!(state.batches_dropped, 2);
    assert_eq!(state.readings_dropped, 10);
    assert_eq!(state.rss_bytes, 5_000_000);
    assert_eq!(state.agent_version.as_deref(), Some("0.1.0"));
    assert_eq!(state.gaps, report.gaps);
    assert_eq!(state.last_committed_seq, None);
    // An older report does not move last_seen back.
    store
        .record_health(&health("lyon", "gw-1", &[]), at(T0))
        .await
        .expect("health");
    let state = store
        .gateway(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("gateway")
        .expect("present")
        .state;
    assert_eq!(state.last_seen, Some(at(T0 + 5 * SEC)));
    assert!(state.gaps.is_empty());
    // Gaps recorded earlier still count for the ack.
    store
        .commit(&[
            small_batch("lyon", "gw-1", 1),
            small_batch("lyon", "gw-1", 2),
        ])
        .await
        .expect("commit");
    let seq = store
        .seq_state(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("seq");
    assert_eq!(seq.contiguous, 4);
}

pub async fn invalid_input_writes_nothing(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    let good = small_batch("lyon", "gw-1", 1);
    let nan = batch("lyon", "gw-1", 2, vec![num("s1", "air.pm25", T0, f64::NAN)]);
    assert!(matches!(
        store.commit(&[good.clone(), nan]).await,
        Err(Error::Invalid { .. })
    ));
    let huge = batch(
        "lyon",
        "gw-1",
        u64::MAX,
        vec![num("s1", "air.pm25", T0, 1.0)],
    );
    assert!(matches!(
        store.commit(&[good.clone(), huge]).await,
        Err(Error::Invalid { .. })
    ));
    assert!(read_all(&store, &all_of("lyon", T0 - DAY, T0 + DAY), 10)
        .await
        .is_empty());
    assert_eq!(
        store.commit(&[good]).await.expect("commit"),
        [CommitOutcome::Stored]
    );
    assert!(matches!(
        store.buckets(&all_of("lyon", T0, T0 + DAY), 0).await,
        Err(Error::Invalid { .. })
    ));
}

pub async fn bulk_load_baseline(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    let batches: Vec<_> = (1..=20u64)
        .map(|s| {
            let readings = (0..100)
                .map(|i| num("s1", "air.pm25", T0 + (s as i64 * 100 + i) * SEC, i as f64))
                .collect();
            batch("lyon", "gw-1", s, readings)
        })
        .collect();
    // Twice: the rows of two loads never collide.
    for _ in 0..2 {
        assert_eq!(
            store.bulk_load_baseline(&batches).await.expect("load"),
            2000
        );
    }
    let counted =
        |buckets: Vec<beffroi_store::Bucket>| buckets.iter().map(|b| b.count).sum::<u64>();
    let buckets = store.buckets(&all_of("lyon", T0, T0 + DAY), DAY).await;
    assert_eq!(counted(buckets.expect("buckets")), 4000u64);
    // No bookkeeping: no batch rows, so no raw reading has a provenance to show.
    assert_eq!(
        store
            .batch_signature(&tenant("lyon"), &gw("gw-1"), 1)
            .await
            .expect("sig"),
        None
    );
    assert!(read_all(&store, &all_of("lyon", T0, T0 + DAY), 5000)
        .await
        .is_empty());
    // Real batches committed afterwards get ids of their own.
    let outcomes = store.commit(&batches[..2]).await.expect("commit");
    assert_eq!(outcomes, vec![CommitOutcome::Stored; 2]);
    let all = read_all(&store, &all_of("lyon", T0, T0 + DAY), 5000).await;
    assert_eq!(all.len(), 200);
    assert!(all
        .iter()
        .all(|r| r.gateway.as_str() == "gw-1" && r.seq <= 2));
    let buckets = store.buckets(&all_of("lyon", T0, T0 + DAY), DAY).await;
    assert_eq!(counted(buckets.expect("buckets")), 4200u64);
}
