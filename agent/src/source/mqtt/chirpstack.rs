//! ChirpStack v4 LoRaWAN uplink events (MQTT integration, JSON marshaler).
//!
//! ```toml
//! [sources.chirpstack]
//! topic = "application/+/device/+/event/up"  # default; the topic filter subscribed to
//! sensor_prefix = "lora"     # optional: sensor id = <prefix>-<devEui>; default the devEui
//! unmapped = "keep"          # "keep" (default): other fields → lorawan.<field>, unit "";
//!                            # "drop": only the fields listed below
//! ignore = ["status"]        # fields never turned into readings
//! [sources.chirpstack.fields]
//! pm25 = { metric = "air.pm25", unit = "ug/m3" }
//! "sensor.temp" = { metric = "air.temperature", unit = "Cel" }   # nested object field
//! ```
//!
//! Each up event yields one reading per scalar field of `object` (the payload decoded by the
//! device profile's codec), nested objects flattened with dots (`{"sensor": {"temp": 21}}` →
//! field `sensor.temp`), arrays and nulls skipped. The sensor is `deviceInfo.devEui` in
//! lowercase hex; the time is the event's `time` (receive time when absent). An unmapped field
//! kept as `lorawan.<field>` is converted to snake case (`batteryVoltage` →
//! `lorawan.battery_voltage`). An event without `object` (no codec configured) counts as
//! malformed: its data cannot be read. Events in the Protobuf marshaler are not JSON and count
//! as malformed too.

use std::collections::{BTreeMap, BTreeSet};

use beffroi_protocol::{MetricName, Reading, SensorId, Timestamp, Unit};
use serde::Deserialize;
use serde_json::Value as Json;

use super::filter::TopicFilter;
use super::mapping::{json_value, sensor_id, type_name};
use crate::config::ConfigError;

/// The default ChirpStack v4 uplink topic filter.
pub const DEFAULT_UP_TOPIC: &str = "application/+/device/+/event/up";

/// Deepest nesting of `object` that is flattened.
const MAX_DEPTH: usize = 4;

/// What to do with `object` fields absent from the `fields` table.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Unmapped {
    /// Readings with metric `lorawan.<field>` and no unit.
    #[default]
    Keep,
    /// Ignored.
    Drop,
}

/// The `[sources.chirpstack]` table as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawChirpstack {
    /// The uplink topic filter. Unset: `application/+/device/+/event/up`.
    topic: Option<String>,
    /// Sensor ids are `<prefix>-<devEui>`. Unset: just the devEui.
    sensor_prefix: Option<String>,
    /// What to do with decoded fields absent from `fields`.
    #[serde(default)]
    unmapped: Unmapped,
    /// Decoded fields never turned into readings.
    #[serde(default)]
    ignore: Vec<String>,
    /// Metric and unit of each decoded field, by name (a dotted path for nested objects):
    /// `pm25 = { metric = "air.pm25", unit = "ug/m3" }`.
    #[serde(default)]
    fields: BTreeMap<String, RawField>,
}

/// `[sources.chirpstack.fields]`: the metric and unit of one decoded field.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawField {
    /// The reading's metric (`air.pm25`).
    metric: String,
    /// The reading's unit (`ug/m3`, `Cel`); empty: none.
    #[serde(default)]
    unit: String,
}

/// The metric and unit of a decoded field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMapping {
    /// The metric.
    pub metric: MetricName,
    /// The unit.
    pub unit: Unit,
}

/// A validated ChirpStack v4 mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chirpstack {
    /// The uplink topic filter.
    pub topic: TopicFilter,
    /// Prefix of sensor ids: `<prefix>-<devEui>`.
    pub sensor_prefix: Option<String>,
    /// What to do with fields absent from `fields`.
    pub unmapped: Unmapped,
    /// Fields never turned into readings.
    pub ignore: BTreeSet<String>,
    /// Metric and unit of each decoded field (dotted path for nested objects).
    pub fields: BTreeMap<String, FieldMapping>,
}

impl RawChirpstack {
    /// Checks every field; `field` is this table's path (`sources[0].chirpstack`).
    pub fn validate(self, field: &str) -> Result<Chirpstack, ConfigError> {
        let invalid =
            |name: &str, reason: String| ConfigError::invalid(format!("{field}.{name}"), reason);
        let topic = TopicFilter::new(self.topic.unwrap_or_else(|| DEFAULT_UP_TOPIC.to_owned()))
            .map_err(|e| invalid("topic", e))?;
        if let Some(prefix) = &self.sensor_prefix {
            SensorId::new(format!("{prefix}-0011223344556677"))
                .map_err(|e| invalid("sensor_prefix", e.to_string()))?;
        }
        let mut fields = BTreeMap::new();
        for (name, raw) in self.fields {
            let at = format!("fields.{name}");
            if name.is_empty() {
                return Err(invalid("fields", "field names must not be empty".into()));
            }
            let metric = MetricName::new(raw.metric)
                .map_err(|e| invalid(&format!("{at}.metric"), e.to_string()))?;
            let unit =
                Unit::new(raw.unit).map_err(|e| invalid(&format!("{at}.unit"), e.to_string()))?;
            fields.insert(name, FieldMapping { metric, unit });
        }
        Ok(Chirpstack {
            topic,
            sensor_prefix: self.sensor_prefix,
            unmapped: self.unmapped,
            ignore: self.ignore.into_iter().collect(),
            fields,
        })
    }
}

impl Chirpstack {
    /// Maps one up event: readings into `out`, reasons for dropped parts into `problems`.
    pub fn apply(
        &self,
        doc: &Json,
        received: Timestamp,
        out: &mut Vec<Reading>,
        problems: &mut Vec<String>,
    ) {
        let dev_eui = match doc.pointer("/deviceInfo/devEui") {
            Some(Json::String(eui)) => eui,
            Some(other) => {
                return problems.push(format!(
                    "deviceInfo.devEui is {}, expected a string",
                    type_name(other)
                ))
            }
            None => return problems.push("not a ChirpStack up event: no deviceInfo.devEui".into()),
        };
        let sensor = match sensor_id(self.sensor_prefix.as_deref(), dev_eui) {
            Ok(sensor) => sensor,
            Err(e) => return problems.push(format!("deviceInfo.devEui: {e}")),
        };
        let time = match doc.get("time") {
            None | Some(Json::Null) => received,
            Some(Json::String(text)) => match Timestamp::parse_rfc3339(text) {
                Some(time) => time,
                None => return problems.push(format!("time {text:?} is not RFC 3339")),
            },
            Some(other) => {
                return problems.push(format!(
                    "time is {}, expected RFC 3339 text",
                    type_name(other)
                ))
            }
        };
        let object = match doc.get("object") {
            Some(Json::Object(object)) => object,
            None | Some(Json::Null) => {
                return problems.push(format!(
                    "uplink of {dev_eui} has no decoded `object` (configure a codec in its device profile)"
                ))
            }
            Some(other) => return problems.push(format!("object is {}, expected an object", type_name(other))),
        };
        let mut path = String::new();
        self.walk(object, &mut path, 0, &sensor, time, out, problems);
    }

    #[allow(clippy::too_many_arguments)] // recursion state, private
    fn walk(
        &self,
        object: &serde_json::Map<String, Json>,
        path: &mut String,
        depth: usize,
        sensor: &SensorId,
        time: Timestamp,
        out: &mut Vec<Reading>,
        problems: &mut Vec<String>,
    ) {
        for (key, value) in object {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            match value {
                Json::Null | Json::Array(_) => {}
                Json::Object(inner) if depth + 1 < MAX_DEPTH => {
                    self.walk(inner, path, depth + 1, sensor, time, out, problems);
                }
                Json::Object(_) => {}
                scalar => {
                    if let Err(e) = self.field(path, scalar, sensor, time, out) {
                        problems.push(format!("object.{path}: {e}"));
                    }
                }
            }
            path.truncate(len);
        }
    }

    fn field(
        &self,
        path: &str,
        json: &Json,
        sensor: &SensorId,
        time: Timestamp,
        out: &mut Vec<Reading>,
    ) -> Result<(), String> {
        if self.ignore.contains(path) {
            return Ok(());
        }
        let (metric, unit) = match self.fields.get(path) {
            Some(mapping) => (mapping.metric.clone(), mapping.unit.clone()),
            None if self.unmapped == Unmapped::Drop => return Ok(()),
            None => (
                MetricName::new(generic_metric(path)).map_err(|e| e.to_string())?,
                Unit::new("").expect("the empty unit is valid"),
            ),
        };
        out.push(Reading {
            sensor: sensor.clone(),
            metric,
            unit,
            time,
            value: json_value(json)?,
        });
        Ok(())
    }
}

/// `lorawan.<field>` with each dotted segment in snake case: `batteryVoltage` →
/// `lorawan.battery_voltage`, `PM2.5` → `lorawan.pm2.f5`, `co2` → `lorawan.co2`.
fn generic_metric(path: &str) -> String {
    let mut metric = String::from("lorawan");
    for segment in path.split('.') {
        metric.push('.');
        let start = metric.len();
        let mut previous_lower = false;
        for c in segment.chars() {
            if c.is_ascii_uppercase() {
                if previous_lower {
                    metric.push('_');
                }
                metric.push(c.to_ascii_lowercase());
                previous_lower = false;
            } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
                metric.push(c);
                previous_lower = true;
            } else if !metric.ends_with('_') && metric.len() > start {
                metric.push('_');
                previous_lower = false;
            }
        }
        while metric.len() > start && metric.ends_with('_') {
            metric.pop();
        }
        if metric[start..].starts_with(|c: char| c.is_ascii_digit()) {
            metric.insert(start, 'f');
        }
    }
    metric
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use beffroi_protocol::Value;

    use super::*;

    /// A ChirpStack v4 up event as published by its MQTT integration (JSON marshaler),
    /// with a decoded `object` from an air-quality device codec.
    pub(crate) const UP_EVENT: &str = r#"{
        "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
        "time": "2026-01-01T08:00:00.775023242+00:00",
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            "tenantName": "ChirpStack",
            "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
            "applicationName": "Air quality",
            "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
            "deviceProfileName": "Elsys ERS CO2",
            "deviceName": "ecole-jaures-air",
            "devEui": "A81758FFFE03B4C1",
            "deviceClassEnabled": "CLASS_A",
            "tags": {"site": "ecole-jaures"}
        },
        "devAddr": "00189440",
        "adr": true,
        "dr": 5,
        "fCnt": 1042,
        "fPort": 5,
        "confirmed": false,
        "data": "AQDuAiYEAKcFAAcNSA==",
        "object": {
            "pm25": 12.5,
            "temperature": 23.8,
            "humidity": 38,
            "batteryVoltage": 3.6,
            "motion": false,
            "status": "ok",
            "location": {"floor": 2},
            "history": [1, 2, 3],
            "lastError": null
        },
        "rxInfo": [{
            "gatewayId": "0016c001f153a14c",
            "uplinkId": 4217106255,
            "nsTime": "2026-01-01T08:00:00.749234Z",
            "rssi": -36,
            "snr": 10.5,
            "channel": 2,
            "location": {"latitude": 45.76, "longitude": 4.83},
            "context": "E3OWOQ==",
            "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"},
            "crcStatus": "CRC_OK"
        }],
        "txInfo": {
            "frequency": 867100000,
            "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}}
        }
    }"#;

    const RECEIVED: Timestamp = Timestamp::from_unix_micros(1);

    fn preset(text: &str) -> Chirpstack {
        toml::from_str::<RawChirpstack>(text)
            .unwrap()
            .validate("sources[0].chirpstack")
            .unwrap()
    }

    fn apply(c: &Chirpstack, event: &str) -> (Vec<Reading>, Vec<String>) {
        let doc: Json = serde_json::from_str(event).unwrap();
        let (mut out, mut problems) = (Vec::new(), Vec::new());
        c.apply(&doc, RECEIVED, &mut out, &mut problems);
        (out, problems)
    }

    fn summary(readings: &[Reading]) -> Vec<String> {
        readings
            .iter()
            .map(|r| format!("{} {} {} {:?}", r.sensor, r.metric, r.unit, r.value))
            .collect()
    }

    #[test]
    fn maps_the_fixture_keeping_unmapped_fields() {
        let c = preset(
            r#"
            ignore = ["status"]
            [fields]
            pm25 = { metric = "air.pm25", unit = "ug/m3" }
            temperature = { metric = "air.temperature", unit = "Cel" }
            "location.floor" = { metric = "site.floor" }
            "#,
        );
        assert_eq!(c.topic.as_str(), DEFAULT_UP_TOPIC);
        let (out, problems) = apply(&c, UP_EVENT);
        assert!(problems.is_empty(), "{problems:?}");
        let mut got = summary(&out);
        got.sort();
        assert_eq!(
            got,
            [
                "a81758fffe03b4c1 air.pm25 ug/m3 Number(12.5)",
                "a81758fffe03b4c1 air.temperature Cel Number(23.8)",
                "a81758fffe03b4c1 lorawan.battery_voltage  Number(3.6)",
                "a81758fffe03b4c1 lorawan.humidity  Number(38.0)",
                "a81758fffe03b4c1 lorawan.motion  Bool(false)",
                "a81758fffe03b4c1 site.floor  Number(2.0)",
            ]
        );
        // Nanoseconds truncated to microseconds, offset applied.
        for reading in &out {
            assert_eq!(reading.time.to_string(), "2026-01-01T08:00:00.775023Z");
        }
        assert!(out.iter().any(|r| r.value == Value::Bool(false)));
    }

    #[test]
    fn drop_unmapped_and_prefix() {
        let c = preset(
            r#"
            sensor_prefix = "lora"
            unmapped = "drop"
            topic = "app/+/device/+/event/up"
            fields = { pm25 = { metric = "air.pm25", unit = "ug/m3" } }
            "#,
        );
        let (out, problems) = apply(&c, UP_EVENT);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            summary(&out),
            ["lora-a81758fffe03b4c1 air.pm25 ug/m3 Number(12.5)"]
        );
    }

    #[test]
    fn bad_events() {
        let c = preset("");
        let (_, problems) = apply(&c, r#"{"object": {"a": 1}}"#);
        assert!(problems[0].contains("no deviceInfo.devEui"), "{problems:?}");
        let (_, problems) = apply(&c, r#"{"deviceInfo": {"devEui": "0011"}, "fPort": 1}"#);
        assert!(problems[0].contains("no decoded `object`"), "{problems:?}");
        let (_, problems) = apply(&c, r#"{"deviceInfo": {"devEui": "00 11"}, "object": {}}"#);
        assert!(problems[0].contains("devEui"), "{problems:?}");
        let (_, problems) = apply(
            &c,
            r#"{"deviceInfo": {"devEui": "0011"}, "time": "x", "object": {}}"#,
        );
        assert!(problems[0].contains("RFC 3339"), "{problems:?}");
        // A too-long string is dropped, the other fields are kept.
        let long = "x".repeat(300);
        let (out, problems) = apply(
            &c,
            &format!(
                r#"{{"deviceInfo": {{"devEui": "0011"}}, "object": {{"a": 1, "b": "{long}"}}}}"#
            ),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].time, RECEIVED);
        assert!(problems[0].starts_with("object.b:"), "{problems:?}");
    }

    #[test]
    fn generic_metric_names() {
        assert_eq!(generic_metric("batteryVoltage"), "lorawan.battery_voltage");
        assert_eq!(generic_metric("co2"), "lorawan.co2");
        assert_eq!(generic_metric("PM2.5"), "lorawan.pm2.f5");
        assert_eq!(generic_metric("TEMP_1"), "lorawan.temp_1");
        assert_eq!(
            generic_metric("sensor.soil-moisture"),
            "lorawan.sensor.soil_moisture"
        );
        assert_eq!(generic_metric("x y__z!"), "lorawan.x_y_z");
        for field in ["batteryVoltage", "PM2.5", "TEMP_1", "x y__z!", "a.1b"] {
            assert!(MetricName::new(generic_metric(field)).is_ok(), "{field}");
        }
        // Nothing usable left: an invalid metric, reported as a problem.
        assert!(MetricName::new(generic_metric("°")).is_err());
    }

    #[test]
    fn validation_names_fields() {
        let err = |text: &str| {
            toml::from_str::<RawChirpstack>(text)
                .unwrap()
                .validate("sources[1].chirpstack")
                .unwrap_err()
                .to_string()
        };
        assert!(err("topic = \"a/#/b\"").contains("sources[1].chirpstack.topic"));
        assert!(err("sensor_prefix = \"A\"").contains("sources[1].chirpstack.sensor_prefix"));
        assert!(err("fields = { pm25 = { metric = \"PM\" } }")
            .contains("sources[1].chirpstack.fields.pm25.metric"));
        assert!(
            err("fields = { pm25 = { metric = \"a\", unit = \"u g\" } }")
                .contains("sources[1].chirpstack.fields.pm25.unit")
        );
        assert!(toml::from_str::<RawChirpstack>("preset = 1").is_err());
    }
}
