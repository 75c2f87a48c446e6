//! The alert task against a real (SQLite) store and hub: alarms raised, pushed live, resolved,
//! resumed after a restart; offline detection with a clock anchored ahead of the wall clock.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use beffroi_alerts::{AlertTask, Alerts, Clock};
use beffroi_live::{Client, Hub, LiveConfig};
use beffroi_protocol::{
    GatewayId, Health, KeyId, MetricName, Reading, SensorId, TenantId, Timestamp, Unit, Value,
};
use beffroi_store::{
    Alarm, AlarmFilter, AlarmRule, AlarmState, CommitBatch, Comparison, NewGateway, Role,
    RuleCondition, RuleId, Severity, Store, TokenScope,
};
use beffroi_telemetry::Metrics;
use serde_json::{json, Value as Json};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

fn lyon() -> TenantId {
    TenantId::new("lyon").unwrap()
}

fn gw() -> GatewayId {
    GatewayId::new("gw-1").unwrap()
}

struct Fixture {
    store: Arc<dyn Store>,
    hub: Hub,
    metrics: Arc<Metrics>,
}

impl Fixture {
    async fn new() -> Self {
        let store = beffroi_store::open("sqlite::memory:", Default::default())
            .await
            .unwrap();
        store.create_tenant(&lyon(), "Lyon").await.unwrap();
        store
            .register_gateway(&NewGateway {
                tenant: lyon(),
                id: gw(),
                key_id: KeyId::new("k").unwrap(),
                public_key: [1; 32],
                cert_fingerprint: None,
                cert_not_after: None,
            })
            .await
            .unwrap();
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(LiveConfig::default(), store.clone(), metrics.clone());
        Self {
            store,
            hub,
            metrics,
        }
    }

    fn start(&self, clock: Clock) -> (Alerts, CancellationToken, tokio::task::JoinHandle<()>) {
        let (alerts, task): (Alerts, AlertTask) =
            Alerts::new(self.store.clone(), self.hub.clone(), self.metrics.clone());
        let stop = CancellationToken::new();
        let handle = tokio::spawn(task.run_with_clock(stop.clone(), clock));
        (alerts, stop, handle)
    }

    async fn rule(&self, id: &str, condition: RuleCondition) {
        let now = Timestamp::now();
        self.store
            .create_alarm_rule(&AlarmRule {
                tenant: lyon(),
                id: RuleId::new(id).unwrap(),
                name: id.into(),
                severity: Severity::Critical,
                enabled: true,
                condition,
                created_at: now,
                updated_at: now,
            })
            .await
            .unwrap();
    }

    async fn alarms(&self, state: AlarmState) -> Vec<Alarm> {
        self.store
            .list_alarms(
                &lyon(),
                &AlarmFilter {
                    states: vec![state],
                },
                100,
                0,
            )
            .await
            .unwrap()
            .items
    }

    /// Waits until `check` holds on the alarms in `state`.
    async fn until(&self, state: AlarmState, check: impl Fn(&[Alarm]) -> bool) -> Vec<Alarm> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let alarms = self.alarms(state).await;
            if check(&alarms) {
                return alarms;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "alarms in state {state:?} never matched: {alarms:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn pm25(value: f64, time: Timestamp) -> Arc<CommitBatch> {
    Arc::new(CommitBatch {
        tenant: lyon(),
        gateway: gw(),
        seq: 1,
        key_id: KeyId::new("k").unwrap(),
        signature: [0; 64],
        received_at: time,
        readings: vec![Reading {
            sensor: SensorId::new("s1").unwrap(),
            metric: MetricName::new("air.pm25").unwrap(),
            unit: Unit::new("ug/m3").unwrap(),
            time,
            value: Value::Number(value),
        }],
    })
}

fn threshold() -> RuleCondition {
    RuleCondition::Threshold {
        metric: MetricName::new("air.pm25").unwrap(),
        zone: None,
        sensors: Vec::new(),
        op: Comparison::Gt,
        value: 50.0,
        for_s: 0,
        pooled: None,
    }
}

async fn alarm_frame(client: &Client) -> Json {
    tokio::time::timeout(WAIT, client.ready())
        .await
        .expect("an alarm frame in time")
        .expect("open connection");
    let frames = client.take_frames();
    serde_json::from_str(&frames[0]).unwrap()
}

#[tokio::test]
async fn a_threshold_alarm_opens_is_pushed_live_resolves_and_survives_a_restart() {
    let f = Fixture::new().await;
    f.rule("pm", threshold()).await;
    let mut client = f
        .hub
        .connect(TokenScope::Tenant {
            tenant: lyon(),
            role: Role::Viewer,
        })
        .await
        .unwrap();
    client
        .handle(
            &json!({"type": "subscribe", "id": "a", "stream": "alarms", "snapshot": false})
                .to_string(),
        )
        .await
        .unwrap();
    let (alerts, stop, task) = f.start(Clock::start());
    let t = Timestamp::now();
    alerts.batch_committed(pm25(80.0, t));
    let open = f.until(AlarmState::Open, |a| a.len() == 1).await;
    assert_eq!(open[0].value, Some(80.0));
    assert_eq!(f.metrics.alarms_raised.get(), 1);
    let frame = alarm_frame(&client).await;
    assert_eq!(frame["alarm"]["state"], "open");
    assert_eq!(frame["alarm"]["id"], open[0].id);

    // Restart: the new task resumes from the store and does not open it twice.
    stop.cancel();
    task.await.unwrap();
    let (alerts, stop, task) = f.start(Clock::start());
    alerts.batch_committed(pm25(90.0, t.saturating_add(Duration::from_secs(1))));
    alerts.batch_committed(pm25(10.0, t.saturating_add(Duration::from_secs(2))));
    let cleared = f.until(AlarmState::Cleared, |a| a.len() == 1).await;
    assert_eq!(cleared[0].id, open[0].id);
    assert_eq!(cleared[0].occurrences, 1, "resumed, not raised again");
    let clearance = cleared[0].cleared.as_ref().unwrap();
    assert!(clearance.by.is_none(), "cleared automatically");
    assert_eq!(f.metrics.alarms_resolved.get(), 1);
    let frame = alarm_frame(&client).await;
    assert_eq!(frame["alarm"]["state"], "cleared");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn rules_created_later_apply_and_security_events_count_occurrences() {
    let f = Fixture::new().await;
    let (alerts, stop, task) = f.start(Clock::start());
    f.rule("sec", RuleCondition::Security { events: Vec::new() })
        .await;
    alerts.rules_changed(lyon());
    let event = Arc::new(beffroi_store::SecurityEvent {
        time: Timestamp::now(),
        tenant: Some(lyon()),
        gateway: Some(gw()),
        address: None,
        kind: beffroi_store::SecurityEventKind::AclViolation,
        detail: "publish to another gateway's topic".into(),
    });
    for _ in 0..3 {
        alerts.security_event(event.clone());
    }
    let open = f
        .until(AlarmState::Open, |a| {
            a.first().is_some_and(|a| a.occurrences == 3)
        })
        .await;
    assert_eq!(open.len(), 1);
    assert!(open[0].message.contains("acl_violation"));
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_silent_gateway_raises_offline_and_resolves_when_heard() {
    let f = Fixture::new().await;
    f.rule(
        "offline",
        RuleCondition::GatewayOffline {
            after_s: 60,
            gateways: Vec::new(),
        },
    )
    .await;
    let health = Health {
        tenant: lyon(),
        gateway: gw(),
        time: Timestamp::now(),
        uptime_s: 5,
        agent_version: "test".into(),
        spool_batches: 0,
        spool_bytes: 0,
        oldest_unacked_age_s: None,
        batches_dropped: 0,
        readings_dropped: 0,
        rss_bytes: 0,
        next_seq: 1,
        gaps: Vec::new(),
        counters: Default::default(),
    };
    // Last heard now (in the store); the engine's clock runs two minutes ahead.
    f.store
        .record_health(&health, Timestamp::now())
        .await
        .unwrap();
    let ahead = Timestamp::now().saturating_add(Duration::from_secs(120));
    let (alerts, stop, task) = f.start(Clock::anchored(ahead));
    let open = f.until(AlarmState::Open, |a| a.len() == 1).await;
    assert_eq!(open[0].subject.key(), "gateway:gw-1");
    alerts.health_recorded(Arc::new(health));
    let cleared = f.until(AlarmState::Cleared, |a| a.len() == 1).await;
    assert_eq!(cleared[0].id, open[0].id);
    stop.cancel();
    task.await.unwrap();
}
