//! Retention policies over HTTP: listing (viewer), setting and deleting (admin) by URL-encoded
//! metric class, validation, tenancy, every change recorded as `retention_change` before it is
//! applied, and nothing changed when the audit log cannot be written.

use beffroi_audit::AuditKind;
use beffroi_store::AuditFilter;

use super::*;

/// The `retention_change` entries of A's log, read from the store (reading through the API
/// would add entries).
async fn changes(h: &Harness) -> Result<Vec<Value>> {
    let filter = AuditFilter {
        kinds: vec![AuditKind::RetentionChange],
        ..AuditFilter::default()
    };
    let entries = h
        .store
        .audit_entries(&TenantId::new(A)?, &filter, 0, 100)
        .await?;
    Ok(entries
        .into_iter()
        .map(|e| Value::Object(e.detail))
        .collect())
}

#[tokio::test]
async fn policies_are_set_listed_and_deleted_by_class() -> Result<()> {
    let h = Harness::start().await?;
    let (viewer, admin) = (&h.tokens.a_viewer, &h.tokens.a_admin);
    let listed = h.get_json("/api/v1/retention", viewer).await?;
    assert_eq!(listed, json!({"items": []}));

    let body = json!({"raw_days": 30, "aggregate_days": 365});
    h.put_json("/api/v1/retention/air.%2A", viewer, &body)
        .await?
        .problem(StatusCode::FORBIDDEN);
    let put = h
        .put_json("/api/v1/retention/air.%2A", admin, &body)
        .await?;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    assert_eq!(put.json()["class"], "air.*");
    assert_eq!(put.json()["tenant"], A);
    let put = h
        .put_json("/api/v1/retention/%2A", admin, &json!({"raw_days": 3650}))
        .await?;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    assert_eq!(put.json()["aggregate_days"], Value::Null);
    // An exact metric whose data is all kept (up to the instance-wide retention).
    let put = h
        .put_json("/api/v1/retention/air.pm25", admin, &json!({}))
        .await?;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());

    let listed = h.get_json("/api/v1/retention", viewer).await?;
    let classes: Vec<&str> = listed["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|p| p["class"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(classes, ["*", "air.*", "air.pm25"]);
    assert_eq!(listed["items"][1]["raw_days"], 30);
    assert_eq!(listed["items"][1]["aggregate_days"], 365);
    // Tenancy: B sees none of A's policies.
    let theirs = h.get_json("/api/v1/retention", &h.tokens.b_viewer).await?;
    assert_eq!(theirs, json!({"items": []}));

    // Bad input: a clear 400, nothing recorded.
    for (path, body) in [
        ("/api/v1/retention/Air.%2A", json!({"raw_days": 1})),
        ("/api/v1/retention/air.%2A.%2A", json!({"raw_days": 1})),
        ("/api/v1/retention/air", json!({"raw_days": 0})),
        ("/api/v1/retention/air", json!({"raw_days": 36501})),
        ("/api/v1/retention/air", json!({"raw_days": "ten"})),
        ("/api/v1/retention/air", json!({"raw": 1})),
    ] {
        h.put_json(path, admin, &body)
            .await?
            .problem(StatusCode::BAD_REQUEST);
    }
    assert_eq!(changes(&h).await?.len(), 3);

    let deleted = h.delete("/api/v1/retention/air.%2A", admin).await?;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    h.delete("/api/v1/retention/air.%2A", admin)
        .await?
        .problem(StatusCode::NOT_FOUND);
    h.delete("/api/v1/retention/%2A", viewer)
        .await?
        .problem(StatusCode::FORBIDDEN);
    let listed = h.get_json("/api/v1/retention", viewer).await?;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));

    // Every change was recorded before it was applied; the refused delete has its failure.
    let log = changes(&h).await?;
    let summary: Vec<(String, String, String)> = log
        .iter()
        .map(|d| {
            let text = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (text("action"), text("id"), text("outcome"))
        })
        .collect();
    let expected = [
        ("upsert", "air.*", "requested"),
        ("upsert", "*", "requested"),
        ("upsert", "air.pm25", "requested"),
        ("delete", "air.*", "requested"),
        ("delete", "air.*", "requested"),
        ("delete", "air.*", "failed"),
    ]
    .map(|(a, i, o)| (a.to_owned(), i.to_owned(), o.to_owned()));
    assert_eq!(summary, expected);
    assert_eq!(log[0]["object"], "retention_policy");
    assert_eq!(
        log[0]["request"],
        json!({"raw_days": 30, "aggregate_days": 365})
    );
    h.stop().await
}

#[tokio::test]
async fn nothing_changes_without_the_log() -> Result<()> {
    let h = Harness::start().await?;
    let admin = &h.tokens.a_admin;
    h.database.break_audit_log().await?;
    h.put_json("/api/v1/retention/air.%2A", admin, &json!({"raw_days": 1}))
        .await?
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    let listed = h.get_json("/api/v1/retention", admin).await?;
    assert_eq!(listed, json!({"items": []}));

    h.database.repair_audit_log().await?;
    let put = h
        .put_json("/api/v1/retention/air.%2A", admin, &json!({"raw_days": 1}))
        .await?;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    h.database.break_audit_log().await?;
    h.delete("/api/v1/retention/air.%2A", admin)
        .await?
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    let listed = h.get_json("/api/v1/retention", admin).await?;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    h.stop().await
}
