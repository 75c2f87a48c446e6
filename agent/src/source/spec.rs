//! Source configuration: raw TOML ([`RawSource`]) → validated ([`SourceSpec`]) → built
//! ([`Box<dyn Source>`](Source)).
//!
//! Each `[[sources]]` entry has a `kind` (`simulator`, `jsonl` or `mqtt`) and an optional
//! `name` for logs (defaults to the kind). The fields of each kind are owned and documented by
//! its module: [`super::simulator`], [`super::jsonl`], [`super::mqtt`]. `validate` is pure (no
//! IO) and names the offending field (`sources[2].rate_per_s`); `build` may open files
//! (JSON lines input, MQTT password file); network connections are made when the source runs,
//! with retry.
//!
//! Annotated example for `deploy/agent/agent.toml`:
//!
//! ```toml
//! # Synthetic city sensors, deterministic for a seed.
//! [[sources]]
//! kind = "simulator"
//! seed = 42                    # same seed → same readings
//! sensors = 24                 # split round-robin across `kinds`
//! rate_per_s = 1000.0          # total readings per second, evenly paced
//! # kinds = ["air", "noise", "traffic", "parking"]
//! # sensor_prefix = "sim"      # sensor ids: sim-air-001, sim-noise-001, …
//! # utc_offset_hours = 1.0     # local time of the daily cycles (rush hours at 8h and 18h)
//! # limit = 1000000            # stop after this many readings
//!
//! # One JSON reading per line: {"sensor":"s-1","metric":"air.pm25","unit":"ug/m3",
//! # "time":"2026-01-01T08:00:00Z","value":12.5} (time optional; SenML records accepted).
//! [[sources]]
//! kind = "jsonl"
//! path = "-"                   # "-" = standard input, else a file (relative to this file)
//! # follow = true              # keep reading a file as it grows, like `tail -f`
//!
//! # Subscription to the gateway's local MQTT broker (plain TCP).
//! [[sources]]
//! kind = "mqtt"
//! host = "127.0.0.1"
//! port = 1883
//! # client_id = "beffroi-agent-local"       # default: beffroi-agent-<random>
//! # username = "agent"
//! # password_file = "/etc/beffroi/mqtt.pass" # never inline passwords
//!
//! # ChirpStack v4 uplink events (JSON marshaler): every decoded `object` field is a reading.
//! [sources.chirpstack]
//! # topic = "application/+/device/+/event/up"
//! # sensor_prefix = "lora"     # sensor id = <prefix>-<devEui>, default just the devEui
//! # unmapped = "keep"          # unmapped fields → metric lorawan.<field>; "drop" ignores them
//! [sources.chirpstack.fields]
//! pm25 = { metric = "air.pm25", unit = "ug/m3" }
//! temperature = { metric = "air.temperature", unit = "Cel" }
//!
//! # Custom JSON messages.
//! [[sources.mappings]]
//! filter = "city/+/air"        # MQTT topic filter (+ and #)
//! sensor = { topic_level = 1 } # or { pointer = "/id" } (JSON pointer, RFC 6901)
//! time = "/ts"                 # optional: RFC 3339 text or epoch seconds; default receive time
//! # epoch_unit = "ms"          # when `time` numbers are milliseconds
//! [[sources.mappings.values]]
//! metric = "air.pm25"
//! value = "/pm25"              # JSON pointer to a number, bool or string
//! unit = "ug/m3"               # literal unit, or unit_pointer = "/unit"
//! [[sources.mappings.values]]
//! metric = "air.no2"
//! value = "/no2"
//! unit = "ug/m3"
//! optional = true              # absent → no reading (else counted as malformed)
//! ```

use std::path::Path;

use serde::Deserialize;

use super::jsonl::{JsonlSource, JsonlSpec, RawJsonl};
use super::mqtt::{MqttSource, MqttSpec, RawMqtt};
use super::simulator::{RawSimulator, SimulatorSource, SimulatorSpec};
use super::{Source, SourceError};
use crate::config::ConfigError;

/// One `[[sources]]` entry as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RawSource {
    /// `kind = "simulator"`: synthetic city sensors.
    Simulator(RawSimulator),
    /// `kind = "jsonl"`: JSON lines on stdin or in a file.
    Jsonl(RawJsonl),
    /// `kind = "mqtt"`: a subscription to a local MQTT broker.
    Mqtt(RawMqtt),
}

/// A validated source, ready to build.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// Synthetic city sensors.
    Simulator(SimulatorSpec),
    /// JSON lines on stdin or in a file.
    Jsonl(JsonlSpec),
    /// A subscription to a local MQTT broker.
    Mqtt(MqttSpec),
}

impl RawSource {
    /// Checks every field; no IO. `field` is this entry's path (`sources[0]`), used to name
    /// the offending field; relative paths are joined to `base`.
    pub fn validate(self, field: &str, base: &Path) -> Result<SourceSpec, ConfigError> {
        Ok(match self {
            RawSource::Simulator(raw) => SourceSpec::Simulator(raw.validate(field)?),
            RawSource::Jsonl(raw) => SourceSpec::Jsonl(raw.validate(field, base)?),
            RawSource::Mqtt(raw) => SourceSpec::Mqtt(raw.validate(field, base)?),
        })
    }
}

impl SourceSpec {
    /// The source's name, for logs.
    pub fn name(&self) -> &str {
        match self {
            SourceSpec::Simulator(spec) => &spec.name,
            SourceSpec::Jsonl(spec) => &spec.name,
            SourceSpec::Mqtt(spec) => &spec.name,
        }
    }

    /// Builds the source: opens its input file or reads its password file. Network
    /// connections are made when it runs.
    pub fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        Ok(match self {
            SourceSpec::Simulator(spec) => Box::new(SimulatorSource::new(spec)?),
            SourceSpec::Jsonl(spec) => Box::new(JsonlSource::open(spec)?),
            SourceSpec::Mqtt(spec) => Box::new(MqttSource::new(spec)?),
        })
    }
}

/// Checks a source name: 1..=64 printable characters.
pub(crate) fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            format!("{field}.name"),
            "must be 1 to 64 printable characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn validate(text: &str) -> Result<SourceSpec, String> {
        let raw: RawSource = toml::from_str(text).map_err(|e| e.to_string())?;
        raw.validate("sources[3]", Path::new("/etc/beffroi"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn module_doc_example_is_valid() {
        #[derive(Deserialize)]
        struct File {
            sources: Vec<RawSource>,
        }
        let doc = include_str!("spec.rs");
        let start = doc.find("```toml").unwrap() + "```toml".len();
        let end = start + doc[start..].find("//! ```").unwrap();
        let toml_text: String = doc[start..end]
            .lines()
            .map(|l| {
                l.trim_start()
                    .trim_start_matches("//!")
                    .trim_start_matches(' ')
            })
            .collect::<Vec<_>>()
            .join("\n");
        let file: File = toml::from_str(&toml_text).unwrap();
        let specs: Vec<SourceSpec> = file
            .sources
            .into_iter()
            .enumerate()
            .map(|(i, raw)| raw.validate(&format!("sources[{i}]"), Path::new("/etc")))
            .collect::<Result<_, _>>()
            .unwrap();
        let names: Vec<&str> = specs.iter().map(SourceSpec::name).collect();
        assert_eq!(names, ["simulator", "jsonl", "mqtt"]);
    }

    #[test]
    fn kind_selects_the_variant_and_names_default() {
        let spec = validate("kind = \"simulator\"\nseed = 1").unwrap();
        assert!(matches!(spec, SourceSpec::Simulator(_)));
        assert_eq!(spec.name(), "simulator");
        let spec = validate("kind = \"jsonl\"\nname = \"stdin\"\npath = \"-\"").unwrap();
        assert_eq!(spec.name(), "stdin");
    }

    #[test]
    fn unknown_kind_and_fields_are_rejected() {
        let err = validate("kind = \"modbus\"").unwrap_err();
        assert!(err.contains("modbus"), "{err}");
        let err = validate("kind = \"simulator\"\nrate = 3.0").unwrap_err();
        assert!(err.contains("rate"), "{err}");
        let err = validate("kind = \"jsonl\"\npath = \"-\"\nfollw = true").unwrap_err();
        assert!(err.contains("follw"), "{err}");
        let err = validate("kind = \"mqtt\"\nhost = \"h\"\npasword = \"x\"").unwrap_err();
        assert!(err.contains("pasword"), "{err}");
    }

    #[test]
    fn errors_name_the_field() {
        let err = validate("kind = \"simulator\"\nrate_per_s = -1.0").unwrap_err();
        assert!(err.contains("sources[3].rate_per_s"), "{err}");
        let err = validate("kind = \"simulator\"\nname = \"\"").unwrap_err();
        assert!(err.contains("sources[3].name"), "{err}");
    }
}
