//! Grantee live views over a real websocket: tenant B follows tenant A's readings under a
//! raw, pseudonymising agreement and gets exactly what the agreement allows; a wrong purpose
//! or no agreement is refused and logged; revoking the agreement ends the view within a
//! second; opening and closing the view are both in A's audit log. Under an embargo, the view
//! is delayed: stored values arrive once they pass it (judged at the API's clock, which the
//! test moves), each once, in order.

use std::sync::atomic::Ordering;
use std::time::Instant;

use beffroi_audit::{AuditEntry, AuditKind};
use beffroi_policy::SensorTag;
use beffroi_store::{AuditFilter, Sensor};

use super::live::{next, open, send, Socket};
use super::*;

on_each_backend!(
    a_grantee_view_carries_what_its_agreement_allows_and_ends_on_revocation,
    an_embargoed_view_delays_each_value_until_it_passes_the_embargo,
);

/// A's sensors: `gl-in` is in the agreement's target (tagged), `gl-out` is not.
async fn sensors(h: &Harness) -> Result<()> {
    for (id, tags) in [
        ("gl-in", vec![SensorTag::new("air-quality")?]),
        ("gl-out", vec![]),
    ] {
        h.store
            .upsert_sensor(&Sensor {
                tenant: TenantId::new(A)?,
                id: SensorId::new(id)?,
                kind: "air".into(),
                unit: None,
                lat: Some(45.75),
                lon: Some(4.85),
                zone: None,
                tags,
                placed_at: None,
            })
            .await?;
    }
    Ok(())
}

/// One batch of A: `air.pm25` of both sensors and `water.level` of the tagged one.
fn batch(seq: u64, value: f64) -> Result<CommitBatch> {
    let now = Timestamp::now();
    Ok(CommitBatch {
        tenant: TenantId::new(A)?,
        gateway: GatewayId::new("gw-a1")?,
        seq,
        key_id: KeyId::new("k-a1")?,
        signature: [0; 64],
        received_at: now,
        readings: vec![
            reading(
                "gl-in",
                "air.pm25",
                "ug/m3",
                now,
                ReadingValue::Number(value),
            ),
            reading(
                "gl-out",
                "air.pm25",
                "ug/m3",
                now,
                ReadingValue::Number(-1.0),
            ),
            reading("gl-in", "water.level", "m", now, ReadingValue::Number(-2.0)),
        ],
    })
}

/// A batch of A committed to the store and fanned out, as ingest does: `(sensor, metric,
/// time, value)` each.
async fn commit(h: &Harness, seq: u64, readings: &[(&str, &str, Timestamp, f64)]) -> Result<()> {
    let batch = CommitBatch {
        tenant: TenantId::new(A)?,
        gateway: GatewayId::new("gw-a1")?,
        seq,
        key_id: KeyId::new("k-a1")?,
        signature: [0; 64],
        received_at: Timestamp::now(),
        readings: readings
            .iter()
            .map(|(sensor, metric, time, value)| {
                reading(sensor, metric, "ug/m3", *time, ReadingValue::Number(*value))
            })
            .collect(),
    };
    h.store.commit(std::slice::from_ref(&batch)).await?;
    h.live.batch_committed(&batch);
    Ok(())
}

fn subscribe(id: &str, grantor: &str, purpose: &str) -> Value {
    json!({"type": "subscribe", "id": id, "stream": "readings", "grantor": grantor,
           "purpose": purpose, "filter": {"metrics": ["air.*", "water.*"]}, "snapshot": false})
}

/// The closing entry of a live view, once written (in the background).
async fn closing_entry(h: &Harness) -> Result<AuditEntry> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let permits = live_entries(h, AuditKind::AccessPermit).await?;
        if let Some(closing) = permits
            .into_iter()
            .find(|e| e.detail["query"]["live"]["ended"].is_string())
        {
            return Ok(closing);
        }
        anyhow::ensure!(Instant::now() < deadline, "no closing entry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn live_entries(h: &Harness, kind: AuditKind) -> Result<Vec<AuditEntry>> {
    let filter = AuditFilter {
        kinds: vec![kind],
        ..AuditFilter::default()
    };
    let entries = h
        .store
        .audit_entries(&TenantId::new(A)?, &filter, 0, 1000)
        .await?;
    Ok(entries
        .into_iter()
        .filter(|e| e.detail["channel"] == "live")
        .collect())
}

/// Revokes `agreement` through the API and checks that view `id` gets `ended` within a second.
async fn revoke_and_see_the_view_end(
    h: &Harness,
    agreement: &str,
    grantee: &mut Socket,
    id: &str,
) -> Result<()> {
    let revoked_at = Instant::now();
    let revoked = h
        .post_json(
            &format!("/api/v1/agreements/{agreement}/state"),
            &h.tokens.a_admin,
            &json!({"state": "revoked"}),
        )
        .await?;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text());
    let ended = next(grantee).await?;
    let took = revoked_at.elapsed();
    assert_eq!(
        (ended["type"].as_str(), ended["id"].as_str()),
        (Some("ended"), Some(id)),
        "{ended}"
    );
    assert!(took < Duration::from_secs(1), "ended after {took:?}");
    Ok(())
}

async fn a_grantee_view_carries_what_its_agreement_allows_and_ends_on_revocation(
    h: Harness,
) -> Result<()> {
    sensors(&h).await?;
    let agreement = json!({
        "id": "paris-live", "grantee": format!("tenant:{B}"), "state": "active",
        "not_before": "2020-01-01T00:00:00Z", "not_after": "2100-01-01T00:00:00Z",
        "purposes": ["research"], "action": "read_raw",
        "target": { "metrics": ["air.*"], "tags": ["air-quality"] },
        "functions": ["avg"], "k": 1, "spatial_level": "sensor",
        "pseudonymise": true, "fields": ["time", "value", "sensor"], "embargo_s": 0
    });
    let created = h
        .post_json("/api/v1/agreements", &h.tokens.a_admin, &agreement)
        .await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());

    let mut grantee = open(&h, Some(&h.tokens.b_viewer)).await?;
    assert_eq!(next(&mut grantee).await?["type"], "hello");

    // A purpose the agreement does not name, and a grantor with no agreement: refused.
    send(&mut grantee, subscribe("wrong", A, "billing")).await?;
    let refused = next(&mut grantee).await?;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{refused}"
    );
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("wrong_purpose"),
        "{refused}"
    );
    let mut owner = open(&h, Some(&h.tokens.a_viewer)).await?;
    assert_eq!(next(&mut owner).await?["type"], "hello");
    send(&mut owner, subscribe("theirs", B, "research")).await?;
    let refused = next(&mut owner).await?;
    assert_eq!(refused["code"], "forbidden", "{refused}");

    // Under the agreement: one series (gl-in's air.pm25), nothing else.
    send(&mut grantee, subscribe("shared", A, "research")).await?;
    let subscribed = next(&mut grantee).await?;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    h.live.batch_committed(&batch(1, 17.5)?);
    let frame = next(&mut grantee).await?;
    assert_eq!(frame["type"], "readings", "{frame}");
    let items = frame["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "only the tagged sensor's air.*: {frame}");
    let item = &items[0];
    assert_eq!(item["value"], 17.5, "{frame}");
    let keys: BTreeSet<&str> = item
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys, BTreeSet::from(["sensor", "time", "value"]), "{frame}");
    let pseudonym = item["sensor"].as_str().unwrap_or("");
    assert!(
        pseudonym.starts_with("p_") && !frame.to_string().contains("gl-in"),
        "{frame}"
    );
    let opened = live_entries(&h, AuditKind::AccessPermit).await?;
    assert_eq!(
        opened.len(),
        1,
        "the opening permit is logged before values leave"
    );
    assert_eq!(opened[0].detail["query"]["live"]["opened"], true);
    assert_eq!(live_entries(&h, AuditKind::AccessDeny).await?.len(), 1);

    // Revoked through the API: the view ends within a second, and nothing follows.
    revoke_and_see_the_view_end(&h, "paris-live", &mut grantee, "shared").await?;
    h.live.batch_committed(&batch(2, 99.0)?);
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&mut grantee, json!({"type": "ping", "nonce": 1})).await?;
    let after = next(&mut grantee).await?;
    assert_eq!(after["type"], "pong", "nothing after the end: {after}");

    // The closing entry: one value released, with the hash of what left.
    let closing = closing_entry(&h).await?;
    assert_eq!(closing.detail["rows"], 1, "{:?}", closing.detail);
    assert!(
        closing.detail["result_hash"].is_string(),
        "{:?}",
        closing.detail
    );
    h.stop().await
}

/// The items of the next frame, which must be a `readings` frame: each with only the
/// agreement's fields and a pseudonym for `gl-in`.
async fn delayed_items(socket: &mut Socket) -> Result<Vec<Value>> {
    let frame = next(socket).await?;
    assert_eq!(frame["type"], "readings", "{frame}");
    let items = frame["items"].as_array().cloned().unwrap_or_default();
    for item in &items {
        let keys: BTreeSet<&str> = item
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, BTreeSet::from(["sensor", "time", "value"]), "{frame}");
        assert!(
            item["sensor"].as_str().is_some_and(|s| s.starts_with("p_")),
            "{frame}"
        );
    }
    assert!(!frame.to_string().contains("gl-"), "{frame}");
    Ok(items)
}

/// Asks for a pong after a tick or two: nothing else may come first.
async fn nothing_more(socket: &mut Socket) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send(socket, json!({"type": "ping", "nonce": "quiet"})).await?;
    let after = next(socket).await?;
    assert_eq!(after["type"], "pong", "nothing more: {after}");
    Ok(())
}

async fn an_embargoed_view_delays_each_value_until_it_passes_the_embargo(h: Harness) -> Result<()> {
    sensors(&h).await?;
    // The API's clock stands still at `t` until the test moves it.
    let t = Timestamp::now();
    let second = |n: f64| Timestamp::from_unix_micros(t.unix_micros() + (n * 1e6) as i64);
    let set_clock = |at: Timestamp| h.now_us.store(at.unix_micros(), Ordering::SeqCst);
    set_clock(t);
    let agreement = json!({
        "id": "paris-delayed", "grantee": format!("tenant:{B}"), "state": "active",
        "not_before": "2020-01-01T00:00:00Z", "not_after": "2100-01-01T00:00:00Z",
        "purposes": ["research"], "action": "read_raw",
        "target": { "metrics": ["air.*"], "tags": ["air-quality"] },
        "functions": ["avg"], "k": 1, "spatial_level": "sensor",
        "pseudonymise": true, "fields": ["time", "value", "sensor"], "embargo_s": 5
    });
    let created = h
        .post_json("/api/v1/agreements", &h.tokens.a_admin, &agreement)
        .await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    // Older than the embargo when the view opens: the snapshot's; then what comes later.
    commit(
        &h,
        100,
        &[
            ("gl-in", "air.pm25", second(-20.0), 1.0),
            ("gl-out", "air.pm25", second(-20.0), -1.0),
        ],
    )
    .await?;

    let mut grantee = open(&h, Some(&h.tokens.b_viewer)).await?;
    assert_eq!(next(&mut grantee).await?["type"], "hello");
    let mut request = subscribe("delayed", A, "research");
    request["snapshot"] = json!(true);
    send(&mut grantee, request).await?;
    let subscribed = next(&mut grantee).await?;
    assert_eq!(
        (
            subscribed["type"].as_str(),
            subscribed["embargo_s"].as_u64()
        ),
        (Some("subscribed"), Some(5)),
        "{subscribed}"
    );
    let snapshot = next(&mut grantee).await?;
    assert_eq!(snapshot["snapshot"], true, "{snapshot}");
    let values: Vec<&Value> = snapshot["items"]
        .as_array()
        .map(|items| items.iter().map(|i| &i["value"]).collect())
        .unwrap_or_default();
    assert_eq!(values, [&json!(1.0)], "{snapshot}");

    // Committed now: nothing of it comes while it is younger than the embargo.
    commit(
        &h,
        101,
        &[
            ("gl-in", "air.pm25", second(1.0), 2.0),
            ("gl-in", "water.level", second(1.0), -2.0),
            ("gl-out", "air.pm25", second(1.0), -1.0),
        ],
    )
    .await?;
    commit(&h, 102, &[("gl-in", "air.pm25", second(2.0), 3.0)]).await?;
    nothing_more(&mut grantee).await?;

    // Each passes the embargo in turn, and comes then, once, in order.
    set_clock(second(6.5));
    let items = delayed_items(&mut grantee).await?;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["value"], 2.0);
    assert_eq!(items[0]["time"], json!(second(1.0)));
    set_clock(second(7.5));
    let items = delayed_items(&mut grantee).await?;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["value"], 3.0);
    assert_eq!(items[0]["time"], json!(second(2.0)));
    nothing_more(&mut grantee).await?;

    // Revoked while a value waits for its embargo: the view ends within a second, and the
    // value never comes, even once past the embargo.
    commit(&h, 103, &[("gl-in", "air.pm25", second(8.0), 4.0)]).await?;
    revoke_and_see_the_view_end(&h, "paris-delayed", &mut grantee, "delayed").await?;
    set_clock(second(20.0));
    nothing_more(&mut grantee).await?;

    // The closing entry counts the snapshot and the delayed values.
    let closing = closing_entry(&h).await?;
    assert_eq!(closing.detail["rows"], 3, "{:?}", closing.detail);
    h.stop().await
}
