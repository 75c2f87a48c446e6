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

/// Every GET path of the OpenAPI document, with B's ids substituted.
async fn get_paths(api: &Api) -> anyhow::Result<Vec<String>> {
    let document = api.get_json("/api/v1/openapi.json").await?;
    let paths = document["paths"]
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("no paths in the OpenAPI document"))?;
    let mut out = Vec::new();
    for (path, item) in paths {
        if item.get("get").is_none() {
            continue;
        }
        anyhow::ensure!(
            !path.contains('{') || path == "/api/v1/gateways/{id}",
            "a GET path this scenario does not know how to fill: {path}"
        );
        out.push(path.replace("{id}", B_GATEWAY));
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
    let seen = std::sync::Mutex::new((0, 0));
    poll_until(
        "B's quarantine and security events",
        Duration::from_secs(20),
        || async {
            let q = api_b.quarantine().await?;
            let e = api_b.security_events().await?;
            *seen.lock().unwrap() = (q.len(), e.len());
            Ok((!q.is_empty() && e.len() >= 2).then_some(()))
        },
        || {
            let (q, e) = *seen.lock().unwrap();
            format!(
                "API: {q} quarantined, {e} security events; {}",
                platform.sqlite_counts(&["quarantine", "security_events"])
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
    ];
    for path in &b_view {
        let response = api_b.get(path).await?;
        assert_eq!(response.status, 200, "B's own {path}: {}", response.body);
        assert!(
            response.body.contains(&tenant_b)
                || response.body.contains(B_GATEWAY)
                || response.body.contains(B_SENSOR)
                || response.body.contains(B_ZONE),
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
    ];
    let mut checked = 0;
    for path in get_paths(&api_a).await? {
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
                            assert!(items.is_empty(), "A's GET {url} lists items: {body}");
                        }
                    }
                }
                // Not found in A's tenant, or a filter A's tenant cannot use.
                400 | 404 => {
                    assert!(
                        !response.body.contains(&tenant_b) && !response.body.contains(&gw_b.key_id),
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
