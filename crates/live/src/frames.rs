//! The JSON frames the server sends with data: readings, buckets and events (alarms, security
//! events, gateway states), as `docs/live.md` describes them.
//!
//! Event payloads are serialized once, when the hub publishes them, and spliced into each
//! client's frame: a thousand followers cost one serialization.

use std::sync::Arc;

use beffroi_protocol::{Timestamp, Value};
use serde::Serialize;

use crate::protocol::to_json;
use crate::series::{BucketValue, LiveValue, SeriesMeta};

/// Most items in one readings or buckets frame (a large snapshot is split).
pub const MAX_ITEMS_PER_FRAME: usize = 1000;

/// An event frame waiting: its `type`, and its payload serialized once for every client.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) kind: EventKind,
    pub(crate) payload: Arc<str>,
}

/// The kinds of event frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Alarm,
    Security,
    Gateway,
}

impl EventKind {
    fn frame_type(self) -> &'static str {
        match self {
            EventKind::Alarm => "alarm",
            EventKind::Security => "security_event",
            EventKind::Gateway => "gateway",
        }
    }

    fn field(self) -> &'static str {
        match self {
            EventKind::Alarm => "alarm",
            EventKind::Security => "event",
            EventKind::Gateway => "gateway",
        }
    }
}

/// An event frame for subscription `sub`.
pub(crate) fn event_frame(sub: &str, event: &Event, snapshot: bool) -> String {
    // The payload is JSON already: splice it in rather than parse it again.
    format!(
        r#"{{"type":"{}","sub":{},{}"{}":{}}}"#,
        event.kind.frame_type(),
        to_json(&sub),
        if snapshot { r#""snapshot":true,"# } else { "" },
        event.kind.field(),
        event.payload
    )
}

#[derive(Serialize)]
struct ItemsFrame<'a, T> {
    #[serde(rename = "type")]
    kind: &'static str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    width_s: Option<i64>,
    snapshot: bool,
    items: &'a [T],
}

/// Frames of `kind` carrying `items` as `item` shows them, at most [`MAX_ITEMS_PER_FRAME`]
/// each.
fn items_frames<'a, S, T: Serialize>(
    kind: &'static str,
    sub: &str,
    width_s: Option<i64>,
    snapshot: bool,
    items: &'a [S],
    item: impl Fn(&'a S) -> T,
) -> Vec<String> {
    items
        .chunks(MAX_ITEMS_PER_FRAME)
        .map(|chunk| {
            let items: Vec<T> = chunk.iter().map(&item).collect();
            to_json(&ItemsFrame {
                kind,
                sub,
                width_s,
                snapshot,
                items: &items,
            })
        })
        .collect()
}

#[derive(Serialize)]
struct ReadingItem<'a> {
    sensor: &'a str,
    metric: &'a str,
    unit: &'a str,
    time: Timestamp,
    value: &'a Value,
    gateway: &'a str,
}

/// One item of a `readings` frame, serialized once for every subscription that gets it: the
/// hub makes it when a series' latest value changes, frames are spliced together from it.
pub(crate) fn reading_item(meta: &SeriesMeta, value: &LiveValue) -> Arc<str> {
    to_json(&ReadingItem {
        sensor: meta.sensor.as_str(),
        metric: meta.metric.as_str(),
        unit: meta.unit.as_str(),
        time: value.time,
        value: &value.value,
        gateway: value.gateway.as_str(),
    })
    .into()
}

/// `readings` frames carrying `items` (from [`reading_item`]), at most
/// [`MAX_ITEMS_PER_FRAME`] each; the same JSON as the other item frames.
pub(crate) fn readings_frames(sub: &str, snapshot: bool, items: &[Arc<str>]) -> Vec<String> {
    let sub = to_json(&sub);
    items
        .chunks(MAX_ITEMS_PER_FRAME)
        .map(|chunk| {
            let size = chunk.iter().map(|item| item.len() + 1).sum::<usize>();
            let mut frame = String::with_capacity(64 + sub.len() + size);
            frame.push_str(r#"{"type":"readings","sub":"#);
            frame.push_str(&sub);
            frame.push_str(if snapshot {
                r#","snapshot":true,"items":["#
            } else {
                r#","snapshot":false,"items":["#
            });
            for (i, item) in chunk.iter().enumerate() {
                if i > 0 {
                    frame.push(',');
                }
                frame.push_str(item);
            }
            frame.push_str("]}");
            frame
        })
        .collect()
}

#[derive(Serialize)]
struct BucketItem<'a> {
    sensor: &'a str,
    metric: &'a str,
    unit: &'a str,
    start: Timestamp,
    avg: f64,
    min: f64,
    max: f64,
    count: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    revised: bool,
}

/// `buckets` frames for `items` (all of one width).
pub(crate) fn buckets_frames(
    sub: &str,
    snapshot: bool,
    items: &[(Arc<SeriesMeta>, BucketValue)],
) -> Vec<String> {
    let width_s = items.first().map(|(_, b)| b.width_us / 1_000_000);
    items_frames("buckets", sub, width_s, snapshot, items, |(meta, b)| {
        BucketItem {
            sensor: meta.sensor.as_str(),
            metric: meta.metric.as_str(),
            unit: meta.unit.as_str(),
            start: Timestamp::from_unix_micros(b.start_us),
            avg: b.avg(),
            min: b.min,
            max: b.max,
            count: b.count,
            revised: b.revised,
        }
    })
}
