//! The audit log over HTTP: changes recorded before they are applied (and their failures),
//! the log's listing and verification (admin, themselves recorded), checkpoints and public
//! keys (any role), tenancy, and failing closed when the log cannot be written. Every test
//! runs on SQLite and on PostgreSQL (`on_each_backend!`).
// The cases are plain functions that `on_each_backend!` runs per backend, not `#[test]`s.
#![allow(clippy::unwrap_used)]

use beffroi_api::audit::AuditKeys;
use beffroi_audit::sign_checkpoint;
use beffroi_protocol::SigningKey;

use super::*;

on_each_backend!(
    changes_are_recorded_before_they_are_applied,
    the_log_verifies_and_tampering_is_found,
    nothing_changes_and_nothing_leaves_without_the_log,
);

/// The seed of the harness's platform audit key.
const AUDIT_SEED: [u8; 32] = [7; 32];

/// The harness's audit public keys.
pub fn audit_keys() -> AuditKeys {
    AuditKeys::new(SigningKey::from_bytes(&AUDIT_SEED).verifying_key(), [])
}

fn rule(name: &str) -> Value {
    json!({"name": name, "severity": "warning", "condition": {"kind": "spool_gap"}})
}

/// Every entry of A's log, read with A's admin token (each read adds one entry).
async fn entries(h: &Harness) -> Result<Vec<Value>> {
    let page = h
        .get_json("/api/v1/audit?limit=1000", &h.tokens.a_admin)
        .await?;
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

async fn changes_are_recorded_before_they_are_applied(h: Harness) -> Result<()> {
    let admin = &h.tokens.a_admin;
    let mut named = rule("gaps");
    named["id"] = json!("r-gaps");
    let created = h.post_json("/api/v1/alarm-rules", admin, &named).await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    h.post_json("/api/v1/alarm-rules", admin, &named)
        .await?
        .problem(StatusCode::CONFLICT);
    let mut edited = rule("gaps (edited)");
    edited["enabled"] = json!(false);
    let updated = h
        .put_json("/api/v1/alarm-rules/r-gaps", admin, &edited)
        .await?;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text());
    let deleted = h.delete("/api/v1/alarm-rules/r-gaps", admin).await?;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let sensor = json!({"kind": "air", "zone": "centre"});
    let put = h.put_json("/api/v1/sensors/s-new", admin, &sensor).await?;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let put = h
        .put_json(
            "/api/v1/zones/nord",
            admin,
            &json!({"name": "Nord", "geometry": polygon(4.8, 45.8)}),
        )
        .await?;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());

    let log = entries(&h).await?;
    let summary: Vec<(String, String, String, String)> = log
        .iter()
        .map(|e| {
            let d = &e["detail"];
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                s(&e["kind"]),
                s(&d["action"]),
                s(&d["id"]),
                s(&d["outcome"]),
            )
        })
        .collect();
    let expect = |kind: &str, action: &str, id: &str, outcome: &str| {
        (kind.into(), action.into(), id.into(), outcome.into())
    };
    assert_eq!(
        summary,
        [
            expect("rule_change", "create", "r-gaps", "requested"),
            expect("rule_change", "create", "r-gaps", "requested"),
            expect("rule_change", "create", "r-gaps", "failed"),
            expect("rule_change", "update", "r-gaps", "requested"),
            expect("rule_change", "delete", "r-gaps", "requested"),
            expect("registry_change", "upsert", "s-new", "requested"),
            expect("registry_change", "upsert", "nord", "requested"),
        ]
    );
    // Seqs from 1, who did it, what was asked, why it failed.
    assert_eq!(log[0]["seq"], 1);
    assert_eq!(log[0]["tenant"], A);
    assert!(log[0]["actor"].as_str().unwrap().starts_with("token:"));
    assert_eq!(log[0]["detail"]["request"]["name"], "gaps");
    assert_eq!(log[2]["detail"]["requested_seq"], 2);
    assert!(
        log[2]["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{}",
        log[2]
    );
    assert_eq!(log[3]["detail"]["request"]["enabled"], false);
    assert_eq!(
        log[6]["detail"]["request"]["geometry_sha256"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    for pair in log.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }

    // The listing itself was recorded as an access to A's own data.
    let again = entries(&h).await?;
    let read = &again[log.len()];
    assert_eq!(read["kind"], "access_permit");
    assert_eq!(read["detail"]["query"]["resource"], "audit_log");
    assert_eq!(read["detail"]["grantee"], A);
    assert_eq!(read["detail"]["rows"], log.len());
    assert_eq!(read["detail"]["channel"], "rest");

    // Filters and pages.
    let rules = h
        .get_json("/api/v1/audit?kind=rule_change&limit=2", admin)
        .await?;
    assert_eq!(rules["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(rules["next_after_seq"], 2);
    let rest = h
        .get_json("/api/v1/audit?kind=rule_change&after_seq=2", admin)
        .await?;
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(rest["next_after_seq"], Value::Null);
    for (query, expected) in [
        ("kind=nothing", "kind"),
        ("after_seq=-1", "after_seq"),
        ("limit=0", "limit"),
        ("from=yesterday", "from"),
        ("sensor=s-a1", "sensor"),
    ] {
        let detail = h
            .get(&format!("/api/v1/audit?{query}"), admin)
            .await?
            .problem(StatusCode::BAD_REQUEST);
        assert!(detail.contains(expected), "{query}: {detail}");
    }

    // Roles and tenancy: the log is the admins'; B's log has none of A's entries.
    for token in [&h.tokens.a_viewer, &h.tokens.a_operator] {
        h.get("/api/v1/audit", token)
            .await?
            .problem(StatusCode::FORBIDDEN);
        h.get("/api/v1/audit/verify", token)
            .await?
            .problem(StatusCode::FORBIDDEN);
    }
    let b_log = h.get_json("/api/v1/audit", &h.tokens.b_admin).await?;
    assert!(b_log["items"].as_array().unwrap().is_empty(), "{b_log}");
    h.stop().await
}

async fn the_log_verifies_and_tampering_is_found(h: Harness) -> Result<()> {
    let admin = &h.tokens.a_admin;
    for name in ["one", "two", "three"] {
        let created = h
            .post_json("/api/v1/alarm-rules", admin, &rule(name))
            .await?;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    }
    // A checkpoint at seq 3, signed with the platform key.
    let tenant = TenantId::new(A)?;
    let head = h.store.audit_head(&tenant).await?.unwrap();
    assert_eq!(head.seq, 3);
    let key = SigningKey::from_bytes(&AUDIT_SEED);
    h.store
        .store_checkpoint(&sign_checkpoint(&key, &tenant, head, Timestamp::now()))
        .await?;

    let viewer = &h.tokens.a_viewer;
    let checkpoints = h.get_json("/api/v1/audit/checkpoints", viewer).await?;
    assert_eq!(checkpoints["items"][0]["seq"], 3, "{checkpoints}");
    assert_eq!(checkpoints["next_after_seq"], Value::Null);
    let keys = h.get_json("/api/v1/audit/public-key", viewer).await?;
    assert_eq!(
        keys["current"]["key_id"],
        audit_keys().current_id().as_str()
    );
    assert!(keys["current"]["pem"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(keys["retired"], json!([]));

    let report = h.get_json("/api/v1/audit/verify", admin).await?;
    assert_eq!(report["first_bad_seq"], Value::Null, "{report}");
    assert_eq!(report["entries"], 3);
    assert_eq!(report["checkpoints_matched"], 1);
    assert_eq!(report["unreadable"], json!([]));
    // The verification was recorded (seq 4), and is not yet checkpointed on the next one.
    let report = h
        .get_json("/api/v1/audit/verify?since_seq=3", admin)
        .await?;
    assert_eq!(report["entries"], 1, "{report}");
    assert_eq!(report["not_checkpointed"], json!({"first": 4, "last": 4}));

    // Rewrite seq 2's detail behind the platform's back.
    h.database
        .execute("UPDATE audit_entries SET detail = replace(detail, 'two', 'TWO') WHERE seq = 2")
        .await?;
    let report = h.get_json("/api/v1/audit/verify", admin).await?;
    assert_eq!(report["first_bad_seq"], 2, "{report}");
    assert_eq!(report["problems"][0]["problem"], "altered");
    // A row that no longer decodes is tampering at its seq, and the rest is still read.
    h.database
        .execute("UPDATE audit_entries SET detail = 'not json' WHERE seq = 3")
        .await?;
    let report = h.get_json("/api/v1/audit/verify", admin).await?;
    assert_eq!(report["unreadable"][0]["seq"], 3, "{report}");
    assert!(report["entries"].as_u64().unwrap() >= 4, "{report}");
    h.stop().await
}

async fn nothing_changes_and_nothing_leaves_without_the_log(h: Harness) -> Result<()> {
    let admin = &h.tokens.a_admin;
    h.database.break_audit_log().await?;

    let mut named = rule("never");
    named["id"] = json!("r-never");
    let response = h.post_json("/api/v1/alarm-rules", admin, &named).await?;
    let detail = response.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(detail.contains("audit log unavailable"), "{detail}");
    assert_eq!(
        response.json()["type"],
        "urn:beffroi:problem:audit-unavailable"
    );
    assert!(
        !detail.contains(super::database::AUDIT_DOWN),
        "the cause stays in the log"
    );
    h.get("/api/v1/alarm-rules/r-never", admin)
        .await?
        .problem(StatusCode::NOT_FOUND);
    h.put_json("/api/v1/sensors/s-never", admin, &json!({"kind": "air"}))
        .await?
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    let sensors = h.get_json("/api/v1/sensors", admin).await?;
    assert!(!sensors.to_string().contains("s-never"), "{sensors}");
    // Reading the log is an access: it is not answered either.
    h.get("/api/v1/audit", admin)
        .await?
        .problem(StatusCode::SERVICE_UNAVAILABLE);

    // Back up: the change goes through and is recorded.
    h.database.repair_audit_log().await?;
    let created = h.post_json("/api/v1/alarm-rules", admin, &named).await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let log = entries(&h).await?;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["detail"]["id"], "r-never");
    h.stop().await
}
