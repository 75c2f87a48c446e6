//! A sensor reading with SenML (RFC 8428) semantics.
//!
//! CBOR form (CDDL): `reading = [sensor: tstr, metric: tstr, unit: tstr, time: int, value]`,
//! `value = float / bool / tstr`, `time` in microseconds since the Unix epoch (UTC). A number is
//! SenML `v`, a boolean `vb`, a string `vs`.

use crate::cbor::{float_len, int_len, text_len, Kind, Reader, Writer};
use crate::error::{DecodeError, Error, Result};
use crate::ids::{MetricName, SensorId, Unit};
use crate::time::Timestamp;

/// Longest string value, in bytes.
pub const MAX_STRING_VALUE_BYTES: usize = 256;

/// A reading's value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A number (SenML `v`); must be finite.
    Number(f64),
    /// A boolean (SenML `vb`).
    Bool(bool),
    /// A short string (SenML `vs`), at most [`MAX_STRING_VALUE_BYTES`] bytes.
    Text(String),
}

impl Value {
    /// Checks the value's invariants: finite numbers, short strings.
    pub fn validate(&self) -> Result<()> {
        match self {
            Value::Number(n) if !n.is_finite() => Err(Error::NonFiniteValue),
            Value::Text(s) if s.len() > MAX_STRING_VALUE_BYTES => Err(Error::StringValueTooLong {
                len: s.len(),
                max: MAX_STRING_VALUE_BYTES,
            }),
            _ => Ok(()),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Value::Number(n) => float_len(*n),
            Value::Bool(_) => 1,
            Value::Text(s) => text_len(s),
        }
    }
}

/// One measurement of one metric by one sensor at one time.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reading {
    /// The sensor that measured it.
    pub sensor: SensorId,
    /// What was measured.
    pub metric: MetricName,
    /// The unit of a numeric value (may be empty for booleans and strings).
    pub unit: Unit,
    /// When it was measured (UTC).
    pub time: Timestamp,
    /// The value.
    pub value: Value,
}

impl Reading {
    /// Exact size of this reading's CBOR encoding, so batchers can stay under the payload
    /// limit without encoding twice.
    pub fn encoded_len(&self) -> usize {
        1 + text_len(self.sensor.as_str())
            + text_len(self.metric.as_str())
            + text_len(self.unit.as_str())
            + int_len(self.time.unix_micros())
            + self.value.encoded_len()
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.array(5);
        w.text(self.sensor.as_str());
        w.text(self.metric.as_str());
        w.text(self.unit.as_str());
        w.int(self.time.unix_micros());
        match &self.value {
            Value::Number(n) => w.float(*n),
            Value::Bool(b) => w.bool(*b),
            Value::Text(s) => w.text(s),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> std::result::Result<Self, DecodeError> {
        r.array_of(5)?;
        let sensor = r.parsed(SensorId::new)?;
        let metric = r.parsed(MetricName::new)?;
        let unit = r.parsed(Unit::new)?;
        let time = Timestamp::from_unix_micros(r.int()?);
        let at = r.position();
        let value = match r.peek()? {
            Kind::Float => Value::Number(r.float()?),
            Kind::Bool => Value::Bool(r.bool()?),
            Kind::Text => Value::Text(r.text()?.to_owned()),
            _ => return Err(r.error("expected float, bool or text value")),
        };
        value.validate().map_err(|e| DecodeError {
            offset: at,
            reason: e.to_string(),
        })?;
        Ok(Self {
            sensor,
            metric,
            unit,
            time,
            value,
        })
    }
}
