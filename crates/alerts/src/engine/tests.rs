//! The engine against each kind of rule, with exact times.

use std::collections::BTreeMap;

use beffroi_protocol::{
    Gap, GapReason, GatewayId, Health, KeyId, MetricName, Reading, SensorId, TenantId, Timestamp,
    Unit, Value,
};
use beffroi_store::{
    AlarmRule, AlarmState, AlarmSubject, CommitBatch, Comparison, RuleCondition, SecurityEvent,
    SecurityEventKind, Sensor, Severity, ZoneId,
};

use super::*;

const S: i64 = 1_000_000;

fn at(s: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000 * S + s * S)
}

fn tenant() -> TenantId {
    TenantId::new("lyon").unwrap()
}

fn rule(id: &str, condition: RuleCondition) -> AlarmRule {
    AlarmRule {
        tenant: tenant(),
        id: RuleId::new(id).unwrap(),
        name: format!("rule {id}"),
        severity: Severity::Major,
        enabled: true,
        condition,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn pm25_over(value: f64, for_s: u64, zone: Option<&str>) -> RuleCondition {
    RuleCondition::Threshold {
        metric: MetricName::new("air.pm25").unwrap(),
        zone: zone.map(|z| ZoneId::new(z).unwrap()),
        sensors: Vec::new(),
        op: Comparison::Gt,
        value,
        for_s,
        pooled: None,
    }
}

fn batch(gateway: &str, readings: &[(&str, f64, i64)]) -> CommitBatch {
    CommitBatch {
        tenant: tenant(),
        gateway: GatewayId::new(gateway).unwrap(),
        seq: 1,
        key_id: KeyId::new("k").unwrap(),
        signature: [0; 64],
        received_at: at(0),
        readings: readings
            .iter()
            .map(|(sensor, value, s)| Reading {
                sensor: SensorId::new(*sensor).unwrap(),
                metric: MetricName::new("air.pm25").unwrap(),
                unit: Unit::new("ug/m3").unwrap(),
                time: at(*s),
                value: Value::Number(*value),
            })
            .collect(),
    }
}

fn sensor(id: &str, zone: &str) -> Sensor {
    Sensor {
        tenant: tenant(),
        id: SensorId::new(id).unwrap(),
        kind: "air".into(),
        unit: None,
        lat: None,
        lon: None,
        zone: Some(ZoneId::new(zone).unwrap()),
        tags: Vec::new(),
        placed_at: None,
    }
}

fn raised(actions: &[Action]) -> Vec<&NewAlarm> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Raise(alarm) => Some(alarm),
            Action::Resolve { .. } => None,
        })
        .collect()
}

fn resolved(actions: &[Action]) -> Vec<&AlarmSubject> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Resolve { subject, .. } => Some(subject),
            Action::Raise(_) => None,
        })
        .collect()
}

#[test]
fn threshold_with_duration_raises_per_sensor_with_zone_then_resolves() {
    let mut engine = Engine::default();
    engine.set_rules(&tenant(), vec![rule("pm", pm25_over(50.0, 600, None))]);
    engine.set_sensors(&tenant(), &[sensor("s1", "centre")]);
    let a = engine.batch(&batch("gw-1", &[("s1", 60.0, 0), ("s2", 70.0, 0)]), at(0));
    assert!(a.is_empty(), "{a:?}");
    let a = engine.batch(
        &batch("gw-1", &[("s1", 61.0, 600), ("s2", 40.0, 600)]),
        at(600),
    );
    let up = raised(&a);
    assert_eq!(up.len(), 1, "{a:?}");
    assert_eq!(
        up[0].subject,
        AlarmSubject::Series {
            sensor: SensorId::new("s1").unwrap(),
            metric: MetricName::new("air.pm25").unwrap()
        }
    );
    assert_eq!(up[0].zone, Some(ZoneId::new("centre").unwrap()));
    assert_eq!(up[0].value, Some(61.0));
    assert_eq!(up[0].at, at(600));
    assert!(up[0].message.contains("> 50"), "{}", up[0].message);
    let a = engine.batch(&batch("gw-1", &[("s1", 80.0, 700)]), at(700));
    assert!(a.is_empty(), "raised once: {a:?}");
    let a = engine.batch(&batch("gw-1", &[("s1", 10.0, 800)]), at(800));
    assert_eq!(resolved(&a).len(), 1);
}

#[test]
fn zone_and_sensor_scopes_and_non_numeric_values_are_respected() {
    let mut engine = Engine::default();
    let mut only_s3 = pm25_over(0.0, 0, None);
    if let RuleCondition::Threshold { sensors, .. } = &mut only_s3 {
        sensors.push(SensorId::new("s3").unwrap());
    }
    engine.set_rules(
        &tenant(),
        vec![
            rule("centre", pm25_over(0.0, 0, Some("centre"))),
            rule("s3", only_s3),
        ],
    );
    engine.set_sensors(&tenant(), &[sensor("s1", "centre"), sensor("s2", "north")]);
    let a = engine.batch(
        &batch("gw-1", &[("s1", 1.0, 0), ("s2", 1.0, 0), ("s3", 1.0, 0)]),
        at(0),
    );
    let subjects: Vec<String> = raised(&a)
        .iter()
        .map(|r| format!("{}:{}", r.rule, r.subject.key()))
        .collect();
    assert_eq!(
        subjects,
        ["centre:series:s1:air.pm25", "s3:series:s3:air.pm25"]
    );
    let mut text = batch("gw-1", &[]);
    text.readings.push(Reading {
        sensor: SensorId::new("s1").unwrap(),
        metric: MetricName::new("air.pm25").unwrap(),
        unit: Unit::new("").unwrap(),
        time: at(5),
        value: Value::Text("n/a".into()),
    });
    assert!(engine.batch(&text, at(5)).is_empty());
}

#[test]
fn disabled_rules_and_other_tenants_raise_nothing() {
    let mut engine = Engine::default();
    let mut off = rule("pm", pm25_over(0.0, 0, None));
    off.enabled = false;
    engine.set_rules(&tenant(), vec![off]);
    assert!(engine
        .batch(&batch("gw-1", &[("s1", 9.0, 0)]), at(0))
        .is_empty());
    let mut other = batch("gw-1", &[("s1", 9.0, 0)]);
    other.tenant = TenantId::new("brest").unwrap();
    assert!(engine.batch(&other, at(0)).is_empty());
    assert_eq!(engine.tenants().count(), 0);
}

#[test]
fn editing_a_rule_resets_its_state_and_unchanged_rules_keep_theirs() {
    let mut engine = Engine::default();
    let pm = rule("pm", pm25_over(50.0, 60, None));
    engine.set_rules(&tenant(), vec![pm.clone()]);
    engine.batch(&batch("gw-1", &[("s1", 60.0, 0)]), at(0));
    engine.set_rules(&tenant(), vec![pm.clone()]);
    let a = engine.batch(&batch("gw-1", &[("s1", 60.0, 60)]), at(60));
    assert_eq!(
        raised(&a).len(),
        1,
        "pending state kept across an unchanged reload"
    );
    let mut edited = pm;
    edited.updated_at = at(61);
    engine.set_rules(&tenant(), vec![edited]);
    let a = engine.batch(&batch("gw-1", &[("s1", 60.0, 62)]), at(62));
    assert!(a.is_empty(), "state restarted: pending again");
}

fn offline_rule(after_s: u64) -> AlarmRule {
    rule(
        "offline",
        RuleCondition::GatewayOffline {
            after_s,
            gateways: Vec::new(),
        },
    )
}

fn health(gateway: &str, gaps: Vec<Gap>) -> Health {
    Health {
        tenant: tenant(),
        gateway: GatewayId::new(gateway).unwrap(),
        time: at(0),
        uptime_s: 1,
        agent_version: "test".into(),
        spool_batches: 0,
        spool_bytes: 0,
        oldest_unacked_age_s: None,
        batches_dropped: 0,
        readings_dropped: 0,
        rss_bytes: 0,
        next_seq: 1,
        gaps,
        counters: BTreeMap::new(),
    }
}

#[test]
fn gateway_offline_raises_once_after_silence_and_resolves_when_heard() {
    let mut engine = Engine::default();
    engine.set_rules(&tenant(), vec![offline_rule(60)]);
    assert!(
        engine.tick(at(1000)).is_empty(),
        "never heard: no liveness known"
    );
    engine.health(&health("gw-1", Vec::new()), at(0));
    assert!(engine.tick(at(59)).is_empty());
    let a = engine.tick(at(60));
    let up = raised(&a);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].subject.key(), "gateway:gw-1");
    assert!(engine.tick(at(120)).is_empty(), "raised once");
    let a = engine.batch(&batch("gw-1", &[]), at(130));
    assert_eq!(
        resolved(&a),
        [&AlarmSubject::Gateway {
            gateway: GatewayId::new("gw-1").unwrap()
        }]
    );
    assert!(engine.tick(at(189)).is_empty());
    assert_eq!(raised(&engine.tick(at(190))).len(), 1, "silent again");
}

#[test]
fn seeded_and_resumed_gateways_are_watched_after_a_restart() {
    let mut engine = Engine::default();
    engine.set_rules(&tenant(), vec![offline_rule(60)]);
    let mut record = gateway_record("gw-2");
    record.state.last_seen = Some(at(10));
    engine.seed_gateways(&tenant(), &[record]);
    assert_eq!(raised(&engine.tick(at(70))).len(), 1);

    // Another node (or this one before a restart) already raised gw-3's alarm.
    let mut engine = Engine::default();
    engine.set_rules(&tenant(), vec![offline_rule(60)]);
    engine.resume(&[active_alarm(
        AlarmSubject::Gateway {
            gateway: GatewayId::new("gw-3").unwrap(),
        },
        "offline",
    )]);
    let a = engine.health(&health("gw-3", Vec::new()), at(100));
    assert_eq!(
        resolved(&a).len(),
        1,
        "heard again: the resumed alarm resolves"
    );
}

fn gateway_record(id: &str) -> beffroi_store::GatewayRecord {
    beffroi_store::GatewayRecord {
        tenant: tenant(),
        id: GatewayId::new(id).unwrap(),
        key_id: KeyId::new("k").unwrap(),
        public_key_hex: String::new(),
        cert_fingerprint: None,
        cert_not_after: None,
        rejected_batches: 0,
        revoked: false,
        revoked_at: None,
        keys: Vec::new(),
        pending_enrollment: None,
        created_at: at(0),
        state: Default::default(),
    }
}

fn expiry_rule(before_s: u64) -> AlarmRule {
    rule(
        "cert",
        RuleCondition::CertificateExpiry {
            before_s,
            gateways: Vec::new(),
        },
    )
}

#[test]
fn certificate_expiry_raises_before_expiry_and_resolves_when_renewed_or_revoked() {
    let mut engine = Engine::default();
    engine.set_rules(&tenant(), vec![expiry_rule(100), offline_rule(60)]);
    assert!(engine.watches_gateways(&tenant()));
    let mut gw = gateway_record("gw-1");
    gw.cert_not_after = Some(at(1000));
    let mut unissued = gateway_record("gw-2");
    unissued.cert_not_after = None;
    engine.seed_gateways(&tenant(), &[gw.clone(), unissued]);
    assert!(
        engine.tick(at(900)).is_empty(),
        "100 s left: not less than the notice yet"
    );
    let a = engine.tick(at(901));
    let up = raised(&a);
    assert_eq!(up.len(), 1, "gw-2 has no certificate: no alarm");
    assert_eq!(up[0].subject.key(), "gateway:gw-1");
    assert_eq!(up[0].rule.as_str(), "cert");
    assert!(up[0].message.contains("expires at"), "{}", up[0].message);
    assert!(engine.tick(at(950)).is_empty(), "raised once");

    // Renewed (recorded by whichever node served it, seen at the next reload).
    gw.cert_not_after = Some(at(5000));
    engine.seed_gateways(&tenant(), &[gw.clone()]);
    let a = engine.tick(at(960));
    assert_eq!(
        resolved(&a),
        [&AlarmSubject::Gateway {
            gateway: GatewayId::new("gw-1").unwrap()
        }]
    );
    let a = engine.tick(at(5001));
    assert!(raised(&a)[0].message.contains("expired at"));

    // Revoked: no certificate to renew any more, the alarm resolves.
    gw.revoked = true;
    engine.seed_gateways(&tenant(), &[gw]);
    assert_eq!(resolved(&engine.tick(at(5002))).len(), 1);
}

#[test]
fn a_resumed_certificate_alarm_is_not_taken_for_an_offline_one() {
    let mut engine = Engine::default();
    engine.set_rules(&tenant(), vec![expiry_rule(100), offline_rule(60)]);
    let subject = AlarmSubject::Gateway {
        gateway: GatewayId::new("gw-1").unwrap(),
    };
    engine.resume(&[active_alarm(subject, "cert")]);
    let mut gw = gateway_record("gw-1");
    gw.cert_not_after = Some(at(50));
    engine.seed_gateways(&tenant(), &[gw]);
    assert!(
        engine.tick(at(10)).is_empty(),
        "the resumed expiry alarm is still due: not raised again"
    );
    let a = engine.health(&health("gw-1", Vec::new()), at(11));
    assert!(
        resolved(&a).is_empty(),
        "being heard does not resolve a certificate alarm"
    );
}

fn active_alarm(subject: AlarmSubject, rule: &str) -> beffroi_store::Alarm {
    beffroi_store::Alarm {
        id: 1,
        tenant: tenant(),
        rule: RuleId::new(rule).unwrap(),
        rule_name: rule.into(),
        severity: Severity::Major,
        subject,
        zone: None,
        state: AlarmState::Open,
        message: String::new(),
        value: None,
        opened_at: at(0),
        last_at: at(0),
        occurrences: 1,
        acknowledged: None,
        cleared: None,
        updated_at: at(0),
    }
}

#[test]
fn a_resumed_threshold_alarm_resolves_and_is_not_raised_twice() {
    let mut engine = Engine::default();
    engine.set_rules(&tenant(), vec![rule("pm", pm25_over(50.0, 0, None))]);
    engine.resume(&[active_alarm(
        AlarmSubject::Series {
            sensor: SensorId::new("s1").unwrap(),
            metric: MetricName::new("air.pm25").unwrap(),
        },
        "pm",
    )]);
    assert!(engine
        .batch(&batch("gw-1", &[("s1", 90.0, 1)]), at(1))
        .is_empty());
    assert_eq!(
        resolved(&engine.batch(&batch("gw-1", &[("s1", 9.0, 2)]), at(2))).len(),
        1
    );
}

#[test]
fn each_new_gap_raises_once_filtered_by_reason() {
    let mut engine = Engine::default();
    engine.set_rules(
        &tenant(),
        vec![rule(
            "gaps",
            RuleCondition::SpoolGap {
                reasons: vec![GapReason::SpoolFull],
            },
        )],
    );
    let gap = |first, last, reason| Gap {
        first_seq: first,
        last_seq: last,
        batches: last - first + 1,
        readings: 10,
        reason,
    };
    let report = health(
        "gw-1",
        vec![
            gap(3, 5, GapReason::SpoolFull),
            gap(9, 9, GapReason::CrashRestart),
        ],
    );
    let a = engine.health(&report, at(1));
    let up = raised(&a);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].subject.key(), "gap:gw-1:3-5");
    assert!(up[0].message.contains("spool-full"));
    assert!(
        engine.health(&report, at(2)).is_empty(),
        "the same gap again"
    );
    let more = health(
        "gw-1",
        vec![
            gap(3, 5, GapReason::SpoolFull),
            gap(20, 21, GapReason::SpoolFull),
        ],
    );
    assert_eq!(raised(&engine.health(&more, at(3))).len(), 1);
}

#[test]
fn security_events_raise_for_their_tenant_and_kinds_only() {
    let mut engine = Engine::default();
    engine.set_rules(
        &tenant(),
        vec![rule(
            "sec",
            RuleCondition::Security {
                events: vec![SecurityEventKind::AclViolation],
            },
        )],
    );
    let event = |tenant: Option<TenantId>, kind| SecurityEvent {
        time: at(5),
        tenant,
        gateway: Some(GatewayId::new("gw-1").unwrap()),
        address: Some("127.0.0.1:1".into()),
        kind,
        detail: "publish to another gateway's topic".into(),
    };
    let a = engine.security(&event(Some(tenant()), SecurityEventKind::AclViolation));
    let up = raised(&a);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].subject.key(), "security:gw-1:acl_violation");
    assert_eq!(up[0].at, at(5));
    assert!(engine
        .security(&event(Some(tenant()), SecurityEventKind::TlsRejected))
        .is_empty());
    assert!(engine
        .security(&event(None, SecurityEventKind::AclViolation))
        .is_empty());
}

/// A pool watch that admits the readings of `operator`'s sensors listed in `admitted`, under
/// the id the beneficiary sees, standing in zone `z1`.
#[derive(Debug)]
struct Admitting {
    rule: RuleId,
    operator: TenantId,
    admitted: Vec<(&'static str, &'static str)>,
}

impl PoolWatch for Admitting {
    fn beneficiary(&self) -> &TenantId {
        static LYON: std::sync::OnceLock<TenantId> = std::sync::OnceLock::new();
        LYON.get_or_init(tenant)
    }
    fn rule(&self) -> &RuleId {
        &self.rule
    }
    fn operator(&self) -> &TenantId {
        &self.operator
    }
    fn admit(&self, reading: &Reading, _now: Timestamp) -> Option<crate::Seen> {
        let (_, seen) = self
            .admitted
            .iter()
            .find(|(sensor, _)| reading.sensor.as_str() == *sensor)?;
        Some(crate::Seen {
            sensor: (*seen).to_owned(),
            zones: vec![ZoneId::new("z1").unwrap()],
        })
    }
}

/// PM2.5 over `value` in zone `z1`, pooled sensors included.
fn pooled_pm25_over(value: f64) -> RuleCondition {
    let mut condition = pm25_over(value, 0, Some("z1"));
    if let RuleCondition::Threshold { pooled, .. } = &mut condition {
        *pooled = Some(beffroi_policy::Purpose::EnvironmentalMonitoring);
    }
    condition
}

fn operator_batch(operator: &TenantId, readings: &[(&str, f64, i64)]) -> CommitBatch {
    CommitBatch {
        tenant: operator.clone(),
        ..batch("gw-op", readings)
    }
}

#[test]
fn a_pooled_rule_sees_only_what_its_watch_admits_under_the_id_it_sees() {
    let metro = TenantId::new("metro").unwrap();
    let mut engine = Engine::default();
    engine.set_rules(
        &tenant(),
        vec![
            rule("pooled", pooled_pm25_over(10.0)),
            rule("own", pm25_over(10.0, 0, None)),
        ],
    );
    assert_eq!(engine.pooled_rules().len(), 1);
    let watches: Vec<Arc<dyn PoolWatch>> = vec![
        Arc::new(Admitting {
            rule: RuleId::new("pooled").unwrap(),
            operator: metro.clone(),
            admitted: vec![("a", "p_a")],
        }),
        // A watch of the own-sensors rule, or on another operator, sees nothing here.
        Arc::new(Admitting {
            rule: RuleId::new("own").unwrap(),
            operator: metro.clone(),
            admitted: vec![("a", "a"), ("b", "b")],
        }),
        Arc::new(Admitting {
            rule: RuleId::new("pooled").unwrap(),
            operator: TenantId::new("other").unwrap(),
            admitted: vec![("b", "b")],
        }),
    ];
    let over = operator_batch(&metro, &[("a", 20.0, 1), ("b", 20.0, 1)]);
    assert!(engine.batch(&over, at(1)).is_empty(), "not lyon's batch");
    let actions = engine.pooled(&over, &watches, at(1));
    let alarms = raised(&actions);
    assert_eq!(alarms.len(), 1, "{actions:?}");
    let subject = AlarmSubject::Pooled {
        operator: metro.clone(),
        sensor: "p_a".into(),
        metric: MetricName::new("air.pm25").unwrap(),
    };
    assert_eq!(alarms[0].tenant, tenant());
    assert_eq!(alarms[0].rule.as_str(), "pooled");
    assert_eq!(alarms[0].subject, subject);
    assert_eq!(alarms[0].zone, Some(ZoneId::new("z1").unwrap()));
    assert!(
        alarms[0]
            .message
            .ends_with("at p_a (pooled, operated by metro)"),
        "{}",
        alarms[0].message
    );
    let under = operator_batch(&metro, &[("a", 5.0, 2)]);
    assert_eq!(
        resolved(&engine.pooled(&under, &watches, at(2))),
        [&subject]
    );

    // After a restart, the active pooled alarm is resumed: not raised twice, resolved once.
    let mut engine = Engine::default();
    engine.set_rules(&tenant(), vec![rule("pooled", pooled_pm25_over(10.0))]);
    engine.resume(&[active_alarm(subject.clone(), "pooled")]);
    assert!(engine.pooled(&over, &watches, at(3)).is_empty());
    assert_eq!(
        resolved(&engine.pooled(&under, &watches, at(4))),
        [&subject]
    );
}
