//! Pooled sensor networks, with three tenants: the metropole `metro` operates air-quality
//! sensors and pools them, by territory, to two adjoining communes, `villeurbanne` (west of
//! longitude 4.85) and `vaulx` (east of it). Each commune reads exactly the sensors that stood
//! inside its boundary when each reading was measured — through REST, the export and a live
//! view — never `metro`'s sensor outside both; a sensor moved across the boundary changes
//! sides at its move time; an agreement ended by its operator stops the live view within a
//! second; every access is in `metro`'s audit log, and its usage report counts them.

use std::collections::BTreeSet;
use std::time::Instant;

use beffroi_audit::AuditKind;
use beffroi_store::AuditFilter;

use super::live::{next, open, send, Socket};
use super::*;

on_each_backend!(three_tenants_share_a_pooled_network_by_territory);

pub(super) const METRO: &str = "metro";
pub(super) const WEST: &str = "villeurbanne";
pub(super) const EAST: &str = "vaulx";
pub(super) const PURPOSE: &str = "environmental_monitoring";

/// Admin tokens of the three tenants, created with them.
pub(super) struct Parties {
    pub(super) metro: String,
    pub(super) west: String,
    pub(super) east: String,
}

pub(super) fn minutes(t: Timestamp, n: i64) -> Timestamp {
    Timestamp::from_unix_micros(t.unix_micros() + n * MINUTE_US)
}

fn square(x0: f64, x1: f64) -> Value {
    json!({"type": "Polygon",
           "coordinates": [[[x0, 45.70], [x1, 45.70], [x1, 45.80], [x0, 45.80], [x0, 45.70]]]})
}

pub(super) async fn parties(h: &Harness) -> Result<Parties> {
    for (id, name) in [
        (METRO, "Métropole"),
        (WEST, "Villeurbanne"),
        (EAST, "Vaulx"),
    ] {
        h.store.create_tenant(&TenantId::new(id)?, name).await?;
    }
    let parties = Parties {
        metro: issue_token(&*h.store, METRO, Role::Admin).await?,
        west: issue_token(&*h.store, WEST, Role::Admin).await?,
        east: issue_token(&*h.store, EAST, Role::Admin).await?,
    };
    // Each commune draws its own boundary; they share the edge at longitude 4.85.
    for (token, x0, x1) in [(&parties.west, 4.80, 4.85), (&parties.east, 4.85, 4.90)] {
        let zone = json!({"name": "Commune", "geometry": square(x0, x1)});
        let put = h.put_json("/api/v1/zones/commune", token, &zone).await?;
        assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    }
    Ok(parties)
}

/// Places (or moves) one of `metro`'s sensors at longitude `lon`, from `at`.
pub(super) async fn place(
    h: &Harness,
    p: &Parties,
    sensor: &str,
    lon: f64,
    at: Timestamp,
) -> Result<()> {
    let body = json!({"kind": "air", "lat": 45.75, "lon": lon, "placed_at": ts(at)});
    let put = h
        .put_json(&format!("/api/v1/sensors/{sensor}"), &p.metro, &body)
        .await?;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    assert_eq!(put.json()["placed_at"], json!(ts(at)), "{}", put.text());
    Ok(())
}

/// `metro`'s pooling agreement with `commune`: raw rows of `air.*` of the sensors standing in
/// the commune's zone `commune`, from `from` on.
pub(super) async fn pool(h: &Harness, p: &Parties, commune: &str, from: Timestamp) -> Result<()> {
    pool_with(h, p, commune, from, false).await
}

/// [`pool`], with sensor ids pseudonymised or not.
pub(super) async fn pool_with(
    h: &Harness,
    p: &Parties,
    commune: &str,
    from: Timestamp,
    pseudonymise: bool,
) -> Result<()> {
    let agreement = json!({
        "id": format!("pool-{commune}"), "grantee": format!("tenant:{commune}"),
        "state": "active", "pooling": true,
        "not_before": ts(from), "not_after": "2100-01-01T00:00:00Z",
        "purposes": [PURPOSE], "action": "read_raw",
        "target": { "metrics": ["air.*"], "territories": ["commune"] },
        "functions": ["avg"], "k": 1, "spatial_level": "sensor",
        "pseudonymise": pseudonymise, "fields": ["time", "value", "metric", "sensor"],
        "embargo_s": 0
    });
    let created = h
        .post_json("/api/v1/agreements", &p.metro, &agreement)
        .await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    Ok(())
}

/// Commits one batch of `metro`'s (one `air.no2` reading per sensor at `time`, valued `seq`)
/// and fans it out, as the ingest does.
async fn commit(h: &Harness, seq: u64, sensors: &[&str], time: Timestamp) -> Result<()> {
    commit_valued(h, METRO, seq, sensors, time, seq as f64).await
}

/// A batch of `tenant`'s (gateway `gw-<tenant>`) with one `air.no2` reading per sensor at
/// `time`, all valued `value`, committed and fanned out to live views and the alert engine.
pub(super) async fn commit_valued(
    h: &Harness,
    tenant: &str,
    seq: u64,
    sensors: &[&str],
    time: Timestamp,
    value: f64,
) -> Result<()> {
    let batch = CommitBatch {
        tenant: TenantId::new(tenant)?,
        gateway: GatewayId::new(format!("gw-{tenant}"))?,
        seq,
        key_id: KeyId::new(format!("k-{tenant}"))?,
        signature: [0; 64],
        received_at: Timestamp::now(),
        readings: sensors
            .iter()
            .map(|s| reading(s, "air.no2", "ug/m3", time, ReadingValue::Number(value)))
            .collect(),
    };
    h.store.commit(std::slice::from_ref(&batch)).await?;
    h.live.batch_committed(&batch);
    h.alerts.batch_committed(Arc::new(batch));
    Ok(())
}

type Seen = BTreeSet<(String, String)>;

/// `(sensor, time)` of the rows of a JSON page or of CSV text with a header.
fn rows_of_page(page: &Value) -> Seen {
    page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["sensor"].as_str().unwrap_or("").to_owned(),
                r["time"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn rows_of_csv(text: &str) -> Seen {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let column = |name| header.iter().position(|h| *h == name).unwrap_or(usize::MAX);
    let (sensor, time) = (column("sensor"), column("time"));
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let cell = |i: usize| cells.get(i).copied().unwrap_or("").to_owned();
            (cell(sensor), cell(time))
        })
        .collect()
}

fn seen(rows: &[(&str, Timestamp)]) -> Seen {
    rows.iter()
        .map(|(s, t)| ((*s).to_owned(), ts(*t)))
        .collect()
}

/// The sensors of the next live frame.
async fn live_sensors(socket: &mut Socket) -> Result<BTreeSet<String>> {
    let frame = next(socket).await?;
    assert_eq!(frame["type"], "readings", "{frame}");
    Ok(frame["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| i["sensor"].as_str().unwrap_or("").to_owned())
        .collect())
}

fn subscribe(id: &str) -> Value {
    json!({"type": "subscribe", "id": id, "stream": "readings", "grantor": METRO,
           "purpose": PURPOSE, "filter": {"metrics": ["air.*"]}, "snapshot": false})
}

async fn three_tenants_share_a_pooled_network_by_territory(h: Harness) -> Result<()> {
    let p = parties(&h).await?;
    let now = Timestamp::now();
    let (start, t1, moved, t2) = (
        minutes(now, -180),
        minutes(now, -90),
        minutes(now, -60),
        minutes(now, -30),
    );
    for (sensor, lon) in [
        ("s-west", 4.82),
        ("s-east", 4.88),
        ("s-far", 5.50),
        ("s-mover", 4.83),
    ] {
        place(&h, &p, sensor, lon, start).await?;
    }
    pool(&h, &p, WEST, start).await?;
    pool(&h, &p, EAST, start).await?;
    let all = ["s-west", "s-east", "s-far", "s-mover"];
    commit(&h, 1, &all, t1).await?;
    // s-mover crosses the boundary at `moved`, eastwards.
    place(&h, &p, "s-mover", 4.87, moved).await?;
    commit(&h, 2, &all, t2).await?;

    // History, through REST and the export: each commune's sensors, placed at each time.
    let range = format!("from={}&to={}", ts(start), ts(now));
    let expected = [
        (
            WEST,
            &p.west,
            seen(&[("s-west", t1), ("s-west", t2), ("s-mover", t1)]),
        ),
        (
            EAST,
            &p.east,
            seen(&[("s-east", t1), ("s-east", t2), ("s-mover", t2)]),
        ),
    ];
    for (commune, token, rows) in &expected {
        let page = h
            .get_json(
                &format!("/api/v1/shared/{METRO}/readings?purpose={PURPOSE}&{range}"),
                token,
            )
            .await?;
        assert_eq!(&rows_of_page(&page), rows, "{commune} over REST: {page}");
        let export = h
            .get(
                &format!("/api/v1/shared/{METRO}/export?purpose={PURPOSE}&{range}"),
                token,
            )
            .await?;
        assert_eq!(export.status, StatusCode::OK, "{}", export.text());
        assert_eq!(&rows_of_csv(&export.text()), rows, "{commune} export");
        assert!(!export.text().contains("s-far") && !page.to_string().contains("s-far"));
    }
    // The registry each sees: where the sensors stand now.
    for (token, sensors) in [
        (&p.west, vec!["s-west"]),
        (&p.east, vec!["s-east", "s-mover"]),
    ] {
        let listed = h
            .get_json(
                &format!("/api/v1/shared/{METRO}/sensors?purpose={PURPOSE}"),
                token,
            )
            .await?;
        let ids: Vec<&str> = listed["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["sensor"].as_str())
            .collect();
        assert_eq!(ids, sensors, "{listed}");
    }
    // A tenant with no pooling agreement reads nothing.
    let denied = h
        .get(
            &format!("/api/v1/shared/{METRO}/readings?purpose={PURPOSE}&{range}"),
            &h.tokens.a_admin,
        )
        .await?;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text());

    // Live: each commune's view carries its sensors; a move changes sides.
    let mut west = open(&h, Some(&p.west)).await?;
    let mut east = open(&h, Some(&p.east)).await?;
    for (socket, id) in [(&mut west, "west"), (&mut east, "east")] {
        assert_eq!(next(socket).await?["type"], "hello");
        send(socket, subscribe(id)).await?;
        let subscribed = next(socket).await?;
        assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    }
    commit(&h, 3, &all, Timestamp::now()).await?;
    assert_eq!(
        live_sensors(&mut west).await?,
        BTreeSet::from(["s-west".to_owned()])
    );
    assert_eq!(
        live_sensors(&mut east).await?,
        BTreeSet::from(["s-east".to_owned(), "s-mover".to_owned()])
    );
    place(&h, &p, "s-mover", 4.84, Timestamp::now()).await?;
    let back = Instant::now();
    let mut seq = 4;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        commit(&h, seq, &["s-west", "s-mover"], Timestamp::now()).await?;
        seq += 1;
        let sensors = live_sensors(&mut west).await?;
        if sensors.contains("s-mover") {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "s-mover never reached the west view"
        );
    }

    // The operator ends the eastern pooling now: the view ends within a second, REST is refused.
    let record = h
        .get_json(&format!("/api/v1/agreements/pool-{EAST}"), &p.metro)
        .await?;
    let mut agreement = record["agreement"].clone();
    let ending = Instant::now();
    agreement["not_after"] = json!(ts(Timestamp::now()));
    let put = h
        .put_json(
            &format!("/api/v1/agreements/pool-{EAST}"),
            &p.metro,
            &agreement,
        )
        .await?;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    loop {
        let message = next(&mut east).await?;
        if message["type"] == "ended" {
            assert_eq!(message["id"], "east", "{message}");
            break;
        }
        assert_eq!(message["type"], "readings", "{message}");
    }
    let took = ending.elapsed();
    assert!(took < Duration::from_secs(1), "ended after {took:?}");
    let refused = h
        .get(
            &format!("/api/v1/shared/{METRO}/readings?purpose={PURPOSE}&{range}"),
            &p.east,
        )
        .await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    drop((west, east));

    // Every access is in metro's log: REST, export and live (opened and closed), for both.
    let metro = TenantId::new(METRO)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let entries = loop {
        let entries = h
            .store
            .audit_entries(&metro, &AuditFilter::default(), 0, 1000)
            .await?;
        let closed = entries
            .iter()
            .filter(|e| {
                e.detail
                    .get("query")
                    .is_some_and(|q| q["live"]["ended"].is_string())
            })
            .count();
        if closed == 2 {
            break entries;
        }
        assert!(
            Instant::now() < deadline,
            "{closed} live views closed in the log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for commune in [WEST, EAST] {
        let grantee = format!("tenant:{commune}");
        let channels: BTreeSet<&str> = entries
            .iter()
            .filter(|e| e.kind == AuditKind::AccessPermit && e.detail["grantee"] == grantee)
            .filter_map(|e| e.detail["channel"].as_str())
            .collect();
        assert_eq!(
            channels,
            BTreeSet::from(["export", "live", "rest"]),
            "{commune}"
        );
    }

    // The usage report counts them, per agreement: exactly what the log says, and the
    // sensors pooled over the range (s-mover on both sides of the boundary).
    let until = Timestamp::now();
    let usage = h
        .get_json(
            &format!("/api/v1/pooling/usage?from={}&to={}", ts(moved), ts(until)),
            &p.metro,
        )
        .await?;
    for commune in [WEST, EAST] {
        let agreement = format!("pool-{commune}");
        let in_log: u64 = entries
            .iter()
            .filter(|e| e.kind == AuditKind::AccessPermit && e.time >= moved && e.time < until)
            .filter(|e| {
                e.detail
                    .get("agreement")
                    .is_some_and(|a| a["id"] == agreement.as_str())
            })
            .map(|e| e.detail["rows"].as_u64().unwrap_or(0))
            .sum();
        let rows: Vec<&Value> = usage["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["beneficiary"] == commune && r["agreement"] == agreement.as_str())
            .collect();
        let served: u64 = rows
            .iter()
            .filter_map(|r| r["readings_served"].as_u64())
            .sum();
        assert!(served >= 6, "REST and export rows at least: {usage}");
        assert_eq!(served, in_log, "{commune}: {usage}");
        let sensors = rows.iter().filter_map(|r| r["sensors"].as_u64()).max();
        assert_eq!(sensors, Some(2), "{commune}: {usage}");
    }
    let csv = h
        .get(
            &format!("/api/v1/pooling/usage?from={}&format=csv", ts(moved)),
            &p.metro,
        )
        .await?;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text());
    let disposition = csv
        .headers
        .get("content-disposition")
        .and_then(|v| v.to_str().ok());
    assert!(
        disposition.is_some_and(|d| d.starts_with("attachment; filename=\"pooling-usage_metro_")),
        "{disposition:?}"
    );
    assert!(csv.text().starts_with(
        "beneficiary,agreement,period_from,period_to,sensors,accesses,readings_served,denied\r\n"
    ));
    h.stop().await
}
