//! Sources with real parts: JSON lines from real files, and the MQTT source against the
//! Mosquitto broker listening on 127.0.0.1:1883 (no auth). Each MQTT test uses its own topic
//! prefix so parallel runs do not collide; every wait is bounded.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use beffroi_agent::source::{RawSource, ReadingSink, SourceSpec};
use beffroi_agent::telemetry::{Counter, Telemetry};
use beffroi_protocol::{Reading, Value};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

fn spec(toml_text: &str, base: &Path) -> SourceSpec {
    toml::from_str::<RawSource>(toml_text)
        .unwrap()
        .validate("sources[0]", base)
        .unwrap()
}

struct Running {
    telemetry: Arc<Telemetry>,
    rx: mpsc::Receiver<Reading>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

fn start(spec: &SourceSpec) -> Running {
    let telemetry = Arc::new(Telemetry::default());
    let (tx, rx) = mpsc::channel(1024);
    let sink = ReadingSink::new(tx, telemetry.clone(), spec.name());
    let stop = CancellationToken::new();
    let source = spec.build().unwrap();
    let run = source.run(sink, stop.clone());
    let task = tokio::spawn(async move { run.await.unwrap() });
    Running {
        telemetry,
        rx,
        stop,
        task,
    }
}

impl Running {
    async fn next(&mut self) -> Reading {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("a reading within the timeout")
            .expect("the source is still running")
    }

    async fn wait_for(&self, counter: Counter, at_least: u64) {
        tokio::time::timeout(WAIT, async {
            while self.telemetry.get(counter) < at_least {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{} never reached {at_least}", counter.name()));
    }

    async fn stop(self) -> Arc<Telemetry> {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap();
        self.telemetry
    }
}

#[tokio::test]
async fn jsonl_file_good_and_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"sensor":"s-1","metric":"air.pm25","unit":"ug/m3","time":"2026-01-01T08:00:00Z","value":12.5}"#,
        "",
        r#"{"sensor":"s-1","metric":"air.pm25","value":"#,
        r#"{"sensor":"S 1","metric":"air.pm25","value":1}"#,
        &"z".repeat(100_000),
        r#"{"n":"s-2/door.open","vb":true,"t":1767254400}"#,
        r#"{"sensor":"s-3","metric":"status","value":"ok","time":1767254400.25}"#,
    ];
    std::fs::write(dir.path().join("in.jsonl"), lines.join("\n")).unwrap();
    // A relative path is taken from the config file's directory.
    let spec = spec("kind = \"jsonl\"\npath = \"in.jsonl\"", dir.path());
    let mut running = start(&spec);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(running.next().await);
    }
    // End of file ends the source.
    tokio::time::timeout(WAIT, &mut running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(running.rx.recv().await.is_none());
    assert_eq!(got[0].value, Value::Number(12.5));
    assert_eq!(got[0].time.to_string(), "2026-01-01T08:00:00.000000Z");
    assert_eq!(
        (got[1].sensor.as_str(), got[1].metric.as_str()),
        ("s-2", "door.open")
    );
    assert_eq!(got[1].value, Value::Bool(true));
    assert_eq!(got[2].value, Value::Text("ok".into()));
    assert_eq!(got[2].time.to_string(), "2026-01-01T08:00:00.250000Z");
    let t = &running.telemetry;
    assert_eq!(t.get(Counter::InputMalformed), 3);
    assert_eq!(t.get(Counter::ReadingsCollected), 3);
    assert_eq!(t.get(Counter::SourceErrors), 0);
}

#[tokio::test]
async fn jsonl_follow_reads_appended_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("follow.jsonl");
    std::fs::write(&path, "{\"sensor\":\"s\",\"metric\":\"a\",\"value\":1}\n").unwrap();
    let spec = spec(
        "kind = \"jsonl\"\npath = \"follow.jsonl\"\nfollow = true",
        dir.path(),
    );
    let mut running = start(&spec);
    assert_eq!(running.next().await.value, Value::Number(1.0));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    // A line written in two parts is read once whole.
    file.write_all(b"{\"sensor\":\"s\",\"metric\":\"a\",")
        .unwrap();
    file.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    file.write_all(b"\"value\":2}\nnot json\n").unwrap();
    file.flush().unwrap();
    assert_eq!(running.next().await.value, Value::Number(2.0));
    running.wait_for(Counter::InputMalformed, 1).await;
    let telemetry = running.stop().await;
    assert_eq!(telemetry.get(Counter::InputMalformed), 1);
}

fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("beffroi-it/{test}-{}-{nanos:08x}", std::process::id())
}

/// A publishing client with its event loop polled in the background.
async fn publisher(prefix: &str) -> (AsyncClient, JoinHandle<()>) {
    let id = format!("pub-{}", prefix.replace('/', "-"));
    let mut options = MqttOptions::new(id, "127.0.0.1", 1883);
    options.set_max_packet_size(256 << 10, 256 << 10);
    let (client, mut events) = AsyncClient::new(options, 64);
    let task = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    (client, task)
}

const CHIRPSTACK_UP: &str = r#"{
    "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
    "time": "2026-01-01T08:00:00.775023242+00:00",
    "deviceInfo": {
        "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
        "tenantName": "ChirpStack",
        "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
        "applicationName": "Air quality",
        "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
        "deviceProfileName": "Elsys ERS CO2",
        "deviceName": "ecole-jaures-air",
        "devEui": "A81758FFFE03B4C1",
        "tags": {"site": "ecole-jaures"}
    },
    "devAddr": "00189440",
    "adr": true,
    "dr": 5,
    "fCnt": 1042,
    "fPort": 5,
    "confirmed": false,
    "data": "AQDuAiYEAKcFAAcNSA==",
    "object": {"pm25": 12.5, "batteryVoltage": 3.6},
    "rxInfo": [{
        "gatewayId": "0016c001f153a14c",
        "uplinkId": 4217106255,
        "rssi": -36,
        "snr": 10.5,
        "context": "E3OWOQ==",
        "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"}
    }],
    "txInfo": {
        "frequency": 867100000,
        "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}}
    }
}"#;

#[tokio::test]
async fn mqtt_maps_chirpstack_and_custom_messages_from_mosquitto() {
    let prefix = unique_prefix("mapping");
    let spec = spec(
        &format!(
            r#"
            kind = "mqtt"
            name = "local-broker"
            host = "127.0.0.1"
            port = 1883
            backoff_initial_ms = 50
            [chirpstack]
            topic = "{prefix}/application/+/device/+/event/up"
            fields = {{ pm25 = {{ metric = "air.pm25", unit = "ug/m3" }} }}
            [[mappings]]
            filter = "{prefix}/city/+/air"
            sensor = {{ topic_level = 3 }}
            time = "/ts"
            [[mappings.values]]
            metric = "air.no2"
            value = "/no2"
            unit = "ug/m3"
            "#
        ),
        Path::new("."),
    );
    let mut running = start(&spec);
    let (client, publisher_task) = publisher(&prefix).await;

    // Publish a probe until the source is subscribed and maps it.
    let probe = format!("{prefix}/city/probe/air");
    tokio::time::timeout(WAIT, async {
        loop {
            client
                .publish(&probe, QoS::AtLeastOnce, false, r#"{"ts": 0, "no2": 1}"#)
                .await
                .unwrap();
            if let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(100), running.rx.recv()).await
            {
                break;
            }
        }
    })
    .await
    .expect("the source subscribes");
    // Let duplicate probes drain.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while running.rx.try_recv().is_ok() {}
    let probes = running.telemetry.get(Counter::ReadingsCollected);

    client
        .publish(
            format!("{prefix}/application/17c82e96/device/a81758fffe03b4c1/event/up"),
            QoS::AtLeastOnce,
            false,
            CHIRPSTACK_UP,
        )
        .await
        .unwrap();
    client
        .publish(
            format!("{prefix}/city/not-json/air"),
            QoS::AtLeastOnce,
            false,
            "\u{1}garbage",
        )
        .await
        .unwrap();
    client
        .publish(
            format!("{prefix}/city/Station-7/air"),
            QoS::AtLeastOnce,
            false,
            r#"{"ts": "2026-01-01T09:00:00+01:00", "no2": 41.5}"#,
        )
        .await
        .unwrap();

    let mut got: Vec<String> = Vec::new();
    for _ in 0..3 {
        let r = running.next().await;
        got.push(format!(
            "{} {} {} {:?} {}",
            r.sensor, r.metric, r.unit, r.value, r.time
        ));
    }
    got.sort();
    assert_eq!(
        got,
        [
            "a81758fffe03b4c1 air.pm25 ug/m3 Number(12.5) 2026-01-01T08:00:00.775023Z",
            "a81758fffe03b4c1 lorawan.battery_voltage  Number(3.6) 2026-01-01T08:00:00.775023Z",
            "station-7 air.no2 ug/m3 Number(41.5) 2026-01-01T08:00:00.000000Z",
        ]
    );
    running.wait_for(Counter::InputMalformed, 1).await;

    // The malformed message was not fatal: the source still maps messages.
    client
        .publish(
            format!("{prefix}/city/s-8/air"),
            QoS::AtLeastOnce,
            false,
            r#"{"ts": 0, "no2": 2}"#,
        )
        .await
        .unwrap();
    assert_eq!(running.next().await.sensor.as_str(), "s-8");

    let telemetry = running.stop().await;
    assert_eq!(telemetry.get(Counter::InputMalformed), 1);
    assert_eq!(telemetry.get(Counter::ReadingsCollected), probes + 4);
    assert_eq!(telemetry.get(Counter::SourceErrors), 0);
    client.disconnect().await.unwrap();
    let _ = tokio::time::timeout(WAIT, publisher_task).await;
}

#[tokio::test]
async fn mqtt_message_with_a_missing_pointer_is_counted_not_fatal() {
    let prefix = unique_prefix("missing");
    let spec = spec(
        &format!(
            r#"
            kind = "mqtt"
            [[mappings]]
            filter = "{prefix}/#"
            sensor = {{ pointer = "/id" }}
            [[mappings.values]]
            metric = "noise.laeq"
            value = "/laeq"
            unit = "dB"
            "#
        ),
        Path::new("."),
    );
    let mut running = start(&spec);
    let (client, publisher_task) = publisher(&prefix).await;
    let topic = format!("{prefix}/noise");
    tokio::time::timeout(WAIT, async {
        loop {
            client
                .publish(
                    &topic,
                    QoS::AtLeastOnce,
                    false,
                    r#"{"id": "probe", "laeq": 1}"#,
                )
                .await
                .unwrap();
            if let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(100), running.rx.recv()).await
            {
                break;
            }
        }
    })
    .await
    .expect("the source subscribes");
    tokio::time::sleep(Duration::from_millis(200)).await;
    while running.rx.try_recv().is_ok() {}

    client
        .publish(
            &topic,
            QoS::AtLeastOnce,
            false,
            r#"{"id": "sonometre-3", "lmax": 80}"#,
        )
        .await
        .unwrap();
    client
        .publish(
            &topic,
            QoS::AtLeastOnce,
            false,
            r#"{"id": "sonometre-3", "laeq": 58.2}"#,
        )
        .await
        .unwrap();
    let r = running.next().await;
    assert_eq!(
        (r.sensor.as_str(), &r.value),
        ("sonometre-3", &Value::Number(58.2))
    );
    running.wait_for(Counter::InputMalformed, 1).await;
    let telemetry = running.stop().await;
    assert_eq!(telemetry.get(Counter::InputMalformed), 1);
    client.disconnect().await.unwrap();
    let _ = tokio::time::timeout(WAIT, publisher_task).await;
}
