//! SenML JSON (RFC 8428): a pack is a JSON array of records, written here one record per
//! line. A record has `n` (the name), `u` (the unit, left out when empty), `t` (seconds since
//! the Unix epoch with six decimals, exact to the microsecond) and one of `v` (number), `vb`
//! (boolean) or `vs` (string); a label the writer has no value for is left out.

use std::io::{self, Write};

use beffroi_protocol::{Timestamp, Value};

/// One record; `None` leaves the label out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Record<'a> {
    /// `n`.
    pub name: Option<&'a str>,
    /// `u` (an empty unit is left out too).
    pub unit: Option<&'a str>,
    /// `t`.
    pub time: Option<Timestamp>,
    /// `v`, `vb` or `vs`.
    pub value: Option<&'a Value>,
}

/// Writes a pack, record by record.
#[derive(Debug)]
pub struct Pack<W> {
    out: W,
    records: u64,
}

impl<W: Write> Pack<W> {
    /// Opens the array.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(b"[")?;
        Ok(Self { out, records: 0 })
    }

    /// Writes one record.
    pub fn record(&mut self, record: &Record<'_>) -> io::Result<()> {
        let json = |text: &str| serde_json::Value::from(text).to_string();
        let mut labels = Vec::with_capacity(4);
        if let Some(name) = record.name {
            labels.push(format!("\"n\":{}", json(name)));
        }
        if let Some(unit) = record.unit.filter(|u| !u.is_empty()) {
            labels.push(format!("\"u\":{}", json(unit)));
        }
        if let Some(time) = record.time {
            labels.push(format!("\"t\":{}", time_text(time)));
        }
        match record.value {
            Some(Value::Number(n)) => labels.push(format!("\"v\":{}", number_text(*n))),
            Some(Value::Bool(b)) => labels.push(format!("\"vb\":{b}")),
            Some(Value::Text(s)) => labels.push(format!("\"vs\":{}", json(s))),
            None => {}
        }
        let separator = if self.records == 0 { "\n" } else { ",\n" };
        write!(self.out, "{separator}{{{}}}", labels.join(","))?;
        self.records += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The writer, to take what was written so far (a buffer being streamed out).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Closes the array; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(b"\n]\n")?;
        Ok(self.out)
    }
}

/// A finite number in its shortest round-trip form (as JSON writes it).
pub fn number_text(n: f64) -> String {
    serde_json::Number::from_f64(n).map_or_else(|| n.to_string(), |n| n.to_string())
}

/// Seconds since the epoch with six decimals, exactly (SenML `t`).
pub fn time_text(time: Timestamp) -> String {
    let micros = time.unix_micros();
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_exact() {
        assert_eq!(
            time_text(Timestamp::from_unix_micros(1_500_000)),
            "1.500000"
        );
        assert_eq!(
            time_text(Timestamp::from_unix_micros(-1_500_000)),
            "-1.500000"
        );
        assert_eq!(time_text(Timestamp::from_unix_micros(0)), "0.000000");
    }

    #[test]
    fn leaves_out_what_it_has_not_and_parses_as_json() {
        let (n, t) = (Value::Number(1e-7), Value::Text("a \"b\"".into()));
        let mut pack = Pack::new(Vec::new()).unwrap();
        pack.record(&Record {
            name: Some("s-1:air.pm25"),
            unit: Some("ug/m3"),
            time: Some(Timestamp::from_unix_micros(1_767_225_600_000_123)),
            value: Some(&n),
        })
        .unwrap();
        pack.record(&Record {
            unit: Some(""),
            value: Some(&t),
            ..Record::default()
        })
        .unwrap();
        assert_eq!(pack.records(), 2);
        let text = String::from_utf8(pack.finish().unwrap()).unwrap();
        assert!(text.contains("\"t\":1767225600.000123"), "{text}");
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed[0]["v"], 1e-7);
        assert_eq!(parsed[0]["u"], "ug/m3");
        assert_eq!(parsed[1], serde_json::json!({ "vs": "a \"b\"" }));
    }
}
