//! Scenario 9 (issue #7): live views, alarms and `beffroi watch` against the real platform
//! and a real agent fed on standard input.
//!
//! An operator's websocket (first-message auth, as the dashboard does) follows one zone and
//! the alarms; `beffroi watch` (a real process) follows three other sensors. Readings sent by the
//! agent arrive live only where their view matches, and each live value is a stored one; a
//! threshold rule created through the API opens an alarm, pushed live; it is acknowledged
//! through the API (who, comment), then clears by itself when the value drops. A platform
//! operator's connection sees the security event of a client without a certificate; the
//! tenant's does not. SIGTERM closes live views with 1001.

use std::process::Stdio;
use std::time::Duration;

use beffroi_protocol::{MetricName, Reading, SensorId, Timestamp, Unit, Value};
use beffroi_tests::gate_client::{tls_config, GateClient};
use beffroi_tests::input;
use beffroi_tests::live::LiveClient;
use beffroi_tests::platform::platform_binary;
use beffroi_tests::{AgentSpec, PlatformSpec, SourceSpec};
use serde_json::json;

use crate::common::{unique_tenant, Scenario};

const WAIT: Duration = Duration::from_secs(20);

fn pm25(sensor: &str, value: f64, time: Timestamp) -> Reading {
    Reading {
        sensor: SensorId::new(sensor).unwrap(),
        metric: MetricName::new("air.pm25").unwrap(),
        unit: Unit::new("ug/m3").unwrap(),
        time,
        value: Value::Number(value),
    }
}

fn items(frame: &serde_json::Value) -> Vec<(String, f64)> {
    frame["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["sensor"].as_str().unwrap_or_default().to_owned(),
                i["value"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_views_alarms_and_watch() -> anyhow::Result<()> {
    let scenario = Scenario::new("live")?;
    let mut platform = scenario.platform("platform", &PlatformSpec::default())?;
    let tenant = unique_tenant("live");
    platform.create_tenant(&tenant).await?;
    let admin = platform.create_token(&tenant, "admin").await?;
    let operator_token = platform
        .cli(&["token", "create", "--platform", "--name", "soc"])
        .await?
        .trim()
        .to_owned();
    let gateway = platform.enroll(&tenant, "gw-1").await?;
    platform.start().await?;
    let api = platform.api_as(&admin);

    let square = json!({"type": "Polygon", "coordinates":
        [[[4.82, 45.74], [4.84, 45.74], [4.84, 45.76], [4.82, 45.76], [4.82, 45.74]]]});
    let response = api
        .put_json(
            "/api/v1/zones/centre",
            &json!({"name": "Centre", "geometry": square}),
        )
        .await?;
    assert_eq!(response.status, 200, "{}", response.body);
    for (sensor, zone) in [("s1", Some("centre")), ("s2", None)] {
        let body = json!({"kind": "air", "lat": 45.75, "lon": 4.83, "zone": zone});
        let response = api
            .put_json(&format!("/api/v1/sensors/{sensor}"), &body)
            .await?;
        assert_eq!(response.status, 200, "{}", response.body);
    }
    let rule = json!({"name": "PM2.5 high", "severity": "major", "condition":
        {"kind": "threshold", "metric": "air.pm25", "op": "gt", "value": 50, "for_s": 0}});
    let response = api.post_json("/api/v1/alarm-rules", &rule).await?;
    assert_eq!(response.status, 201, "{}", response.body);

    let mut operator = LiveClient::connect(platform.api_addr(), &admin).await?;
    assert_eq!(operator.hello["tenant"], tenant.as_str());
    let subscribed = operator
        .subscribe(json!({"id": "centre", "stream": "readings", "filter": {"zones": ["centre"]}}))
        .await?;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    operator
        .subscribe(json!({"id": "alarms", "stream": "alarms"}))
        .await?;
    operator
        .subscribe(json!({"id": "sec", "stream": "security", "snapshot": false}))
        .await?;

    let watch = tokio::process::Command::new(platform_binary()?)
        .args([
            "watch",
            "--url",
            &format!("http://{}", platform.api_addr()),
            "--sensor",
            "s2",
            "--sensor",
            "s3",
            "--sensor",
            "s4",
            "--count",
            "3",
            "--no-snapshot",
            "--format",
            "json",
        ])
        .env("BEFFROI_TOKEN", &admin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;

    let mut spec = AgentSpec::new("gw-1", SourceSpec::JsonlStdin);
    spec.max_readings = 1;
    spec.max_linger_ms = 10;
    let mut agent = gateway.agent(spec, platform.gate_port)?;
    agent.start()?;
    // Give `watch` time to subscribe before the readings it waits for.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Timestamp::now();
    let at = |ms: i64| Timestamp::from_unix_micros(t.unix_micros() + ms * 1000);
    let first = [
        pm25("s1", 10.0, at(0)),
        pm25("s2", 20.0, at(0)),
        pm25("s3", 21.0, at(100)),
        pm25("s4", 22.0, at(200)),
    ];
    agent.feed(input::jsonl(&first)).await?;

    // The zone's view gets s1 only; the live value is the stored one.
    let frame = operator
        .until(WAIT, |f| {
            f["type"] == "readings" && f["sub"] == "centre" && f["snapshot"] == false
        })
        .await?;
    assert_eq!(items(&frame), [("s1".to_owned(), 10.0)], "{frame}");
    let stored = api
        .get_json(&format!(
            "/api/v1/readings?sensor=s1&from={}&to={}",
            at(-1000),
            at(60_000)
        ))
        .await?;
    assert_eq!(stored["items"][0]["value"], 10.0, "{stored}");
    assert_eq!(stored["items"][0]["time"], frame["items"][0]["time"]);

    // `beffroi watch` printed the three values of its sensors (and nothing else), exited 0.
    let output = tokio::time::timeout(WAIT, watch.wait_with_output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "watch: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut watched: Vec<(String, f64)> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|f| f["type"] == "readings")
        .flat_map(|f| items(&f))
        .collect();
    watched.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        watched,
        [
            ("s2".to_owned(), 20.0),
            ("s3".to_owned(), 21.0),
            ("s4".to_owned(), 22.0)
        ],
        "{stdout}"
    );

    // Above the threshold: an alarm opens and is pushed live.
    agent
        .feed(input::jsonl(&[pm25("s1", 80.0, at(1000))]))
        .await?;
    let frame = operator
        .until(WAIT, |f| {
            f["type"] == "alarm" && f["alarm"]["state"] == "open"
        })
        .await?;
    let alarm = &frame["alarm"];
    assert_eq!(alarm["value"], 80.0, "{alarm}");
    assert_eq!(alarm["zone"], "centre");
    assert_eq!(alarm["subject"]["sensor"], "s1");
    let id = alarm["id"].as_i64().unwrap();

    // Acknowledged through the API (who, comment), pushed live; twice is a conflict.
    let response = api
        .post_json(
            &format!("/api/v1/alarms/{id}/acknowledge"),
            &json!({"comment": "team on site"}),
        )
        .await?;
    assert_eq!(response.status, 200, "{}", response.body);
    let frame = operator
        .until(WAIT, |f| {
            f["type"] == "alarm" && f["alarm"]["state"] == "acknowledged"
        })
        .await?;
    assert_eq!(frame["alarm"]["acknowledged"]["comment"], "team on site");
    assert_eq!(
        frame["alarm"]["acknowledged"]["by"]["name"]
            .as_str()
            .map(|n| !n.is_empty()),
        Some(true)
    );
    let again = api
        .post_json(&format!("/api/v1/alarms/{id}/acknowledge"), &json!({}))
        .await?;
    assert_eq!(again.status, 409, "{}", again.body);

    // The value drops: the alarm clears by itself and stays in the history.
    agent
        .feed(input::jsonl(&[pm25("s1", 12.0, at(2000))]))
        .await?;
    let frame = operator
        .until(WAIT, |f| {
            f["type"] == "alarm" && f["alarm"]["state"] == "cleared"
        })
        .await?;
    assert_eq!(frame["alarm"]["cleared"]["by"], serde_json::Value::Null);
    let history = api.get_json("/api/v1/alarms?state=cleared").await?;
    assert_eq!(history["items"][0]["id"], id, "{history}");

    // A client without a certificate: a security event of no tenant, seen by the platform
    // operator only.
    let mut soc = LiveClient::connect_with_header(platform.api_addr(), &operator_token).await?;
    assert_eq!(soc.hello["scope"], "platform");
    soc.subscribe(json!({"id": "sec", "stream": "security"}))
        .await?;
    let mut anonymous =
        GateClient::connect(platform.gate_port, tls_config(&gateway.ca, None)?, "gw-1");
    let _ = anonymous.closed(WAIT).await;
    let frame = soc.until(WAIT, |f| f["type"] == "security_event").await?;
    assert_eq!(frame["event"]["tenant"], serde_json::Value::Null, "{frame}");
    assert_eq!(frame["event"]["kind"], "tls_rejected");
    let forbidden = soc
        .subscribe(json!({"id": "r", "stream": "readings"}))
        .await?;
    assert_eq!(forbidden["code"], "forbidden");
    // The tenant's connection saw no such event (it may see its own security events only).
    agent
        .feed(input::jsonl(&[pm25("s1", 13.0, at(3000))]))
        .await?;
    let next = operator
        .until(WAIT, |f| {
            f["type"] == "readings" || f["type"] == "security_event"
        })
        .await?;
    assert_eq!(next["type"], "readings", "{next}");

    // SIGTERM: live views are told the server is going away.
    agent.kill9()?;
    let (status, _) = platform.terminate(Duration::from_secs(8)).await?;
    assert!(status.success(), "the platform exited with {status}");
    let (code, _) = operator.closed(WAIT).await?;
    assert_eq!(code, 1001);
    scenario.pass();
    Ok(())
}
