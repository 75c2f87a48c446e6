//! Reading a live-view frame the cheap way (`docs/live.md`): its `type`, whether it is a
//! snapshot, and the `time` of each item; every other field is skipped without being built.
//! The benchmark's clients parse tens of thousands of frames a second on the same two cores
//! as the platform, so they must cost little.

use beffroi_protocol::Timestamp;
use serde::Deserialize;

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    snapshot: bool,
    #[serde(default, borrow)]
    items: Vec<Item<'a>>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(default, borrow)]
    time: Option<&'a str>,
}

/// What the benchmark needs of a server message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Live readings (not a snapshot): each item's time, µs since the epoch, and the number of
    /// items whose time could not be read.
    Readings {
        /// Item times, µs.
        times_us: Vec<i64>,
        /// Items without a readable time.
        unreadable: usize,
    },
    /// A reply or event the benchmark only counts, by its `type`.
    Other(String),
}

/// Parses a server message; `None` when it is not a JSON object with a `type`.
pub(crate) fn parse(text: &str) -> Option<Frame> {
    let head: Head<'_> = serde_json::from_str(text).ok()?;
    if head.kind != "readings" || head.snapshot {
        return Some(Frame::Other(head.kind.to_owned()));
    }
    let mut times_us = Vec::with_capacity(head.items.len());
    let mut unreadable = 0;
    for item in head.items {
        match item.time.and_then(Timestamp::parse_rfc3339) {
            Some(time) => times_us.push(time.unix_micros()),
            None => unreadable += 1,
        }
    }
    Some(Frame::Readings {
        times_us,
        unreadable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_and_skips_the_rest() {
        let text = r#"{"type":"readings","sub":"z","snapshot":false,"items":[
            {"sensor":"s","metric":"air.pm25","unit":"ug/m3","time":"1970-01-01T00:00:01.000002Z","value":1.5,"gateway":"g"},
            {"sensor":"s","metric":"x.y","unit":"1","time":"bad","value":"a \"quoted\" text","gateway":"g"}]}"#;
        assert_eq!(
            parse(text),
            Some(Frame::Readings {
                times_us: vec![1_000_002],
                unreadable: 1
            })
        );
        let snapshot = r#"{"type":"readings","sub":"z","snapshot":true,"items":[]}"#;
        assert_eq!(parse(snapshot), Some(Frame::Other("readings".into())));
        assert_eq!(
            parse(r#"{"type":"subscribed","id":"v","series":3}"#),
            Some(Frame::Other("subscribed".into()))
        );
        assert_eq!(parse("[1]"), None);
    }
}
