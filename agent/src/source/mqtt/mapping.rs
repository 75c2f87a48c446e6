//! Custom mapping rules: a topic filter and JSON pointers (RFC 6901) from a JSON message to
//! readings.
//!
//! ```toml
//! [[sources.mappings]]
//! filter = "city/+/air"          # MQTT topic filter (+ and #)
//! sensor = { topic_level = 1 }   # 0-based topic level, or { pointer = "/id" }
//! sensor_prefix = "air"          # optional: sensor id = <prefix>-<id>
//! time = "/ts"                   # optional pointer: RFC 3339 text or epoch number;
//!                                # default: the time the message is received
//! epoch_unit = "s"               # "s" (default) or "ms", for numeric times
//! [[sources.mappings.values]]
//! metric = "air.pm25"
//! value = "/pm25"                # pointer to a number, bool or string
//! unit = "ug/m3"                 # literal unit, or unit_pointer = "/unit"; default ""
//! optional = false               # true: absent or null → no reading, not malformed
//! ```
//!
//! The sensor id (from the topic or the payload; a JSON string or integer) is lowercased
//! (`Station-12` → `station-12`) and must then be a valid sensor id. A message yields one
//! reading per value rule; a rule whose pointer is missing or of the wrong type makes the
//! message count as malformed, the other rules' readings are still sent. Strings are kept as
//! string values (`"12.5"` is not a number).

use beffroi_protocol::{MetricName, Reading, SensorId, Timestamp, Unit, Value};
use serde::Deserialize;
use serde_json::Value as Json;

use super::filter::TopicFilter;
use crate::config::ConfigError;

/// A validated JSON pointer (RFC 6901): `""` (the whole document) or `/a/b~1c/0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer(String);

impl JsonPointer {
    /// Validates `pointer`: empty or starting with `/`, `~` only in `~0` and `~1`.
    pub fn new(pointer: impl Into<String>) -> Result<Self, String> {
        let pointer = pointer.into();
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!("JSON pointer {pointer:?} must start with '/'"));
        }
        let mut chars = pointer.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(format!(
                    "JSON pointer {pointer:?}: '~' must be followed by 0 or 1"
                ));
            }
        }
        Ok(Self(pointer))
    }

    /// The pointer as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value it points to in `doc`, if any.
    pub fn resolve<'a>(&self, doc: &'a Json) -> Option<&'a Json> {
        doc.pointer(&self.0)
    }
}

/// How numeric times are counted.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
pub enum EpochUnit {
    /// Seconds since the Unix epoch (may be fractional).
    #[default]
    #[serde(rename = "s")]
    Seconds,
    /// Milliseconds since the Unix epoch.
    #[serde(rename = "ms")]
    Millis,
}

/// A `[[sources.mappings]]` entry as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMapping {
    /// MQTT topic filter of the messages (`+` and `#` wildcards).
    filter: String,
    /// Where the sensor id comes from; it is lowercased and must then be a valid sensor id.
    sensor: RawSensorRule,
    /// Sensor ids are `<prefix>-<id>`. Unset: just the id.
    sensor_prefix: Option<String>,
    /// JSON pointer to the reading time: RFC 3339 text or an epoch number (see `epoch_unit`).
    /// Unset: the time the message is received.
    time: Option<String>,
    /// Unit of numeric times.
    #[serde(default)]
    epoch_unit: EpochUnit,
    /// The readings of one message: one per value rule.
    values: Vec<RawValueRule>,
}

/// `sensor`: set exactly one of `topic_level` and `pointer`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawSensorRule {
    /// The sensor id is this level of the topic, 0-based.
    topic_level: Option<usize>,
    /// The sensor id is the string or integer at this JSON pointer (`/id`).
    pointer: Option<String>,
}

/// `[[sources.mappings.values]]`: one reading per message.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawValueRule {
    /// The reading's metric (`air.pm25`).
    metric: String,
    /// JSON pointer to the value: a number, bool or string (`"12.5"` stays a string).
    value: String,
    /// The unit, literally (`ug/m3`). Unset, with no `unit_pointer`: none.
    unit: Option<String>,
    /// JSON pointer to the unit, a string in the message (instead of `unit`).
    unit_pointer: Option<String>,
    /// When the value is absent or null: `true`, no reading; `false`, the message counts as
    /// malformed (the other rules' readings are still sent).
    #[serde(default)]
    optional: bool,
}

/// Where a mapping takes the sensor id from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SensorRule {
    /// A level of the topic, 0-based.
    TopicLevel(usize),
    /// A string or integer in the message.
    Pointer(JsonPointer),
}

/// Where a value rule takes the unit from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitRule {
    /// A fixed unit.
    Fixed(Unit),
    /// A string in the message.
    Pointer(JsonPointer),
}

/// One reading per message: which metric, where its value and unit are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueRule {
    /// The metric.
    pub metric: MetricName,
    /// Where the value is.
    pub value: JsonPointer,
    /// The unit.
    pub unit: UnitRule,
    /// Absent or null → no reading rather than a malformed message.
    pub optional: bool,
}

/// A validated mapping rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The topics it applies to (and subscribes to).
    pub filter: TopicFilter,
    /// Where the sensor id is.
    pub sensor: SensorRule,
    /// Prefix of the sensor id: `<prefix>-<id>`.
    pub sensor_prefix: Option<String>,
    /// Where the time is; `None`: the receive time.
    pub time: Option<JsonPointer>,
    /// How numeric times are counted.
    pub epoch_unit: EpochUnit,
    /// The readings each message yields.
    pub values: Vec<ValueRule>,
}

impl RawMapping {
    /// Checks every field; `field` is this mapping's path (`sources[0].mappings[1]`).
    pub fn validate(self, field: &str) -> Result<Mapping, ConfigError> {
        let invalid =
            |name: &str, reason: String| ConfigError::invalid(format!("{field}.{name}"), reason);
        let filter = TopicFilter::new(self.filter).map_err(|e| invalid("filter", e))?;
        let levels: Vec<&str> = filter.levels().collect();
        let sensor = match (self.sensor.topic_level, self.sensor.pointer) {
            (Some(level), None) => {
                if level >= levels.len() || levels[level] == "#" {
                    return Err(invalid(
                        "sensor.topic_level",
                        format!(
                            "filter {filter:?} has no single level {level} (levels count from 0)"
                        ),
                    ));
                }
                SensorRule::TopicLevel(level)
            }
            (None, Some(pointer)) => SensorRule::Pointer(
                JsonPointer::new(pointer).map_err(|e| invalid("sensor.pointer", e))?,
            ),
            _ => {
                return Err(invalid(
                    "sensor",
                    "set exactly one of topic_level and pointer".into(),
                ))
            }
        };
        if let Some(prefix) = &self.sensor_prefix {
            SensorId::new(format!("{prefix}-x"))
                .map_err(|e| invalid("sensor_prefix", e.to_string()))?;
        }
        let time = self
            .time
            .map(JsonPointer::new)
            .transpose()
            .map_err(|e| invalid("time", e))?;
        if self.values.is_empty() {
            return Err(invalid(
                "values",
                "at least one [[…values]] entry is required".into(),
            ));
        }
        let values = self
            .values
            .into_iter()
            .enumerate()
            .map(|(i, raw)| raw.validate(&format!("{field}.values[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Mapping {
            filter,
            sensor,
            sensor_prefix: self.sensor_prefix,
            time,
            epoch_unit: self.epoch_unit,
            values,
        })
    }
}

impl RawValueRule {
    fn validate(self, field: &str) -> Result<ValueRule, ConfigError> {
        let invalid =
            |name: &str, reason: String| ConfigError::invalid(format!("{field}.{name}"), reason);
        let metric = MetricName::new(self.metric).map_err(|e| invalid("metric", e.to_string()))?;
        let value = JsonPointer::new(self.value).map_err(|e| invalid("value", e))?;
        let unit = match (self.unit, self.unit_pointer) {
            (Some(_), Some(_)) => {
                return Err(invalid("unit", "set unit or unit_pointer, not both".into()))
            }
            (Some(unit), None) => {
                UnitRule::Fixed(Unit::new(unit).map_err(|e| invalid("unit", e.to_string()))?)
            }
            (None, Some(pointer)) => UnitRule::Pointer(
                JsonPointer::new(pointer).map_err(|e| invalid("unit_pointer", e))?,
            ),
            (None, None) => UnitRule::Fixed(Unit::new("").expect("the empty unit is valid")),
        };
        Ok(ValueRule {
            metric,
            value,
            unit,
            optional: self.optional,
        })
    }
}

impl Mapping {
    /// Maps one message: readings into `out`, reasons for dropped parts into `problems`.
    pub fn apply(
        &self,
        topic: &str,
        doc: &Json,
        received: Timestamp,
        out: &mut Vec<Reading>,
        problems: &mut Vec<String>,
    ) {
        let sensor = match self.sensor(topic, doc) {
            Ok(sensor) => sensor,
            Err(reason) => return problems.push(reason),
        };
        let time = match &self.time {
            None => received,
            Some(pointer) => match time_at(pointer, doc, self.epoch_unit) {
                Ok(time) => time,
                Err(reason) => return problems.push(reason),
            },
        };
        for rule in &self.values {
            match rule.reading(&sensor, time, doc) {
                Ok(Some(reading)) => out.push(reading),
                Ok(None) => {}
                Err(reason) => problems.push(reason),
            }
        }
    }

    fn sensor(&self, topic: &str, doc: &Json) -> Result<SensorId, String> {
        let raw = match &self.sensor {
            SensorRule::TopicLevel(level) => topic
                .split('/')
                .nth(*level)
                .ok_or_else(|| format!("topic {topic:?} has no level {level}"))?
                .to_owned(),
            SensorRule::Pointer(pointer) => match pointer.resolve(doc) {
                Some(Json::String(s)) => s.clone(),
                Some(Json::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
                Some(other) => {
                    return Err(format!(
                        "sensor at {:?} is {}, expected a string or integer",
                        pointer.as_str(),
                        type_name(other)
                    ))
                }
                None => return Err(format!("no sensor at {:?}", pointer.as_str())),
            },
        };
        sensor_id(self.sensor_prefix.as_deref(), &raw)
    }
}

impl ValueRule {
    fn reading(
        &self,
        sensor: &SensorId,
        time: Timestamp,
        doc: &Json,
    ) -> Result<Option<Reading>, String> {
        let value = match self.value.resolve(doc) {
            None | Some(Json::Null) if self.optional => return Ok(None),
            None => return Err(format!("no value at {:?}", self.value.as_str())),
            Some(json) => {
                json_value(json).map_err(|e| format!("{:?}: {e}", self.value.as_str()))?
            }
        };
        let unit = match &self.unit {
            UnitRule::Fixed(unit) => unit.clone(),
            UnitRule::Pointer(pointer) => match pointer.resolve(doc) {
                Some(Json::String(s)) => Unit::new(s.as_str()).map_err(|e| e.to_string())?,
                Some(other) => {
                    return Err(format!(
                        "unit at {:?} is {}, expected a string",
                        pointer.as_str(),
                        type_name(other)
                    ))
                }
                None => return Err(format!("no unit at {:?}", pointer.as_str())),
            },
        };
        Ok(Some(Reading {
            sensor: sensor.clone(),
            metric: self.metric.clone(),
            unit,
            time,
            value,
        }))
    }
}

/// A sensor id from text found in a topic or message: lowercased, optionally prefixed.
pub(super) fn sensor_id(prefix: Option<&str>, raw: &str) -> Result<SensorId, String> {
    let id = match prefix {
        Some(prefix) => format!("{prefix}-{}", raw.to_ascii_lowercase()),
        None => raw.to_ascii_lowercase(),
    };
    SensorId::new(id).map_err(|e| e.to_string())
}

/// A reading value from a JSON scalar.
pub(super) fn json_value(json: &Json) -> Result<Value, String> {
    let value = match json {
        Json::Number(n) => Value::Number(n.as_f64().ok_or("number out of range")?),
        Json::Bool(b) => Value::Bool(*b),
        Json::String(s) => Value::Text(s.clone()),
        other => {
            return Err(format!(
                "{} is not a number, bool or string",
                type_name(other)
            ))
        }
    };
    value.validate().map_err(|e| e.to_string())?;
    Ok(value)
}

/// A time from RFC 3339 text or an epoch number.
fn time_at(pointer: &JsonPointer, doc: &Json, unit: EpochUnit) -> Result<Timestamp, String> {
    match pointer.resolve(doc) {
        Some(Json::String(text)) => {
            Timestamp::parse_rfc3339(text).ok_or_else(|| format!("time {text:?} is not RFC 3339"))
        }
        Some(Json::Number(n)) => {
            let n = n.as_f64().ok_or("time out of range")?;
            let seconds = match unit {
                EpochUnit::Seconds => n,
                EpochUnit::Millis => n / 1000.0,
            };
            Timestamp::from_unix_seconds_f64(seconds).ok_or_else(|| "time out of range".to_owned())
        }
        Some(other) => Err(format!(
            "time at {:?} is {}, expected RFC 3339 text or a number",
            pointer.as_str(),
            type_name(other)
        )),
        None => Err(format!("no time at {:?}", pointer.as_str())),
    }
}

/// The JSON type of `json`, for messages.
pub(super) fn type_name(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a bool",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RECEIVED: Timestamp = Timestamp::from_unix_micros(1_767_254_400_000_000);

    fn mapping(text: &str) -> Result<Mapping, String> {
        toml::from_str::<RawMapping>(text)
            .map_err(|e| e.to_string())?
            .validate("sources[0].mappings[2]")
            .map_err(|e| e.to_string())
    }

    const AIR: &str = r#"
        filter = "city/+/air"
        sensor = { topic_level = 1 }
        time = "/ts"
        [[values]]
        metric = "air.pm25"
        value = "/pm/2.5"
        unit = "ug/m3"
        [[values]]
        metric = "air.no2"
        value = "/no2"
        unit_pointer = "/units/no2"
        [[values]]
        metric = "air.ok"
        value = "/flags/ok"
        optional = true
    "#;

    fn apply(m: &Mapping, topic: &str, payload: &str) -> (Vec<Reading>, Vec<String>) {
        let doc: Json = serde_json::from_str(payload).unwrap();
        let (mut out, mut problems) = (Vec::new(), Vec::new());
        m.apply(topic, &doc, RECEIVED, &mut out, &mut problems);
        (out, problems)
    }

    #[test]
    fn pointers_validate_and_resolve() {
        assert!(JsonPointer::new("").is_ok());
        assert!(JsonPointer::new("/a~0b/c~1d/0").is_ok());
        assert!(JsonPointer::new("a").is_err());
        assert!(JsonPointer::new("/a~2").is_err());
        assert!(JsonPointer::new("/a~").is_err());
        let doc: Json = serde_json::json!({"a/b": [10, {"c~d": true}], "m": {"": 1}});
        let get = |p: &str| JsonPointer::new(p).unwrap().resolve(&doc).cloned();
        assert_eq!(get("/a~1b/0"), Some(serde_json::json!(10)));
        assert_eq!(get("/a~1b/1/c~0d"), Some(serde_json::json!(true)));
        assert_eq!(get("/m/"), Some(serde_json::json!(1)));
        assert_eq!(get("/missing"), None);
        assert_eq!(get(""), Some(doc.clone()));
    }

    #[test]
    fn maps_a_message() {
        let m = mapping(AIR).unwrap();
        let (out, problems) = apply(
            &m,
            "city/Station-12/air",
            r#"{"ts": "2026-01-01T08:00:00+01:00", "pm": {"2.5": 12.5}, "no2": 40, "units": {"no2": "ug/m3"}, "flags": {"ok": true}}"#,
        );
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].sensor.as_str(), "station-12");
        assert_eq!(out[0].time.to_string(), "2026-01-01T07:00:00.000000Z");
        assert_eq!(
            (out[0].metric.as_str(), out[0].unit.as_str()),
            ("air.pm25", "ug/m3")
        );
        assert_eq!(out[0].value, Value::Number(12.5));
        assert_eq!(
            (out[1].unit.as_str(), &out[1].value),
            ("ug/m3", &Value::Number(40.0))
        );
        assert_eq!(
            (out[2].unit.as_str(), &out[2].value),
            ("", &Value::Bool(true))
        );
    }

    #[test]
    fn partial_and_bad_messages() {
        let m = mapping(AIR).unwrap();
        // Optional value absent: fine. Missing unit pointer: a problem, the rest is kept.
        let (out, problems) = apply(
            &m,
            "city/s/air",
            r#"{"ts": 1767254400, "pm": {"2.5": 1}, "no2": 2}"#,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].time, RECEIVED);
        assert_eq!(problems, ["no unit at \"/units/no2\""]);
        let (out, problems) = apply(&m, "city/s/air", r#"{"ts": "noon", "pm": {"2.5": 1}}"#);
        assert!(out.is_empty());
        assert!(problems[0].contains("RFC 3339"), "{problems:?}");
        let (_, problems) = apply(
            &m,
            "city/s/air",
            r#"{"ts": 0, "pm": {"2.5": [1]}, "no2": null}"#,
        );
        assert!(problems[0].contains("an array"), "{problems:?}");
        assert!(problems[1].contains("null"), "{problems:?}");
        let (_, problems) = apply(&m, "city/s_1/air", r#"{"ts": 0}"#);
        assert!(problems[0].contains("sensor id"), "{problems:?}");
    }

    #[test]
    fn sensor_from_payload_and_epoch_millis() {
        let m = mapping(
            r#"
            filter = "plant/#"
            sensor = { pointer = "/id" }
            sensor_prefix = "meter"
            time = "/t"
            epoch_unit = "ms"
            [[values]]
            metric = "energy.kwh"
            value = "/kwh"
            unit = "kWh"
            "#,
        )
        .unwrap();
        let (out, problems) = apply(
            &m,
            "plant/a/b",
            r#"{"id": 17, "t": 1767254400250, "kwh": 3.5}"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(out[0].sensor.as_str(), "meter-17");
        assert_eq!(out[0].time.micros_since(RECEIVED), 250_000);
        let (_, problems) = apply(&m, "plant/a", r#"{"id": 1.5, "t": 0, "kwh": 1}"#);
        assert!(
            problems[0].contains("expected a string or integer"),
            "{problems:?}"
        );
    }

    #[test]
    fn validation_names_fields() {
        let cases = [
            (
                AIR.replace("city/+/air", "city/+air"),
                "sources[0].mappings[2].filter",
            ),
            (
                AIR.replace("topic_level = 1", "topic_level = 3"),
                ".sensor.topic_level",
            ),
            (AIR.replace("{ topic_level = 1 }", "{}"), ".sensor`"),
            (AIR.replace("\"/ts\"", "\"ts\""), ".time"),
            (AIR.replace("air.pm25", "Air"), ".values[0].metric"),
            (AIR.replace("\"/pm/2.5\"", "\"pm\""), ".values[0].value"),
            (AIR.replace("\"ug/m3\"", "\"ug m3\""), ".values[0].unit"),
            (
                AIR.replace("unit_pointer", "unit = \"x\"\nunit_pointer"),
                ".values[1].unit",
            ),
        ];
        for (text, field) in cases {
            let err = mapping(&text).unwrap_err();
            assert!(err.contains(field), "{field}: {err}");
        }
        let err = mapping(&AIR.replace("optional", "optionnal")).unwrap_err();
        assert!(err.contains("optionnal"), "{err}");
        let err =
            mapping("filter = \"a/#\"\nsensor = { topic_level = 1 }\nvalues = []").unwrap_err();
        assert!(err.contains("topic_level"), "{err}");
    }
}
