//! Fuzzes the gate's MQTT reading and parsing of client packets (`beffroi_gate::codec`): the
//! framing of a byte stream into packets under a size limit, then CONNECT, PUBLISH and
//! SUBSCRIBE parsing for both protocol versions.
//!
//! Properties: no panic; no packet larger than the limit is ever framed; a framed packet is
//! exactly the bytes it came from; rewriting a CONNECT's client id (what the gate does to every
//! CONNECT) gives a CONNECT that parses to the same fields with the new id, and writing the old
//! id back gives the original bytes.

#![no_main]

use std::sync::LazyLock;

use beffroi_gate::codec::{PacketReader, ProtocolVersion, RawPacket};
use libfuzzer_sys::fuzz_target;

/// The limit the stream is framed under: small, so that the fuzzer reaches it.
const MAX_PACKET_BYTES: usize = 4096;
/// The client id the gate rewrites CONNECTs to (`{tenant}:{gateway}`).
const BROKER_CLIENT_ID: &str = "lyon:gw-1";

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = RawPacket::from_bytes(data) {
        check_packet(&packet);
    }
    RUNTIME.block_on(async {
        let mut reader = PacketReader::new(data, MAX_PACKET_BYTES);
        let mut offset = 0;
        while let Ok(Some(packet)) = reader.next_packet().await {
            let bytes = packet.bytes();
            assert!(
                bytes.len() <= MAX_PACKET_BYTES + 5,
                "a packet over the limit was framed"
            );
            assert_eq!(
                bytes,
                &data[offset..offset + bytes.len()],
                "framing changed the bytes"
            );
            offset += bytes.len();
            check_packet(&packet);
        }
    });
});

fn check_packet(packet: &RawPacket<'_>) {
    let _ = packet.parse(ProtocolVersion::V311);
    let _ = packet.parse(ProtocolVersion::V5);
    let Ok(connect) = packet.parse_connect() else {
        return;
    };
    let rewritten = connect
        .with_client_id(packet, BROKER_CLIENT_ID)
        .expect("a short client id always fits");
    let reparsed_raw = RawPacket::from_bytes(&rewritten).expect("the rewritten CONNECT frames");
    let reparsed = reparsed_raw
        .parse_connect()
        .expect("the rewritten CONNECT parses");
    assert_eq!(reparsed.client_id, BROKER_CLIENT_ID);
    assert_eq!(reparsed.version, connect.version);
    assert_eq!(reparsed.keep_alive, connect.keep_alive);
    assert_eq!(reparsed.will_topic, connect.will_topic);
    assert_eq!(reparsed.has_username, connect.has_username);
    assert_eq!(reparsed.has_password, connect.has_password);
    assert_eq!(reparsed.enhanced_auth, connect.enhanced_auth);
    let restored = reparsed
        .with_client_id(&reparsed_raw, connect.client_id)
        .expect("the original client id fits again");
    assert_eq!(
        restored,
        packet.bytes(),
        "rewriting the client id back changed the packet"
    );
}
