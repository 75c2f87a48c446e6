//! The platform in process: a gateway speaking MQTT 3.1.1 reaches the embedded rumqttd through
//! the gate (which forwards 3.1.1 and 5 to their own broker listeners), and its signed batch is
//! verified, committed and acknowledged. `export`: the `beffroi export` → `beffroi import`
//! round trip on SQLite and PostgreSQL (issue #8). `enroll`: the enrollment endpoint over
//! HTTPS (issue #9).

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

#[path = "platform/enroll.rs"]
mod enroll;
#[path = "platform/export.rs"]
mod export;

use std::sync::Arc;
use std::time::Duration;

use beffroi::config::PlatformConfig;
use beffroi_agent::keys;
use beffroi_protocol::{
    CommitAck, GatewayId, MetricName, Reading, SensorId, Signer, TenantId, Timestamp, Topic, Unit,
    Value,
};
use beffroi_store::ReadingFilter;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn client_tls(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .unwrap()
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_311_gateway_is_committed_and_acked_through_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let config = PlatformConfig::from_toml(&format!(
        "data_dir = {dir:?}\n[gate]\nlisten = \"127.0.0.1:0\"\nnames = [\"localhost\"]\n\
         [broker]\nlisten_v4 = \"127.0.0.1:{}\"\nlisten_v5 = \"127.0.0.1:{}\"\n[api]\nlisten = \"127.0.0.1:0\"\n[enroll]\nlisten = \"127.0.0.1:0\"\n",
        free_port(),
        free_port(),
        dir = dir.path().display().to_string(),
    ))
    .unwrap();
    let running = beffroi::server::start(config.clone()).await.unwrap();
    let (tenant, gateway) = (
        TenantId::new("lyon").unwrap(),
        GatewayId::new("gw-311").unwrap(),
    );
    beffroi::admin::create_tenant(running.store.as_ref(), &tenant, "Lyon")
        .await
        .unwrap();
    keys::generate(&dir.path().join("signing.key"), false).unwrap();
    keys::generate(&dir.path().join("tls.key"), false).unwrap();
    let signing = keys::load_signing_key(&dir.path().join("signing.key")).unwrap();
    let registration = beffroi::admin::register_gateway(
        running.store.as_ref(),
        &running.ca,
        &config,
        &tenant,
        &gateway,
        &signing.verifying_key(),
        &std::fs::read_to_string(dir.path().join("tls.key.pub")).unwrap(),
    )
    .await
    .unwrap();

    let tls = client_tls(
        running.ca.cert_pem(),
        &registration.certificate.cert_pem,
        &std::fs::read_to_string(dir.path().join("tls.key")).unwrap(),
    );
    let mut options = MqttOptions::new(gateway.as_str(), "localhost", running.gate_addr.port());
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    options.set_max_packet_size(512 * 1024, 512 * 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let ack_topic = Topic::ack(&tenant, &gateway).to_string();
    client
        .subscribe(ack_topic.clone(), QoS::AtLeastOnce)
        .await
        .unwrap();
    let reading = Reading {
        sensor: SensorId::new("s-1").unwrap(),
        metric: MetricName::new("air.pm25").unwrap(),
        unit: Unit::new("ug/m3").unwrap(),
        time: Timestamp::now(),
        value: Value::Number(12.5),
    };
    let batch =
        beffroi_protocol::Batch::new(tenant.clone(), gateway.clone(), 1, vec![reading.clone()])
            .unwrap();
    let (topic, envelope) = Signer::new(signing).seal_batch(&batch).unwrap();
    client
        .publish(topic.to_string(), QoS::AtLeastOnce, false, envelope)
        .await
        .unwrap();

    let ack = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == ack_topic => {
                    break CommitAck::decode(&p.payload).unwrap();
                }
                Ok(_) => {}
                Err(error) => panic!("connection through the gate failed: {error}"),
            }
        }
    })
    .await
    .expect("no commit ack within 20 s");
    assert_eq!(ack.contiguous, 1);

    let page = running
        .store
        .readings(
            &ReadingFilter {
                tenant: tenant.clone(),
                sensors: vec![],
                metrics: vec![],
                zone: None,
                from: Timestamp::from_unix_micros(0),
                to: Timestamp::now().saturating_add(Duration::from_secs(60)),
            },
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.readings.len(), 1);
    assert_eq!(page.readings[0].value, reading.value);
    assert!(running.stop().await, "ordered shutdown within the deadline");
}
