//! Alarm rules on pooled sensors, with the three tenants of `pooling`: `villeurbanne`'s
//! threshold rule with a `pooled` purpose watches `metro`'s sensors standing inside its
//! boundary when they measure — raised and cleared as on its own sensors, each change recorded
//! in `metro`'s audit log — and nothing else: not `vaulx`'s side, not a sensor once it has
//! moved out, not a purpose the agreement does not allow, nothing once the agreement ended.
//!
//! Inputs reach the alert engine in order, so an alarm on `villeurbanne`'s own sensor, fed
//! after a batch, marks that the batch was evaluated: what did not happen by then never will.

use std::time::Instant;

use beffroi_audit::AuditKind;
use beffroi_store::AuditFilter;

use super::pooling::{
    commit_valued, minutes, parties, place, pool, pool_with, Parties, EAST, METRO, PURPOSE, WEST,
};
use super::*;

on_each_backend!(a_communes_rule_watches_the_sensors_pooled_inside_its_boundary);

/// A threshold rule `id` on `air.no2` above 10, of no zone (the pooling agreement alone
/// limits what it watches); `pooled`: the purpose it watches pooled sensors for, or its own
/// sensors only.
async fn rule(h: &Harness, token: &str, id: &str, pooled: Option<&str>) -> Result<()> {
    let mut condition = json!({"kind": "threshold", "metric": "air.no2", "op": "gt",
                               "value": 10.0, "for_s": 0});
    if let Some(purpose) = pooled {
        condition["pooled"] = json!(purpose);
    }
    let body = json!({"id": id, "name": id, "severity": "warning", "condition": condition});
    let created = h.post_json("/api/v1/alarm-rules", token, &body).await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    Ok(())
}

/// A tenant's alarms, every state, by `(rule, subject's sensor, state)`.
async fn alarms(h: &Harness, token: &str) -> Result<Vec<Value>> {
    let page = h
        .get_json(
            "/api/v1/alarms?state=open&state=acknowledged&state=cleared",
            token,
        )
        .await?;
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

/// Feeds `villeurbanne`'s own sensor `own` a reading over its own rule and waits for that
/// alarm: every input handed to the engine before has been evaluated.
async fn evaluated(h: &Harness, p: &Parties, seq: u64, own: &str) -> Result<()> {
    commit_valued(h, WEST, seq, &[own], Timestamp::now(), 99.0).await?;
    until(h, &p.west, &format!("the alarm on {own}"), |alarms| {
        alarms.iter().any(|a| a["subject"]["sensor"] == own)
    })
    .await
    .map(drop)
}

/// `token`'s alarms once `done` holds of them (at most 5 s).
async fn until(
    h: &Harness,
    token: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alarms = alarms(h, token).await?;
        if done(&alarms) {
            return Ok(alarms);
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: {alarms:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most 5 s) for the alert engine to hold `n` pooled watches.
async fn watches(h: &Harness, n: i64, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.metrics.alerts_pooled_watches.get() != n {
        let held = h.metrics.alerts_pooled_watches.get();
        anyhow::ensure!(Instant::now() < deadline, "{what}: {held} watches");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The alarm entries of `metro`'s audit log: `(grantee, kind, change, sensor)`.
async fn alarm_entries(h: &Harness) -> Result<Vec<(String, AuditKind, String, String)>> {
    let entries = h
        .store
        .audit_entries(&TenantId::new(METRO)?, &AuditFilter::default(), 0, 1000)
        .await?;
    Ok(entries
        .into_iter()
        .filter(|e| e.detail.get("channel").is_some_and(|c| c == "alarm"))
        .map(|e| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let alarm = &e.detail["query"]["alarm"];
            (
                text(&e.detail["grantee"]),
                e.kind,
                text(&alarm["change"]),
                text(&alarm["sensor"]),
            )
        })
        .collect())
}

/// `(sensor, state)` of the pooled alarms among `alarms`, sorted.
fn pooled_sensors(alarms: &[Value]) -> Vec<(String, String)> {
    let mut sensors: Vec<_> = alarms
        .iter()
        .filter(|a| a["subject"]["kind"] == "pooled")
        .map(|a| {
            (
                a["subject"]["sensor"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                a["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    sensors.sort();
    sensors
}

/// `tenant`'s entries of [`alarm_entries`]: `(kind, change, sensor)`.
fn entries_of(
    entries: &[(String, AuditKind, String, String)],
    tenant: &str,
) -> Vec<(AuditKind, String, String)> {
    let grantee = format!("tenant:{tenant}");
    entries
        .iter()
        .filter(|(g, ..)| *g == grantee)
        .map(|(_, kind, change, sensor)| (*kind, change.clone(), sensor.clone()))
        .collect()
}

fn permit(change: &str, sensor: &str) -> (AuditKind, String, String) {
    (AuditKind::AccessPermit, change.into(), sensor.into())
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = list
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// The sensors `vaulx` reads of `metro`'s through REST (pseudonymised), in time order.
async fn east_reads(h: &Harness, p: &Parties, from: Timestamp) -> Result<Vec<String>> {
    let page = h
        .get_json(
            &format!(
                "/api/v1/shared/{METRO}/readings?purpose={PURPOSE}&from={}&to={}",
                ts(from),
                ts(Timestamp::now())
            ),
            &p.east,
        )
        .await?;
    Ok(page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["sensor"].as_str().unwrap_or_default().to_owned())
        .collect())
}

async fn a_communes_rule_watches_the_sensors_pooled_inside_its_boundary(h: Harness) -> Result<()> {
    let p = parties(&h).await?;
    let now = Timestamp::now();
    let start = minutes(now, -180);
    for (sensor, lon) in [
        ("s-west", 4.82),
        ("s-stay", 4.81),
        ("s-east", 4.88),
        ("s-far", 5.50),
    ] {
        place(&h, &p, sensor, lon, start).await?;
    }
    pool(&h, &p, WEST, start).await?;
    // vaulx sees metro's sensors under pseudonyms only.
    pool_with(&h, &p, EAST, start, true).await?;
    rule(&h, &p.west, "no2-pooled", Some(PURPOSE)).await?;
    // A purpose the agreement does not allow watches nothing of metro's.
    rule(&h, &p.west, "no2-billing", Some("billing")).await?;
    rule(&h, &p.west, "no2-own", None).await?;
    rule(&h, &p.east, "no2-pooled", Some(PURPOSE)).await?;
    watches(&h, 2, "no2-pooled of each commune on metro").await?;

    // Over the threshold everywhere: each commune's rule raises on its side's sensor only.
    commit_valued(
        &h,
        METRO,
        1,
        &["s-west", "s-east", "s-far"],
        minutes(now, -60),
        50.0,
    )
    .await?;
    let west = until(&h, &p.west, "the pooled alarm", |a| !a.is_empty()).await?;
    assert_eq!(west.len(), 1, "{west:?}");
    let alarm = &west[0];
    assert_eq!(
        alarm["subject"],
        json!({"kind": "pooled", "operator": METRO, "sensor": "s-west", "metric": "air.no2"})
    );
    assert_eq!(alarm["rule"], "no2-pooled");
    assert_eq!(alarm["zone"], "commune");
    assert_eq!(alarm["state"], "open");
    let message = alarm["message"].as_str().unwrap_or_default();
    assert!(message.contains("pooled, operated by metro"), "{message}");
    evaluated(&h, &p, 1, "own-1").await?;
    // Own sensors raise every rule of villeurbanne's (a pooled rule watches its own too);
    // of metro's, s-west only.
    assert_eq!(
        pooled_sensors(&alarms(&h, &p.west).await?),
        pairs(&[("s-west", "open")])
    );
    // vaulx's alarm names s-east as vaulx reads it: by the pseudonym REST gives it.
    let east_sensors = east_reads(&h, &p, start).await?;
    assert_eq!(east_sensors.len(), 1, "{east_sensors:?}");
    let s_east = east_sensors[0].clone();
    assert!(s_east.starts_with("p_"), "{s_east}");
    let east = alarms(&h, &p.east).await?;
    assert_eq!(pooled_sensors(&east), pairs(&[(&s_east, "open")]));
    assert!(
        !east.iter().any(|a| a.to_string().contains("s-east")),
        "{east:?}"
    );
    assert!(alarms(&h, &p.metro).await?.is_empty(), "metro has no rule");
    let entries = alarm_entries(&h).await?;
    assert_eq!(entries_of(&entries, WEST), [permit("raised", "s-west")]);
    assert_eq!(entries_of(&entries, EAST), [permit("raised", &s_east)]);

    // Back under the threshold: cleared, and recorded.
    commit_valued(&h, METRO, 2, &["s-west"], minutes(now, -50), 5.0).await?;
    until(&h, &p.west, "the pooled alarm cleared", |a| {
        pooled_sensors(a) == pairs(&[("s-west", "cleared")])
    })
    .await?;
    assert_eq!(
        entries_of(&alarm_entries(&h).await?, WEST),
        [permit("raised", "s-west"), permit("cleared", "s-west")]
    );

    // s-west crosses to vaulx's side at `moved`: its later readings are vaulx's to watch, no
    // longer villeurbanne's; s-stay's still are.
    let moved = minutes(now, -40);
    place(&h, &p, "s-west", 4.87, moved).await?;
    commit_valued(&h, METRO, 3, &["s-west", "s-stay"], minutes(now, -30), 60.0).await?;
    evaluated(&h, &p, 2, "own-2").await?;
    assert_eq!(
        pooled_sensors(&alarms(&h, &p.west).await?),
        pairs(&[("s-stay", "open"), ("s-west", "cleared")])
    );
    let east_sensors = east_reads(&h, &p, start).await?;
    let s_west = east_sensors.last().cloned().unwrap_or_default();
    assert_eq!(east_sensors, [s_east.clone(), s_west.clone()]);
    assert_eq!(
        pooled_sensors(&alarms(&h, &p.east).await?),
        pairs(&[(&s_east, "open"), (&s_west, "open")])
    );

    // metro ends villeurbanne's pooling now: its watch goes, and nothing more reaches its
    // rule — not even the clearing of s-stay's alarm. vaulx's goes on.
    let record = h
        .get_json(&format!("/api/v1/agreements/pool-{WEST}"), &p.metro)
        .await?;
    let mut agreement = record["agreement"].clone();
    agreement["not_after"] = json!(ts(Timestamp::now()));
    let put = h
        .put_json(
            &format!("/api/v1/agreements/pool-{WEST}"),
            &p.metro,
            &agreement,
        )
        .await?;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    watches(&h, 1, "villeurbanne's watch ends with its agreement").await?;
    commit_valued(&h, METRO, 4, &["s-stay", "s-west"], minutes(now, -20), 5.0).await?;
    evaluated(&h, &p, 3, "own-3").await?;
    assert_eq!(
        pooled_sensors(&alarms(&h, &p.west).await?),
        pairs(&[("s-stay", "open"), ("s-west", "cleared")]),
        "nothing evaluated after the end"
    );
    assert_eq!(
        pooled_sensors(&alarms(&h, &p.east).await?),
        pairs(&[(&s_east, "open"), (&s_west, "cleared")])
    );
    let entries = alarm_entries(&h).await?;
    assert_eq!(
        entries_of(&entries, WEST),
        [
            permit("raised", "s-west"),
            permit("cleared", "s-west"),
            permit("raised", "s-stay")
        ]
    );
    assert_eq!(
        entries_of(&entries, EAST),
        [
            permit("raised", &s_east),
            permit("raised", &s_west),
            permit("cleared", &s_west)
        ]
    );
    h.stop().await
}
