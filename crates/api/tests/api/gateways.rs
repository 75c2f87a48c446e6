//! Gateways over HTTP: creating a gateway's one-time enrollment token (admin; the token's
//! shape, its lifetime, pending enrollments, never the secret in the audit log), and
//! revocation (admin; stored with its time, audited, told to the platform at once). Runs on
//! SQLite and on PostgreSQL (`on_each_backend!`).
// The cases are plain functions that `on_each_backend!` runs per backend, not `#[test]`s.

use beffroi_audit::AuditKind;
use beffroi_store::{AuditFilter, Redeemed};

use super::*;

on_each_backend!(
    tokens_are_created_once_and_listed_while_pending,
    revocation_is_stored_audited_and_cut_at_once,
);

/// The `gateway_change` entries of A's log, read from the store.
async fn gateway_changes(h: &Harness) -> Result<Vec<Value>> {
    let filter = AuditFilter {
        kinds: vec![AuditKind::GatewayChange],
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

async fn tokens_are_created_once_and_listed_while_pending(h: Harness) -> Result<()> {
    let (viewer, admin) = (&h.tokens.a_viewer, &h.tokens.a_admin);
    let body = json!({"id": "gw-new"});
    h.post_json("/api/v1/gateways", viewer, &body)
        .await?
        .problem(StatusCode::FORBIDDEN);
    for bad in [
        json!({"id": "gw-new", "ttl_s": 0}),
        json!({"id": "gw-new", "ttl_s": 30 * 86_400 + 1}),
        json!({"id": "Not A Slug"}),
        json!({"id": "gw-new", "extra": 1}),
    ] {
        h.post_json("/api/v1/gateways", admin, &bad)
            .await?
            .problem(StatusCode::BAD_REQUEST);
    }

    let before = Timestamp::now();
    let created = h.post_json("/api/v1/gateways", admin, &body).await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let created = created.json();
    assert_eq!(
        keys(&created),
        ["enroll_url", "expires_at", "gateway", "token"]
    );
    assert_eq!(created["enroll_url"], "https://beffroi.example:8443");
    assert_eq!(created["gateway"], "gw-new");
    let token = created["token"].as_str().unwrap_or_default().to_owned();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    assert_eq!((parts[0], parts[1].len(), parts[2]), ("bfe1", 43, PIN));
    let expires: Timestamp = serde_json::from_value(created["expires_at"].clone())?;
    let ttl = expires.unix_micros() - before.unix_micros();
    assert!((86_390_000_000..=86_410_000_000).contains(&ttl), "{ttl}");

    // A short-lived one for an existing gateway (re-enrollment).
    let short = h
        .post_json(
            "/api/v1/gateways",
            admin,
            &json!({"id": "gw-a1", "ttl_s": 60}),
        )
        .await?;
    assert_eq!(short.status, StatusCode::CREATED, "{}", short.text());

    let pending = h.get_json("/api/v1/gateways/enrollments", viewer).await?;
    let gateways: Vec<&str> = pending["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["gateway"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(gateways, ["gw-a1", "gw-new"], "{pending}");
    assert!(!pending.to_string().contains(parts[1]), "{pending}");
    let item = &pending["items"][1];
    assert_eq!(
        keys(item),
        ["created_at", "created_by", "expires_at", "gateway"]
    );
    assert!(item["created_by"]
        .as_str()
        .is_some_and(|by| by.starts_with("token:")));
    // B sees none of A's.
    let b_pending = h
        .get_json("/api/v1/gateways/enrollments", &h.tokens.b_viewer)
        .await?;
    assert_eq!(b_pending, json!({"items": []}));
    // Not a gateway yet: the list and the gateway itself do not show it.
    let listed = h.get_json("/api/v1/gateways", viewer).await?;
    assert!(!listed.to_string().contains("gw-new"), "{listed}");
    h.get("/api/v1/gateways/gw-new", viewer)
        .await?
        .problem(StatusCode::NOT_FOUND);

    // The store holds the hash of the secret, which the token redeems once.
    let secret = parts[1];
    let hash = beffroi_api::enrollment::secret_hash(secret).context("well-formed secret")?;
    assert_eq!(
        h.store
            .redeem_enrollment_token(&hash, Timestamp::now())
            .await?,
        Redeemed::Bound {
            tenant: TenantId::new(A)?,
            gateway: GatewayId::new("gw-new")?,
        }
    );
    let pending = h.get_json("/api/v1/gateways/enrollments", viewer).await?;
    assert_eq!(pending["items"].as_array().map(Vec::len), Some(1));

    // Audited before being stored, never with the secret.
    let changes = gateway_changes(&h).await?;
    let created: Vec<&Value> = changes
        .iter()
        .filter(|c| c["action"] == "create_token")
        .collect();
    assert_eq!(created.len(), 2, "{changes:?}");
    assert_eq!(created[0]["id"], "gw-new");
    assert!(created[0]["request"]["expires_at"].is_string());
    assert!(!json!(changes).to_string().contains(secret));
    Ok(())
}

async fn revocation_is_stored_audited_and_cut_at_once(h: Harness) -> Result<()> {
    let (viewer, admin) = (&h.tokens.a_viewer, &h.tokens.a_admin);
    let path = "/api/v1/gateways/gw-a1/revoke";
    h.post_json(path, viewer, &json!({}))
        .await?
        .problem(StatusCode::FORBIDDEN);
    // Another tenant's gateway is not found, and nothing is revoked.
    h.post_json(
        "/api/v1/gateways/gw-a1/revoke",
        &h.tokens.b_admin,
        &json!({}),
    )
    .await?
    .problem(StatusCode::NOT_FOUND);
    h.post_json("/api/v1/gateways/gw-none/revoke", admin, &json!({}))
        .await?
        .problem(StatusCode::NOT_FOUND);
    assert!(h.revoked.heard().is_empty());

    let before = Timestamp::now();
    let revoked = h.post_json(path, admin, &json!({})).await?;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text());
    let revoked = revoked.json();
    assert_eq!(revoked["revoked"], true, "{revoked}");
    let at: Timestamp = serde_json::from_value(revoked["revoked_at"].clone())?;
    assert!(at >= before && at <= Timestamp::now(), "{revoked}");
    assert_eq!(
        h.revoked.heard(),
        [(TenantId::new(A)?, GatewayId::new("gw-a1")?)]
    );
    // The other gateway is untouched; the revocation survives in the store.
    let other = h.get_json("/api/v1/gateways/gw-a2", viewer).await?;
    assert_eq!(other["revoked"], false);
    let stored = h.store.revoked_gateways().await?;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].revoked_at, at);

    // A second revocation keeps the first time.
    let again = h.post_json(path, admin, &json!({})).await?.json();
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);

    // A revoked gateway cannot be enrolled again.
    h.post_json("/api/v1/gateways", admin, &json!({"id": "gw-a1"}))
        .await?
        .problem(StatusCode::CONFLICT);

    let changes = gateway_changes(&h).await?;
    let revokes: Vec<&Value> = changes
        .iter()
        .filter(|c| c["action"] == "revoke" && c["outcome"] == "requested")
        .collect();
    assert_eq!(revokes.len(), 2, "{changes:?}");
    assert_eq!(revokes[0]["id"], "gw-a1");
    Ok(())
}
