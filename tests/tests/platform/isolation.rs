//! Scenario 7: tenant B has data of every kind (a gateway with stored readings, a zone, a
//! sensor, a quarantined message, security events); tenant A's token walks every GET path
//! of the OpenAPI document — with B's ids wherever a path or a filter takes one — and gets
//! 404 or empty answers, never anything of B's. B's own token sees its data (the control).

use std::time::Duration;

use beffroi_protocol::{Batch, GatewayId, Signer, TenantId};
use beffroi_tests::gate_client::GateClient;
use beffroi_tests::http::Api;
use beffroi_tests::input;
use beffroi_tests::wait::poll_until;
use beffroi_tests::PlatformSpec;
use rumqttc::v5::mqttbytes::QoS;
use serde_json::json;

use crate::common::{
    jsonl_agent, range, recent_base, unique_tenant, wait_stored, write_jsonl, Scenario,
};

const B_GATEWAY: &str = "gw-bravo-secret";
const B_SENSOR: &str = "sensor-03";
const B_ZONE: &str = "zone-bravo-secret";
const B_METRIC: &str = "air.pm25";
const B_RULE: &str = "rule-bravo-secret";
const B_AGREEMENT: &str = "agreement-bravo-secret";

/// Every GET path of the OpenAPI document, with B's ids substituted (`b_alarm`: one of B's
/// alarm ids; `tenant_b`: B, as the grantor of shared data).
async fn get_paths(api: &Api, b_alarm: i64, tenant_b: &str) -> anyhow::Result<Vec<String>> {
    let document = api.get_json("/api/v1/openapi.json").await?;
    let paths = document["paths"]
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("no paths in the OpenAPI document"))?;
    let mut out = Vec::new();
    for (path, item) in paths {
        if item.get("get").is_none() {
            continue;
        }
        let id = match path.as_str() {
            "/api/v1/gateways/{id}" => B_GATEWAY.to_owned(),
            "/api/v1/alarm-rules/{id}" => B_RULE.to_owned(),
            "/api/v1/alarms/{id}" => b_alarm.to_string(),
            p if p.starts_with("/api/v1/agreements/{id}") => B_AGREEMENT.to_owned(),
            p if p.starts_with("/api/v1/shared/{grantor}/") => {
                out.push(path.replace("{grantor}", tenant_b));
                continue;
            }
            _ => {
                anyhow::ensure!(
                    !path.contains('{'),
                    "a GET path this scenario does not know how to fill: {path}"
                );
                String::new()
            }
        };
        out.push(path.replace("{id}", &id));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_isolation() -> anyhow::Result<()> {
    let scenario = Scenario::new("isolation")?;
    let mut platform = scenario.platform("platform", &PlatformSpec::default())?;
    let (tenant_a, tenant_b) = (unique_tenant("alpha"), unique_tenant("bravo"));
    platform.create_tenant(&tenant_a).await?;
    platform.create_tenant(&tenant_b).await?;
    let token_a = platform.create_token(&tenant_a, "admin").await?;
    let token_b = platform.create_token(&tenant_b, "admin").await?;
    let gw_b = platform.enroll(&tenant_b, B_GATEWAY).await?;
    platform.start().await?;
    let (api_a, api_b) = (platform.api_as(&token_a), platform.api_as(&token_b));

    // B's data: registry, readings from a real agent, a quarantined batch, security events.
    let zone = json!({ "name": "Bravo secret zone", "geometry": { "type": "Polygon",
        "coordinates": [[[4.0, 45.0], [4.1, 45.0], [4.1, 45.1], [4.0, 45.1], [4.0, 45.0]]] } });
    let put = api_b
        .put_json(&format!("/api/v1/zones/{B_ZONE}"), &zone)
        .await?;
    assert_eq!(put.status, 200, "{}", put.body);
    let sensor =
        json!({ "kind": "air", "unit": "ug/m3", "lat": 45.05, "lon": 4.05, "zone": B_ZONE });
    let put = api_b
        .put_json(&format!("/api/v1/sensors/{B_SENSOR}"), &sensor)
        .await?;
    assert_eq!(put.status, 200, "{}", put.body);
    // A rule that turns B's security events into alarms.
    let rule = json!({ "id": B_RULE, "name": "Bravo secret rule", "severity": "critical",
        "condition": { "kind": "security" } });
    let created = api_b.post_json("/api/v1/alarm-rules", &rule).await?;
    assert_eq!(created.status, 201, "{}", created.body);
    // A draft agreement: B's own business until B puts it in force.
    let now = beffroi_protocol::Timestamp::now().unix_micros();
    let day = 86_400_000_000;
    let agreement = json!({ "id": B_AGREEMENT, "grantee": "public", "state": "draft",
        "not_before": beffroi_protocol::Timestamp::from_unix_micros(now - day).to_string(),
        "not_after": beffroi_protocol::Timestamp::from_unix_micros(now + day).to_string(),
        "purposes": ["open_data"], "action": "read_aggregate",
        "target": { "metrics": [B_METRIC] }, "min_bucket_s": 3600,
        "functions": ["avg"], "k": 1, "spatial_level": "zone",
        "pseudonymise": false, "embargo_s": 0 });
    let created = api_b.post_json("/api/v1/agreements", &agreement).await?;
    assert_eq!(created.status, 201, "{}", created.body);

    let base = recent_base();
    let readings = input::readings_from(base, 0, 200);
    let file = gw_b.dir.join("readings.jsonl");
    write_jsonl(&file, &readings)?;
    let mut agent = gw_b.agent(jsonl_agent(&file, false), platform.gate_port)?;
    agent.start()?;
    wait_stored(&api_b, range(base), readings.len(), &[&platform.log]).await?;
    agent.kill9()?;

    let mut intruder = GateClient::connect(platform.gate_port, gw_b.tls()?, B_GATEWAY);
    intruder
        .connected(Duration::from_secs(10))
        .await?
        .map_err(anyhow::Error::msg)?;
    let signer = Signer::new(gw_b.signing_key()?);
    let batch = Batch::new(
        TenantId::new(tenant_b.as_str())?,
        GatewayId::new(B_GATEWAY)?,
        1,
        input::readings_from(base, 5000, 5),
    )?;
    let (topic, envelope) = signer.seal_batch(&batch)?;
    intruder.publish_acked(&topic.to_string(), envelope).await?;
    intruder.client.subscribe("#", QoS::AtLeastOnce).await?;
    intruder.closed(Duration::from_secs(10)).await?;
    let seen = std::sync::Mutex::new((0, 0, 0));
    let b_alarm = poll_until(
        "B's quarantine, security events and alarms",
        Duration::from_secs(20),
        || async {
            let q = api_b.quarantine().await?;
            let e = api_b.security_events().await?;
            let a = api_b.all_items("/api/v1/alarms").await?;
            *seen.lock().unwrap() = (q.len(), e.len(), a.len());
            let alarm = a.first().and_then(|a| a["id"].as_i64());
            Ok((!q.is_empty() && e.len() >= 2).then_some(alarm).flatten())
        },
        || {
            let (q, e, a) = *seen.lock().unwrap();
            format!(
                "API: {q} quarantined, {e} security events, {a} alarms; {}",
                platform.sqlite_counts(&["quarantine", "security_events", "alarms"])
            )
        },
    )
    .await?;

    // Control: B's token sees all of it.
    let (from, to) = range(base);
    let window = format!("from={from}&to={to}");
    let b_view = [
        "/api/v1/tenant".to_owned(),
        "/api/v1/gateways".to_owned(),
        format!("/api/v1/gateways/{B_GATEWAY}"),
        "/api/v1/sensors".to_owned(),
        "/api/v1/zones".to_owned(),
        format!("/api/v1/readings?{window}"),
        format!("/api/v1/readings/buckets?{window}&bucket=1h&metric={B_METRIC}"),
        "/api/v1/quarantine".to_owned(),
        "/api/v1/security-events".to_owned(),
        "/api/v1/alarm-rules".to_owned(),
        format!("/api/v1/alarm-rules/{B_RULE}"),
        "/api/v1/alarms".to_owned(),
        format!("/api/v1/alarms/{b_alarm}"),
        format!("/api/v1/agreements/{B_AGREEMENT}"),
    ];
    for path in &b_view {
        let response = api_b.get(path).await?;
        assert_eq!(response.status, 200, "B's own {path}: {}", response.body);
        assert!(
            response.body.contains(&tenant_b)
                || response.body.contains(B_GATEWAY)
                || response.body.contains(B_SENSOR)
                || response.body.contains(B_ZONE)
                || response.body.contains(B_RULE)
                || response.body.contains(B_AGREEMENT),
            "B's own {path} shows nothing of B's: {}",
            response.body
        );
    }

    // A's token on every GET path, plain and with B's ids as filters.
    let filters = [
        String::new(),
        window.clone(),
        format!("{window}&sensor={B_SENSOR}"),
        format!("{window}&metric={B_METRIC}"),
        format!("{window}&zone={B_ZONE}"),
        format!("{window}&sensor={B_SENSOR}&zone={B_ZONE}&metric={B_METRIC}&bucket=1h"),
    ];
    let secrets = [
        tenant_b.as_str(),
        B_GATEWAY,
        B_ZONE,
        "Bravo secret zone",
        &gw_b.key_id,
        B_RULE,
        "Bravo secret rule",
        B_AGREEMENT,
    ];
    let mut checked = 0;
    for path in get_paths(&api_a, b_alarm, &tenant_b).await? {
        for filter in &filters {
            let url = if filter.is_empty() {
                path.clone()
            } else {
                format!("{path}?{filter}")
            };
            let response = api_a.get(&url).await?;
            checked += 1;
            match response.status {
                // An answer about A's own (empty) tenant.
                200 => {
                    for secret in secrets {
                        assert!(
                            !response.body.contains(secret),
                            "A's GET {url} shows B's {secret:?}: {}",
                            response.body
                        );
                    }
                    if let Ok(body) = response.json() {
                        if let Some(items) = body.get("items").and_then(|i| i.as_array()) {
                            // A's own audit log records A's token and reads: A's entries only.
                            let own = path.starts_with("/api/v1/audit")
                                && items.iter().all(|i| i["tenant"] == tenant_a.as_str());
                            assert!(own || items.is_empty(), "A's GET {url} lists items: {body}");
                        }
                    }
                }
                // Not found in A's tenant, a filter A's tenant cannot use, the live
                // websocket asked without an upgrade, or the platform operators' routes.
                400 | 403 | 404 => {
                    // What A put in the URL (B as a grantor, an agreement id) may be echoed.
                    let echoed = |secret: &str| url.contains(secret);
                    assert!(
                        (echoed(&tenant_b) || !response.body.contains(&tenant_b))
                            && !response.body.contains(&gw_b.key_id)
                            && (echoed(B_AGREEMENT) || !response.body.contains(B_AGREEMENT)),
                        "A's GET {url} error names B's data: {}",
                        response.body
                    );
                }
                status => panic!(
                    "A's GET {url}: unexpected status {status}: {}",
                    response.body
                ),
            }
        }
    }
    let listed = api_a.get_json("/api/v1/tenant").await?;
    assert_eq!(listed["id"], tenant_a.as_str(), "{listed}");
    eprintln!("isolation: {checked} requests with A's token, none showed B's data");
    scenario.pass();
    Ok(())
}
