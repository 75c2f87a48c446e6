//! Alarm rules and alarms over HTTP: validation, roles, the lifecycle, tenancy.

use super::*;

fn threshold_rule(name: &str) -> Value {
    json!({"name": name, "severity": "major", "condition":
        {"kind": "threshold", "metric": "air.pm25", "op": "gt", "value": 50, "for_s": 600}})
}

#[tokio::test]
async fn admins_manage_rules_with_validation_and_viewers_read_them() -> Result<()> {
    let h = Harness::start().await?;
    let (admin, viewer) = (&h.tokens.a_admin, &h.tokens.a_viewer);

    let created = h
        .post_json(
            "/api/v1/alarm-rules",
            admin,
            &threshold_rule("  PM2.5 high "),
        )
        .await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let rule = created.json();
    let id = rule["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("rule-"), "{rule}");
    assert_eq!(rule["name"], "PM2.5 high", "trimmed");
    assert_eq!(rule["enabled"], true, "enabled by default");
    assert_eq!(rule["tenant"], A);
    assert_eq!(
        keys(&rule),
        [
            "condition",
            "created_at",
            "enabled",
            "id",
            "name",
            "severity",
            "tenant",
            "updated_at"
        ]
    );

    // Named ids; a taken id is a conflict.
    let mut named = threshold_rule("offline");
    named["id"] = json!("gw-offline");
    named["condition"] = json!({"kind": "gateway_offline", "after_s": 120});
    let response = h.post_json("/api/v1/alarm-rules", admin, &named).await?;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    h.post_json("/api/v1/alarm-rules", admin, &named)
        .await?
        .problem(StatusCode::CONFLICT);
    let mut expiry = threshold_rule("certificates");
    expiry["condition"] =
        json!({"kind": "certificate_expiry", "before_s": 604_800, "gateways": ["gw-1"]});
    let response = h.post_json("/api/v1/alarm-rules", admin, &expiry).await?;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    assert_eq!(response.json()["condition"], expiry["condition"]);

    for (body, field) in [
        (
            json!({"name": "", "severity": "major", "condition": {"kind": "spool_gap"}}),
            "name",
        ),
        (
            json!({"name": "x", "severity": "extreme", "condition": {"kind": "spool_gap"}}),
            "severity",
        ),
        (
            json!({"name": "x", "severity": "info", "condition": {"kind": "gateway_offline", "after_s": 1}}),
            "after_s",
        ),
        (
            json!({"name": "x", "severity": "info", "condition": {"kind": "certificate_expiry", "before_s": 0}}),
            "before_s",
        ),
        (
            json!({"name": "x", "severity": "info", "condition": {"kind": "threshold", "metric": "air.pm25", "op": "gt", "value": 1, "zone": "nowhere"}}),
            "condition.zone",
        ),
        (
            json!({"name": "x", "severity": "info", "condition": {"kind": "threshold", "metric": "air.pm25", "op": "above", "value": 1}}),
            "above",
        ),
        (
            json!({"name": "x", "severity": "info", "condition": {"kind": "spool_gap"}, "typo": 1}),
            "typo",
        ),
    ] {
        let detail = h
            .post_json("/api/v1/alarm-rules", admin, &body)
            .await?
            .problem(StatusCode::BAD_REQUEST);
        assert!(detail.contains(field), "{body}: {detail}");
    }

    // Edit: disable it, keep created_at; a mismatched id is refused.
    let mut edited = threshold_rule("PM2.5 high (disabled)");
    edited["enabled"] = json!(false);
    let response = h
        .put_json(&format!("/api/v1/alarm-rules/{id}"), admin, &edited)
        .await?;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let updated = response.json();
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["created_at"], rule["created_at"]);
    edited["id"] = json!("other");
    h.put_json(&format!("/api/v1/alarm-rules/{id}"), admin, &edited)
        .await?
        .problem(StatusCode::BAD_REQUEST);
    h.put_json("/api/v1/alarm-rules/missing", admin, &threshold_rule("x"))
        .await?
        .problem(StatusCode::NOT_FOUND);

    // Viewers read, never write.
    let listed = h.get_json("/api/v1/alarm-rules", viewer).await?;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        h.get_json(&format!("/api/v1/alarm-rules/{id}"), viewer)
            .await?["name"],
        "PM2.5 high (disabled)"
    );
    h.post_json("/api/v1/alarm-rules", viewer, &threshold_rule("x"))
        .await?
        .problem(StatusCode::FORBIDDEN);
    h.delete(&format!("/api/v1/alarm-rules/{id}"), &h.tokens.a_operator)
        .await?
        .problem(StatusCode::FORBIDDEN);

    // Tenant B sees none of it.
    h.get(&format!("/api/v1/alarm-rules/{id}"), &h.tokens.b_admin)
        .await?
        .problem(StatusCode::NOT_FOUND);
    h.delete(&format!("/api/v1/alarm-rules/{id}"), &h.tokens.b_admin)
        .await?
        .problem(StatusCode::NOT_FOUND);

    let deleted = h
        .delete(&format!("/api/v1/alarm-rules/{id}"), admin)
        .await?;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    h.get(&format!("/api/v1/alarm-rules/{id}"), admin)
        .await?
        .problem(StatusCode::NOT_FOUND);
    h.stop().await
}

#[tokio::test]
async fn operators_acknowledge_and_clear_alarms_once_each() -> Result<()> {
    let h = Harness::start().await?;
    let id = seed_alarm(&*h.store, A).await?;
    let b_id = seed_alarm(&*h.store, B).await?;
    let path = |action: &str| format!("/api/v1/alarms/{id}/{action}");

    let active = h
        .get_json(
            "/api/v1/alarms?state=open&state=acknowledged",
            &h.tokens.a_viewer,
        )
        .await?;
    let items = active["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{active}");
    assert_eq!(items[0]["id"], id);
    assert_eq!(items[0]["state"], "open");
    assert_eq!(
        keys(&items[0]),
        [
            "acknowledged",
            "cleared",
            "id",
            "last_at",
            "message",
            "occurrences",
            "opened_at",
            "rule",
            "rule_name",
            "severity",
            "state",
            "subject",
            "tenant",
            "updated_at",
            "value",
            "zone"
        ]
    );
    h.get("/api/v1/alarms?state=burning", &h.tokens.a_viewer)
        .await?
        .problem(StatusCode::BAD_REQUEST);

    // Viewers may not act; operators may, once.
    h.post_json(&path("acknowledge"), &h.tokens.a_viewer, &json!({}))
        .await?
        .problem(StatusCode::FORBIDDEN);
    let long = "x".repeat(1001);
    h.post_json(
        &path("acknowledge"),
        &h.tokens.a_operator,
        &json!({"comment": long}),
    )
    .await?
    .problem(StatusCode::BAD_REQUEST);
    let response = h
        .post_json(
            &path("acknowledge"),
            &h.tokens.a_operator,
            &json!({"comment": " on it "}),
        )
        .await?;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let alarm = response.json();
    assert_eq!(alarm["state"], "acknowledged");
    assert_eq!(alarm["acknowledged"]["comment"], "on it");
    assert_eq!(alarm["acknowledged"]["by"]["name"], "test");
    let detail = h
        .post_json(&path("acknowledge"), &h.tokens.a_operator, &json!({}))
        .await?
        .problem(StatusCode::CONFLICT);
    assert!(detail.contains("acknowledged"), "{detail}");

    let response = h
        .post_json(&path("clear"), &h.tokens.a_admin, &json!({"comment": null}))
        .await?;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let alarm = response.json();
    assert_eq!(alarm["state"], "cleared");
    assert_eq!(alarm["cleared"]["comment"], Value::Null);
    assert!(alarm["cleared"]["by"]["token_id"].is_string());
    h.post_json(&path("clear"), &h.tokens.a_admin, &json!({}))
        .await?
        .problem(StatusCode::CONFLICT);
    let history = h
        .get_json("/api/v1/alarms?state=cleared", &h.tokens.a_viewer)
        .await?;
    assert_eq!(history["items"][0]["id"], id);

    // Another tenant's alarm does not exist for this token, whatever the action.
    for action in ["acknowledge", "clear"] {
        h.post_json(
            &format!("/api/v1/alarms/{b_id}/{action}"),
            &h.tokens.a_admin,
            &json!({}),
        )
        .await?
        .problem(StatusCode::NOT_FOUND);
    }
    h.get(&format!("/api/v1/alarms/{b_id}"), &h.tokens.a_admin)
        .await?
        .problem(StatusCode::NOT_FOUND);
    h.get("/api/v1/alarms/abc", &h.tokens.a_admin)
        .await?
        .problem(StatusCode::BAD_REQUEST);
    h.stop().await
}
