//! The readings files, written and read one committed batch at a time:
//!
//! - `batches.csv`: `gateway,seq,key_id,signature,received_at,readings`, one row per batch,
//!   by gateway then seq: the batch's provenance (the gateway's Ed25519 signature, hex) and
//!   how many of the rows of `readings.csv` that follow in order are its readings;
//! - `readings.csv`: `gateway,seq,sensor,metric,unit,time,type,value`, the readings of those
//!   batches in the same order, each batch's in batch order. `time` is RFC 3339 UTC with
//!   microseconds and `Z`; `type` is `number`, `boolean` or `string`; a number is written in
//!   its shortest round-trip form (`21.5`, `1e-7`), a boolean as `true`/`false`;
//! - `readings.senml.json`: the same readings as one SenML (RFC 8428) JSON pack, one record
//!   per line: `n` is `<sensor>:<metric>`, `u` the unit (left out when empty), `t` seconds
//!   since the Unix epoch with six decimals, and `v`, `vb` or `vs`.
//!
//! Import reads `batches.csv` and `readings.csv` together and rebuilds each batch as the
//! ingest committed it (same gateway, seq, signature, reception time and readings).

use std::io::{BufRead, Write};

use beffroi_protocol::{
    GatewayId, KeyId, MetricName, Reading, SensorId, TenantId, Timestamp, Unit, Value,
};
use beffroi_store::{CommitBatch, StoredBatch};

use beffroi_formats::senml::{number_text, Pack, Record};

use super::csv::{write_record, CsvError, CsvReader};
use super::files::{BATCHES, READINGS_CSV};
use super::ExportError;

/// The header of `batches.csv`.
pub const BATCHES_HEADER: [&str; 6] = [
    "gateway",
    "seq",
    "key_id",
    "signature",
    "received_at",
    "readings",
];
/// The header of `readings.csv`.
pub const READINGS_HEADER: [&str; 8] = [
    "gateway", "seq", "sensor", "metric", "unit", "time", "type", "value",
];

/// The text of a reading's value and its `type` column.
pub fn value_text(value: &Value) -> (&'static str, String) {
    match value {
        Value::Number(n) => ("number", number_text(*n)),
        Value::Bool(b) => ("boolean", b.to_string()),
        Value::Text(s) => ("string", s.clone()),
    }
}

/// Writes batches to the three readings files.
#[derive(Debug)]
pub struct ReadingsWriter<B, C, S> {
    batches: B,
    readings: C,
    senml: Pack<S>,
    batch_rows: u64,
    reading_rows: u64,
}

impl<B: Write, C: Write, S: Write> ReadingsWriter<B, C, S> {
    /// Starts the files: CSV headers, the SenML array.
    pub fn new(mut batches: B, mut readings: C, senml: S) -> std::io::Result<Self> {
        write_record(&mut batches, &BATCHES_HEADER)?;
        write_record(&mut readings, &READINGS_HEADER)?;
        Ok(Self {
            batches,
            readings,
            senml: Pack::new(senml)?,
            batch_rows: 0,
            reading_rows: 0,
        })
    }

    /// Writes one batch and its readings.
    pub fn batch(&mut self, batch: &StoredBatch) -> std::io::Result<()> {
        let gateway = batch.gateway.as_str();
        let seq = batch.seq.to_string();
        write_record(
            &mut self.batches,
            &[
                gateway,
                seq.as_str(),
                batch.key_id.as_str(),
                hex::encode(batch.signature).as_str(),
                batch.received_at.to_string().as_str(),
                batch.readings.len().to_string().as_str(),
            ],
        )?;
        self.batch_rows += 1;
        for reading in &batch.readings {
            let (kind, value) = value_text(&reading.value);
            write_record(
                &mut self.readings,
                &[
                    gateway,
                    seq.as_str(),
                    reading.sensor.as_str(),
                    reading.metric.as_str(),
                    reading.unit.as_str(),
                    reading.time.to_string().as_str(),
                    kind,
                    value.as_str(),
                ],
            )?;
            self.senml_record(reading)?;
            self.reading_rows += 1;
        }
        Ok(())
    }

    fn senml_record(&mut self, reading: &Reading) -> std::io::Result<()> {
        let name = format!("{}:{}", reading.sensor, reading.metric);
        self.senml.record(&Record {
            name: Some(&name),
            unit: Some(reading.unit.as_str()),
            time: Some(reading.time),
            value: Some(&reading.value),
        })
    }

    /// Ends the files; returns them with the rows of `batches.csv` and of `readings.csv`
    /// (headers excluded; the SenML pack has as many records as `readings.csv` rows).
    pub fn finish(self) -> std::io::Result<(B, C, S, u64, u64)> {
        Ok((
            self.batches,
            self.readings,
            self.senml.finish()?,
            self.batch_rows,
            self.reading_rows,
        ))
    }
}

/// Reads `batches.csv` and `readings.csv` together, one batch at a time.
#[derive(Debug)]
pub struct BatchReader<B, R> {
    tenant: TenantId,
    batches: CsvReader<B>,
    readings: CsvReader<R>,
    fields: Vec<String>,
}

fn csv_error(file: &str) -> impl FnOnce(CsvError) -> ExportError + '_ {
    move |e| ExportError::file(file, e.to_string())
}

/// Reads the first record of `file` and checks that it is `header`.
fn check_header<T: BufRead>(
    csv: &mut CsvReader<T>,
    fields: &mut Vec<String>,
    file: &str,
    header: &[&str],
) -> Result<(), ExportError> {
    if !csv.next_record(fields).map_err(csv_error(file))? || fields != header {
        return Err(ExportError::file(
            file,
            format!("the header must be {}", header.join(",")),
        ));
    }
    Ok(())
}

impl<B: BufRead, R: BufRead> BatchReader<B, R> {
    /// Reads and checks both headers.
    pub fn new(tenant: TenantId, batches: B, readings: R) -> Result<Self, ExportError> {
        let mut reader = Self {
            tenant,
            batches: CsvReader::new(batches),
            readings: CsvReader::new(readings),
            fields: Vec::new(),
        };
        check_header(
            &mut reader.batches,
            &mut reader.fields,
            BATCHES,
            &BATCHES_HEADER,
        )?;
        check_header(
            &mut reader.readings,
            &mut reader.fields,
            READINGS_CSV,
            &READINGS_HEADER,
        )?;
        Ok(reader)
    }

    /// Rows of `batches.csv` and `readings.csv` read so far, headers excluded.
    pub fn rows(&self) -> (u64, u64) {
        (
            self.batches.records().saturating_sub(1),
            self.readings.records().saturating_sub(1),
        )
    }

    /// The underlying readers (to finish hashing them).
    pub fn into_inner(self) -> (B, R) {
        (self.batches.into_inner(), self.readings.into_inner())
    }

    /// The next batch, or `None` when both files are at their end.
    pub fn next_batch(&mut self) -> Result<Option<CommitBatch>, ExportError> {
        if !self
            .batches
            .next_record(&mut self.fields)
            .map_err(csv_error(BATCHES))?
        {
            if self
                .readings
                .next_record(&mut self.fields)
                .map_err(csv_error(READINGS_CSV))?
            {
                return Err(ExportError::file(
                    READINGS_CSV,
                    format!(
                        "record {}: a reading after the last batch of {BATCHES}",
                        self.readings.records()
                    ),
                ));
            }
            return Ok(None);
        }
        let record = self.batches.records();
        let bad = |reason: String| ExportError::file(BATCHES, format!("record {record}: {reason}"));
        let [gateway, seq, key_id, signature, received_at, count] = &self.fields[..] else {
            return Err(bad(format!("{} fields, expected 6", self.fields.len())));
        };
        let gateway = GatewayId::new(gateway.as_str()).map_err(|e| bad(e.to_string()))?;
        let seq_text = seq.clone();
        let seq: u64 = seq.parse().map_err(|_| bad(format!("seq {seq:?}")))?;
        let key_id = KeyId::new(key_id.as_str()).map_err(|e| bad(e.to_string()))?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(signature, &mut sig).map_err(|e| bad(format!("signature: {e}")))?;
        let received_at = Timestamp::parse_rfc3339(received_at)
            .ok_or_else(|| bad(format!("received_at {received_at:?}")))?;
        let count: usize = count
            .parse()
            .map_err(|_| bad(format!("readings {count:?}")))?;
        if count > usize::from(u16::MAX) + 1 {
            return Err(bad(format!(
                "{count} readings: a batch holds at most 65536"
            )));
        }
        let mut readings = Vec::with_capacity(count);
        for _ in 0..count {
            readings.push(self.reading(gateway.as_str(), &seq_text)?);
        }
        Ok(Some(CommitBatch {
            tenant: self.tenant.clone(),
            gateway,
            seq,
            key_id,
            signature: sig,
            received_at,
            readings,
        }))
    }

    /// The next row of `readings.csv`, which must belong to batch `(gateway, seq)`.
    fn reading(&mut self, gateway: &str, seq: &str) -> Result<Reading, ExportError> {
        let more = self
            .readings
            .next_record(&mut self.fields)
            .map_err(csv_error(READINGS_CSV))?;
        let record = self.readings.records() + u64::from(!more);
        let bad =
            |reason: String| ExportError::file(READINGS_CSV, format!("record {record}: {reason}"));
        if !more {
            return Err(bad(format!(
                "missing: batch {gateway}/{seq} of {BATCHES} has more readings"
            )));
        }
        let [g, s, sensor, metric, unit, time, kind, value] = &self.fields[..] else {
            return Err(bad(format!("{} fields, expected 8", self.fields.len())));
        };
        if g != gateway || s != seq {
            return Err(bad(format!(
                "belongs to batch {g}/{s}, expected {gateway}/{seq} (the order of {BATCHES})"
            )));
        }
        let value = match kind.as_str() {
            "number" => value
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(Value::Number)
                .ok_or_else(|| bad(format!("not a finite number: {value:?}")))?,
            "boolean" => match value.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(bad(format!("not a boolean: {value:?}"))),
            },
            "string" => Value::Text(value.clone()),
            other => return Err(bad(format!("type {other:?}: number, boolean or string"))),
        };
        value.validate().map_err(|e| bad(e.to_string()))?;
        Ok(Reading {
            sensor: SensorId::new(sensor.as_str()).map_err(|e| bad(e.to_string()))?,
            metric: MetricName::new(metric.as_str()).map_err(|e| bad(e.to_string()))?,
            unit: Unit::new(unit.as_str()).map_err(|e| bad(e.to_string()))?,
            time: Timestamp::parse_rfc3339(time).ok_or_else(|| bad(format!("time {time:?}")))?,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(readings: Vec<Reading>) -> StoredBatch {
        StoredBatch {
            tenant: TenantId::new("lyon").unwrap(),
            gateway: GatewayId::new("gw-1").unwrap(),
            seq: 7,
            key_id: KeyId::new("k1").unwrap(),
            signature: [9; 64],
            received_at: Timestamp::from_unix_micros(1_767_225_601_000_000),
            readings,
        }
    }

    fn reading(unit: &str, value: Value) -> Reading {
        Reading {
            sensor: SensorId::new("s-1").unwrap(),
            metric: MetricName::new("air.pm25").unwrap(),
            unit: Unit::new(unit).unwrap(),
            time: Timestamp::from_unix_micros(1_767_225_600_000_123),
            value,
        }
    }

    #[test]
    fn quotes_units_and_values_and_reads_them_back() {
        let readings = vec![
            reading("a,b", Value::Number(21.5)),
            reading("\"q\"", Value::Text("he said \"hi\",\r\nthen left".into())),
            reading("", Value::Bool(true)),
            reading("ug/m3", Value::Number(1e-7)),
        ];
        let mut writer = ReadingsWriter::new(Vec::new(), Vec::new(), Vec::new()).unwrap();
        writer.batch(&batch(readings.clone())).unwrap();
        let (batches, csv, senml, batch_rows, reading_rows) = writer.finish().unwrap();
        assert_eq!((batch_rows, reading_rows), (1, 4));
        let csv_text = String::from_utf8(csv.clone()).unwrap();
        assert!(csv_text.starts_with("gateway,seq,sensor,metric,unit,time,type,value\r\n"));
        assert!(csv_text
            .contains("gw-1,7,s-1,air.pm25,\"a,b\",2026-01-01T00:00:00.000123Z,number,21.5\r\n"));
        assert!(csv_text.contains(
            "\"\"\"q\"\"\",2026-01-01T00:00:00.000123Z,string,\"he said \"\"hi\"\",\r\nthen left\"\r\n"
        ));
        let pack: serde_json::Value = serde_json::from_slice(&senml).unwrap();
        assert_eq!(pack[0]["u"], "a,b");
        assert_eq!(pack[0]["n"], "s-1:air.pm25");
        assert_eq!(pack[2].get("u"), None);
        assert_eq!(pack[2]["vb"], true);
        assert_eq!(pack[3]["v"], 1e-7);
        assert!(String::from_utf8(senml)
            .unwrap()
            .contains("\"t\":1767225600.000123"));

        let tenant = TenantId::new("lyon").unwrap();
        let mut reader = BatchReader::new(tenant, &batches[..], &csv[..]).unwrap();
        let read = reader.next_batch().unwrap().unwrap();
        assert_eq!(read.readings, readings);
        assert_eq!((read.seq, read.signature), (7, [9; 64]));
        assert!(reader.next_batch().unwrap().is_none());
        assert_eq!(reader.rows(), (1, 4));
    }

    #[test]
    fn a_reading_out_of_its_batch_is_refused() {
        let mut writer = ReadingsWriter::new(Vec::new(), Vec::new(), Vec::new()).unwrap();
        writer
            .batch(&batch(vec![reading("", Value::Bool(false))]))
            .unwrap();
        let (batches, csv, ..) = writer.finish().unwrap();
        let csv = String::from_utf8(csv).unwrap().replace("gw-1,7", "gw-1,8");
        let tenant = TenantId::new("lyon").unwrap();
        let mut reader = BatchReader::new(tenant, &batches[..], csv.as_bytes()).unwrap();
        let error = reader.next_batch().unwrap_err().to_string();
        assert!(error.contains("readings.csv: record 2"), "{error}");
        assert!(error.contains("expected gw-1/7"), "{error}");
    }
}
