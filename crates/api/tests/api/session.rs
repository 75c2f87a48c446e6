//! Who the token is, platform operators' events, and the dashboard's files and settings.

use super::*;

#[tokio::test]
async fn me_says_who_the_token_is() -> Result<()> {
    let h = Harness::start().await?;
    let me = h.get_json("/api/v1/me", &h.tokens.a_operator).await?;
    assert_eq!(me["scope"], "tenant");
    assert_eq!(me["tenant"]["id"], A);
    assert_eq!(me["tenant"]["name"], "Ville de Lyon");
    assert_eq!(me["role"], "operator");
    assert_eq!(me["name"], "test");
    let (text, record) = tokens::issue(TokenScope::Platform, "soc")?;
    h.store.create_token(&record).await?;
    let me = h.get_json("/api/v1/me", &text).await?;
    assert_eq!(
        me,
        json!({"scope": "platform", "token_id": record.id, "name": "soc"})
    );
    h.send(Method::GET, "/api/v1/me", None, None)
        .await?
        .problem(StatusCode::UNAUTHORIZED);
    h.stop().await
}

#[tokio::test]
async fn platform_operators_read_only_the_events_of_no_tenant() -> Result<()> {
    let h = Harness::start().await?;
    let (operator, record) = tokens::issue(TokenScope::Platform, "soc")?;
    h.store.create_token(&record).await?;
    h.store
        .security_event(&SecurityEvent {
            time: Timestamp::now(),
            tenant: None,
            gateway: None,
            address: Some("198.51.100.9:4242".into()),
            kind: SecurityEventKind::TlsRejected,
            detail: "no client certificate".into(),
        })
        .await?;
    let page = h
        .get_json("/api/v1/platform/security-events", &operator)
        .await?;
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items.iter().all(|e| e["tenant"].is_null()),
        "a tenant's event reached the platform listing: {page}"
    );
    assert!(items.iter().any(|e| e["address"] == "198.51.100.9:4242"));
    let detail = h
        .get("/api/v1/platform/security-events", &h.tokens.a_admin)
        .await?
        .problem(StatusCode::FORBIDDEN);
    assert!(detail.contains("platform operators"), "{detail}");
    // And a tenant's listing never shows events of no tenant.
    let tenant_page = h
        .get_json("/api/v1/security-events?limit=1000", &h.tokens.a_admin)
        .await?;
    assert!(!tenant_page.to_string().contains("198.51.100.9"));
    h.stop().await
}

#[tokio::test]
async fn the_dashboard_is_served_with_strict_headers_and_its_settings() -> Result<()> {
    // `root/dist` is served; `root/secret.txt` must never be.
    let root = tempfile::tempdir()?;
    let dist = root.path().join("dist");
    std::fs::create_dir_all(dist.join("assets"))?;
    std::fs::write(
        dist.join("index.html"),
        "<!doctype html><title>Beffroi</title>",
    )?;
    std::fs::write(dist.join("assets/app-3f2a.js"), "console.log(1)")?;
    std::fs::write(root.path().join("secret.txt"), "no")?;
    let h = Harness::start_with(
        LiveConfig::default(),
        DashboardConfig {
            dir: Some(dist),
            tile_url: Some("https://tiles.example.org/{z}/{x}/{y}.png".into()),
            tile_attribution: Some("© contributors".into()),
        },
    )
    .await?;

    let page = h.send(Method::GET, "/", None, None).await?;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert!(page.text().contains("<title>Beffroi</title>"));
    let csp = page.headers[header::CONTENT_SECURITY_POLICY].to_str()?;
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        csp.contains("img-src 'self' data: https://tiles.example.org;"),
        "{csp}"
    );
    assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-cache");
    let asset = h
        .send(Method::GET, "/assets/app-3f2a.js", None, None)
        .await?;
    assert_eq!(asset.status, StatusCode::OK);
    assert!(asset.headers[header::CACHE_CONTROL]
        .to_str()?
        .contains("immutable"));

    for path in [
        "/missing.js",
        "/api/v1/nope",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
    ] {
        h.send(Method::GET, path, None, None)
            .await?
            .problem(StatusCode::NOT_FOUND);
    }
    h.send(Method::POST, "/", None, None)
        .await?
        .problem(StatusCode::METHOD_NOT_ALLOWED);

    let settings = h
        .send(Method::GET, "/api/v1/dashboard-config", None, None)
        .await?;
    assert_eq!(settings.status, StatusCode::OK);
    let settings = settings.json();
    assert_eq!(
        settings["tile_url"],
        "https://tiles.example.org/{z}/{x}/{y}.png"
    );
    assert_eq!(settings["tile_attribution"], "© contributors");
    assert!(settings["version"].is_string());
    h.stop().await
}
