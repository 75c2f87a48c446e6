//! The live-view message schema, version [`PROTOCOL_VERSION`] (`docs/live.md` is its
//! reference): what clients send ([`ClientMessage`]), what the server answers, and the close
//! codes.
//!
//! Client messages are parsed strictly (`deny_unknown_fields`): a typo is an error that names
//! the field, not a silently wider view.

use serde::{Deserialize, Serialize};

/// The protocol version the server speaks (`hello.protocol`).
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest subscription id, in bytes.
pub const MAX_SUB_ID_BYTES: usize = 64;
/// Most entries in one filter list.
pub const MAX_FILTER_LIST: usize = 1000;

/// Close codes the server uses (RFC 6455 private range 4000–4999 for the protocol's own).
pub mod close {
    /// Normal close.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down: reconnect with backoff.
    pub const GOING_AWAY: u16 = 1001;
    /// Internal error.
    pub const INTERNAL: u16 = 1011;
    /// Protocol error: binary frame, oversize message, repeated malformed messages.
    pub const PROTOCOL: u16 = 4400;
    /// Not authenticated.
    pub const UNAUTHORIZED: u16 = 4401;
    /// The client stayed behind.
    pub const TOO_SLOW: u16 = 4408;
}

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Authenticate (first message, when the upgrade request had no `Authorization`).
    Auth {
        /// The bearer token.
        token: String,
    },
    /// Subscribe, or replace the subscription with the same id.
    Subscribe(SubscribeRequest),
    /// End a subscription.
    Unsubscribe {
        /// Its id.
        id: String,
    },
    /// Connection options.
    Options {
        /// Most frames per second.
        max_fps: u32,
    },
    /// Liveness check; answered with `pong` and the same nonce.
    Ping {
        /// Echoed back.
        #[serde(default)]
        nonce: serde_json::Value,
    },
}

/// Which stream a subscription follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Committed readings (raw or bucketed).
    Readings,
    /// Alarm changes.
    Alarms,
    /// Security events.
    Security,
    /// Gateway state after health reports.
    Gateways,
}

impl StreamKind {
    /// The stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Readings => "readings",
            StreamKind::Alarms => "alarms",
            StreamKind::Security => "security",
            StreamKind::Gateways => "gateways",
        }
    }
}

/// Raw values or closed buckets of a fixed width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Granularity {
    /// Every committed value (coalesced to the latest per series between frames).
    #[default]
    Raw,
    /// Closed buckets of this many seconds.
    Bucket(u32),
}

/// The bucket widths live views offer, with their labels.
pub const BUCKET_WIDTHS: [(&str, u32); 4] = [("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600)];

impl Granularity {
    /// `raw`, `1m`, `5m`, `15m` or `1h`.
    pub fn label(self) -> &'static str {
        match self {
            Granularity::Raw => "raw",
            Granularity::Bucket(width) => BUCKET_WIDTHS
                .iter()
                .find(|(_, w)| *w == width)
                .map_or("bucket", |(label, _)| label),
        }
    }

    /// Parses [`Granularity::label`].
    pub fn parse(text: &str) -> Option<Self> {
        if text == "raw" {
            return Some(Granularity::Raw);
        }
        BUCKET_WIDTHS
            .iter()
            .find(|(label, _)| *label == text)
            .map(|(_, width)| Granularity::Bucket(*width))
    }

    /// Every label, for `hello.limits.granularities`.
    pub fn labels() -> Vec<&'static str> {
        std::iter::once("raw")
            .chain(BUCKET_WIDTHS.iter().map(|(label, _)| *label))
            .collect()
    }
}

impl<'de> Deserialize<'de> for Granularity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Granularity::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown granularity {text:?}; expected one of {}",
                Granularity::labels().join(", ")
            ))
        })
    }
}

/// `subscribe`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    /// The client's id for it.
    pub id: String,
    /// The stream.
    pub stream: StreamKind,
    /// Which series (readings only).
    #[serde(default)]
    pub filter: FilterSpec,
    /// Raw or buckets (readings only).
    #[serde(default)]
    pub granularity: Granularity,
    /// Send the latest known value (or last closed bucket) of each series first.
    #[serde(default = "yes")]
    pub snapshot: bool,
    /// Follow another tenant's readings under a sharing agreement (raw readings only; with
    /// `purpose`).
    #[serde(default)]
    pub grantor: Option<String>,
    /// Why, from the purposes' controlled vocabulary (with `grantor`).
    #[serde(default)]
    pub purpose: Option<String>,
}

const fn yes() -> bool {
    true
}

/// A readings filter as sent; [`crate::Filter::compile`] validates it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Metric names or prefixes ending in `.*`.
    #[serde(default)]
    pub metrics: Vec<String>,
    /// Zone ids.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Sensor ids.
    #[serde(default)]
    pub sensors: Vec<String>,
    /// `[west, south, east, north]`, WGS 84 degrees.
    #[serde(default)]
    pub bbox: Option<[f64; 4]>,
}

/// Why a request failed (the connection stays open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed message or field.
    BadRequest,
    /// Not allowed for this token.
    Forbidden,
    /// The connection holds the most subscriptions it may.
    TooManySubscriptions,
    /// No subscription with that id.
    UnknownSubscription,
}

/// Server messages that answer a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// A subscription is in place.
    Subscribed {
        /// Its id.
        id: String,
        /// Its stream.
        stream: StreamKind,
        /// Series it matches now (readings).
        #[serde(skip_serializing_if = "Option::is_none")]
        series: Option<usize>,
        /// A grantee view under an embargo: each value arrives once it is this many seconds
        /// old.
        #[serde(skip_serializing_if = "Option::is_none")]
        embargo_s: Option<u64>,
    },
    /// A subscription ended.
    Unsubscribed {
        /// Its id.
        id: String,
    },
    /// Answer to `ping`.
    Pong {
        /// The client's nonce.
        nonce: serde_json::Value,
    },
    /// A grantee's subscription ended: its agreement no longer permits it (revoked,
    /// suspended, expired, changed).
    Ended {
        /// Its id.
        id: String,
        /// A stable code: the policy's deny reason, or `agreement_changed`.
        reason: String,
        /// What happened.
        detail: String,
    },
    /// A request failed.
    Error {
        /// The subscription concerned, if any.
        id: Option<String>,
        /// What kind of failure.
        code: ErrorCode,
        /// What was wrong, naming the field.
        detail: String,
    },
}

impl Reply {
    /// A `bad_request` error.
    pub fn bad_request(id: Option<String>, detail: impl Into<String>) -> Self {
        Reply::Error {
            id,
            code: ErrorCode::BadRequest,
            detail: detail.into(),
        }
    }

    /// The JSON text of this reply.
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

/// JSON text of a server message. Serializing these types cannot fail (no maps with
/// non-string keys, no failing `Serialize` impls), so a failure is a bug, logged and sent as
/// an empty object rather than a panic.
pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|error| {
        tracing::error!(%error, "cannot serialize a live message");
        "{}".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ClientMessage, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn client_messages_parse_strictly() {
        let m = parse(
            r#"{"type":"subscribe","id":"map","stream":"readings",
                "filter":{"metrics":["air.*"],"bbox":[4.8,45.7,4.9,45.8]},"granularity":"5m"}"#,
        )
        .expect("valid");
        let ClientMessage::Subscribe(s) = m else {
            panic!("not a subscribe: {m:?}")
        };
        assert_eq!(s.granularity, Granularity::Bucket(300));
        assert!(s.snapshot, "snapshot defaults to true");
        assert_eq!(s.filter.bbox, Some([4.8, 45.7, 4.9, 45.8]));
        assert_eq!((s.grantor, s.purpose), (None, None));
        let m = parse(
            r#"{"type":"subscribe","id":"g","stream":"readings","grantor":"lyon",
                "purpose":"research"}"#,
        )
        .expect("valid");
        let ClientMessage::Subscribe(s) = m else {
            panic!("not a subscribe: {m:?}")
        };
        assert_eq!(s.grantor.as_deref(), Some("lyon"));
        assert_eq!(s.purpose.as_deref(), Some("research"));

        for bad in [
            r#"{"type":"subscribe","id":"x","stream":"readings","filtr":{}}"#,
            r#"{"type":"subscribe","id":"x","stream":"nope"}"#,
            r#"{"type":"subscribe","id":"x","stream":"readings","granularity":"2m"}"#,
            r#"{"type":"subscribe","id":"x","stream":"readings","filter":{"bbox":[1,2,3]}}"#,
            r#"{"type":"dance"}"#,
            r#"{"id":"x"}"#,
            r#"[]"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            parse(r#"{"type":"ping","nonce":7}"#).expect("valid"),
            ClientMessage::Ping {
                nonce: serde_json::json!(7)
            }
        );
    }

    #[test]
    fn granularities_round_trip() {
        for label in Granularity::labels() {
            assert_eq!(
                Granularity::parse(label).map(Granularity::label),
                Some(label)
            );
        }
        assert_eq!(Granularity::parse("1d"), None);
    }

    #[test]
    fn replies_serialize_with_their_type() {
        let json = Reply::Subscribed {
            id: "map".into(),
            stream: StreamKind::Readings,
            series: Some(3),
            embargo_s: None,
        }
        .to_json();
        assert_eq!(
            json,
            r#"{"type":"subscribed","id":"map","stream":"readings","series":3}"#
        );
        let json = Reply::Subscribed {
            id: "open-data".into(),
            stream: StreamKind::Readings,
            series: Some(2),
            embargo_s: Some(3600),
        }
        .to_json();
        assert_eq!(
            json,
            r#"{"type":"subscribed","id":"open-data","stream":"readings","series":2,"embargo_s":3600}"#
        );
        let json = Reply::bad_request(None, "filter.bbox: west > east").to_json();
        assert_eq!(
            json,
            r#"{"type":"error","id":null,"code":"bad_request","detail":"filter.bbox: west > east"}"#
        );
    }
}
