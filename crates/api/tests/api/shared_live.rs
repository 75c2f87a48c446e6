//! Grantee live views over a real websocket: tenant B follows tenant A's readings under a
//! raw, pseudonymising agreement and gets exactly what the agreement allows; a wrong purpose
//! or no agreement is refused and logged; revoking the agreement ends the view within a
//! second; opening and closing the view are both in A's audit log.

use std::time::Instant;

use beffroi_audit::{AuditEntry, AuditKind};
use beffroi_policy::SensorTag;
use beffroi_store::{AuditFilter, Sensor};

use super::live::{next, open, send};
use super::*;

on_each_backend!(a_grantee_view_carries_what_its_agreement_allows_and_ends_on_revocation);

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

fn subscribe(id: &str, grantor: &str, purpose: &str) -> Value {
    json!({"type": "subscribe", "id": id, "stream": "readings", "grantor": grantor,
           "purpose": purpose, "filter": {"metrics": ["air.*", "water.*"]}, "snapshot": false})
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
    let revoked_at = Instant::now();
    let revoked = h
        .post_json(
            "/api/v1/agreements/paris-live/state",
            &h.tokens.a_admin,
            &json!({"state": "revoked"}),
        )
        .await?;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text());
    let ended = next(&mut grantee).await?;
    let took = revoked_at.elapsed();
    assert_eq!(
        (ended["type"].as_str(), ended["id"].as_str()),
        (Some("ended"), Some("shared")),
        "{ended}"
    );
    assert!(took < Duration::from_secs(1), "ended after {took:?}");
    h.live.batch_committed(&batch(2, 99.0)?);
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&mut grantee, json!({"type": "ping", "nonce": 1})).await?;
    let after = next(&mut grantee).await?;
    assert_eq!(after["type"], "pong", "nothing after the end: {after}");

    // The closing entry: one value released, with the hash of what left.
    let deadline = Instant::now() + Duration::from_secs(5);
    let closing = loop {
        let permits = live_entries(&h, AuditKind::AccessPermit).await?;
        if let Some(closing) = permits
            .into_iter()
            .find(|e| e.detail["query"]["live"]["ended"].is_string())
        {
            break closing;
        }
        anyhow::ensure!(Instant::now() < deadline, "no closing entry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(closing.detail["rows"], 1, "{:?}", closing.detail);
    assert!(
        closing.detail["result_hash"].is_string(),
        "{:?}",
        closing.detail
    );
    h.stop().await
}
