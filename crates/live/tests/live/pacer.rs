//! Frame pacing against a real hub, in paused time: a value reaching an idle client goes at
//! once; values held by the pacing leave with the first commit after their slot, or when the
//! hold ends without one.

use beffroi_live::Pacer;
use tokio::time::Instant;

use super::*;

const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn rounds_go_at_once_when_idle_and_with_the_first_commit_after_their_slot() {
    let f = Fixture::new(LiveConfig::default()).await;
    let mut client = f.client("lyon").await;
    let replies = send(
        &mut client,
        json!({"type": "subscribe", "id": "centre", "stream": "readings",
               "filter": {"zones": ["centre"]}, "snapshot": false}),
    )
    .await;
    assert_eq!(replies[0]["type"], "subscribed");
    assert_eq!(client.min_interval(), 20 * MS, "max_fps 50: a 5 ms hold");

    tokio::time::pause();
    let start = Instant::now();
    let t = now_us();
    // (ms after start, sensor, value); all in zone centre.
    let plan = [
        (1, "s1", 1.0),
        (5, "s2", 2.0),
        (23, "s1", 3.0),
        (30, "s2", 4.0),
        (100, "s1", 5.0),
    ];
    let batches: Vec<_> = plan
        .iter()
        .enumerate()
        .map(|(i, &(at, sensor, value))| {
            let time = t + i as i64 * S;
            let batch = f.batch("lyon", vec![reading(sensor, "air.pm25", time, value)]);
            (at, batch)
        })
        .collect();
    let hub = f.hub.clone();
    let feeder = tokio::spawn(async move {
        for (at, batch) in batches {
            tokio::time::sleep_until(start + at * MS).await;
            hub.batch_committed(&batch);
        }
    });

    let mut pacer = Pacer::new();
    let mut rounds = Vec::new();
    for _ in 0..4 {
        pacer.ready(&client).await.unwrap();
        let at = (Instant::now() - start).as_secs_f64() * 1e3;
        let got: Vec<_> = values(&frames(&client))
            .into_iter()
            .map(|(sensor, _, value)| (sensor, value))
            .collect();
        rounds.push((at, got));
    }
    feeder.await.unwrap();

    // Bounds in ms: tokio rounds each timer up to its next millisecond tick, so a round may
    // land a tick or two after its nominal time, never before it.
    let expected = [
        ((1.0, 3.0), vec![("s1", 1.0)], "idle: at once"),
        (
            (23.0, 25.0),
            vec![("s1", 3.0), ("s2", 2.0)],
            "s2 held from 5 ms to the slot at 21 ms, then the round leaves with the commit at \
             23 ms, before its hold ends (26 ms)",
        ),
        (
            (46.0, 50.0),
            vec![("s2", 4.0)],
            "held from 30 ms; slot at 41 ms, no commit in its 5 ms hold",
        ),
        (
            (100.0, 102.0),
            vec![("s1", 5.0)],
            "idle again (the slot at 61 ms passed): at once",
        ),
    ];
    for ((at, got), ((earliest, latest), want, why)) in rounds.iter().zip(expected) {
        let want: Vec<_> = want.into_iter().map(|(s, v)| (s.to_owned(), v)).collect();
        assert_eq!(got, &want, "{why}");
        assert!(
            (earliest..latest).contains(at),
            "{why}: round at {at:.2} ms, expected in [{earliest}, {latest})"
        );
    }
}
