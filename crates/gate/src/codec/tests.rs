//! Codec tests: hand-built MQTT 3.1.1 and 5.0 packets, and arbitrary bytes.

use proptest::prelude::*;

use super::*;

/// Frames `body` behind a fixed-header byte.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn string(text: &str) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

fn connect_body(level: u8, flags: u8, client_id: &str, extra: &[u8]) -> Vec<u8> {
    let mut body = string("MQTT");
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&30u16.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend(string(client_id));
    body.extend_from_slice(extra);
    body
}

fn parse_one(bytes: &[u8], version: ProtocolVersion) -> Result<Packet<'_>, DecodeError> {
    RawPacket::from_bytes(bytes)?.parse(version)
}

#[test]
fn varints() {
    assert_eq!(decode_varint(&[0x00]), Ok(Some((0, 1))));
    assert_eq!(decode_varint(&[0x7f]), Ok(Some((127, 1))));
    assert_eq!(decode_varint(&[0x80, 0x01]), Ok(Some((128, 2))));
    assert_eq!(
        decode_varint(&[0xff, 0xff, 0xff, 0x7f]),
        Ok(Some((268_435_455, 4)))
    );
    assert_eq!(decode_varint(&[0x80]), Ok(None));
    assert_eq!(decode_varint(&[]), Ok(None));
    assert_eq!(
        decode_varint(&[0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::BadVarint)
    );
    assert_eq!(decode_varint(&[0x80, 0x00]), Err(DecodeError::BadVarint));
}

#[test]
fn connect_v311_and_v5() {
    let v4 = frame(0x10, &connect_body(4, 0x02, "gw-1", &[]));
    let connect = RawPacket::from_bytes(&v4).unwrap().parse_connect().unwrap();
    assert_eq!(connect.version, ProtocolVersion::V311);
    assert_eq!(connect.client_id, "gw-1");
    assert_eq!(connect.keep_alive, 30);
    assert_eq!(connect.will_topic, None);

    // MQTT 5 with a will: will properties (a message expiry), topic, payload.
    let mut will = vec![5, 0x02, 0, 0, 0, 60];
    will.extend(string("beffroi/v1/lyon/gw-1/health"));
    will.extend(string("bye"));
    let v5 = frame(0x10, &connect_body(5, 0x02 | 0x04, "gw-1", &will));
    let connect = RawPacket::from_bytes(&v5).unwrap().parse_connect().unwrap();
    assert_eq!(connect.version, ProtocolVersion::V5);
    assert_eq!(connect.will_topic, Some("beffroi/v1/lyon/gw-1/health"));

    // User name and password.
    let mut creds = string("user");
    creds.extend(string("secret"));
    let v4 = frame(0x10, &connect_body(4, 0xc2, "gw-1", &creds));
    let connect = RawPacket::from_bytes(&v4).unwrap().parse_connect().unwrap();
    assert!(connect.has_username && connect.has_password);
}

#[test]
fn connect_client_id_rewrite() {
    for (level, extra) in [
        (4u8, Vec::new()),
        (5, {
            let mut will = vec![0];
            will.extend(string("t"));
            will.extend(string("payload"));
            will
        }),
    ] {
        let flags = if extra.is_empty() { 0x02 } else { 0x06 };
        let bytes = frame(0x10, &connect_body(level, flags, "gw-1", &extra));
        let raw = RawPacket::from_bytes(&bytes).unwrap();
        let connect = raw.parse_connect().unwrap();
        let long = "x".repeat(200);
        let rewritten = connect.with_client_id(&raw, &long).unwrap();
        assert_eq!(
            rewritten,
            frame(0x10, &connect_body(level, flags, &long, &extra))
        );
        let again = RawPacket::from_bytes(&rewritten)
            .unwrap()
            .parse_connect()
            .unwrap();
        assert_eq!(again.client_id, long);
        assert_eq!(again.will_topic, connect.will_topic);
    }
}

#[test]
fn connect_refusals() {
    // MQTT 3.1 (MQIsdp, level 3).
    let mut body = string("MQIsdp");
    body.extend_from_slice(&[3, 0x02, 0, 30]);
    body.extend(string("gw-1"));
    let bytes = frame(0x10, &body);
    assert!(matches!(
        RawPacket::from_bytes(&bytes).unwrap().parse_connect(),
        Err(DecodeError::UnsupportedProtocol { level: 3, .. })
    ));
    // Truncated: the client id length runs past the end.
    let mut body = connect_body(4, 0x02, "gw-1", &[]);
    body.truncate(body.len() - 2);
    let bytes = frame(0x10, &body);
    assert!(RawPacket::from_bytes(&bytes)
        .unwrap()
        .parse_connect()
        .is_err());
    // Trailing bytes, reserved flag, bad fixed-header flags.
    for bytes in [
        frame(0x10, &connect_body(4, 0x02, "gw-1", &[0])),
        frame(0x10, &connect_body(4, 0x03, "gw-1", &[])),
        frame(0x11, &connect_body(4, 0x02, "gw-1", &[])),
    ] {
        assert!(RawPacket::from_bytes(&bytes)
            .unwrap()
            .parse_connect()
            .is_err());
    }
    // Enhanced authentication (property 0x15).
    let mut body = string("MQTT");
    body.extend_from_slice(&[5, 0x02, 0, 30]);
    let method = string("SCRAM-SHA-1");
    body.push((method.len() + 1) as u8);
    body.push(0x15);
    body.extend(method);
    body.extend(string("gw-1"));
    let bytes = frame(0x10, &body);
    assert!(
        RawPacket::from_bytes(&bytes)
            .unwrap()
            .parse_connect()
            .unwrap()
            .enhanced_auth
    );
}

#[test]
fn publish_v311_and_v5() {
    let topic = "beffroi/v1/lyon/gw-1/batch";
    // QoS 1, v3.1.1: topic, packet id, payload.
    let mut body = string(topic);
    body.extend_from_slice(&[0, 7, 1, 2, 3]);
    let bytes = frame(0x32, &body);
    let Packet::Publish(publish) = parse_one(&bytes, ProtocolVersion::V311).unwrap() else {
        panic!("not a publish")
    };
    assert_eq!(
        (publish.topic, publish.qos, publish.retain),
        (topic, 1, false)
    );

    // QoS 0, v5, properties: content type, user property, topic alias.
    let mut body = string("");
    let mut props = vec![0x03];
    props.extend(string("application/cose"));
    props.push(0x26);
    props.extend(string("k"));
    props.extend(string("v"));
    props.extend_from_slice(&[0x23, 0, 1]);
    body.push(props.len() as u8);
    body.extend(props);
    body.extend_from_slice(b"payload");
    let bytes = frame(0x30, &body);
    let Packet::Publish(publish) = parse_one(&bytes, ProtocolVersion::V5).unwrap() else {
        panic!("not a publish")
    };
    assert_eq!((publish.topic, publish.topic_alias), ("", Some(1)));

    // Same bytes read as 3.1.1 ignore properties (they are payload there).
    assert!(parse_one(&bytes, ProtocolVersion::V311).is_ok());

    // QoS 3, DUP on QoS 0, packet id 0, unknown property.
    let mut zero_id = string(topic);
    zero_id.extend_from_slice(&[0, 0]);
    let mut unknown = string(topic);
    unknown.extend_from_slice(&[2, 0x7f, 0]);
    for (bytes, version) in [
        (frame(0x36, &string(topic)), ProtocolVersion::V311),
        (frame(0x38, &string(topic)), ProtocolVersion::V311),
        (frame(0x32, &zero_id), ProtocolVersion::V311),
        (frame(0x30, &unknown), ProtocolVersion::V5),
    ] {
        assert!(parse_one(&bytes, version).is_err(), "{bytes:?}");
    }
}

#[test]
fn subscribe_v311_and_v5() {
    let mut body = vec![0, 1];
    body.extend(string("beffroi/v1/lyon/gw-1/ack"));
    body.push(1);
    body.extend(string("beffroi/v1/lyon/gw-1/cmd/#"));
    body.push(0);
    let bytes = frame(0x82, &body);
    let Packet::Subscribe(subscribe) = parse_one(&bytes, ProtocolVersion::V311).unwrap() else {
        panic!("not a subscribe")
    };
    assert_eq!(subscribe.filters.len(), 2);

    // v5: properties (subscription identifier) and options with No Local.
    let mut body = vec![0, 2, 2, 0x0b, 5];
    body.extend(string("#"));
    body.push(0x05);
    let bytes = frame(0x82, &body);
    let Packet::Subscribe(subscribe) = parse_one(&bytes, ProtocolVersion::V5).unwrap() else {
        panic!("not a subscribe")
    };
    assert_eq!(subscribe.filters, vec!["#"]);
    // The same options are invalid in 3.1.1; wrong flags and empty lists are refused.
    assert!(parse_one(&bytes, ProtocolVersion::V311).is_err());
    assert!(parse_one(&frame(0x80, &body), ProtocolVersion::V5).is_err());
    assert!(parse_one(&frame(0x82, &[0, 1]), ProtocolVersion::V311).is_err());
}

#[test]
fn other_packets() {
    let cases: [(&[u8], Packet<'static>); 5] = [
        (&[0xc0, 0x00], Packet::Passthrough(PacketType::PingReq)),
        (&[0xe0, 0x00], Packet::Passthrough(PacketType::Disconnect)),
        (&[0x40, 0x02, 0, 1], Packet::Passthrough(PacketType::PubAck)),
        (&[0xf0, 0x00], Packet::NotFromClient(PacketType::Auth)),
        (&[0x00, 0x00], Packet::NotFromClient(PacketType::Reserved)),
    ];
    for (bytes, expected) in cases {
        assert_eq!(parse_one(bytes, ProtocolVersion::V5).unwrap(), expected);
    }
    assert!(parse_one(&[0x60, 0x02, 0, 1], ProtocolVersion::V5).is_err());
}

fn read_all(bytes: &[u8], max: usize) -> Vec<Result<Vec<u8>, String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut reader = PacketReader::new(bytes, max);
        let mut out = Vec::new();
        loop {
            match reader.next_packet().await {
                Ok(Some(raw)) => {
                    if raw.packet_type() == PacketType::Connect {
                        let _ = raw.parse_connect();
                    }
                    let _ = raw.parse(ProtocolVersion::V311);
                    let _ = raw.parse(ProtocolVersion::V5);
                    out.push(Ok(raw.bytes().to_vec()));
                }
                Ok(None) => return out,
                Err(error) => {
                    out.push(Err(error.to_string()));
                    return out;
                }
            }
        }
    })
}

#[test]
fn reader_frames_and_refuses() {
    let mut stream = vec![0xc0, 0x00];
    stream.extend(frame(0x30, &string("t")));
    let packets = read_all(&stream, 1024);
    assert_eq!(packets.len(), 2);
    assert_eq!(packets[1].as_ref().unwrap(), &frame(0x30, &string("t")));

    // Oversize: refused from the header alone (the body is not there at all).
    let packets = read_all(&[0x30, 0xff, 0xff, 0xff, 0x7f], 1024);
    assert!(
        packets[0].as_ref().unwrap_err().contains("exceeds"),
        "{packets:?}"
    );
    // Bad varint.
    let packets = read_all(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], 1024);
    assert!(packets[0].as_ref().unwrap_err().contains("variable byte"));
    // Truncated body.
    let packets = read_all(&[0x30, 0x05, 0x00], 1024);
    assert!(packets[0].as_ref().unwrap_err().contains("middle"));
}

#[test]
fn reader_releases_large_buffers() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut stream = frame(0x30, &vec![0; 100_000]);
        stream.extend_from_slice(&[0xc0, 0x00]);
        let mut reader = PacketReader::new(&stream[..], 200_000);
        assert!(reader.next_packet().await.unwrap().is_some());
        assert!(reader.buffer.capacity() >= 100_000);
        assert!(reader.next_packet().await.unwrap().is_some());
        assert!(reader.buffer.capacity() <= RETAINED_BUFFER_BYTES);
    });
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        read_all(&bytes, 256);
        let _ = RawPacket::from_bytes(&bytes).map(|raw| {
            let _ = raw.parse_connect();
            let _ = raw.parse(ProtocolVersion::V5);
        });
    }

    #[test]
    fn packet_like_bytes_never_panic(
        first in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let bytes = frame(first, &body);
        let raw = RawPacket::from_bytes(&bytes).unwrap();
        let _ = raw.parse_connect();
        let _ = raw.parse(ProtocolVersion::V311);
        let _ = raw.parse(ProtocolVersion::V5);
        prop_assert_eq!(read_all(&bytes, 1024).len(), 1);
    }
}
