//! The gate's access rules, as pure functions of the identity and a parsed packet.
//!
//! Deny by default. A gateway may:
//! - CONNECT once, first, with its own gateway id as client id, no will message, no user name
//!   or password (the certificate is the only credential) and no MQTT 5 enhanced
//!   authentication;
//! - PUBLISH, without retain and without an MQTT 5 topic alias, to exactly its own
//!   `beffroi/v1/{tenant}/{gateway}/batch` or `/health`;
//! - SUBSCRIBE to exactly its own `…/ack`, `…/cmd/{name}` or `…/cmd/#`;
//! - send PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBSCRIBE, PINGREQ and DISCONNECT.
//!
//! Anything else — wildcards, `$share/…`, `$SYS/…`, other gateways' or tenants' topics, AUTH,
//! server-to-client packet types — is a [`Denial`] naming what was attempted.

use beffroi_protocol::{Topic, TopicKind};
use beffroi_store::SecurityEventKind;

use crate::codec::{Connect, Packet, Publish, Subscribe};
use crate::identity::Identity;

/// The longest excerpt of client-supplied text kept in a denial.
const MAX_SHOWN_CHARS: usize = 200;

/// Whether a packet may pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclDecision {
    /// Forward it.
    Allow,
    /// Disconnect the client and record the denial.
    Deny(Denial),
}

/// Why a packet was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The security event to record; its label is also the `gate_refused` reason.
    pub kind: SecurityEventKind,
    /// What was attempted, e.g. `PUBLISH to beffroi/v1/other/gw-9/batch`.
    pub detail: String,
}

fn deny(kind: SecurityEventKind, detail: String) -> AclDecision {
    AclDecision::Deny(Denial { kind, detail })
}

/// Decides a packet from a client; `connected` says whether its CONNECT was already accepted.
pub fn check_packet(identity: &Identity, packet: &Packet<'_>, connected: bool) -> AclDecision {
    match (packet, connected) {
        (Packet::Connect(connect), false) => check_connect(identity, connect),
        (Packet::Connect(_), true) => deny(
            SecurityEventKind::ProtocolViolation,
            "second CONNECT on one connection".to_owned(),
        ),
        (_, false) => deny(
            SecurityEventKind::ProtocolViolation,
            "first packet is not CONNECT".to_owned(),
        ),
        (Packet::Publish(publish), true) => check_publish(identity, publish),
        (Packet::Subscribe(subscribe), true) => check_subscribe(identity, subscribe),
        (Packet::Passthrough(_), true) => AclDecision::Allow,
        (Packet::NotFromClient(kind), true) => deny(
            SecurityEventKind::ProtocolViolation,
            format!("{} sent by a client", kind.name()),
        ),
    }
}

/// Decides a CONNECT.
pub fn check_connect(identity: &Identity, connect: &Connect<'_>) -> AclDecision {
    if connect.client_id != identity.gateway.as_str() {
        return deny(
            SecurityEventKind::ClientIdMismatch,
            format!(
                "CONNECT with client id {:?} (certificate: {})",
                shown(connect.client_id),
                identity.gateway
            ),
        );
    }
    if let Some(topic) = connect.will_topic {
        return deny(
            SecurityEventKind::AclViolation,
            format!("CONNECT with a will message on {}", shown(topic)),
        );
    }
    if connect.has_username || connect.has_password {
        return deny(
            SecurityEventKind::ProtocolViolation,
            "CONNECT with a user name or password (the certificate is the only credential)"
                .to_owned(),
        );
    }
    if connect.enhanced_auth {
        return deny(
            SecurityEventKind::ProtocolViolation,
            "CONNECT with MQTT 5 enhanced authentication".to_owned(),
        );
    }
    AclDecision::Allow
}

/// Decides a PUBLISH.
pub fn check_publish(identity: &Identity, publish: &Publish<'_>) -> AclDecision {
    if let Some(alias) = publish.topic_alias {
        return deny(
            SecurityEventKind::AclViolation,
            format!(
                "PUBLISH with topic alias {alias} to {:?} (topic aliases are not allowed)",
                shown(publish.topic)
            ),
        );
    }
    let own = Topic::parse(publish.topic).is_ok_and(|topic| {
        is_own(identity, &topic) && matches!(topic.kind, TopicKind::Batch | TopicKind::Health)
    });
    if !own {
        return deny(
            SecurityEventKind::AclViolation,
            format!("PUBLISH to {}", shown(publish.topic)),
        );
    }
    if publish.retain {
        return deny(
            SecurityEventKind::AclViolation,
            format!("retained PUBLISH to {}", shown(publish.topic)),
        );
    }
    AclDecision::Allow
}

/// Decides a SUBSCRIBE: every filter must be allowed.
pub fn check_subscribe(identity: &Identity, subscribe: &Subscribe<'_>) -> AclDecision {
    for filter in &subscribe.filters {
        if !may_subscribe(identity, filter) {
            return deny(
                SecurityEventKind::AclViolation,
                format!("SUBSCRIBE to {}", shown(filter)),
            );
        }
    }
    AclDecision::Allow
}

/// Whether `filter` is the gateway's own ack topic, one of its command topics, or all of
/// them (`…/cmd/#`).
fn may_subscribe(identity: &Identity, filter: &str) -> bool {
    let exact = |text: &str| {
        Topic::parse(text).is_ok_and(|topic| {
            is_own(identity, &topic) && matches!(topic.kind, TopicKind::Ack | TopicKind::Cmd(_))
        })
    };
    match filter.strip_suffix("/#") {
        Some(prefix) => {
            // `…/cmd/#`: the prefix plus any command name must be an own command topic.
            prefix.ends_with("/cmd") && exact(&format!("{prefix}/x"))
        }
        None => exact(filter),
    }
}

fn is_own(identity: &Identity, topic: &Topic) -> bool {
    topic.tenant == identity.tenant && topic.gateway == identity.gateway
}

/// Client-supplied text made safe for an event or a log line: control characters escaped,
/// truncated.
fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_SHOWN_CHARS + 8));
    for (i, c) in text.chars().enumerate() {
        if i == MAX_SHOWN_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{PacketType, ProtocolVersion, RawPacket};

    /// An MQTT 3.1.1 CONNECT for client id `gw-1`.
    const CONNECT: &[u8] = &[
        0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 30, 0, 4, b'g', b'w', b'-', b'1',
    ];
    use crate::identity::Fingerprint;
    use beffroi_protocol::{GatewayId, TenantId};

    fn identity() -> Identity {
        Identity {
            tenant: TenantId::new("lyon").unwrap(),
            gateway: GatewayId::new("gw-1").unwrap(),
            fingerprint: Fingerprint::of_der(b"x"),
            not_after: beffroi_protocol::Timestamp::from_unix_micros(i64::MAX),
        }
    }

    fn connect(client_id: &str) -> Connect<'_> {
        Connect {
            version: ProtocolVersion::V5,
            client_id,
            keep_alive: 30,
            will_topic: None,
            has_username: false,
            has_password: false,
            enhanced_auth: false,
            ..RawPacket::from_bytes(CONNECT)
                .unwrap()
                .parse_connect()
                .unwrap()
        }
    }

    fn publish(topic: &str) -> Publish<'_> {
        Publish {
            topic,
            qos: 1,
            retain: false,
            topic_alias: None,
        }
    }

    fn denied(decision: AclDecision) -> Denial {
        match decision {
            AclDecision::Deny(denial) => denial,
            AclDecision::Allow => panic!("allowed"),
        }
    }

    #[test]
    fn connect_rules() {
        let id = identity();
        assert_eq!(check_connect(&id, &connect("gw-1")), AclDecision::Allow);
        let denial = denied(check_connect(&id, &connect("gw-2")));
        assert_eq!(denial.kind, SecurityEventKind::ClientIdMismatch);
        assert!(denial.detail.contains("gw-2"), "{}", denial.detail);
        let will = Connect {
            will_topic: Some("beffroi/v1/lyon/gw-1/health"),
            ..connect("gw-1")
        };
        assert_eq!(
            denied(check_connect(&id, &will)).kind,
            SecurityEventKind::AclViolation
        );
        let password = Connect {
            has_password: true,
            ..connect("gw-1")
        };
        assert!(matches!(
            check_connect(&id, &password),
            AclDecision::Deny(_)
        ));
    }

    #[test]
    fn publish_rules() {
        let id = identity();
        for ok in ["beffroi/v1/lyon/gw-1/batch", "beffroi/v1/lyon/gw-1/health"] {
            assert_eq!(check_publish(&id, &publish(ok)), AclDecision::Allow, "{ok}");
        }
        for bad in [
            "beffroi/v1/lyon/gw-2/batch",
            "beffroi/v1/paris/gw-1/batch",
            "beffroi/v1/lyon/gw-1/ack",
            "beffroi/v1/lyon/gw-1/cmd/reboot",
            "beffroi/v1/lyon/+/batch",
            "beffroi/v1/lyon/gw-1/batch/x",
            "$SYS/broker",
            "",
        ] {
            let denial = denied(check_publish(&id, &publish(bad)));
            assert_eq!(denial.detail, format!("PUBLISH to {bad}"));
        }
        let alias = Publish {
            topic_alias: Some(1),
            ..publish("")
        };
        assert!(denied(check_publish(&id, &alias)).detail.contains("alias"));
        let retained = Publish {
            retain: true,
            ..publish("beffroi/v1/lyon/gw-1/batch")
        };
        assert!(matches!(
            check_publish(&id, &retained),
            AclDecision::Deny(_)
        ));
    }

    #[test]
    fn subscribe_rules() {
        let id = identity();
        let sub = |filters: Vec<&'static str>| check_subscribe(&id, &Subscribe { filters });
        assert_eq!(
            sub(vec![
                "beffroi/v1/lyon/gw-1/ack",
                "beffroi/v1/lyon/gw-1/cmd/#",
                "beffroi/v1/lyon/gw-1/cmd/reboot",
            ]),
            AclDecision::Allow
        );
        for bad in [
            "#",
            "+/#",
            "beffroi/v1/lyon/+/ack",
            "beffroi/v1/lyon/gw-1/#",
            "beffroi/v1/lyon/gw-1/cmd/+",
            "beffroi/v1/lyon/gw-2/ack",
            "beffroi/v1/paris/gw-1/cmd/#",
            "beffroi/v1/lyon/gw-1/batch",
            "$share/g/beffroi/v1/lyon/gw-1/ack",
            "$SYS/#",
            "/#",
        ] {
            let denial = denied(sub(vec!["beffroi/v1/lyon/gw-1/ack", bad]));
            assert_eq!(denial.detail, format!("SUBSCRIBE to {bad}"));
        }
    }

    #[test]
    fn packet_order() {
        let id = identity();
        let ping = Packet::Passthrough(PacketType::PingReq);
        assert!(matches!(
            check_packet(&id, &ping, false),
            AclDecision::Deny(_)
        ));
        assert_eq!(check_packet(&id, &ping, true), AclDecision::Allow);
        let c = Packet::Connect(connect("gw-1"));
        assert_eq!(check_packet(&id, &c, false), AclDecision::Allow);
        assert!(matches!(check_packet(&id, &c, true), AclDecision::Deny(_)));
        let auth = Packet::NotFromClient(PacketType::Auth);
        assert!(denied(check_packet(&id, &auth, true))
            .detail
            .contains("AUTH"));
    }

    #[test]
    fn shown_escapes_and_truncates() {
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(shown(&"x".repeat(500)).chars().count(), MAX_SHOWN_CHARS + 1);
    }
}
