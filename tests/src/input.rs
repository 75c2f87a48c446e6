//! Known readings for JSON lines input, and a comparable key per reading, so a scenario can
//! check that exactly its input arrived.

use beffroi_protocol::{MetricName, Reading, SensorId, Timestamp, Unit, Value};

/// 2026-01-01T00:00:00Z in microseconds since the epoch.
const BASE_TIME_US: i64 = 1_767_225_600_000_000;

/// `count` distinct readings from several sensors and metrics with number, bool and string
/// values; `offset` shifts their times so that separate calls give disjoint sets.
pub fn readings(offset: usize, count: usize) -> Vec<Reading> {
    readings_from(Timestamp::from_unix_micros(BASE_TIME_US), offset, count)
}

/// Like [`readings`], with reading `i` at `base + i` milliseconds: the platform quarantines
/// readings outside its time window, so its scenarios use a recent `base`.
pub fn readings_from(base: Timestamp, offset: usize, count: usize) -> Vec<Reading> {
    (offset..offset + count)
        .map(|i| reading(base.unix_micros(), i))
        .collect()
}

fn reading(base_us: i64, i: usize) -> Reading {
    let (metric, unit, value) = match i % 4 {
        0 => ("air.pm25", "ug/m3", Value::Number(i as f64 * 0.25)),
        1 => (
            "air.temperature",
            "Cel",
            Value::Number(-20.0 + (i % 400) as f64 / 8.0),
        ),
        2 => ("parking.occupied", "", Value::Bool(i % 3 == 1)),
        _ => (
            "traffic.state",
            "",
            Value::Text(["free", "dense", "jammed"][i % 3].to_owned()),
        ),
    };
    Reading {
        sensor: SensorId::new(format!("sensor-{:02}", i % 13)).expect("valid sensor id"),
        metric: MetricName::new(metric).expect("valid metric"),
        unit: Unit::new(unit).expect("valid unit"),
        time: Timestamp::from_unix_micros(base_us + i as i64 * 1_000),
        value,
    }
}

/// One JSON line (with its newline) per reading, in the agent's native JSON form.
pub fn jsonl(readings: &[Reading]) -> String {
    readings.iter().map(|r| line(r) + "\n").collect()
}

fn line(reading: &Reading) -> String {
    serde_json::to_string(reading).expect("a reading serializes to JSON")
}

/// A key identifying a reading by all its fields, for set comparisons.
pub fn key(reading: &Reading) -> String {
    line(reading)
}

/// Multiset of reading keys ([`key`]).
pub fn key_counts<'a>(
    readings: impl IntoIterator<Item = &'a Reading>,
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for reading in readings {
        *counts.entry(key(reading)).or_insert(0) += 1;
    }
    counts
}

/// Panics unless `got` holds exactly the readings of `want`, each once; `what` names the
/// place ("delivered", "stored") in the message, with a few examples of what differs.
pub fn assert_each_once<'a>(
    what: &str,
    got: impl IntoIterator<Item = &'a Reading>,
    want: impl IntoIterator<Item = &'a Reading>,
) {
    let (got, want) = (key_counts(got), key_counts(want));
    let twice: Vec<_> = got.iter().filter(|(_, &n)| n > 1).take(3).collect();
    assert!(
        twice.is_empty(),
        "readings {what} more than once: {twice:?}"
    );
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(3)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(3)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what} {} readings, expected {}; missing e.g. {missing:?}; unexpected e.g. {extra:?}",
        got.len(),
        want.len()
    );
}
