//! Alarm cases: rules CRUD, raising (one active alarm per subject, also under concurrency),
//! acknowledgement and clearance, tenant isolation, listings.

use std::sync::Arc;

use beffroi_protocol::GapReason;
use beffroi_store::{
    Actor, Alarm, AlarmAction, AlarmFilter, AlarmRule, AlarmState, AlarmSubject, Comparison, Error,
    NewAlarm, RuleCondition, SecurityEventKind, Severity, Store,
};

use crate::fixtures::*;

/// A threshold rule of tenant `t` on PM2.5 in zone `centre`.
pub fn pm25_rule(t: &str, id: &str) -> AlarmRule {
    AlarmRule {
        tenant: tenant(t),
        id: sensor(id),
        name: format!("PM2.5 high ({id})"),
        severity: Severity::Major,
        enabled: true,
        condition: RuleCondition::Threshold {
            metric: metric("air.pm25"),
            zone: Some(sensor("centre")),
            sensors: vec![sensor("s1"), sensor("s2")],
            op: Comparison::Gt,
            value: 50.5,
            for_s: 600,
            pooled: None,
        },
        created_at: at(T0),
        updated_at: at(T0),
    }
}

fn series(s: &str) -> AlarmSubject {
    AlarmSubject::Series {
        sensor: sensor(s),
        metric: metric("air.pm25"),
    }
}

fn raising(t: &str, rule: &str, subject: AlarmSubject, time_us: i64, value: f64) -> NewAlarm {
    NewAlarm {
        tenant: tenant(t),
        rule: sensor(rule),
        rule_name: format!("PM2.5 high ({rule})"),
        severity: Severity::Major,
        subject,
        zone: Some(sensor("centre")),
        message: format!("air.pm25 = {value} ug/m3 > 50.5"),
        value: Some(value),
        at: at(time_us),
    }
}

fn by(token: &str, time_us: i64, comment: Option<&str>) -> AlarmAction {
    AlarmAction {
        at: at(time_us),
        by: Some(Actor {
            token_id: token.into(),
            name: format!("token {token}"),
        }),
        comment: comment.map(str::to_owned),
    }
}

async fn tenants(store: &Arc<dyn Store>, ids: &[&str]) {
    for t in ids {
        store
            .create_tenant(&tenant(t), &format!("Tenant {t}"))
            .await
            .expect("create tenant");
    }
}

async fn raise(store: &Arc<dyn Store>, alarm: &NewAlarm) -> (Alarm, bool) {
    let raised = store.raise_alarm(alarm).await.expect("raise");
    (raised.alarm, raised.opened)
}

pub async fn rules_crud(store: Arc<dyn Store>) {
    tenants(&store, &["lyon", "brest"]).await;
    let b = pm25_rule("lyon", "b-rule");
    let a = AlarmRule {
        id: sensor("a-rule"),
        name: "Gateways offline".into(),
        severity: Severity::Critical,
        enabled: false,
        condition: RuleCondition::GatewayOffline {
            after_s: 300,
            gateways: vec![gw("gw-1")],
        },
        ..pm25_rule("lyon", "a-rule")
    };
    let other = AlarmRule {
        condition: RuleCondition::Security { events: vec![] },
        ..pm25_rule("brest", "a-rule")
    };
    let gaps = AlarmRule {
        condition: RuleCondition::SpoolGap {
            reasons: vec![GapReason::SpoolFull],
        },
        severity: Severity::Info,
        ..pm25_rule("brest", "gaps")
    };
    for rule in [&b, &a, &other, &gaps] {
        store.create_alarm_rule(rule).await.expect("create rule");
    }
    assert_eq!(
        store
            .alarm_rule(&tenant("lyon"), &sensor("b-rule"))
            .await
            .expect("get"),
        Some(b.clone())
    );
    assert_eq!(
        store
            .alarm_rule(&tenant("brest"), &sensor("b-rule"))
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        store.list_alarm_rules(&tenant("lyon")).await.expect("list"),
        [a.clone(), b.clone()]
    );
    assert_eq!(
        store.all_alarm_rules().await.expect("all"),
        [other.clone(), gaps.clone(), a.clone(), b.clone()]
    );

    assert!(matches!(
        store.create_alarm_rule(&b).await,
        Err(Error::AlreadyExists { what: "alarm rule", id }) if id == "b-rule"
    ));
    assert!(matches!(
        store.create_alarm_rule(&pm25_rule("nowhere", "x")).await,
        Err(Error::NotFound { what: "tenant", id }) if id == "nowhere"
    ));
    let nan = AlarmRule {
        condition: RuleCondition::Threshold {
            metric: metric("air.pm25"),
            zone: None,
            sensors: vec![],
            op: Comparison::Lt,
            value: f64::NAN,
            for_s: 0,
            pooled: None,
        },
        ..pm25_rule("lyon", "nan")
    };
    assert!(matches!(
        store.create_alarm_rule(&nan).await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        store
            .update_alarm_rule(&AlarmRule {
                id: sensor("b-rule"),
                ..nan
            })
            .await,
        Err(Error::Invalid { .. })
    ));

    // An update replaces everything but `created_at`.
    let changed = AlarmRule {
        name: "PM2.5 very high".into(),
        severity: Severity::Critical,
        enabled: false,
        condition: RuleCondition::Threshold {
            metric: metric("air.pm10"),
            zone: None,
            sensors: vec![],
            op: Comparison::Ge,
            value: -3.25,
            for_s: 0,
            pooled: None,
        },
        created_at: at(T0 + 999 * SEC),
        updated_at: at(T0 + 60 * SEC),
        ..b.clone()
    };
    store.update_alarm_rule(&changed).await.expect("update");
    assert_eq!(
        store
            .alarm_rule(&tenant("lyon"), &sensor("b-rule"))
            .await
            .expect("get"),
        Some(AlarmRule {
            created_at: b.created_at,
            ..changed.clone()
        })
    );
    assert!(matches!(
        store.update_alarm_rule(&pm25_rule("lyon", "missing")).await,
        Err(Error::NotFound { what: "alarm rule", id }) if id == "missing"
    ));
    // Another tenant's rule of the same id is not touched.
    assert!(matches!(
        store
            .update_alarm_rule(&AlarmRule {
                tenant: tenant("brest"),
                ..changed.clone()
            })
            .await,
        Err(Error::NotFound { .. })
    ));

    // Deleting a rule keeps its alarms.
    let (alarm, _) = raise(&store, &raising("lyon", "b-rule", series("s1"), T0, 60.0)).await;
    store
        .delete_alarm_rule(&tenant("lyon"), &sensor("b-rule"))
        .await
        .expect("delete");
    assert_eq!(
        store
            .alarm_rule(&tenant("lyon"), &sensor("b-rule"))
            .await
            .expect("get"),
        None
    );
    assert!(matches!(
        store
            .delete_alarm_rule(&tenant("lyon"), &sensor("b-rule"))
            .await,
        Err(Error::NotFound {
            what: "alarm rule",
            ..
        })
    ));
    assert!(matches!(
        store
            .delete_alarm_rule(&tenant("lyon"), &sensor("gaps"))
            .await,
        Err(Error::NotFound {
            what: "alarm rule",
            ..
        })
    ));
    assert_eq!(
        store.alarm(&tenant("lyon"), alarm.id).await.expect("alarm"),
        Some(alarm)
    );
    assert_eq!(
        store.all_alarm_rules().await.expect("all"),
        [other, gaps, a]
    );
}

pub async fn raise_counts_occurrences(store: Arc<dyn Store>) {
    tenants(&store, &["lyon"]).await;
    let first = raising("lyon", "pm25", series("s1"), T0, 60.0);
    let (opened, is_new) = raise(&store, &first).await;
    assert!(is_new);
    assert_eq!(opened.state, AlarmState::Open);
    assert_eq!(opened.occurrences, 1);
    assert_eq!(
        (opened.tenant.as_str(), opened.rule.as_str()),
        ("lyon", "pm25")
    );
    assert_eq!(opened.rule_name, "PM2.5 high (pm25)");
    assert_eq!(opened.severity, Severity::Major);
    assert_eq!(opened.subject, series("s1"));
    assert_eq!(opened.zone, Some(sensor("centre")));
    assert_eq!((opened.opened_at, opened.last_at), (at(T0), at(T0)));
    assert_eq!(opened.value, Some(60.0));
    assert_eq!(
        (opened.acknowledged.clone(), opened.cleared.clone()),
        (None, None)
    );

    let again = NewAlarm {
        message: "still high".into(),
        value: Some(72.5),
        at: at(T0 + 60 * SEC),
        ..first.clone()
    };
    let (counted, is_new) = raise(&store, &again).await;
    assert!(!is_new);
    assert_eq!(counted.id, opened.id);
    assert_eq!(counted.occurrences, 2);
    assert_eq!(counted.state, AlarmState::Open);
    assert_eq!(counted.opened_at, at(T0));
    assert_eq!(counted.last_at, at(T0 + 60 * SEC));
    assert_eq!(counted.value, Some(72.5));
    assert_eq!(counted.message, "still high");
    assert!(counted.updated_at > opened.updated_at);
    assert_eq!(
        store.alarm(&tenant("lyon"), opened.id).await.expect("get"),
        Some(counted.clone())
    );

    // Another subject or another rule: another alarm.
    let (s2, is_new) = raise(&store, &raising("lyon", "pm25", series("s2"), T0, 55.0)).await;
    assert!(is_new && s2.id != opened.id);
    let (other_rule, is_new) =
        raise(&store, &raising("lyon", "pm25-b", series("s1"), T0, 55.0)).await;
    assert!(is_new && other_rule.id != opened.id && other_rule.id != s2.id);

    // The condition ends: the active alarm is cleared automatically.
    let resolved = store
        .resolve_alarm(
            &tenant("lyon"),
            &sensor("pm25"),
            &series("s1"),
            at(T0 + 120 * SEC),
        )
        .await
        .expect("resolve")
        .expect("an active alarm");
    assert_eq!(resolved.id, opened.id);
    assert_eq!(resolved.state, AlarmState::Cleared);
    assert_eq!(
        resolved.cleared,
        Some(AlarmAction {
            at: at(T0 + 120 * SEC),
            by: None,
            comment: None,
        })
    );
    assert_eq!(resolved.occurrences, 2);
    assert!(resolved.updated_at > counted.updated_at);
    assert_eq!(
        store
            .resolve_alarm(&tenant("lyon"), &sensor("pm25"), &series("s1"), at(T0))
            .await
            .expect("resolve"),
        None
    );
    assert_eq!(
        store
            .resolve_alarm(&tenant("lyon"), &sensor("pm25"), &series("s9"), at(T0))
            .await
            .expect("resolve"),
        None
    );

    // The same condition later opens a new alarm; the cleared one is kept as history.
    let (reopened, is_new) = raise(
        &store,
        &raising("lyon", "pm25", series("s1"), T0 + 300 * SEC, 80.0),
    )
    .await;
    assert!(is_new);
    assert!(reopened.id != opened.id);
    assert_eq!(reopened.occurrences, 1);
    assert_eq!(reopened.state, AlarmState::Open);
    assert_eq!(
        store.alarm(&tenant("lyon"), opened.id).await.expect("get"),
        Some(resolved)
    );

    // Every kind of subject round-trips, with or without value and zone.
    let subjects = [
        AlarmSubject::Gateway {
            gateway: gw("gw-1"),
        },
        AlarmSubject::Gap {
            gateway: gw("gw-1"),
            first_seq: 3,
            last_seq: u64::from(u32::MAX) + 9,
        },
        AlarmSubject::Security {
            gateway: None,
            event: SecurityEventKind::TlsRejected,
        },
        AlarmSubject::Security {
            gateway: Some(gw("gw-1")),
            event: SecurityEventKind::TlsRejected,
        },
    ];
    for subject in subjects {
        let new = NewAlarm {
            zone: None,
            value: None,
            ..raising("lyon", "other", subject.clone(), T0, 0.0)
        };
        let (alarm, is_new) = raise(&store, &new).await;
        assert!(is_new, "{subject:?}");
        assert_eq!(
            (alarm.subject, alarm.zone, alarm.value),
            (subject, None, None)
        );
    }

    assert!(matches!(
        store
            .raise_alarm(&raising("nowhere", "pm25", series("s1"), T0, 1.0))
            .await,
        Err(Error::NotFound { what: "tenant", .. })
    ));
    assert!(matches!(
        store
            .raise_alarm(&raising("lyon", "pm25", series("s5"), T0, f64::INFINITY))
            .await,
        Err(Error::Invalid { .. })
    ));
}

pub async fn acknowledge_and_clear(store: Arc<dyn Store>) {
    tenants(&store, &["lyon"]).await;
    let new = raising("lyon", "pm25", series("s1"), T0, 60.0);
    let (opened, _) = raise(&store, &new).await;

    let ack = by("tok-op", T0 + 10 * SEC, Some("on it"));
    let acked = store
        .acknowledge_alarm(&tenant("lyon"), opened.id, &ack)
        .await
        .expect("acknowledge");
    assert_eq!(acked.state, AlarmState::Acknowledged);
    assert_eq!(acked.acknowledged, Some(ack.clone()));
    assert_eq!(acked.cleared, None);
    assert!(acked.updated_at > opened.updated_at);
    assert!(matches!(
        store
            .acknowledge_alarm(&tenant("lyon"), opened.id, &ack)
            .await,
        Err(Error::Conflict { what: "alarm", .. })
    ));

    // Still active: raising counts on the acknowledged alarm, which stays acknowledged.
    let (counted, is_new) = raise(
        &store,
        &NewAlarm {
            at: at(T0 + 20 * SEC),
            ..new.clone()
        },
    )
    .await;
    assert!(!is_new);
    assert_eq!(counted.id, opened.id);
    assert_eq!(counted.state, AlarmState::Acknowledged);
    assert_eq!(counted.occurrences, 2);
    assert_eq!(counted.acknowledged, Some(ack.clone()));

    let clear = by("tok-admin", T0 + 30 * SEC, None);
    let cleared = store
        .clear_alarm(&tenant("lyon"), opened.id, &clear)
        .await
        .expect("clear");
    assert_eq!(cleared.state, AlarmState::Cleared);
    assert_eq!(cleared.acknowledged, Some(ack.clone()));
    assert_eq!(cleared.cleared, Some(clear.clone()));
    assert!(cleared.updated_at > counted.updated_at);
    assert!(matches!(
        store.clear_alarm(&tenant("lyon"), opened.id, &clear).await,
        Err(Error::Conflict { what: "alarm", .. })
    ));
    assert!(matches!(
        store
            .acknowledge_alarm(&tenant("lyon"), opened.id, &ack)
            .await,
        Err(Error::Conflict { what: "alarm", .. })
    ));
    assert_eq!(
        store.alarm(&tenant("lyon"), opened.id).await.expect("get"),
        Some(cleared)
    );

    // An open alarm can be cleared by hand without an acknowledgement.
    let (second, is_new) = raise(&store, &new).await;
    assert!(is_new);
    let cleared = store
        .clear_alarm(
            &tenant("lyon"),
            second.id,
            &by("tok-op", T0 + 40 * SEC, Some("false alarm")),
        )
        .await
        .expect("clear open");
    assert_eq!(cleared.acknowledged, None);
    assert_eq!(
        cleared.cleared.and_then(|c| c.comment).as_deref(),
        Some("false alarm")
    );

    // An acknowledged alarm clears automatically when its condition ends.
    let (third, _) = raise(&store, &new).await;
    store
        .acknowledge_alarm(
            &tenant("lyon"),
            third.id,
            &by("tok-op", T0 + 50 * SEC, None),
        )
        .await
        .expect("acknowledge");
    let resolved = store
        .resolve_alarm(
            &tenant("lyon"),
            &sensor("pm25"),
            &series("s1"),
            at(T0 + 60 * SEC),
        )
        .await
        .expect("resolve")
        .expect("active");
    assert_eq!(resolved.id, third.id);
    assert_eq!(resolved.state, AlarmState::Cleared);
    assert_eq!(resolved.cleared.and_then(|c| c.by), None);
    assert!(resolved.acknowledged.is_some());

    for missing in [third.id + 1000, -1] {
        assert!(matches!(
            store
                .acknowledge_alarm(&tenant("lyon"), missing, &ack)
                .await,
            Err(Error::NotFound { what: "alarm", .. })
        ));
        assert!(matches!(
            store.clear_alarm(&tenant("lyon"), missing, &ack).await,
            Err(Error::NotFound { what: "alarm", .. })
        ));
        assert_eq!(
            store.alarm(&tenant("lyon"), missing).await.expect("get"),
            None
        );
    }
}

pub async fn alarm_tenant_isolation(store: Arc<dyn Store>) {
    tenants(&store, &["lyon", "brest"]).await;
    let (lyon, _) = raise(&store, &raising("lyon", "pm25", series("s1"), T0, 60.0)).await;
    let brest = tenant("brest");
    let action = by("tok-brest", T0, None);
    assert_eq!(store.alarm(&brest, lyon.id).await.expect("get"), None);
    assert!(matches!(
        store.acknowledge_alarm(&brest, lyon.id, &action).await,
        Err(Error::NotFound { what: "alarm", .. })
    ));
    assert!(matches!(
        store.clear_alarm(&brest, lyon.id, &action).await,
        Err(Error::NotFound { what: "alarm", .. })
    ));
    assert_eq!(
        store
            .resolve_alarm(&brest, &sensor("pm25"), &series("s1"), at(T0))
            .await
            .expect("resolve"),
        None
    );
    assert!(store
        .list_alarms(&brest, &AlarmFilter::default(), 10, 0)
        .await
        .expect("list")
        .items
        .is_empty());
    // The same rule and subject in Brest is Brest's own alarm.
    let (own, is_new) = raise(&store, &raising("brest", "pm25", series("s1"), T0, 60.0)).await;
    assert!(is_new && own.id != lyon.id);
    // Lyon's alarm is untouched.
    assert_eq!(
        store.alarm(&tenant("lyon"), lyon.id).await.expect("get"),
        Some(lyon)
    );
}

pub async fn alarm_listings(store: Arc<dyn Store>) {
    tenants(&store, &["lyon", "brest"]).await;
    // Opened at T0 + 0, 10, 20, 20, 30 s (two share a time: the higher id lists first).
    let mut ids = Vec::new();
    for (i, offset) in [0, 10, 20, 20, 30].into_iter().enumerate() {
        let (alarm, _) = raise(
            &store,
            &raising(
                "lyon",
                "pm25",
                series(&format!("s{i}")),
                T0 + offset * SEC,
                60.0,
            ),
        )
        .await;
        ids.push(alarm.id);
    }
    let (brest, _) = raise(
        &store,
        &raising("brest", "pm25", series("s0"), T0 + 5 * SEC, 1.0),
    )
    .await;
    store
        .acknowledge_alarm(&tenant("lyon"), ids[1], &by("tok", T0 + 40 * SEC, None))
        .await
        .expect("acknowledge");
    store
        .clear_alarm(&tenant("lyon"), ids[2], &by("tok", T0 + 40 * SEC, None))
        .await
        .expect("clear");
    store
        .acknowledge_alarm(&tenant("lyon"), ids[4], &by("tok", T0 + 40 * SEC, None))
        .await
        .expect("acknowledge");
    store
        .clear_alarm(&tenant("lyon"), ids[4], &by("tok", T0 + 50 * SEC, None))
        .await
        .expect("clear");

    let list = |states: Vec<AlarmState>, limit: u32, offset: u64| {
        let store = store.clone();
        async move {
            let page = store
                .list_alarms(&tenant("lyon"), &AlarmFilter { states }, limit, offset)
                .await
                .expect("list");
            (
                page.items.iter().map(|a| a.id).collect::<Vec<_>>(),
                page.next_offset,
            )
        }
    };
    let newest_first = vec![ids[4], ids[3], ids[2], ids[1], ids[0]];
    assert_eq!(list(vec![], 10, 0).await, (newest_first.clone(), None));
    assert_eq!(
        list(vec![], 2, 0).await,
        (newest_first[..2].to_vec(), Some(2))
    );
    assert_eq!(
        list(vec![], 2, 2).await,
        (newest_first[2..4].to_vec(), Some(4))
    );
    assert_eq!(list(vec![], 2, 4).await, (newest_first[4..].to_vec(), None));
    assert_eq!(list(vec![], 2, 6).await, (vec![], None));
    assert_eq!(
        list(vec![AlarmState::Open], 10, 0).await,
        (vec![ids[3], ids[0]], None)
    );
    assert_eq!(
        list(vec![AlarmState::Cleared], 10, 0).await,
        (vec![ids[4], ids[2]], None)
    );
    assert_eq!(
        list(vec![AlarmState::Open, AlarmState::Acknowledged], 2, 0).await,
        (vec![ids[3], ids[1]], Some(2))
    );
    assert_eq!(
        list(vec![AlarmState::Open, AlarmState::Acknowledged], 2, 2).await,
        (vec![ids[0]], None)
    );

    // Every tenant's active alarms, by tenant then id.
    let active: Vec<_> = store
        .active_alarms()
        .await
        .expect("active")
        .into_iter()
        .map(|a| (a.tenant.to_string(), a.id, a.state))
        .collect();
    assert_eq!(
        active,
        [
            ("brest".to_owned(), brest.id, AlarmState::Open),
            ("lyon".to_owned(), ids[0], AlarmState::Open),
            ("lyon".to_owned(), ids[1], AlarmState::Acknowledged),
            ("lyon".to_owned(), ids[3], AlarmState::Open),
        ]
    );
}

/// Two raisers of the same alarm at once (two platform nodes): one opens it, the other counts
/// an occurrence on it.
pub async fn concurrent_raises_open_once(store: Arc<dyn Store>) {
    tenants(&store, &["lyon"]).await;
    for i in 0..5 {
        let new = raising("lyon", "pm25", series(&format!("s{i}")), T0, 60.0);
        let (a, b) = tokio::join!(store.raise_alarm(&new), store.raise_alarm(&new));
        let (a, b) = (a.expect("raise"), b.expect("raise"));
        assert!(a.opened != b.opened, "exactly one opened: {a:?} {b:?}");
        assert_eq!(a.alarm.id, b.alarm.id);
        let stored = store
            .alarm(&tenant("lyon"), a.alarm.id)
            .await
            .expect("get")
            .expect("present");
        assert_eq!(stored.occurrences, 2);
    }
    let page = store
        .list_alarms(&tenant("lyon"), &AlarmFilter::default(), 100, 0)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 5);
}
