//! Data governance over HTTP: agreements managed by the grantor, governed reads by other
//! tenants, partners and the public, each decided by the policy engine and audited in the
//! grantor's log before anything leaves.
//!
//! Fixture (tenant A = `lyon`, the grantor): zones `north` (4 sensors), `centre` (3) and
//! `south` (2), all tagged `air-quality`, with `air.no2` every 10 minutes for the 4 whole
//! hours before the last hour; a partner `acme` with a token. Every test runs on SQLite and
//! on PostgreSQL (`on_each_backend!`).

use std::io::Write;
use std::sync::Mutex;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use beffroi_audit::{AuditEntry, AuditKind};
use beffroi_policy::{AgreementId, PartnerId, SensorTag};
use beffroi_store::{AuditFilter, Partner, Sensor};

use super::*;

on_each_backend!(
    without_an_agreement_reads_are_denied_and_audited,
    validity_purpose_versions_and_revocation,
    aggregates_follow_the_grid_and_hide_small_cells,
    raw_rows_keep_allowed_fields_and_pseudonymise,
    partner_tokens_read_only_shared_data,
    public_grants_are_readable_without_a_token,
    reads_and_changes_fail_closed_when_the_audit_log_is_down,
);

pub(super) const HOUR_US: i64 = 3_600_000_000;
pub(super) const METRIC: &str = "air.no2";
/// (zone, sensors) of the fixture.
const ZONES: [(&str, &[&str]); 3] = [
    ("north", &["n1", "n2", "n3", "n4"]),
    ("centre", &["c1", "c2", "c3"]),
    ("south", &["s1", "s2"]),
];

pub(super) struct Fixture {
    /// Start of the data (an hour boundary); the data spans 4 hours.
    pub(super) base: Timestamp,
    pub(super) partner_token: String,
}

impl Fixture {
    /// `from=…&to=…` covering the data.
    pub(super) fn range(&self) -> String {
        format!(
            "from={}&to={}",
            self.base,
            Timestamp::from_unix_micros(self.base.unix_micros() + 4 * HOUR_US)
        )
    }
}

/// Value of sensor number `i` at `step`.
fn value(i: usize, step: i64) -> f64 {
    (10 * i) as f64 + step as f64
}

pub(super) async fn fixture(h: &Harness) -> Result<Fixture> {
    let lyon = TenantId::new(A)?;
    let now = Timestamp::now().unix_micros();
    let base = Timestamp::from_unix_micros(now.div_euclid(HOUR_US) * HOUR_US - 5 * HOUR_US);
    for (zone, _) in ZONES {
        h.store
            .upsert_zone(&Zone {
                tenant: lyon.clone(),
                id: SensorId::new(zone)?,
                name: zone.to_owned(),
                geometry: polygon(4.8, 45.7),
            })
            .await?;
    }
    let mut readings = Vec::new();
    let mut i = 0;
    for (zone, sensors) in ZONES {
        for sensor in sensors {
            h.store
                .upsert_sensor(&Sensor {
                    tenant: lyon.clone(),
                    id: SensorId::new(*sensor)?,
                    kind: "air".into(),
                    unit: None,
                    lat: Some(45.75),
                    lon: Some(4.85),
                    zone: Some(SensorId::new(zone)?),
                    tags: vec![SensorTag::new("air-quality")?],
                    placed_at: None,
                })
                .await?;
            for step in 0..24 {
                let time = Timestamp::from_unix_micros(base.unix_micros() + step * 10 * MINUTE_US);
                readings.push(reading(
                    sensor,
                    METRIC,
                    "ug/m3",
                    time,
                    ReadingValue::Number(value(i, step)),
                ));
            }
            i += 1;
        }
    }
    let batches: Vec<CommitBatch> = readings
        .chunks(100)
        .enumerate()
        .map(|(n, chunk)| CommitBatch {
            tenant: lyon.clone(),
            gateway: GatewayId::new("gw-a2").expect("valid"),
            seq: 1000 + n as u64,
            key_id: KeyId::new("k-a2").expect("valid"),
            signature: [5; 64],
            received_at: Timestamp::now(),
            readings: chunk.to_vec(),
        })
        .collect();
    h.store.commit(&batches).await?;
    h.store
        .create_partner(&Partner {
            id: PartnerId::new("acme")?,
            name: "ACME air lab".into(),
            created_at: Timestamp::now(),
        })
        .await?;
    let (partner_token, record) = tokens::issue(
        TokenScope::Partner {
            partner: PartnerId::new("acme")?,
        },
        "acme",
    )?;
    h.store.create_token(&record).await?;
    Ok(Fixture {
        base,
        partner_token,
    })
}

pub(super) fn days_from_now(days: i64) -> String {
    Timestamp::from_unix_micros(Timestamp::now().unix_micros() + days * 86_400_000_000).to_string()
}

/// An hourly zone-aggregate agreement (k = 3) on `air.no2`.
pub(super) fn aggregate_agreement(id: &str, grantee: &str) -> Value {
    json!({
        "id": id, "grantee": grantee, "state": "active",
        "not_before": days_from_now(-30), "not_after": days_from_now(30),
        "purposes": ["research", "open_data"], "action": "read_aggregate",
        "target": { "metrics": [METRIC] }, "min_bucket_s": 3600,
        "functions": ["avg", "count", "sum"], "k": 3, "spatial_level": "zone",
        "pseudonymise": false, "embargo_s": 0
    })
}

/// A raw, pseudonymising agreement on `air.*` letting time, value and sensor through.
fn raw_agreement(id: &str, grantee: &str) -> Value {
    json!({
        "id": id, "grantee": grantee, "state": "active",
        "not_before": days_from_now(-30), "not_after": days_from_now(30),
        "purposes": ["research"], "action": "read_raw",
        "target": { "metrics": ["air.*"], "tags": ["air-quality"] },
        "functions": ["avg"], "k": 1, "spatial_level": "sensor",
        "pseudonymise": true, "fields": ["time", "value", "sensor"], "embargo_s": 0
    })
}

pub(super) async fn create(h: &Harness, body: &Value) -> Result<Value> {
    let created = h
        .post_json("/api/v1/agreements", &h.tokens.a_admin, body)
        .await?;
    anyhow::ensure!(
        created.status == StatusCode::CREATED,
        "create: {} {}",
        created.status,
        created.text()
    );
    Ok(created.json())
}

async fn get_anonymous(h: &Harness, path: &str) -> Result<Response> {
    h.send(Method::GET, path, None, None).await
}

/// Asserts a 403 access denial with this reason code.
pub(super) fn denied(response: &Response, reason: &str) {
    assert_eq!(
        response.status,
        StatusCode::FORBIDDEN,
        "{}",
        response.text()
    );
    assert_eq!(response.content_type, "application/problem+json");
    let body = response.json();
    assert_eq!(body["type"], "urn:beffroi:problem:access-denied", "{body}");
    assert_eq!(body["reason"], reason, "{body}");
}

pub(super) async fn audit_of(h: &Harness, kind: AuditKind) -> Result<Vec<AuditEntry>> {
    let filter = AuditFilter {
        kinds: vec![kind],
        ..AuditFilter::default()
    };
    Ok(h.store
        .audit_entries(&TenantId::new(A)?, &filter, 0, 1000)
        .await?)
}

fn set_clock(h: &Harness, at: Timestamp) {
    h.now_us.store(at.unix_micros(), Ordering::SeqCst);
}

async fn without_an_agreement_reads_are_denied_and_audited(h: Harness) -> Result<()> {
    let f = fixture(&h).await?;
    let path = format!(
        "/api/v1/shared/{A}/readings?purpose=research&metric={METRIC}&{}",
        f.range()
    );
    denied(&h.get(&path, &h.tokens.b_viewer).await?, "no_agreement");
    let denials = audit_of(&h, AuditKind::AccessDeny).await?;
    assert_eq!(denials.len(), 1);
    let detail = &denials[0].detail;
    assert_eq!(detail["grantee"], "tenant:paris");
    assert_eq!(detail["purpose"], "research");
    assert_eq!(detail["rows"], 0);
    assert!(detail["reason"]
        .as_str()
        .is_some_and(|r| r.starts_with("no_agreement")));
    assert_eq!(denials[0].actor.prefix(), "token");

    // Bad requests are refused before any decision.
    let no_purpose = format!("/api/v1/shared/{A}/readings?metric={METRIC}");
    let detail = h
        .get(&no_purpose, &h.tokens.b_viewer)
        .await?
        .problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("purpose"), "{detail}");
    h.get(&path, &h.tokens.a_viewer)
        .await?
        .problem(StatusCode::BAD_REQUEST);
    let missing = "/api/v1/shared/nowhere/readings?purpose=research";
    h.get(missing, &h.tokens.b_viewer)
        .await?
        .problem(StatusCode::NOT_FOUND);
    assert_eq!(audit_of(&h, AuditKind::AccessDeny).await?.len(), 1);
    h.stop().await
}

async fn validity_purpose_versions_and_revocation(h: Harness) -> Result<()> {
    let f = fixture(&h).await?;
    let not_after = Timestamp::from_unix_micros(f.base.unix_micros() + 10 * HOUR_US);
    let mut body = raw_agreement("paris-raw", "tenant:paris");
    body["not_after"] = json!(not_after.to_string());
    let created = create(&h, &body).await?;
    assert_eq!(created["agreement"]["version"], 1);
    let path = format!(
        "/api/v1/shared/{A}/readings?purpose=research&metric={METRIC}&{}",
        f.range()
    );
    let second = |s: i64| Timestamp::from_unix_micros(not_after.unix_micros() + s * 1_000_000);

    set_clock(&h, second(-1));
    let page = h.get_json(&path, &h.tokens.b_viewer).await?;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(9 * 24));
    set_clock(&h, second(1));
    denied(&h.get(&path, &h.tokens.b_viewer).await?, "outside_validity");
    set_clock(&h, second(-1));
    let wrong = path.replace("purpose=research", "purpose=billing");
    denied(&h.get(&wrong, &h.tokens.b_viewer).await?, "wrong_purpose");

    // Optimistic concurrency on PUT; viewers cannot write.
    let mut terms = created["agreement"].clone();
    terms["embargo_s"] = json!(60);
    let updated = h
        .put_json("/api/v1/agreements/paris-raw", &h.tokens.a_admin, &terms)
        .await?;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text());
    assert_eq!(updated.json()["agreement"]["version"], 2);
    let stale = h
        .put_json("/api/v1/agreements/paris-raw", &h.tokens.a_admin, &terms)
        .await?;
    stale.problem(StatusCode::CONFLICT);
    h.put_json("/api/v1/agreements/paris-raw", &h.tokens.a_viewer, &terms)
        .await?
        .problem(StatusCode::FORBIDDEN);

    let revoked = h
        .post_json(
            "/api/v1/agreements/paris-raw/state",
            &h.tokens.a_admin,
            &json!({ "state": "revoked" }),
        )
        .await?;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text());
    assert_eq!(revoked.json()["agreement"]["version"], 3);
    denied(&h.get(&path, &h.tokens.b_viewer).await?, "revoked");

    let changes = audit_of(&h, AuditKind::AgreementChange).await?;
    let actions: Vec<(String, String)> = changes
        .iter()
        .map(|e| {
            (
                e.detail["action"].as_str().unwrap_or_default().to_owned(),
                e.detail["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("create".into(), "requested".into()),
            ("update".into(), "requested".into()),
            ("update".into(), "requested".into()),
            ("update".into(), "failed".into()),
            ("state".into(), "requested".into()),
        ]
    );
    let last = &changes[4].detail["request"];
    assert_eq!(last["old_state"], "active");
    assert_eq!(last["new_state"], "revoked");
    assert_eq!(last["version"], 3);
    assert!(last["document_sha256"]
        .as_str()
        .is_some_and(|h| h.len() == 64));

    // ODRL export round-trips through import as a draft.
    let exported = h
        .get("/api/v1/agreements/paris-raw/odrl", &h.tokens.a_viewer)
        .await?;
    assert_eq!(exported.content_type, "application/ld+json");
    let mut odrl = exported.json();
    odrl["uid"] = json!("urn:beffroi:agreement:paris-raw-copy");
    let imported = h
        .post_json("/api/v1/agreements/import", &h.tokens.a_admin, &odrl)
        .await?;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.text());
    assert_eq!(imported.json()["agreement"]["state"], "draft");
    // A document exported before the profile's URNs, with the placeholder IRIs, imports too.
    assert_eq!(odrl["profile"], "urn:beffroi:odrl:profile");
    odrl["uid"] = json!("urn:beffroi:agreement:paris-raw-first");
    odrl["@context"][1]["beffroi"] = json!("https://example.invalid/beffroi/ns/policy#");
    odrl["profile"] = json!("https://example.invalid/beffroi/ns/policy");
    let imported = h
        .post_json("/api/v1/agreements/import", &h.tokens.a_admin, &odrl)
        .await?;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.text());
    h.stop().await
}

async fn aggregates_follow_the_grid_and_hide_small_cells(h: Harness) -> Result<()> {
    let f = fixture(&h).await?;
    create(&h, &aggregate_agreement("acme-hourly", "partner:acme")).await?;
    let base = format!(
        "/api/v1/shared/{A}/aggregates?purpose=research&metric={METRIC}&{}",
        f.range()
    );
    let token = &f.partner_token;
    denied(
        &h.get(&format!("{base}&bucket=30m"), token).await?,
        "bucket_not_allowed",
    );
    denied(
        &h.get(&format!("{base}&functions=max"), token).await?,
        "function_not_allowed",
    );
    denied(
        &h.get(&format!("{base}&level=sensor"), token).await?,
        "spatial_level_not_allowed",
    );
    let answer = h
        .get_json(&format!("{base}&bucket=1h&functions=avg,sum,count"), token)
        .await?;
    let cells = answer["cells"].as_array().context("cells")?;
    let totals = answer["totals"].as_array().context("totals")?;
    assert_eq!(totals.len(), 4, "{answer}");
    for cell in cells.iter().chain(totals) {
        let bucket: Timestamp = serde_json::from_value(cell["bucket"].clone())?;
        assert_eq!(bucket.unix_micros() % HOUR_US, 0, "hour-aligned: {cell}");
    }
    // South (2 sensors < k = 3) is suppressed, and centre with it (complementary): only
    // north is published, and total − north covers 5 sensors, never south alone.
    for cell in cells {
        match cell["unit"].as_str() {
            Some("north") => {
                assert_eq!(cell["suppressed"], false, "{cell}");
                assert_eq!(cell["values"]["count"], 4 * 6);
            }
            Some("centre" | "south") => {
                assert_eq!(cell["suppressed"], true, "{cell}");
                assert!(cell.get("values").is_none(), "{cell}");
            }
            other => panic!("unexpected unit {other:?}"),
        }
    }
    assert_eq!(cells.len(), 12);
    for (hour, total) in totals.iter().enumerate() {
        let north = cells
            .iter()
            .find(|c| c["unit"] == "north" && c["bucket"] == total["bucket"])
            .context("north cell")?;
        let rest = total["values"]["sum"].as_f64().unwrap_or_default()
            - north["values"]["sum"].as_f64().unwrap_or_default();
        let steps = (6 * hour as i64)..(6 * hour as i64 + 6);
        let south: f64 = (7..9)
            .flat_map(|i| steps.clone().map(move |s| value(i, s)))
            .sum();
        let centre: f64 = (4..7)
            .flat_map(|i| steps.clone().map(move |s| value(i, s)))
            .sum();
        assert!((rest - (south + centre)).abs() < 1e-6);
        assert!(
            (rest - south).abs() > 1.0,
            "south alone is not recomputable"
        );
    }
    // The registry in scope: zones, not sensors.
    let registry = h
        .get_json(
            &format!("/api/v1/shared/{A}/sensors?purpose=research"),
            token,
        )
        .await?;
    let units: Vec<&str> = registry["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|u| u["zone"].as_str())
        .collect();
    assert_eq!(units, ["centre", "north", "south"]);
    assert!(!registry.to_string().contains("n1"), "{registry}");
    h.stop().await
}

/// Captured log output.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn raw_rows_keep_allowed_fields_and_pseudonymise(h: Harness) -> Result<()> {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests' threads may have cached "no interest" for our callsites.
    tracing::callsite::rebuild_interest_cache();

    let f = fixture(&h).await?;
    set_clock(&h, Timestamp::now());
    create(&h, &raw_agreement("paris-raw", "tenant:paris")).await?;
    create(&h, &raw_agreement("acme-raw", "partner:acme")).await?;
    let path = format!(
        "/api/v1/shared/{A}/readings?purpose=research&metric={METRIC}&{}",
        f.range()
    );
    let mut bodies = Vec::new();
    let first = h.get(&path, &h.tokens.b_viewer).await?;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let page = first.json();
    let items = page["items"].as_array().context("items")?;
    assert_eq!(items.len(), 9 * 24);
    for item in items {
        assert_eq!(keys(item), ["sensor", "time", "value"], "{item}");
        assert!(item["sensor"].as_str().is_some_and(|s| s.starts_with("p_")));
    }
    for hidden in ["gw-a2", "\"zone\"", "\"gateway\"", "\"metric\"", "\"n1\""] {
        assert!(!first.text().contains(hidden), "{hidden} leaked");
    }
    denied(
        &h.get(&format!("{path}&fields=gateway"), &h.tokens.b_viewer)
            .await?,
        "field_not_allowed",
    );
    let pseudonyms = |body: &Value| -> BTreeSet<String> {
        body["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["sensor"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let paris = pseudonyms(&page);
    assert_eq!(paris.len(), 9);
    let again = h.get(&path, &h.tokens.b_viewer).await?;
    assert_eq!(pseudonyms(&again.json()), paris, "stable for one grantee");
    let acme = h.get(&path, &f.partner_token).await?;
    assert_eq!(acme.status, StatusCode::OK, "{}", acme.text());
    assert!(
        pseudonyms(&acme.json()).is_disjoint(&paris),
        "different across grantees"
    );

    // The preview is exactly what the grantee gets, and is audited as a preview.
    let preview_path = path.replace(
        &format!("/api/v1/shared/{A}/readings"),
        "/api/v1/agreements/paris-raw/preview/readings",
    );
    let preview = h.get(&preview_path, &h.tokens.a_viewer).await?;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text());
    assert_eq!(preview.body, first.body);
    let permits = audit_of(&h, AuditKind::AccessPermit).await?;
    let previews: Vec<_> = permits
        .iter()
        .filter(|e| e.detail["query"]["preview"] == true)
        .collect();
    assert_eq!(previews.len(), 1);
    assert_eq!(previews[0].detail["grantee"], "tenant:paris");
    assert_eq!(
        previews[0].detail["result_hash"],
        permits[0].detail["result_hash"]
    );
    assert_eq!(permits[0].detail["rows"], 9 * 24);

    // Registry: pseudonyms, no positions.
    let registry = h
        .get(
            &format!("/api/v1/shared/{A}/sensors?purpose=research&agreement=paris-raw"),
            &h.tokens.b_viewer,
        )
        .await?;
    assert_eq!(registry.status, StatusCode::OK, "{}", registry.text());
    let listed: BTreeSet<String> = registry.json()["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|u| u["sensor"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(listed, paris);
    assert!(!registry.text().contains("\"lat\""));

    let paris_id = AgreementId::new("paris-raw")?;
    let old_key = h
        .store
        .pseudonym_key(&TenantId::new(A)?, &paris_id)
        .await?
        .context("key")?;
    let rotated = h
        .post_json(
            "/api/v1/agreements/paris-raw/keys/rotate",
            &h.tokens.a_admin,
            &json!({}),
        )
        .await?;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    assert_eq!(rotated.json()["epoch"], 2);
    let after = h.get(&path, &h.tokens.b_viewer).await?;
    assert!(
        pseudonyms(&after.json()).is_disjoint(&paris),
        "rotation changes pseudonyms"
    );

    // No key material anywhere: responses, agreements listings, logs.
    let listing = h.get("/api/v1/agreements", &h.tokens.a_admin).await?;
    let shared = h.get("/api/v1/shared", &h.tokens.b_viewer).await?;
    bodies.extend([
        first.text(),
        again.text(),
        acme.text(),
        preview.text(),
        registry.text(),
        rotated.text(),
        after.text(),
        listing.text(),
        shared.text(),
    ]);
    let mut keys_bytes = vec![*old_key.expose_secret()];
    for id in ["paris-raw", "acme-raw"] {
        let key = h
            .store
            .pseudonym_key(&TenantId::new(A)?, &AgreementId::new(id)?)
            .await?
            .context("key")?;
        keys_bytes.push(*key.expose_secret());
    }
    let logged = logs.0.lock().map(|l| l.clone()).unwrap_or_default();
    let logged = String::from_utf8_lossy(&logged).into_owned();
    for key in keys_bytes {
        for form in [
            hex::encode(key),
            STANDARD.encode(key),
            URL_SAFE_NO_PAD.encode(key),
            format!("{key:?}"),
        ] {
            for body in &bodies {
                assert!(!body.contains(&form), "key bytes in a response");
            }
            assert!(!logged.contains(&form), "key bytes in the logs");
        }
    }
    h.stop().await
}

async fn partner_tokens_read_only_shared_data(h: Harness) -> Result<()> {
    let f = fixture(&h).await?;
    let token = &f.partner_token;
    for path in [
        "/api/v1/sensors",
        "/api/v1/readings",
        "/api/v1/agreements",
        "/api/v1/tenant",
        "/api/v1/alarms",
    ] {
        h.get(path, token).await?.problem(StatusCode::FORBIDDEN);
    }
    let me = h.get_json("/api/v1/me", token).await?;
    assert_eq!(me["scope"], "partner");
    assert_eq!(me["partner"]["id"], "acme");
    create(&h, &aggregate_agreement("acme-hourly", "partner:acme")).await?;
    create(&h, &raw_agreement("paris-raw", "tenant:paris")).await?;
    let shared = h.get_json("/api/v1/shared", token).await?;
    let ids: Vec<&str> = shared["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|r| r["agreement"]["id"].as_str())
        .collect();
    assert_eq!(ids, ["acme-hourly"]);
    // Paris's agreement does not serve the partner.
    let path = format!(
        "/api/v1/shared/{A}/readings?purpose=research&agreement=paris-raw&{}",
        f.range()
    );
    denied(&h.get(&path, token).await?, "no_agreement");
    h.stop().await
}

async fn public_grants_are_readable_without_a_token(h: Harness) -> Result<()> {
    let f = fixture(&h).await?;
    let path = format!(
        "/api/v1/shared/{A}/aggregates?purpose=open_data&metric={METRIC}&{}",
        f.range()
    );
    denied(&get_anonymous(&h, &path).await?, "no_agreement");
    create(&h, &aggregate_agreement("open-hourly", "public")).await?;
    let answer = get_anonymous(&h, &path).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["agreement"]["id"], "open-hourly");
    let permits = audit_of(&h, AuditKind::AccessPermit).await?;
    assert_eq!(permits.len(), 1);
    assert_eq!(permits[0].actor.to_string(), "public");
    assert_eq!(permits[0].detail["grantee"], "public");
    let listed = get_anonymous(&h, "/api/v1/shared").await?;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json()["items"].as_array().map(Vec::len), Some(1));
    // A token that is there must be valid: no silent fallback to public.
    h.get(&path, "bfr_nope")
        .await?
        .problem(StatusCode::UNAUTHORIZED);
    h.stop().await
}

async fn reads_and_changes_fail_closed_when_the_audit_log_is_down(h: Harness) -> Result<()> {
    let f = fixture(&h).await?;
    create(&h, &raw_agreement("paris-raw", "tenant:paris")).await?;
    let path = format!(
        "/api/v1/shared/{A}/readings?purpose=research&metric={METRIC}&{}",
        f.range()
    );
    h.get_json(&path, &h.tokens.b_viewer).await?;

    h.database.break_audit_log().await?;

    let failed = h.get(&path, &h.tokens.b_viewer).await?;
    let detail = failed.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(detail.contains("audit"), "{detail}");
    assert!(!failed.text().contains("p_"), "no data leaves");
    let wrong = path.replace("purpose=research", "purpose=billing");
    h.get(&wrong, &h.tokens.b_viewer)
        .await?
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    h.post_json(
        "/api/v1/agreements/paris-raw/state",
        &h.tokens.a_admin,
        &json!({ "state": "suspended" }),
    )
    .await?
    .problem(StatusCode::SERVICE_UNAVAILABLE);
    let record = h
        .store
        .agreement(&TenantId::new(A)?, &AgreementId::new("paris-raw")?)
        .await?
        .context("agreement")?;
    assert_eq!(record.agreement.state.as_str(), "active", "not changed");
    h.stop().await
}
