//! The hub and its clients against a real (SQLite) store: views, coalescing, tenancy,
//! snapshots, buckets, event streams, slow clients and shutdown; frame pacing (`pacer`).

#![allow(clippy::unwrap_used)]

mod pacer;

use std::sync::Arc;
use std::time::Duration;

use beffroi_live::{close, Client, Hub, LiveConfig, LiveError};
use beffroi_protocol::{
    GatewayId, KeyId, MetricName, Reading, SensorId, TenantId, Timestamp, Unit, Value,
};
use beffroi_store::{
    Alarm, AlarmState, AlarmSubject, CommitBatch, NewGateway, Role, RuleId, SecurityEvent,
    SecurityEventKind, Sensor, Severity, Store, TokenScope, ZoneId,
};
use beffroi_telemetry::Metrics;
use serde_json::{json, Value as Json};

const S: i64 = 1_000_000;

struct Fixture {
    store: Arc<dyn Store>,
    hub: Hub,
    metrics: Arc<Metrics>,
    seq: std::sync::atomic::AtomicU64,
}

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn scope(id: &str) -> TokenScope {
    TokenScope::Tenant {
        tenant: tenant(id),
        role: Role::Viewer,
    }
}

fn sensor(id: &str, zone: &str, lon: f64, lat: f64) -> Sensor {
    Sensor {
        tenant: tenant("lyon"),
        id: SensorId::new(id).unwrap(),
        kind: "air".into(),
        unit: None,
        lat: Some(lat),
        lon: Some(lon),
        zone: Some(ZoneId::new(zone).unwrap()),
        tags: Vec::new(),
        placed_at: None,
    }
}

fn reading(sensor: &str, metric: &str, time_us: i64, value: f64) -> Reading {
    Reading {
        sensor: SensorId::new(sensor).unwrap(),
        metric: MetricName::new(metric).unwrap(),
        unit: Unit::new("ug/m3").unwrap(),
        time: Timestamp::from_unix_micros(time_us),
        value: Value::Number(value),
    }
}

impl Fixture {
    async fn new(config: LiveConfig) -> Self {
        let store = beffroi_store::open("sqlite::memory:", Default::default())
            .await
            .unwrap();
        for t in ["lyon", "brest"] {
            store.create_tenant(&tenant(t), t).await.unwrap();
            store
                .register_gateway(&NewGateway {
                    tenant: tenant(t),
                    id: GatewayId::new("gw-1").unwrap(),
                    key_id: KeyId::new(format!("k-{t}")).unwrap(),
                    public_key: [if t == "lyon" { 1 } else { 2 }; 32],
                    cert_fingerprint: None,
                    cert_not_after: None,
                })
                .await
                .unwrap();
        }
        for s in [
            sensor("s1", "centre", 4.83, 45.75),
            sensor("s2", "centre", 4.84, 45.76),
            sensor("s3", "north", 4.90, 45.80),
        ] {
            store.upsert_sensor(&s).await.unwrap();
        }
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(config, store.clone(), metrics.clone());
        Self {
            store,
            hub,
            metrics,
            seq: 1.into(),
        }
    }

    /// The next batch of `tenant_id`'s gateway.
    fn batch(&self, tenant_id: &str, readings: Vec<Reading>) -> CommitBatch {
        CommitBatch {
            tenant: tenant(tenant_id),
            gateway: GatewayId::new("gw-1").unwrap(),
            seq: self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            key_id: KeyId::new(format!("k-{tenant_id}")).unwrap(),
            signature: [7; 64],
            received_at: Timestamp::now(),
            readings,
        }
    }

    /// Commits a batch to the store, then fans it out, as ingest does.
    async fn commit(&self, tenant_id: &str, readings: Vec<Reading>) {
        let batch = self.batch(tenant_id, readings);
        self.store
            .commit(std::slice::from_ref(&batch))
            .await
            .unwrap();
        self.hub.batch_committed(&batch);
    }

    async fn client(&self, tenant_id: &str) -> Client {
        self.hub.connect(scope(tenant_id)).await.unwrap()
    }
}

/// Sends a message; returns the parsed replies.
async fn send(client: &mut Client, message: Json) -> Vec<Json> {
    client
        .handle(&message.to_string())
        .await
        .unwrap()
        .iter()
        .map(|text| serde_json::from_str(text).unwrap())
        .collect()
}

/// The frames queued now (never waits).
fn frames(client: &Client) -> Vec<Json> {
    client
        .take_frames()
        .iter()
        .map(|text| serde_json::from_str(text).unwrap())
        .collect()
}

/// `(sensor, metric, value)` of every item of readings frames.
fn values(frames: &[Json]) -> Vec<(String, String, f64)> {
    let mut out: Vec<_> = frames
        .iter()
        .filter(|f| f["type"] == "readings")
        .flat_map(|f| f["items"].as_array().unwrap().clone())
        .map(|i| {
            (
                i["sensor"].as_str().unwrap().to_owned(),
                i["metric"].as_str().unwrap().to_owned(),
                i["value"].as_f64().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

fn now_us() -> i64 {
    Timestamp::now().unix_micros()
}

#[tokio::test]
async fn views_match_their_filter_and_coalesce_to_the_latest_value() {
    let f = Fixture::new(LiveConfig::default()).await;
    let mut client = f.client("lyon").await;
    let hello: Json = serde_json::from_str(&client.hello()).unwrap();
    assert_eq!(hello["protocol"], 1);
    assert_eq!(hello["tenant"], "lyon");
    let replies = send(
        &mut client,
        json!({"type": "subscribe", "id": "centre", "stream": "readings",
               "filter": {"zones": ["centre"], "metrics": ["air.*"]}}),
    )
    .await;
    assert_eq!(replies[0]["type"], "subscribed");
    let t = now_us();
    f.commit(
        "lyon",
        vec![
            reading("s1", "air.pm25", t, 10.0),
            reading("s2", "air.pm25", t, 20.0),
            reading("s3", "air.pm25", t, 30.0),
            reading("s1", "noise.laeq", t, 50.0),
        ],
    )
    .await;
    f.commit("lyon", vec![reading("s1", "air.pm25", t + S, 11.0)])
        .await;
    tokio::time::timeout(Duration::from_secs(1), client.ready())
        .await
        .unwrap()
        .unwrap();
    let got = frames(&client);
    assert!(got
        .iter()
        .all(|f| f["sub"] == "centre" && f["snapshot"] == false));
    assert_eq!(
        values(&got),
        [
            ("s1".into(), "air.pm25".into(), 11.0),
            ("s2".into(), "air.pm25".into(), 20.0)
        ],
        "s3 is in another zone, noise is not air, and s1's first value was coalesced"
    );
    assert_eq!(f.metrics.live_coalesced.get(), 1);
    let item = &got[0]["items"][0];
    assert_eq!(item["unit"], "ug/m3");
    assert_eq!(item["gateway"], "gw-1");
    assert!(frames(&client).is_empty(), "taken");

    // Several readings of one series in a batch: its latest, pushed once.
    f.commit(
        "lyon",
        vec![
            reading("s2", "air.pm25", t + 2 * S, 21.0),
            reading("s2", "air.pm25", t + 4 * S, 23.0),
            reading("s2", "air.pm25", t + 3 * S, 22.0),
        ],
    )
    .await;
    assert_eq!(
        values(&frames(&client)),
        [("s2".into(), "air.pm25".into(), 23.0)]
    );
    assert_eq!(f.metrics.live_coalesced.get(), 1, "nothing queued twice");

    // An older reading does not replace the latest value.
    f.commit("lyon", vec![reading("s2", "air.pm25", t - S, 99.0)])
        .await;
    assert!(frames(&client).is_empty());
}

#[tokio::test]
async fn batches_fanned_out_together_give_each_view_the_latest_values_of_each_tenant() {
    let f = Fixture::new(LiveConfig::default()).await;
    let mut lyon = f.client("lyon").await;
    let mut brest = f.client("brest").await;
    for client in [&mut lyon, &mut brest] {
        let replies = send(
            client,
            json!({"type": "subscribe", "id": "all", "stream": "readings", "snapshot": false,
                   "filter": {"metrics": ["air.pm25"]}}),
        )
        .await;
        assert_eq!(replies[0]["type"], "subscribed");
    }
    let t = now_us();
    let batches = [
        f.batch("lyon", vec![reading("s1", "air.pm25", t, 1.0)]),
        f.batch("brest", vec![reading("s1", "air.pm25", t, 7.0)]),
        f.batch("lyon", vec![reading("s2", "air.pm25", t, 2.0)]),
        f.batch("lyon", vec![reading("s1", "air.pm25", t + S, 3.0)]),
        // Older than what came before it for s2: does not replace it.
        f.batch("lyon", vec![reading("s2", "air.pm25", t - S, 9.0)]),
    ];
    f.hub.batches_committed(&batches);
    assert_eq!(
        values(&frames(&lyon)),
        [
            ("s1".into(), "air.pm25".into(), 3.0),
            ("s2".into(), "air.pm25".into(), 2.0)
        ],
        "lyon: its own batches, each series once, at its latest value"
    );
    assert_eq!(
        values(&frames(&brest)),
        [("s1".into(), "air.pm25".into(), 7.0)],
        "brest: only its own"
    );
}

#[tokio::test]
async fn clients_with_the_same_filter_share_a_view_and_read_it_at_their_own_pace() {
    let f = Fixture::new(LiveConfig::default()).await;
    let mut fast = f.client("lyon").await;
    let mut slow = f.client("lyon").await;
    let mut other = f.client("lyon").await;
    // The same series in another order: one shared view.
    send(
        &mut fast,
        json!({"type": "subscribe", "id": "a", "stream": "readings", "snapshot": false,
               "filter": {"zones": ["centre", "north"], "metrics": ["air.pm25"]}}),
    )
    .await;
    send(
        &mut slow,
        json!({"type": "subscribe", "id": "b", "stream": "readings", "snapshot": false,
               "filter": {"metrics": ["air.pm25"], "zones": ["north", "centre", "north"]}}),
    )
    .await;
    send(
        &mut other,
        json!({"type": "subscribe", "id": "c", "stream": "readings", "snapshot": false,
               "filter": {"zones": ["north"]}}),
    )
    .await;
    let t = now_us();
    f.commit("lyon", vec![reading("s1", "air.pm25", t, 1.0)])
        .await;
    assert_eq!(
        values(&frames(&fast)),
        [("s1".into(), "air.pm25".into(), 1.0)]
    );
    f.commit("lyon", vec![reading("s1", "air.pm25", t + S, 2.0)])
        .await;
    f.commit("lyon", vec![reading("s3", "air.pm25", t + S, 3.0)])
        .await;
    assert_eq!(
        values(&frames(&fast)),
        [
            ("s1".into(), "air.pm25".into(), 2.0),
            ("s3".into(), "air.pm25".into(), 3.0)
        ]
    );
    // The slow client reads everything it missed at once, coalesced to the latest values.
    assert_eq!(
        values(&frames(&slow)),
        [
            ("s1".into(), "air.pm25".into(), 2.0),
            ("s3".into(), "air.pm25".into(), 3.0)
        ]
    );
    assert_eq!(
        values(&frames(&other)),
        [("s3".into(), "air.pm25".into(), 3.0)]
    );
    assert!(frames(&slow).is_empty() && frames(&fast).is_empty());

    // One client leaving the view does not stop it for the other.
    let replies = send(&mut fast, json!({"type": "unsubscribe", "id": "a"})).await;
    assert_eq!(replies[0]["type"], "unsubscribed");
    f.commit("lyon", vec![reading("s2", "air.pm25", t + 2 * S, 4.0)])
        .await;
    assert!(frames(&fast).is_empty());
    tokio::time::timeout(Duration::from_secs(1), slow.ready())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        values(&frames(&slow)),
        [("s2".into(), "air.pm25".into(), 4.0)]
    );
    drop(slow);
    // The last subscriber gone, the view goes; a new subscription starts a fresh one.
    send(
        &mut fast,
        json!({"type": "subscribe", "id": "a", "stream": "readings", "snapshot": false,
               "filter": {"zones": ["centre", "north"], "metrics": ["air.pm25"]}}),
    )
    .await;
    f.commit("lyon", vec![reading("s2", "air.pm25", t + 3 * S, 5.0)])
        .await;
    assert_eq!(
        values(&frames(&fast)),
        [("s2".into(), "air.pm25".into(), 5.0)]
    );
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let f = Fixture::new(LiveConfig::default()).await;
    let mut lyon = f.client("lyon").await;
    let mut brest = f.client("brest").await;
    for client in [&mut lyon, &mut brest] {
        send(
            client,
            json!({"type": "subscribe", "id": "all", "stream": "readings"}),
        )
        .await;
    }
    f.commit("lyon", vec![reading("s1", "air.pm25", now_us(), 1.0)])
        .await;
    assert_eq!(values(&frames(&lyon)).len(), 1);
    assert!(frames(&brest).is_empty());
}

#[tokio::test]
async fn a_snapshot_of_stored_values_comes_first_and_views_change_without_reconnecting() {
    let f = Fixture::new(LiveConfig::default()).await;
    let t = now_us() - 60 * S;
    // Committed before anyone connected: the first client loads them from the store.
    f.commit(
        "lyon",
        vec![
            reading("s1", "air.pm25", t, 5.0),
            reading("s1", "air.pm25", t + S, 6.0),
            reading("s3", "air.pm25", t, 7.0),
        ],
    )
    .await;
    let mut client = f.client("lyon").await;
    let replies = send(
        &mut client,
        json!({"type": "subscribe", "id": "map", "stream": "readings",
               "filter": {"bbox": [4.8, 45.7, 4.85, 45.77]}}),
    )
    .await;
    assert_eq!(replies[0]["series"], 1, "{replies:?}");
    assert_eq!(replies[1]["snapshot"], true);
    assert_eq!(
        values(&replies[1..]),
        [("s1".into(), "air.pm25".into(), 6.0)]
    );

    // Pan the map: same id, new bbox.
    let replies = send(
        &mut client,
        json!({"type": "subscribe", "id": "map", "stream": "readings",
               "filter": {"bbox": [4.88, 45.78, 4.95, 45.82]}}),
    )
    .await;
    assert_eq!(
        values(&replies[1..]),
        [("s3".into(), "air.pm25".into(), 7.0)]
    );
    f.commit(
        "lyon",
        vec![
            reading("s1", "air.pm25", now_us(), 8.0),
            reading("s3", "air.pm25", now_us(), 9.0),
        ],
    )
    .await;
    assert_eq!(
        values(&frames(&client)),
        [("s3".into(), "air.pm25".into(), 9.0)]
    );

    let replies = send(&mut client, json!({"type": "unsubscribe", "id": "map"})).await;
    assert_eq!(replies[0]["type"], "unsubscribed");
    f.commit("lyon", vec![reading("s3", "air.pm25", now_us(), 10.0)])
        .await;
    assert!(frames(&client).is_empty());
    let replies = send(&mut client, json!({"type": "unsubscribe", "id": "map"})).await;
    assert_eq!(replies[0]["code"], "unknown_subscription");
}

#[tokio::test]
async fn closed_buckets_are_sent_once_complete_and_revised_by_late_readings() {
    let f = Fixture::new(LiveConfig {
        bucket_grace: Duration::from_secs(5),
        ..LiveConfig::default()
    })
    .await;
    let minute = 60 * S;
    let start = now_us().div_euclid(minute) * minute;
    // Before the subscription: in the store only (the first bucket is completed from it).
    f.commit("lyon", vec![reading("s1", "air.pm25", start + S, 2.0)])
        .await;
    let mut client = f.client("lyon").await;
    let replies = send(
        &mut client,
        json!({"type": "subscribe", "id": "trend", "stream": "readings",
               "filter": {"sensors": ["s1"]}, "granularity": "1m", "snapshot": false}),
    )
    .await;
    assert_eq!(replies.len(), 1, "no snapshot asked: {replies:?}");
    f.commit("lyon", vec![reading("s1", "air.pm25", start + 2 * S, 4.0)])
        .await;
    f.commit(
        "lyon",
        vec![reading("s1", "air.pm25", start + minute + S, 10.0)],
    )
    .await;
    // Not closed yet: end + grace is in the future.
    f.hub
        .tick(Timestamp::from_unix_micros(start + minute + 4 * S))
        .await;
    assert!(frames(&client).is_empty());
    f.hub
        .tick(Timestamp::from_unix_micros(start + minute + 5 * S))
        .await;
    let got = frames(&client);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "buckets");
    assert_eq!(got[0]["width_s"], 60);
    let bucket = &got[0]["items"][0];
    assert_eq!(
        (bucket["count"].as_u64(), bucket["avg"].as_f64()),
        (Some(2), Some(3.0)),
        "the reading from before the subscription counts (from the store): {bucket}"
    );
    assert_eq!(bucket["min"], 2.0);
    assert_eq!(bucket["max"], 4.0);
    assert!(bucket.get("revised").is_none());

    // A late reading for the closed bucket revises it.
    f.commit("lyon", vec![reading("s1", "air.pm25", start + 30 * S, 6.0)])
        .await;
    let got = frames(&client);
    let bucket = &got[0]["items"][0];
    assert_eq!(
        (bucket["count"].as_u64(), bucket["max"].as_f64()),
        (Some(3), Some(6.0))
    );
    assert_eq!(bucket["revised"], true);

    // The next bucket was tracked from its start: sent from memory.
    f.hub
        .tick(Timestamp::from_unix_micros(start + 2 * minute + 5 * S))
        .await;
    let got = frames(&client);
    assert_eq!(got[0]["items"][0]["avg"], 10.0);
}

#[tokio::test]
async fn a_client_whose_events_overflow_is_closed_and_others_are_not_slowed() {
    let f = Fixture::new(LiveConfig {
        event_capacity: 4,
        ..LiveConfig::default()
    })
    .await;
    let mut slow = f.client("lyon").await;
    let mut fast = f.client("lyon").await;
    for client in [&mut slow, &mut fast] {
        send(
            client,
            json!({"type": "subscribe", "id": "a", "stream": "alarms", "snapshot": false}),
        )
        .await;
    }
    for id in 0..10 {
        f.hub.alarm_changed(&alarm(id));
        // The fast client keeps up.
        assert_eq!(frames(&fast).len(), 1);
    }
    let closed = tokio::time::timeout(Duration::from_secs(1), slow.ready())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(closed.code, close::TOO_SLOW);
    assert!(fast.take_frames().is_empty());
}

fn alarm(id: i64) -> Alarm {
    let now = Timestamp::now();
    Alarm {
        id,
        tenant: tenant("lyon"),
        rule: RuleId::new("pm").unwrap(),
        rule_name: "PM".into(),
        severity: Severity::Major,
        subject: AlarmSubject::Gateway {
            gateway: GatewayId::new("gw-1").unwrap(),
        },
        zone: None,
        state: AlarmState::Open,
        message: "silent".into(),
        value: None,
        opened_at: now,
        last_at: now,
        occurrences: 1,
        acknowledged: None,
        cleared: None,
        updated_at: now,
    }
}

#[tokio::test]
async fn event_streams_follow_tenancy_and_platform_operators_see_untenanted_events() {
    let f = Fixture::new(LiveConfig::default()).await;
    let mut lyon = f.client("lyon").await;
    let mut brest = f.client("brest").await;
    let mut operator = f.hub.connect(TokenScope::Platform).await.unwrap();
    for client in [&mut lyon, &mut brest, &mut operator] {
        let replies = send(
            client,
            json!({"type": "subscribe", "id": "sec", "stream": "security"}),
        )
        .await;
        assert_eq!(replies[0]["type"], "subscribed", "{replies:?}");
    }
    send(
        &mut lyon,
        json!({"type": "subscribe", "id": "al", "stream": "alarms"}),
    )
    .await;
    let replies = send(
        &mut operator,
        json!({"type": "subscribe", "id": "r", "stream": "readings"}),
    )
    .await;
    assert_eq!(replies[0]["code"], "forbidden");

    let event = |tenant: Option<&str>| SecurityEvent {
        time: Timestamp::now(),
        tenant: tenant.map(self::tenant),
        gateway: None,
        address: Some("192.0.2.7:40000".into()),
        kind: SecurityEventKind::TlsRejected,
        detail: "no client certificate".into(),
    };
    f.hub.security_event(&event(Some("lyon")));
    f.hub.security_event(&event(None));
    f.hub.alarm_changed(&alarm(1));
    let got = frames(&lyon);
    let kinds: Vec<&str> = got.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["security_event", "alarm"]);
    assert_eq!(got[0]["event"]["tenant"], "lyon");
    assert_eq!(got[1]["alarm"]["id"], 1);
    assert!(frames(&brest).is_empty());
    let got = frames(&operator);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["event"]["tenant"], Json::Null);
}

#[tokio::test]
async fn moving_a_sensor_moves_it_between_views() {
    let f = Fixture::new(LiveConfig::default()).await;
    let mut client = f.client("lyon").await;
    send(
        &mut client,
        json!({"type": "subscribe", "id": "north", "stream": "readings",
               "filter": {"zones": ["north"]}}),
    )
    .await;
    f.commit("lyon", vec![reading("s1", "air.pm25", now_us(), 1.0)])
        .await;
    assert!(frames(&client).is_empty());
    f.store
        .upsert_sensor(&sensor("s1", "north", 4.9, 45.8))
        .await
        .unwrap();
    f.hub.registry_changed(&tenant("lyon"));
    f.hub.tick(Timestamp::now()).await;
    f.commit("lyon", vec![reading("s1", "air.pm25", now_us(), 2.0)])
        .await;
    assert_eq!(
        values(&frames(&client)),
        [("s1".into(), "air.pm25".into(), 2.0)]
    );
}

#[tokio::test]
async fn bad_requests_are_answered_and_repeated_garbage_closes() {
    let f = Fixture::new(LiveConfig {
        max_subscriptions: 2,
        max_malformed: 3,
        ..LiveConfig::default()
    })
    .await;
    let mut client = f.client("lyon").await;
    for (message, code, detail) in [
        (
            json!({"type": "subscribe", "id": "x", "stream": "readings", "filter": {"bbox": [5, 45, 4, 46]}}),
            "bad_request",
            "filter.bbox",
        ),
        (
            json!({"type": "subscribe", "id": "", "stream": "alarms"}),
            "bad_request",
            "id",
        ),
        (
            json!({"type": "subscribe", "id": "x", "stream": "alarms", "granularity": "1m"}),
            "bad_request",
            "readings stream only",
        ),
        (
            json!({"type": "options", "max_fps": 0}),
            "bad_request",
            "max_fps",
        ),
        (
            json!({"type": "auth", "token": "x"}),
            "bad_request",
            "already authenticated",
        ),
    ] {
        let replies = send(&mut client, message.clone()).await;
        assert_eq!(replies[0]["code"], code, "{message}: {replies:?}");
        assert!(
            replies[0]["detail"].as_str().unwrap().contains(detail),
            "{replies:?}"
        );
    }
    for id in ["a", "b"] {
        send(
            &mut client,
            json!({"type": "subscribe", "id": id, "stream": "alarms", "snapshot": false}),
        )
        .await;
    }
    let replies = send(
        &mut client,
        json!({"type": "subscribe", "id": "c", "stream": "alarms"}),
    )
    .await;
    assert_eq!(replies[0]["code"], "too_many_subscriptions");
    let replies = send(&mut client, json!({"type": "ping", "nonce": 42})).await;
    assert_eq!(replies[0], json!({"type": "pong", "nonce": 42}));
    assert!(client.handle("{").await.is_ok());
    assert!(client.handle("[]").await.is_ok());
    let closed = client.handle("nope").await.unwrap_err();
    assert_eq!(closed.code, close::PROTOCOL);
}

#[tokio::test]
async fn shutdown_closes_every_client_and_refuses_new_ones() {
    let f = Fixture::new(LiveConfig::default()).await;
    let client = f.client("lyon").await;
    assert_eq!(f.hub.client_count(), 1);
    assert_eq!(f.metrics.live_clients.get(), 1);
    f.hub.close_all();
    let closed = client.ready().await.unwrap_err();
    assert_eq!(closed.code, close::GOING_AWAY);
    assert!(matches!(
        f.hub.connect(scope("lyon")).await,
        Err(LiveError::ShuttingDown)
    ));
    // The shutdown waits for the sessions to end (their close frames sent), within a bound.
    assert!(!f.hub.all_closed(Duration::from_millis(50)).await);
    let session = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(client);
    });
    assert!(f.hub.all_closed(Duration::from_secs(5)).await);
    session.await.unwrap();
    assert_eq!(f.hub.client_count(), 0);
    assert_eq!(f.metrics.live_clients.get(), 0);
}

#[tokio::test]
async fn event_snapshots_carry_the_active_alarms_and_every_gateway() {
    let f = Fixture::new(LiveConfig::default()).await;
    let now = Timestamp::now();
    let rule = beffroi_store::AlarmRule {
        tenant: tenant("lyon"),
        id: RuleId::new("pm").unwrap(),
        name: "PM".into(),
        severity: Severity::Major,
        enabled: true,
        condition: beffroi_store::RuleCondition::SpoolGap {
            reasons: Vec::new(),
        },
        created_at: now,
        updated_at: now,
    };
    f.store.create_alarm_rule(&rule).await.unwrap();
    let open = alarm(0);
    let raised = f
        .store
        .raise_alarm(&beffroi_store::NewAlarm {
            tenant: open.tenant,
            rule: open.rule,
            rule_name: open.rule_name,
            severity: open.severity,
            subject: open.subject,
            zone: None,
            message: open.message,
            value: None,
            at: now,
        })
        .await
        .unwrap();
    let mut client = f.client("lyon").await;
    let replies = send(
        &mut client,
        json!({"type": "subscribe", "id": "al", "stream": "alarms"}),
    )
    .await;
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[1]["type"], "alarm");
    assert_eq!(replies[1]["snapshot"], true);
    assert_eq!(replies[1]["alarm"]["id"], raised.alarm.id);
    let replies = send(
        &mut client,
        json!({"type": "subscribe", "id": "gw", "stream": "gateways"}),
    )
    .await;
    assert_eq!(replies[1]["type"], "gateway");
    assert_eq!(replies[1]["gateway"]["id"], "gw-1");
    assert_eq!(replies.len(), 2, "one gateway in lyon: {replies:?}");
}

/// A governor for grantee views from `brest` of `lyon`'s readings under one agreement, with
/// the grant's clock in the test's hands: it reads the store as the API's does, can be told
/// to fail, and records what ended views released.
struct FakeGovernor {
    store: Arc<dyn Store>,
    agreement: beffroi_policy::Agreement,
    now_us: Arc<std::sync::atomic::AtomicI64>,
    /// Reads to fail before the next succeeds.
    failures: std::sync::atomic::AtomicU32,
    /// Reads asked for.
    reads: std::sync::atomic::AtomicU32,
    /// Why each view ended and the values it released.
    ended: std::sync::Mutex<Vec<(String, u64)>>,
    changes: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for FakeGovernor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGovernor").finish_non_exhaustive()
    }
}

impl FakeGovernor {
    fn new(store: Arc<dyn Store>, embargo_s: u64, now_us: i64) -> Self {
        let agreement = serde_json::from_value(json!({
            "id": "open-air", "version": 1, "grantor": "lyon", "grantee": "tenant:brest",
            "state": "active", "not_before": "2020-01-01T00:00:00Z",
            "not_after": "2100-01-01T00:00:00Z", "purposes": ["research"],
            "action": "read_raw", "target": {"metrics": ["air.*"]}, "functions": ["avg"],
            "k": 1, "spatial_level": "sensor", "pseudonymise": false,
            "fields": ["sensor", "metric", "time", "value"], "embargo_s": embargo_s
        }))
        .unwrap();
        Self {
            store,
            agreement,
            now_us: Arc::new(now_us.into()),
            failures: 0.into(),
            reads: 0.into(),
            ended: Default::default(),
            changes: tokio::sync::watch::channel(0).0,
        }
    }

    fn set_now(&self, now_us: i64) {
        self.now_us
            .store(now_us, std::sync::atomic::Ordering::SeqCst);
    }

    fn reads(&self) -> u32 {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl beffroi_live::Governor for FakeGovernor {
    async fn grant(
        &self,
        request: &beffroi_live::GrantRequest,
    ) -> Result<beffroi_live::Grant, beffroi_live::Refusal> {
        let now =
            Timestamp::from_unix_micros(self.now_us.load(std::sync::atomic::Ordering::SeqCst));
        let access = beffroi_policy::AccessRequest {
            requester: "tenant:brest".parse().unwrap(),
            grantor: request.grantor.clone(),
            channel: beffroi_policy::Channel::Live,
            purpose: request.purpose.parse().unwrap(),
            agreement: None,
            metrics: [beffroi_policy::MetricPattern::Any].into(),
            zones: Default::default(),
            sensors: Default::default(),
            tags: Default::default(),
            range: beffroi_policy::TimeRange::new(
                now.saturating_sub(Duration::from_secs(24 * 3600)),
                now.saturating_add(Duration::from_secs(365 * 24 * 3600)),
            ),
            read: beffroi_policy::Read::Raw {
                fields: Default::default(),
            },
        };
        let decision = beffroi_policy::decide(&access, std::slice::from_ref(&self.agreement), now);
        let beffroi_policy::Decision::Permit(permit) = decision else {
            panic!("the agreement permits the view: {decision:?}");
        };
        let clock = self.now_us.clone();
        beffroi_live::Grant::new(
            permit,
            None,
            beffroi_policy::Territories::default(),
            Box::new(move || {
                Timestamp::from_unix_micros(clock.load(std::sync::atomic::Ordering::SeqCst))
            }),
        )
    }

    async fn recheck(
        &self,
        _: &beffroi_live::GrantRequest,
        _: &beffroi_live::Grant,
    ) -> Option<beffroi_live::Refusal> {
        None
    }

    fn ended(&self, _: beffroi_live::GrantRequest, grant: Arc<beffroi_live::Grant>, why: String) {
        self.ended.lock().unwrap().push((why, grant.released().0));
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    async fn readings(
        &self,
        request: &beffroi_live::GrantRequest,
        _: &beffroi_live::Grant,
        range: beffroi_policy::TimeRange,
        after: Option<beffroi_store::ReadingCursor>,
        limit: u32,
    ) -> beffroi_store::Result<beffroi_store::ReadingPage> {
        use std::sync::atomic::Ordering::SeqCst;
        self.reads.fetch_add(1, SeqCst);
        if self
            .failures
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(beffroi_store::Error::Unsupported(
                "the store is down".into(),
            ));
        }
        let filter = beffroi_store::ReadingFilter {
            tenant: request.grantor.clone(),
            sensors: Vec::new(),
            metrics: Vec::new(),
            zone: None,
            from: range.from,
            to: range.to,
        };
        self.store.readings(&filter, limit, after).await
    }
}

/// Frames queued for `client`, waiting up to two seconds for some.
async fn next_frames(client: &Client) -> Vec<Json> {
    for _ in 0..100 {
        let got = frames(client);
        if !got.is_empty() {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Vec::new()
}

#[tokio::test]
async fn a_delayed_view_releases_stored_values_once_past_the_embargo_each_once() {
    let f = Fixture::new(LiveConfig {
        tick: Duration::from_millis(50),
        ..LiveConfig::default()
    })
    .await;
    let t = now_us();
    let governor = Arc::new(FakeGovernor::new(f.store.clone(), 5, t));
    f.commit(
        "lyon",
        vec![
            reading("s1", "air.pm25", t - 20 * S, 1.0),
            reading("s1", "air.pm25", t - 3 * S, 2.0),
            reading("s1", "air.pm25", t + S, 3.0),
            reading("s3", "noise.laeq", t + S, -1.0),
            reading("s2", "air.pm25", t + 2 * S, 4.0),
        ],
    )
    .await;
    let mut brest = f.client("brest").await;
    brest.govern(governor.clone());
    let replies = send(
        &mut brest,
        json!({"type": "subscribe", "id": "open", "stream": "readings", "grantor": "lyon",
               "purpose": "research", "filter": {"metrics": ["air.*"]}}),
    )
    .await;
    assert_eq!(replies[0]["type"], "subscribed", "{replies:?}");
    assert_eq!(replies[0]["embargo_s"], 5);
    assert_eq!(replies[0]["series"], 2, "s1 and s2 air.pm25: {replies:?}");
    // The snapshot: the latest value measured before the embargo, and nothing younger.
    assert_eq!(replies[1]["snapshot"], true, "{replies:?}");
    assert_eq!(
        values(&replies[1..]),
        [("s1".into(), "air.pm25".into(), 1.0)]
    );

    // Nothing has passed the embargo since; a reading committed now that passed it already
    // is behind the feed, and the fan-out never feeds a delayed view (not even a new series).
    f.commit("lyon", vec![reading("s3", "air.pm25", t - 10 * S, 9.0)])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(frames(&brest).is_empty());

    governor.set_now(t + 2 * S + S / 2);
    assert_eq!(
        values(&next_frames(&brest).await),
        [("s1".into(), "air.pm25".into(), 2.0)]
    );
    governor.set_now(t + 7 * S);
    assert_eq!(
        values(&next_frames(&brest).await),
        [("s1".into(), "air.pm25".into(), 3.0)],
        "s2 at t + 2 s is not older than the embargo yet"
    );

    // The store fails twice: counted, and the same values come at a later tick.
    governor
        .failures
        .store(2, std::sync::atomic::Ordering::SeqCst);
    governor.set_now(t + 10 * S);
    assert_eq!(
        values(&next_frames(&brest).await),
        [("s2".into(), "air.pm25".into(), 4.0)]
    );
    assert_eq!(f.metrics.live_delayed_errors.get(), 2);

    // More than a page passes at once: every value is released once, coalesced to the latest.
    let many: Vec<Reading> = (0..600i64)
        .map(|i| reading("s1", "air.pm25", t + 5 * S + i * 1000, 100.0 + i as f64))
        .collect();
    f.commit("lyon", many).await;
    let before = governor.reads();
    governor.set_now(t + 20 * S);
    let mut seen = Vec::new();
    while seen.last() != Some(&699.0) {
        let got = next_frames(&brest).await;
        assert!(!got.is_empty(), "the values came: {seen:?}");
        seen.extend(values(&got).into_iter().map(|(_, _, value)| value));
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in order, never twice: {seen:?}"
    );
    assert!(
        governor.reads() - before >= 3,
        "600 readings take three pages"
    );

    // Unsubscribed: the feed stops reading, and the closing count has every value once.
    send(&mut brest, json!({"type": "unsubscribe", "id": "open"})).await;
    let stopped = governor.reads();
    governor.set_now(t + 60 * S);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(governor.reads(), stopped, "the feed was cancelled");
    assert!(frames(&brest).is_empty());
    assert_eq!(
        *governor.ended.lock().unwrap(),
        [("unsubscribed".to_owned(), 1 + 1 + 1 + 1 + 600)]
    );
}
