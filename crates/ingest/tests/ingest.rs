//! Ingest end to end with real parts: a Mosquitto broker on a free loopback port, a SQLite
//! store in a temporary file, gateways publishing signed envelopes with rumqttc v5, and an
//! observer subscribed to the ack topics. Every wait is bounded.

mod sandbox;

use std::time::Duration;

use beffroi_protocol::Timestamp;
use beffroi_protocol::{Gap, GapReason, Signer, SigningKey, Topic};
use beffroi_store::QuarantineReason;
use sandbox::{batch, gw, health, now, tenant, Sandbox, GW1, GW2};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_is_stored_once_and_acked() -> anyhow::Result<()> {
    let sb = Sandbox::start(1).await?;
    let n = 50;
    for seq in 1..=n {
        sb.publish_batch(&sb.gw1, &batch(GW1, seq, 10, now()))
            .await?;
    }
    sb.wait_ack(GW1, |ack| ack.contiguous == n).await?;
    assert_eq!(sb.readings(GW1).await?, (n * 10) as usize);
    let m = &sb.ingests[0].metrics;
    assert_eq!(m.ingest_batches.get(), n);
    assert_eq!(m.ingest_readings.get(), n * 10);
    assert_eq!(m.ingest_duplicates.get(), 0);
    assert!(m.ingest_commits.get() >= 1);
    sb.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_batch_is_acked_again_and_stored_once() -> anyhow::Result<()> {
    let sb = Sandbox::start(1).await?;
    let b = batch(GW1, 1, 5, now());
    sb.publish_batch(&sb.gw1, &b).await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 1).await?;
    let acks_before = sb.ack_count(GW1);
    sb.publish_batch(&sb.gw1, &b).await?;
    sb.wait_until("a second ack", || sb.ack_count(GW1) > acks_before)
        .await?;
    let m = &sb.ingests[0].metrics;
    assert_eq!(m.ingest_duplicates.get(), 1);
    assert_eq!(m.ingest_batches.get(), 1);
    assert_eq!(sb.readings(GW1).await?, 5);
    sb.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_signature_is_quarantined_and_not_acked() -> anyhow::Result<()> {
    let sb = Sandbox::start(1).await?;
    let (topic, mut envelope) = sb.gw1.seal_batch(&batch(GW1, 1, 3, now()))?;
    let last = envelope.len() - 1;
    envelope[last] ^= 0x01;
    sb.publish(&topic, envelope).await?;
    sb.wait_rejected(0, QuarantineReason::BadSignature, 1)
        .await?;
    // A valid seq 2 is acked above the hole: seq 1 is not covered.
    sb.publish_batch(&sb.gw1, &batch(GW1, 2, 3, now())).await?;
    let ack = sb.wait_ack(GW1, |ack| ack.covers(2)).await?;
    assert!(!ack.covers(1), "{ack:?}");
    assert_eq!(sb.readings(GW1).await?, 3);
    sb.wait_quarantined(GW1, QuarantineReason::BadSignature)
        .await?;
    sb.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_and_other_gateways_topics_are_refused() -> anyhow::Result<()> {
    let sb = Sandbox::start(1).await?;
    // A key nobody registered.
    let stranger = Signer::new(SigningKey::from_bytes(&[99; 32]));
    sb.publish_batch(&stranger, &batch(GW1, 1, 1, now()))
        .await?;
    sb.wait_rejected(0, QuarantineReason::UnknownKey, 1).await?;
    // gw-1's envelope re-published on gw-2's topic: the key is not gw-2's.
    let (_, envelope) = sb.gw1.seal_batch(&batch(GW1, 2, 1, now()))?;
    sb.publish(
        &Topic::batch(&sandbox::tenant(), &sandbox::gw(GW2)),
        envelope,
    )
    .await?;
    sb.wait_rejected(0, QuarantineReason::UnknownKey, 2).await?;
    // gw-2's own key, but sealed for gw-1's topic and published on gw-2's: the topic is the
    // external_aad, so the signature does not verify.
    let payload = batch(GW2, 1, 1, now()).encode();
    let envelope = sb.gw2.seal(
        &Topic::batch(&sandbox::tenant(), &sandbox::gw(GW1)),
        payload,
    )?;
    sb.publish(
        &Topic::batch(&sandbox::tenant(), &sandbox::gw(GW2)),
        envelope,
    )
    .await?;
    sb.wait_rejected(0, QuarantineReason::BadSignature, 1)
        .await?;
    assert_eq!(sb.readings(GW1).await? + sb.readings(GW2).await?, 0);
    assert_eq!(sb.ack_count(GW1) + sb.ack_count(GW2), 0);
    sb.wait_quarantined(GW2, QuarantineReason::UnknownKey)
        .await?;
    sb.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_batch_under_a_committed_seq_is_a_replay() -> anyhow::Result<()> {
    let sb = Sandbox::start(1).await?;
    sb.publish_batch(&sb.gw1, &batch(GW1, 1, 2, now())).await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 1).await?;
    sb.publish_batch(&sb.gw1, &batch(GW1, 1, 7, now())).await?;
    sb.wait_rejected(0, QuarantineReason::Replay, 1).await?;
    assert_eq!(sb.readings(GW1).await?, 2);
    sb.wait_quarantined(GW1, QuarantineReason::Replay).await?;
    sb.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_future_batches_are_quarantined_and_acked() -> anyhow::Result<()> {
    let sb = Sandbox::start(1).await?;
    let stale = now().unix_micros() - 8 * 24 * 3600 * 1_000_000;
    let future = now().unix_micros() + 60 * 60 * 1_000_000;
    sb.publish_batch(
        &sb.gw1,
        &batch(GW1, 1, 2, Timestamp::from_unix_micros(stale)),
    )
    .await?;
    sb.publish_batch(
        &sb.gw1,
        &batch(GW1, 2, 2, Timestamp::from_unix_micros(future)),
    )
    .await?;
    sb.wait_rejected(0, QuarantineReason::Stale, 1).await?;
    sb.wait_rejected(0, QuarantineReason::Future, 1).await?;
    // Authentic, durably quarantined: acked, so the gateway stops resending.
    sb.wait_ack(GW1, |ack| ack.contiguous == 2).await?;
    assert_eq!(sb.readings(GW1).await?, 0);
    sb.wait_quarantined(GW1, QuarantineReason::Stale).await?;
    sb.wait_quarantined(GW1, QuarantineReason::Future).await?;
    // Resending the same stale batch is counted but not quarantined again, and re-acked.
    let acks = sb.ack_count(GW1);
    sb.publish_batch(
        &sb.gw1,
        &batch(GW1, 1, 2, Timestamp::from_unix_micros(stale)),
    )
    .await?;
    sb.wait_rejected(0, QuarantineReason::Stale, 2).await?;
    sb.wait_until("a re-ack", || sb.ack_count(GW1) > acks)
        .await?;
    assert_eq!(sb.quarantined(GW1, QuarantineReason::Stale).await?, 1);
    sb.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_batch_stays_acked_across_an_ingest_restart() -> anyhow::Result<()> {
    let mut sb = Sandbox::start(1).await?;
    let stale = now().unix_micros() - 8 * 24 * 3600 * 1_000_000;
    sb.publish_batch(&sb.gw1, &batch(GW1, 1, 2, now())).await?;
    sb.publish_batch(
        &sb.gw1,
        &batch(GW1, 2, 2, Timestamp::from_unix_micros(stale)),
    )
    .await?;
    sb.publish_batch(&sb.gw1, &batch(GW1, 3, 2, now())).await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 3 && ack.above.is_empty())
        .await?;
    sb.wait_quarantined(GW1, QuarantineReason::Stale).await?;

    // A new ingest instance on the same store knows only what the store says.
    sb.restart_ingest(0).await?;
    let state = sb.store.seq_state(&tenant(), &gw(GW1)).await?;
    assert_eq!((state.contiguous, state.above), (3, vec![]));
    sb.publish_batch(&sb.gw1, &batch(GW1, 4, 2, now())).await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 4 && ack.above.is_empty())
        .await?;
    // The stale batch resent after the restart is still acked, stored nowhere.
    let acks = sb.ack_count(GW1);
    sb.publish_batch(
        &sb.gw1,
        &batch(GW1, 2, 2, Timestamp::from_unix_micros(stale)),
    )
    .await?;
    sb.wait_rejected(0, QuarantineReason::Stale, 1).await?;
    sb.wait_until("a re-ack", || sb.ack_count(GW1) > acks)
        .await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 4).await?;
    assert_eq!(sb.readings(GW1).await?, 6);
    sb.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_gap_moves_the_contiguous_mark() -> anyhow::Result<()> {
    let sb = Sandbox::start(1).await?;
    sb.publish_batch(&sb.gw1, &batch(GW1, 1, 1, now())).await?;
    sb.publish_batch(&sb.gw1, &batch(GW1, 3, 1, now())).await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 1 && ack.above == [3])
        .await?;
    let gap = Gap {
        first_seq: 2,
        last_seq: 2,
        batches: 1,
        readings: 1,
        reason: GapReason::SpoolFull,
    };
    let (topic, envelope) = sb.gw1.seal_health(&health(GW1, vec![gap]))?;
    sb.publish(&topic, envelope).await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 3 && ack.above.is_empty())
        .await?;
    sb.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_subscription() -> anyhow::Result<()> {
    let sb = Sandbox::start(2).await?;
    let n = 60;
    for seq in 1..=n {
        sb.publish_batch(&sb.gw1, &batch(GW1, seq, 4, now()))
            .await?;
        sb.publish_batch(&sb.gw2, &batch(GW2, seq, 4, now()))
            .await?;
    }
    sb.wait_until("every batch committed", || {
        sb.ingests
            .iter()
            .map(|i| i.metrics.ingest_batches.get())
            .sum::<u64>()
            == 2 * n
    })
    .await?;
    let per_node: Vec<u64> = sb
        .ingests
        .iter()
        .map(|i| i.metrics.ingest_batches.get())
        .collect();
    assert!(
        per_node.iter().all(|&b| b > 0),
        "load not shared: {per_node:?}"
    );
    assert_eq!(sb.readings(GW1).await?, (n * 4) as usize);
    assert_eq!(sb.readings(GW2).await?, (n * 4) as usize);
    // Each node acks what it committed; together they cover every seq.
    sb.wait_until("acks covering every seq", || {
        (1..=n).all(|seq| sb.acked(GW1, seq) && sb.acked(GW2, seq))
    })
    .await?;
    sb.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_commits_pending_batches_and_acks_them() -> anyhow::Result<()> {
    let sb = Sandbox::start_with(1, |c| c.commit_interval = Duration::from_secs(5)).await?;
    for seq in 1..=5 {
        sb.publish_batch(&sb.gw1, &batch(GW1, seq, 3, now()))
            .await?;
    }
    let m = sb.ingests[0].metrics.clone();
    sb.wait_until("five batches queued", || m.ingest_queue.get() == 5)
        .await?;
    assert_eq!(sb.readings(GW1).await?, 0);
    sb.ingests[0].shutdown.cancel();
    sb.wait_ack(GW1, |ack| ack.contiguous == 5).await?;
    assert_eq!(sb.readings(GW1).await?, 15);
    sb.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_reconnects_and_resubscribes_after_a_broker_restart() -> anyhow::Result<()> {
    let mut sb = Sandbox::start(1).await?;
    sb.publish_batch(&sb.gw1, &batch(GW1, 1, 2, now())).await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 1).await?;
    sb.restart_broker().await?;
    sb.publish_batch(&sb.gw1, &batch(GW1, 2, 2, now())).await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 2).await?;
    assert_eq!(sb.readings(GW1).await?, 4);
    sb.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_connection_gauge_follows_the_broker() -> anyhow::Result<()> {
    // What `/readyz` reads: a node whose ingest lost the broker is not ready.
    let mut sb = Sandbox::start(1).await?;
    let connected = |sb: &Sandbox| sb.ingests[0].metrics.ingest_broker_connected.get();
    assert_eq!(connected(&sb), 1, "subscribed once ready");
    sb.kill_broker();
    sb.wait_until("the ingest to see the broker gone", || connected(&sb) == 0)
        .await?;
    sb.resume_broker().await?;
    assert_eq!(connected(&sb), 1, "subscribed again");
    sb.publish_batch(&sb.gw1, &batch(GW1, 1, 2, now())).await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 1).await?;
    sb.stop().await
}

/// `at` moved by `seconds` (negative: earlier).
fn shifted(at: Timestamp, seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(at.unix_micros() + seconds * 1_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_revocation_only_what_was_signed_before_it_is_kept() -> anyhow::Result<()> {
    // A key cache that would remember the gateway unrevoked for an hour.
    let sb = Sandbox::start_with(1, |c| c.key_cache_ttl = Duration::from_secs(3600)).await?;
    let key = SigningKey::from_bytes(&[1; 32]);
    sb.publish_batch(&sb.gw1, &batch(GW1, 1, 2, now())).await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 1).await?;

    let revoked_at = now();
    sb.store
        .revoke_gateway(&tenant(), &gw(GW1), revoked_at)
        .await?;
    // Until the cache forgets the gateway, its cached key (unrevoked) is still used: this
    // is what `forget_gateway` is for.
    let late = Some(shifted(revoked_at, 2));
    sb.publish_batch_signed_at(&sb.gw1, &key, &batch(GW1, 2, 2, now()), late)
        .await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 2).await?;
    sb.ingests[0].keys.forget_gateway(&tenant(), &gw(GW1));

    // Signed before the revocation (from the spool, say): kept, in any order.
    let early = Some(shifted(revoked_at, -60));
    sb.publish_batch_signed_at(&sb.gw1, &key, &batch(GW1, 4, 2, now()), early)
        .await?;
    sb.publish_batch_signed_at(&sb.gw1, &key, &batch(GW1, 3, 2, now()), early)
        .await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 4).await?;
    // Signed after it, or with no signed time: quarantined, never acked.
    sb.publish_batch_signed_at(&sb.gw1, &key, &batch(GW1, 5, 2, now()), late)
        .await?;
    sb.publish_batch_signed_at(&sb.gw1, &key, &batch(GW1, 6, 2, now()), None)
        .await?;
    sb.wait_rejected(0, QuarantineReason::Revoked, 2).await?;
    sb.wait_quarantined(GW1, QuarantineReason::Revoked).await?;
    assert_eq!(sb.quarantined(GW1, QuarantineReason::Revoked).await?, 2);
    // A later authentic batch of the other gateway is acked: the pipeline went on.
    sb.publish_batch(&sb.gw2, &batch(GW2, 1, 1, now())).await?;
    sb.wait_ack(GW2, |ack| ack.contiguous == 1).await?;
    assert!(!sb.acked(GW1, 5) && !sb.acked(GW1, 6));
    assert_eq!(sb.readings(GW1).await?, 8);
    sb.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_key_signs_only_until_its_retirement() -> anyhow::Result<()> {
    let sb = Sandbox::start_with(1, |c| c.key_cache_ttl = Duration::from_secs(3600)).await?;
    let old_key = SigningKey::from_bytes(&[1; 32]);
    let new_key = SigningKey::from_bytes(&[11; 32]);
    let new = Signer::new(new_key.clone());
    sb.publish_batch(&sb.gw1, &batch(GW1, 1, 1, now())).await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 1).await?;

    let retired_at = now();
    sb.store
        .rotate_gateway_key(
            &tenant(),
            &gw(GW1),
            new.key_id(),
            &new.verifying_key().to_bytes(),
            retired_at,
        )
        .await?;
    sb.ingests[0].keys.forget_gateway(&tenant(), &gw(GW1));

    // The old key: accepted for what it signed up to the rotation, whenever it arrives.
    let before = Some(shifted(retired_at, -10));
    let after = Some(shifted(retired_at, 2));
    sb.publish_batch_signed_at(&sb.gw1, &old_key, &batch(GW1, 2, 1, now()), before)
        .await?;
    sb.wait_ack(GW1, |ack| ack.contiguous == 2).await?;
    sb.publish_batch_signed_at(&sb.gw1, &old_key, &batch(GW1, 3, 1, now()), after)
        .await?;
    sb.publish_batch_signed_at(&sb.gw1, &old_key, &batch(GW1, 4, 1, now()), None)
        .await?;
    sb.wait_rejected(0, QuarantineReason::RetiredKey, 2).await?;
    sb.wait_quarantined(GW1, QuarantineReason::RetiredKey)
        .await?;
    // The new key: accepted with or without a signed time.
    sb.publish_batch(&new, &batch(GW1, 5, 1, now())).await?;
    sb.publish_batch_signed_at(&new, &new_key, &batch(GW1, 6, 1, now()), None)
        .await?;
    let ack = sb
        .wait_ack(GW1, |ack| ack.covers(5) && ack.covers(6))
        .await?;
    assert!(!ack.covers(3) && !ack.covers(4), "{ack:?}");
    assert_eq!(
        ack.contiguous, 2,
        "retired-key rejections do not move the ack"
    );
    assert_eq!(sb.quarantined(GW1, QuarantineReason::RetiredKey).await?, 2);
    assert_eq!(sb.readings(GW1).await?, 4);
    sb.stop().await
}
