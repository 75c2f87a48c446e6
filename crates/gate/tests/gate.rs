//! The gate end to end: real TLS (rcgen PKI), a real Mosquitto behind it, rumqttc clients
//! (MQTT 5 and 3.1.1) and hand-built packets.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use beffroi_store::SecurityEventKind;
use rumqttc::v5::mqttbytes::v5::{Packet as V5Packet, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::{Packet as V4Packet, QoS};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use support::clients::{
    observer, raw_tls, read_until_closed, send, tls_config, v4_client, v5_client, wait_for,
    wait_for_error, V4,
};
use support::mqtt::{connect_v5, publish_v5, publish_v5_alias};
use support::{Harness, WAIT};

const BATCH: &str = "beffroi/v1/lyon/gw-1/batch";
const ACK: &str = "beffroi/v1/lyon/gw-1/ack";

/// A plain client on Mosquitto subscribed to `filter`.
async fn spy(harness: &Harness, filter: &str) -> V4 {
    let mut spy = observer(harness.broker.port(), "spy");
    spy.client
        .subscribe(filter, QoS::AtLeastOnce)
        .await
        .unwrap();
    wait_for(&mut spy.events, |p| {
        matches!(p, V4Packet::SubAck(_)).then_some(())
    })
    .await;
    spy
}

async fn v5_connected(harness: &Harness, tenant: &str, gateway: &str) -> support::clients::V5 {
    let cert = harness.pki.gateway(tenant, gateway);
    let mut client = v5_client(harness.gate, tls_config(&harness.pki, Some(&cert)), gateway);
    wait_for(&mut client.events, |p| {
        matches!(p, V5Packet::ConnAck(_)).then_some(())
    })
    .await;
    client
}

#[tokio::test]
async fn a_v5_gateway_publishes_and_receives_acks() {
    let harness = Harness::start(|_| {}).await;
    let mut spy = spy(&harness, "beffroi/v1/+/+/batch").await;
    let mut gw = v5_connected(&harness, "lyon", "gw-1").await;

    gw.client.subscribe(ACK, V5QoS::AtLeastOnce).await.unwrap();
    let codes = wait_for(&mut gw.events, |p| match p {
        V5Packet::SubAck(ack) => Some(ack.return_codes.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(codes[..], [SubscribeReasonCode::Success(_)]),
        "{codes:?}"
    );
    gw.client
        .publish(BATCH, V5QoS::AtLeastOnce, false, b"signed batch".to_vec())
        .await
        .unwrap();
    let payload = wait_for(&mut spy.events, |p| match p {
        V4Packet::Publish(p) if p.topic == BATCH => Some(p.payload.clone()),
        _ => None,
    })
    .await;
    assert_eq!(&payload[..], b"signed batch");

    spy.client
        .publish(ACK, QoS::AtLeastOnce, false, b"ack 1".to_vec())
        .await
        .unwrap();
    let payload = wait_for(&mut gw.events, |p| match p {
        V5Packet::Publish(p) if p.topic == ACK.as_bytes() => Some(p.payload.clone()),
        _ => None,
    })
    .await;
    assert_eq!(&payload[..], b"ack 1");

    assert_eq!(harness.metrics.gate_accepted.get(), 1);
    assert_eq!(harness.metrics.gate_connections.get(), 1);
    assert!(harness.metrics.gate_packets.get() >= 3);
}

#[tokio::test]
async fn a_v311_gateway_publishes_and_receives_acks() {
    let harness = Harness::start(|_| {}).await;
    let mut spy = spy(&harness, "beffroi/v1/+/+/batch").await;
    let cert = harness.pki.gateway("lyon", "gw-1");
    let mut gw = v4_client(harness.gate, tls_config(&harness.pki, Some(&cert)), "gw-1");
    wait_for(&mut gw.events, |p| {
        matches!(p, V4Packet::ConnAck(_)).then_some(())
    })
    .await;
    gw.client.subscribe(ACK, QoS::AtLeastOnce).await.unwrap();
    wait_for(&mut gw.events, |p| {
        matches!(p, V4Packet::SubAck(_)).then_some(())
    })
    .await;
    gw.client
        .publish(BATCH, QoS::AtLeastOnce, false, vec![7; 100_000])
        .await
        .unwrap();
    let payload = wait_for(&mut spy.events, |p| match p {
        V4Packet::Publish(p) if p.topic == BATCH => Some(p.payload.clone()),
        _ => None,
    })
    .await;
    assert_eq!(payload.len(), 100_000);

    spy.client
        .publish(ACK, QoS::AtLeastOnce, false, b"ack 2".to_vec())
        .await
        .unwrap();
    let payload = wait_for(&mut gw.events, |p| match p {
        V4Packet::Publish(p) if p.topic == ACK => Some(p.payload.clone()),
        _ => None,
    })
    .await;
    assert_eq!(&payload[..], b"ack 2");
}

#[tokio::test]
async fn bad_certificates_are_refused() {
    let mut harness = Harness::start(|_| {}).await;
    let pki = &harness.pki;
    let cases = [
        ("no client certificate", tls_config(pki, None)),
        (
            "another CA",
            tls_config(pki, Some(&pki.foreign_gateway("lyon", "gw-1"))),
        ),
        ("no identity URI", tls_config(pki, Some(&pki.anonymous()))),
    ];
    for (case, tls) in cases {
        let mut client = v5_client(harness.gate, tls, "gw-1");
        let (_, packets) = wait_for_error(&mut client.events).await;
        assert!(packets.is_empty(), "{case}: {packets:?}");
    }
    harness
        .expect_event(SecurityEventKind::TlsRejected, "TLS handshake refused")
        .await;
    harness
        .expect_event(SecurityEventKind::TlsRejected, "TLS handshake refused")
        .await;
    let event = harness
        .expect_event(SecurityEventKind::TlsRejected, "without a gateway identity")
        .await;
    assert_eq!(event.address.unwrap().split(':').next(), Some("127.0.0.1"));
    assert_eq!(harness.refused("tls_rejected"), 2);
    assert_eq!(harness.refused("no_identity"), 1);
    assert_eq!(harness.metrics.gate_accepted.get(), 0);
}

#[tokio::test]
async fn revocation_cuts_live_connections_and_refuses_reconnects() {
    let mut harness = Harness::start(|_| {}).await;
    let cert = harness.pki.gateway("lyon", "gw-1");
    let tls = tls_config(&harness.pki, Some(&cert));
    let mut gw = v5_client(harness.gate, tls.clone(), "gw-1");
    wait_for(&mut gw.events, |p| {
        matches!(p, V5Packet::ConnAck(_)).then_some(())
    })
    .await;
    let mut other = v5_connected(&harness, "lyon", "gw-2").await;

    harness.revocations.revoke(cert.fingerprint());
    let (error, _) = wait_for_error(&mut gw.events).await;
    assert!(error.contains("NotAuthorized"), "{error}");
    let event = harness
        .expect_event(SecurityEventKind::RevokedCertificate, "live connection cut")
        .await;
    assert_eq!(event.gateway.unwrap().as_str(), "gw-1");

    let mut again = v5_client(harness.gate, tls, "gw-1");
    let (_, packets) = wait_for_error(&mut again.events).await;
    assert!(packets.is_empty(), "{packets:?}");
    harness
        .expect_event(
            SecurityEventKind::RevokedCertificate,
            "refused at handshake",
        )
        .await;
    assert_eq!(harness.refused("revoked"), 2);

    // The other gateway is untouched.
    other
        .client
        .subscribe("beffroi/v1/lyon/gw-2/ack", V5QoS::AtMostOnce)
        .await
        .unwrap();
    wait_for(&mut other.events, |p| {
        matches!(p, V5Packet::SubAck(_)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_connection_is_closed_when_its_certificate_expires() {
    let harness = Harness::start(|_| {}).await;
    // X.509 times are whole seconds: this certificate expires 2 to 3 s from now.
    let cert = harness
        .pki
        .short_lived_gateway("lyon", "gw-1", Duration::from_secs(3));
    let opened = Instant::now();
    let mut gw = v5_client(harness.gate, tls_config(&harness.pki, Some(&cert)), "gw-1");
    wait_for(&mut gw.events, |p| {
        matches!(p, V5Packet::ConnAck(_)).then_some(())
    })
    .await;
    let mut other = v5_connected(&harness, "lyon", "gw-2").await;

    let (error, _) = wait_for_error(&mut gw.events).await;
    let lived = opened.elapsed();
    assert!(error.contains("NotAuthorized"), "{error}");
    assert!(
        lived >= Duration::from_millis(1500) && lived < Duration::from_secs(5),
        "closed after {lived:?}"
    );
    assert_eq!(harness.refused("certificate_expired"), 1);
    assert_eq!(harness.refused("revoked"), 0);

    // The other gateway, with a long-lived certificate, is untouched.
    other
        .client
        .subscribe("beffroi/v1/lyon/gw-2/ack", V5QoS::AtMostOnce)
        .await
        .unwrap();
    wait_for(&mut other.events, |p| {
        matches!(p, V5Packet::SubAck(_)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_revoked_gateway_is_refused_whatever_certificate_it_presents() {
    let mut harness = Harness::start(|_| {}).await;
    // Two certificates for gw-1, both valid: an older one and the last one issued.
    let older = harness.pki.gateway("lyon", "gw-1");
    let newer = harness.pki.gateway("lyon", "gw-1");
    assert_ne!(older.fingerprint(), newer.fingerprint());
    let mut gw = v5_client(harness.gate, tls_config(&harness.pki, Some(&older)), "gw-1");
    wait_for(&mut gw.events, |p| {
        matches!(p, V5Packet::ConnAck(_)).then_some(())
    })
    .await;

    // The store knows the newer fingerprint only; the gateway itself is revoked.
    harness.revocations.replace(
        [newer.fingerprint()],
        [(
            beffroi_protocol::TenantId::new("lyon").unwrap(),
            beffroi_protocol::GatewayId::new("gw-1").unwrap(),
        )],
    );
    let (error, _) = wait_for_error(&mut gw.events).await;
    assert!(error.contains("NotAuthorized"), "{error}");
    harness
        .expect_event(SecurityEventKind::RevokedCertificate, "gateway revoked")
        .await;
    for cert in [&older, &newer] {
        let mut again = v5_client(harness.gate, tls_config(&harness.pki, Some(cert)), "gw-1");
        let (_, packets) = wait_for_error(&mut again.events).await;
        assert!(packets.is_empty(), "{packets:?}");
    }
    assert_eq!(harness.refused("revoked"), 3);
    // Another gateway of the tenant still connects.
    v5_connected(&harness, "lyon", "gw-2").await;
}

#[tokio::test]
async fn acl_violations_disconnect_and_are_recorded() {
    let mut harness = Harness::start(|_| {}).await;
    let mut spy = spy(&harness, "#").await;
    let cert = harness.pki.gateway("lyon", "gw-1");
    let tls = tls_config(&harness.pki, Some(&cert));

    // Someone else's client id: refused at CONNECT.
    let mut client = v5_client(harness.gate, tls.clone(), "gw-2");
    let (error, _) = wait_for_error(&mut client.events).await;
    assert!(error.contains("ClientIdentifierNotValid"), "{error}");
    let event = harness
        .expect_event(SecurityEventKind::ClientIdMismatch, "\"gw-2\"")
        .await;
    assert_eq!(
        (
            event.tenant.unwrap().as_str(),
            event.gateway.unwrap().as_str()
        ),
        ("lyon", "gw-1")
    );

    // SUBSCRIBE to #.
    let mut client = v5_connected(&harness, "lyon", "gw-1").await;
    client
        .client
        .subscribe("#", V5QoS::AtMostOnce)
        .await
        .unwrap();
    wait_for_error(&mut client.events).await;
    harness
        .expect_event(SecurityEventKind::AclViolation, "SUBSCRIBE to #")
        .await;

    // PUBLISH to another gateway's and another tenant's topics.
    for topic in ["beffroi/v1/lyon/gw-9/batch", "beffroi/v1/paris/gw-1/batch"] {
        let mut client = v5_connected(&harness, "lyon", "gw-1").await;
        client
            .client
            .publish(topic, V5QoS::AtLeastOnce, false, b"forged".to_vec())
            .await
            .unwrap();
        let (error, _) = wait_for_error(&mut client.events).await;
        assert!(error.contains("NotAuthorized"), "{error}");
        harness
            .expect_event(
                SecurityEventKind::AclViolation,
                &format!("PUBLISH to {topic}"),
            )
            .await;
    }

    // The topic alias trick: an empty topic standing for an alias.
    let mut raw = raw_tls(harness.gate, tls.clone()).await.unwrap();
    send(&mut raw, &connect_v5("gw-1")).await;
    let mut connack = [0u8; 1];
    raw.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack[0], 0x20);
    send(&mut raw, &publish_v5(BATCH, b"fine")).await;
    send(&mut raw, &publish_v5_alias("", 1, b"forged")).await;
    let tail = read_until_closed(&mut raw).await;
    assert!(tail.ends_with(&[0xe0, 0x02, 0x87, 0x00]), "{tail:?}");
    harness
        .expect_event(SecurityEventKind::AclViolation, "topic alias 1")
        .await;

    assert_eq!(harness.refused("client_id_mismatch"), 1);
    assert_eq!(harness.refused("acl_violation"), 4);
    // Only the allowed publish reached the broker.
    let payload = wait_for(&mut spy.events, |p| match p {
        V4Packet::Publish(p) => Some((p.topic.clone(), p.payload.clone())),
        _ => None,
    })
    .await;
    assert_eq!((payload.0.as_str(), &payload.1[..]), (BATCH, &b"fine"[..]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Ok(seen) = spy.events.try_recv() {
        assert!(
            !matches!(seen, support::clients::Seen::Packet(V4Packet::Publish(_))),
            "{seen:?}"
        );
    }
}

#[tokio::test]
async fn a_silent_socket_blocks_no_one_and_is_closed() {
    let timeout = Duration::from_millis(800);
    let harness = Harness::start(|c| c.handshake_timeout = timeout).await;
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(harness.gate).await.unwrap());
    }

    let started = Instant::now();
    let _gw = v5_connected(&harness, "lyon", "gw-1").await;
    let took = started.elapsed();
    assert!(took < timeout / 2, "a full handshake took {took:?}");

    for socket in &mut silent {
        read_until_closed(socket).await;
    }
    let closed_after = opened.elapsed();
    assert!(closed_after >= timeout, "closed after {closed_after:?}");
    assert_eq!(harness.refused("handshake_timeout"), 5);
    assert_eq!(harness.metrics.gate_connections.get(), 1);
}

#[tokio::test]
async fn connection_limits_per_address_and_tenant() {
    let mut harness = Harness::start(|c| {
        c.max_connections_per_address = 3;
        c.max_connections_per_tenant = 1;
    })
    .await;
    let _gw1 = v5_connected(&harness, "lyon", "gw-1").await;
    let cert = harness.pki.gateway("lyon", "gw-2");
    let mut gw2 = v5_client(harness.gate, tls_config(&harness.pki, Some(&cert)), "gw-2");
    wait_for_error(&mut gw2.events).await;
    harness
        .expect_event(SecurityEventKind::ConnectionLimit, "for tenant lyon")
        .await;
    // Another tenant is not affected.
    let _paris = v5_connected(&harness, "paris", "gw-1").await;

    // Two gateways hold two of the three slots of 127.0.0.1; one silent socket takes the last.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _silent = TcpStream::connect(harness.gate).await.unwrap();
    let mut refused = TcpStream::connect(harness.gate).await.unwrap();
    read_until_closed(&mut refused).await;
    harness
        .expect_event(SecurityEventKind::ConnectionLimit, "from 127.0.0.1")
        .await;
    assert_eq!(harness.refused("connection_limit"), 2);
}

#[tokio::test]
async fn malformed_and_oversize_packets_disconnect() {
    let mut harness = Harness::start(|c| c.max_packet_bytes = 64 * 1024).await;
    let cert = harness.pki.gateway("lyon", "gw-1");
    let tls = tls_config(&harness.pki, Some(&cert));

    // Garbage instead of MQTT.
    let mut raw = raw_tls(harness.gate, tls.clone()).await.unwrap();
    send(&mut raw, &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(10)).await;
    read_until_closed(&mut raw).await;
    harness
        .expect_event(SecurityEventKind::ProtocolViolation, "not CONNECT")
        .await;

    // A CONNECT whose client id runs past the end of the packet.
    let mut connect = connect_v5("gw-1");
    connect.truncate(connect.len() - 2);
    connect[1] -= 2;
    let mut raw = raw_tls(harness.gate, tls.clone()).await.unwrap();
    send(&mut raw, &connect).await;
    read_until_closed(&mut raw).await;
    harness
        .expect_event(SecurityEventKind::ProtocolViolation, "malformed CONNECT")
        .await;

    // A CONNECT cut short on the wire, then the client goes away: closed, no event.
    let mut raw = raw_tls(harness.gate, tls.clone()).await.unwrap();
    send(&mut raw, &connect_v5("gw-1")[..6]).await;
    drop(raw);

    // After a valid CONNECT: a bad remaining length, then an oversize one.
    for (bytes, detail, code) in [
        (
            &[0x30, 0xff, 0xff, 0xff, 0xff, 0x01][..],
            "variable byte integer",
            0x81,
        ),
        (&[0x30, 0xff, 0xff, 0xff, 0x7f][..], "exceeds", 0x95),
    ] {
        let mut raw = raw_tls(harness.gate, tls.clone()).await.unwrap();
        send(&mut raw, &connect_v5("gw-1")).await;
        send(&mut raw, bytes).await;
        let reply = read_until_closed(&mut raw).await;
        assert!(reply.ends_with(&[0xe0, 0x02, code, 0x00]), "{reply:?}");
        harness
            .expect_event(SecurityEventKind::ProtocolViolation, detail)
            .await;
    }
    assert_eq!(harness.refused("protocol_violation"), 4);

    // The gate still serves.
    let _gw = v5_connected(&harness, "lyon", "gw-1").await;
}

#[tokio::test]
async fn shutdown_closes_connections_and_returns() {
    let harness = Harness::start(|_| {}).await;
    let mut gw = v5_connected(&harness, "lyon", "gw-1").await;
    let silent = TcpStream::connect(harness.gate).await.unwrap();
    harness.shutdown.cancel();
    tokio::time::timeout(WAIT, harness.task)
        .await
        .expect("serve did not return")
        .unwrap();
    wait_for_error(&mut gw.events).await;
    assert_eq!(harness.metrics.gate_connections.get(), 0);
    assert!(TcpStream::connect(harness.gate).await.is_err());
    drop(silent);
}

#[tokio::test]
async fn same_gateway_id_in_two_tenants_do_not_take_over_each_other() {
    let harness = Harness::start(|_| {}).await;
    let mut spy = spy(&harness, "beffroi/v1/+/gw-1/batch").await;
    let lyon = v5_connected(&harness, "lyon", "gw-1").await;
    let paris = v5_connected(&harness, "paris", "gw-1").await;
    for (client, topic) in [(&lyon, BATCH), (&paris, "beffroi/v1/paris/gw-1/batch")] {
        client
            .client
            .publish(topic, V5QoS::AtLeastOnce, false, b"b".to_vec())
            .await
            .unwrap();
        wait_for(&mut spy.events, |p| match p {
            V4Packet::Publish(p) if p.topic == topic => Some(()),
            _ => None,
        })
        .await;
    }
    assert_eq!(harness.metrics.gate_connections.get(), 2);
}
