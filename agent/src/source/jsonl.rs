//! JSON lines: one reading (or SenML record or pack) per line, on stdin or in a file.
//!
//! ```toml
//! [[sources]]
//! kind = "jsonl"
//! path = "-"          # "-" = standard input; else a file, relative to the config file
//! follow = false      # true: at end of file, wait for more like `tail -f` (files only)
//! ```
//!
//! Each line is one of:
//! - a Beffroi reading: `{"sensor": "s-1", "metric": "air.pm25", "unit": "ug/m3",
//!   "time": "2026-01-01T08:00:00Z", "value": 12.5}`; `unit` defaults to `""`, `time` (RFC 3339
//!   text or epoch seconds) to the time the line is read, `value` is a number, bool or string;
//! - a SenML (RFC 8428) record `{"n": "s-1/air.pm25", "u": "ug/m3", "v": 12.5, "t": 1.7e9}`
//!   (`vb` for booleans, `vs` for strings; `n` is `<sensor>/<metric>`; `t` below 2^28 is
//!   relative to now), or a SenML pack `[{"bn": "s-1/", "bt": 1.7e9, "n": "air.pm25", …}, …]`
//!   with base name, time and unit.
//!
//! Blank lines are ignored. A malformed line (bad JSON, unknown field, invalid id, non-finite
//! value, line longer than [`MAX_LINE_BYTES`]) is counted with [`ReadingSink::malformed`] and
//! skipped; a long line is discarded as it streams by, never buffered whole. End of input ends
//! the source unless `follow` is set (a followed file that is truncated or rotated is not
//! reopened).

use std::path::PathBuf;
use std::time::Duration;

use beffroi_protocol::{MetricName, Reading, SensorId, Timestamp, Unit, Value};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio_util::sync::CancellationToken;

use super::{ReadingSink, Source, SourceError, SourceFuture};
use crate::config::ConfigError;

/// Longest accepted line, in bytes (without the newline).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// How often a followed file is polled for new data at end of file.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// SenML times below this are relative to now (RFC 8428 section 4.5.3).
const SENML_RELATIVE_TIME_LIMIT: f64 = 268_435_456.0;

/// The `kind = "jsonl"` fields as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJsonl {
    /// Name of the source in logs (1 to 64 printable characters). Unset: the kind.
    name: Option<String>,
    /// `-` for standard input, else a file (relative to the config file's directory). One JSON
    /// reading per line, `{"sensor":"s-1","metric":"air.pm25","unit":"ug/m3","value":12.5}`
    /// with an optional RFC 3339 `time`, or SenML records; malformed lines are counted (health
    /// counter `source.malformed`) and skipped.
    path: PathBuf,
    /// Keep reading the file as it grows, like `tail -f` (a file only, not standard input).
    #[serde(default)]
    follow: bool,
}

/// Where the lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonlInput {
    /// Standard input.
    Stdin,
    /// A file.
    File(PathBuf),
}

/// A validated JSON lines source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonlSpec {
    /// Name for logs.
    pub name: String,
    /// The input.
    pub input: JsonlInput,
    /// Keep reading a file as it grows.
    pub follow: bool,
}

impl RawJsonl {
    /// Checks every field; no IO. A relative path is joined to `base`.
    pub fn validate(self, field: &str, base: &std::path::Path) -> Result<JsonlSpec, ConfigError> {
        let name = self.name.unwrap_or_else(|| "jsonl".to_owned());
        super::spec::check_name(field, &name)?;
        let input = if self.path.as_os_str() == "-" {
            JsonlInput::Stdin
        } else if self.path.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                format!("{field}.path"),
                "must be \"-\" (standard input) or a file path",
            ));
        } else if self.path.is_absolute() {
            JsonlInput::File(self.path)
        } else {
            JsonlInput::File(base.join(self.path))
        };
        if self.follow && input == JsonlInput::Stdin {
            return Err(ConfigError::invalid(
                format!("{field}.follow"),
                "only applies to a file, not to standard input",
            ));
        }
        Ok(JsonlSpec {
            name,
            input,
            follow: self.follow,
        })
    }
}

type BoxedReader = Box<dyn AsyncRead + Send + Unpin>;

/// The JSON lines source, with its input open.
pub struct JsonlSource {
    name: String,
    reader: BoxedReader,
    follow: bool,
}

impl std::fmt::Debug for JsonlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlSource")
            .field("name", &self.name)
            .field("follow", &self.follow)
            .finish_non_exhaustive()
    }
}

impl JsonlSource {
    /// Opens the spec's input.
    pub fn open(spec: &JsonlSpec) -> Result<Self, SourceError> {
        let reader: BoxedReader = match &spec.input {
            JsonlInput::Stdin => Box::new(tokio::io::stdin()),
            JsonlInput::File(path) => {
                let file = std::fs::File::open(path).map_err(|error| SourceError::Io {
                    source_name: spec.name.clone(),
                    what: format!("opening {}", path.display()),
                    error,
                })?;
                Box::new(tokio::fs::File::from_std(file))
            }
        };
        Ok(Self::from_reader(&spec.name, reader, spec.follow))
    }

    /// A source reading lines from any reader (tests, pipes).
    pub fn from_reader(name: &str, reader: BoxedReader, follow: bool) -> Self {
        Self {
            name: name.to_owned(),
            reader,
            follow,
        }
    }

    async fn read_lines(
        self,
        sink: ReadingSink,
        stop: CancellationToken,
    ) -> Result<(), SourceError> {
        let name = self.name;
        let mut reader = BufReader::with_capacity(64 * 1024, self.reader);
        let mut lines = LineSplitter::default();
        let mut readings = Vec::new();
        loop {
            let chunk = tokio::select! {
                biased;
                () = stop.cancelled() => return Ok(()),
                chunk = reader.fill_buf() => chunk.map_err(|error| SourceError::Io {
                    source_name: name.clone(),
                    what: "reading".to_owned(),
                    error,
                })?,
            };
            let at_eof = chunk.is_empty();
            let (consumed, event) = if at_eof && self.follow {
                // A partial last line may still be being written: wait for its newline.
                (0, None)
            } else if at_eof {
                (0, lines.finish())
            } else {
                lines.push(chunk)
            };
            let event = match event {
                Some(LineEvent::Line(line)) => {
                    Some(parse_line(line, Timestamp::now(), &mut readings))
                }
                Some(LineEvent::TooLong) => {
                    Some(Err(format!("line longer than {MAX_LINE_BYTES} bytes")))
                }
                None => None,
            };
            reader.consume(consumed);
            if let Some(parsed) = event {
                match parsed {
                    Ok(()) => {
                        for reading in readings.drain(..) {
                            tokio::select! {
                                biased;
                                () = stop.cancelled() => return Ok(()),
                                sent = sink.send(reading) => if sent.is_err() {
                                    return Ok(());
                                },
                            }
                        }
                    }
                    Err(reason) => {
                        readings.clear();
                        sink.malformed(reason);
                    }
                }
                lines.clear_line();
            }
            if at_eof {
                if !self.follow {
                    tracing::info!(source = %name, "end of input");
                    return Ok(());
                }
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return Ok(()),
                    () = tokio::time::sleep(FOLLOW_POLL) => {}
                }
            }
        }
    }
}

impl Source for JsonlSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, sink: ReadingSink, stop: CancellationToken) -> SourceFuture {
        Box::pin(self.read_lines(sink, stop))
    }
}

/// A complete line, or a line dropped for its length.
#[derive(Debug, PartialEq, Eq)]
enum LineEvent<'a> {
    Line(&'a [u8]),
    TooLong,
}

/// Splits buffered input into lines of at most [`MAX_LINE_BYTES`], without buffering longer
/// ones: a line is borrowed from the reader's buffer when it fits there, copied into `partial`
/// only when it straddles two reads.
#[derive(Debug, Default)]
struct LineSplitter {
    partial: Vec<u8>,
    /// Dropping the rest of an over-long line, up to its newline.
    discarding: bool,
    /// `partial` holds a complete line handed out; cleared by `clear_line`.
    line_ready: bool,
}

impl LineSplitter {
    /// Takes bytes from `chunk`; returns how many were consumed and at most one event.
    fn push<'a>(&'a mut self, chunk: &'a [u8]) -> (usize, Option<LineEvent<'a>>) {
        let newline = chunk.iter().position(|&b| b == b'\n');
        match newline {
            None => {
                if !self.discarding {
                    if self.partial.len() + chunk.len() > MAX_LINE_BYTES {
                        self.partial.clear();
                        self.discarding = true;
                    } else {
                        self.partial.extend_from_slice(chunk);
                    }
                }
                (chunk.len(), None)
            }
            Some(end) => {
                let line = &chunk[..end];
                if self.discarding {
                    self.discarding = false;
                    return (end + 1, Some(LineEvent::TooLong));
                }
                if self.partial.len() + line.len() > MAX_LINE_BYTES {
                    self.partial.clear();
                    return (end + 1, Some(LineEvent::TooLong));
                }
                if self.partial.is_empty() {
                    return (end + 1, Some(LineEvent::Line(line)));
                }
                self.partial.extend_from_slice(line);
                self.line_ready = true;
                (end + 1, Some(LineEvent::Line(&self.partial)))
            }
        }
    }

    /// At the end of the input (not called when following a file): the last line if it
    /// has no newline.
    fn finish(&mut self) -> Option<LineEvent<'_>> {
        if self.discarding {
            self.discarding = false;
            return Some(LineEvent::TooLong);
        }
        if self.partial.is_empty() {
            return None;
        }
        self.line_ready = true;
        Some(LineEvent::Line(&self.partial))
    }

    /// Forgets the line handed out by the last event.
    fn clear_line(&mut self) {
        if self.line_ready {
            self.partial.clear();
            self.line_ready = false;
        }
    }
}

/// One JSON object of a line: Beffroi fields or SenML fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    sensor: Option<String>,
    metric: Option<String>,
    unit: Option<String>,
    time: Option<Timestamp>,
    value: Option<Value>,
    bn: Option<String>,
    bt: Option<f64>,
    bu: Option<String>,
    n: Option<String>,
    u: Option<String>,
    t: Option<f64>,
    v: Option<f64>,
    vb: Option<bool>,
    vs: Option<String>,
}

impl Record {
    fn is_senml(&self) -> bool {
        self.bn.is_some()
            || self.bt.is_some()
            || self.bu.is_some()
            || self.n.is_some()
            || self.u.is_some()
            || self.t.is_some()
            || self.v.is_some()
            || self.vb.is_some()
            || self.vs.is_some()
    }

    fn is_beffroi(&self) -> bool {
        self.sensor.is_some()
            || self.metric.is_some()
            || self.unit.is_some()
            || self.time.is_some()
            || self.value.is_some()
    }
}

/// Parses one line into `out` (nothing for a blank line). On error `out` may hold part of a
/// SenML pack; the caller discards it.
fn parse_line(line: &[u8], now: Timestamp, out: &mut Vec<Reading>) -> Result<(), String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let first = line.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Ok(()),
        Some(b'[') => {
            let records: Vec<Record> =
                serde_json::from_slice(line).map_err(|e| format!("invalid SenML pack: {e}"))?;
            let mut base = SenmlBase::default();
            for (i, record) in records.into_iter().enumerate() {
                let reading = senml_reading(record, &mut base, now)
                    .map_err(|e| format!("SenML record {i}: {e}"))?;
                out.push(reading);
            }
            Ok(())
        }
        Some(_) => {
            let record: Record =
                serde_json::from_slice(line).map_err(|e| format!("invalid JSON reading: {e}"))?;
            let reading = if record.is_senml() {
                senml_reading(record, &mut SenmlBase::default(), now)?
            } else {
                beffroi_reading(record, now)?
            };
            out.push(reading);
            Ok(())
        }
    }
}

fn beffroi_reading(record: Record, now: Timestamp) -> Result<Reading, String> {
    let sensor = record.sensor.ok_or("missing `sensor`")?;
    let metric = record.metric.ok_or("missing `metric`")?;
    let value = record.value.ok_or("missing `value`")?;
    value.validate().map_err(|e| e.to_string())?;
    Ok(Reading {
        sensor: SensorId::new(sensor).map_err(|e| e.to_string())?,
        metric: MetricName::new(metric).map_err(|e| e.to_string())?,
        unit: Unit::new(record.unit.unwrap_or_default()).map_err(|e| e.to_string())?,
        time: record.time.unwrap_or(now),
        value,
    })
}

/// SenML base fields carried from record to record in a pack.
#[derive(Debug, Default)]
struct SenmlBase {
    name: String,
    time: f64,
    unit: Option<String>,
}

fn senml_reading(record: Record, base: &mut SenmlBase, now: Timestamp) -> Result<Reading, String> {
    if record.is_beffroi() {
        return Err("mixes Beffroi fields (sensor, metric, …) with SenML fields (n, v, …)".into());
    }
    if let Some(bn) = record.bn {
        base.name = bn;
    }
    if let Some(bt) = record.bt {
        base.time = bt;
    }
    if let Some(bu) = record.bu {
        base.unit = Some(bu);
    }
    let name = format!("{}{}", base.name, record.n.as_deref().unwrap_or(""));
    let (sensor, metric) = name
        .split_once('/')
        .ok_or_else(|| format!("name {name:?} is not <sensor>/<metric>"))?;
    let value = match (record.v, record.vb, record.vs) {
        (Some(v), None, None) => Value::Number(v),
        (None, Some(vb), None) => Value::Bool(vb),
        (None, None, Some(vs)) => Value::Text(vs),
        (None, None, None) => return Err("missing value (v, vb or vs)".into()),
        _ => return Err("more than one of v, vb, vs".into()),
    };
    value.validate().map_err(|e| e.to_string())?;
    let t = base.time + record.t.unwrap_or(0.0);
    let time = if t.abs() < SENML_RELATIVE_TIME_LIMIT {
        Timestamp::from_unix_micros(now.unix_micros().saturating_add((t * 1e6).round() as i64))
    } else {
        Timestamp::from_unix_seconds_f64(t).ok_or("time out of range")?
    };
    let unit = record.u.or_else(|| base.unit.clone()).unwrap_or_default();
    Ok(Reading {
        sensor: SensorId::new(sensor).map_err(|e| e.to_string())?,
        metric: MetricName::new(metric).map_err(|e| e.to_string())?,
        unit: Unit::new(unit).map_err(|e| e.to_string())?,
        time,
        value,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use super::*;
    use crate::telemetry::{Counter, Telemetry};

    const NOW: Timestamp = Timestamp::from_unix_micros(1_767_254_400_000_000); // 2026-01-01T08:00:00Z

    fn parse(line: &str) -> Result<Vec<Reading>, String> {
        let mut out = Vec::new();
        parse_line(line.as_bytes(), NOW, &mut out).map(|()| out)
    }

    fn one(line: &str) -> Reading {
        let mut all = parse(line).unwrap();
        assert_eq!(all.len(), 1, "{line}");
        all.remove(0)
    }

    #[test]
    fn beffroi_lines() {
        let r = one(
            r#"{"sensor":"s-1","metric":"air.pm25","unit":"ug/m3","time":"2026-01-01T08:00:00Z","value":12.5}"#,
        );
        assert_eq!(r.sensor.as_str(), "s-1");
        assert_eq!(r.metric.as_str(), "air.pm25");
        assert_eq!(r.unit.as_str(), "ug/m3");
        assert_eq!(r.time.to_string(), "2026-01-01T08:00:00.000000Z");
        assert_eq!(r.value, Value::Number(12.5));

        let r = one(r#"  {"sensor":"door-3","metric":"door.open","value":true}  "#);
        assert_eq!((r.unit.as_str(), r.time), ("", NOW));
        assert_eq!(r.value, Value::Bool(true));
        let r = one(
            "{\"sensor\":\"a\",\"metric\":\"status\",\"value\":\"ok\",\"time\":1767254400.5}\r",
        );
        assert_eq!(r.value, Value::Text("ok".into()));
        assert_eq!(r.time.micros_since(NOW), 500_000);
    }

    #[test]
    fn blank_lines_give_nothing() {
        assert_eq!(parse("").unwrap(), []);
        assert_eq!(parse("   \t\r").unwrap(), []);
    }

    #[test]
    fn bad_lines_say_why() {
        let cases = [
            ("{not json", "invalid JSON"),
            (r#"{"sensor":"S 1","metric":"a.b","value":1}"#, "sensor id"),
            (r#"{"sensor":"s","metric":"A","value":1}"#, "metric"),
            (
                r#"{"sensor":"s","metric":"a","value":1,"extra":2}"#,
                "extra",
            ),
            (r#"{"sensor":"s","metric":"a"}"#, "missing `value`"),
            (r#"{"metric":"a","value":1}"#, "missing `sensor`"),
            (
                r#"{"sensor":"s","metric":"a","value":null}"#,
                "missing `value`",
            ),
            (
                r#"{"sensor":"s","metric":"a","value":1e999}"#,
                "invalid JSON",
            ),
            (r#"{"sensor":"s","metric":"a","value":[1]}"#, "invalid JSON"),
            (
                r#"{"sensor":"s","metric":"a","value":1,"time":"yesterday"}"#,
                "RFC 3339",
            ),
            (
                r#"{"sensor":"s","metric":"a","unit":"u g","value":1}"#,
                "unit",
            ),
            ("42", "invalid JSON"),
        ];
        for (line, expected) in cases {
            let err = parse(line).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
        let long = format!(
            r#"{{"sensor":"s","metric":"a","value":"{}"}}"#,
            "x".repeat(300)
        );
        assert!(parse(&long).unwrap_err().contains("256"));
    }

    #[test]
    fn senml_records_and_packs() {
        let r = one(r#"{"n":"s-1/air.no2","u":"ug/m3","v":40.5,"t":1767254400}"#);
        assert_eq!(
            (r.sensor.as_str(), r.metric.as_str(), r.unit.as_str()),
            ("s-1", "air.no2", "ug/m3")
        );
        assert_eq!(r.time, NOW);
        let r = one(r#"{"n":"s-1/door.open","vb":false,"t":-10}"#);
        assert_eq!(r.time.micros_since(NOW), -10_000_000);
        let pack = parse(
            r#"[{"bn":"s-2/","bt":1767254400,"bu":"Cel","n":"air.temperature","v":21.5},
               {"n":"air.humidity","u":"%RH","v":40,"t":60},{"n":"status","vs":"ok"}]"#
                .replace('\n', "")
                .as_str(),
        )
        .unwrap();
        assert_eq!(pack.len(), 3);
        assert_eq!(pack[0].unit.as_str(), "Cel");
        assert_eq!(pack[1].unit.as_str(), "%RH");
        assert_eq!(pack[1].time.micros_since(NOW), 60_000_000);
        assert_eq!(pack[2].sensor.as_str(), "s-2");
        assert_eq!(pack[2].value, Value::Text("ok".into()));
        for (line, expected) in [
            (r#"{"n":"nosep","v":1}"#, "<sensor>/<metric>"),
            (r#"{"n":"s/a","v":1,"vb":true}"#, "more than one"),
            (r#"{"n":"s/a"}"#, "missing value"),
            (r#"{"n":"s/a","v":1,"sensor":"s"}"#, "mixes"),
            (r#"[{"n":"s/a","v":1},{"n":"bad"}]"#, "record 1"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
    }

    fn split_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::default();
        let mut out = Vec::new();
        let mut record = |e: Option<LineEvent<'_>>| match e {
            Some(LineEvent::Line(l)) => out.push(String::from_utf8_lossy(l).into_owned()),
            Some(LineEvent::TooLong) => out.push("<too long>".to_owned()),
            None => {}
        };
        for chunk in chunks {
            let mut rest: &[u8] = chunk;
            while !rest.is_empty() {
                let (n, event) = splitter.push(rest);
                record(event);
                splitter.clear_line();
                rest = &rest[n..];
            }
        }
        record(splitter.finish());
        out
    }

    #[test]
    fn splitter_handles_straddling_and_long_lines() {
        assert_eq!(split_all(&[b"a\nbc", b"d\n", b"e"]), ["a", "bcd", "e"]);
        assert_eq!(split_all(&[b"\n\n"]), ["", ""]);
        let big = vec![b'x'; MAX_LINE_BYTES];
        let bigger = vec![b'x'; MAX_LINE_BYTES + 1];
        assert_eq!(split_all(&[&big, b"\nok\n"]).len(), 2);
        assert_eq!(split_all(&[&bigger, b"\nok\n"]), ["<too long>", "ok"]);
        assert_eq!(
            split_all(&[&big, b"y", &big, b"\nok"]),
            ["<too long>", "ok"]
        );
        assert_eq!(split_all(&[b"ab", &bigger]), ["<too long>"]);
    }

    #[test]
    fn validate_paths() {
        let v = |text: &str| {
            toml::from_str::<RawJsonl>(text)
                .unwrap()
                .validate("sources[1]", Path::new("/etc/beffroi"))
        };
        assert_eq!(v("path = \"-\"").unwrap().input, JsonlInput::Stdin);
        assert_eq!(
            v("path = \"in.jsonl\"").unwrap().input,
            JsonlInput::File("/etc/beffroi/in.jsonl".into())
        );
        assert_eq!(
            v("path = \"/var/in.jsonl\"\nfollow = true").unwrap().input,
            JsonlInput::File("/var/in.jsonl".into())
        );
        let err = v("path = \"-\"\nfollow = true").unwrap_err().to_string();
        assert!(err.contains("sources[1].follow"), "{err}");
        let err = v("path = \"\"").unwrap_err().to_string();
        assert!(err.contains("sources[1].path"), "{err}");
    }

    #[tokio::test]
    async fn reads_a_stream_to_the_end() {
        let mut input = String::new();
        input.push_str("{\"sensor\":\"s-1\",\"metric\":\"a\",\"value\":1}\n\n");
        input.push_str("garbage\n");
        input.push_str(&"y".repeat(200_000));
        input.push_str("\n{\"sensor\":\"s-1\",\"metric\":\"a\",\"value\":2}");
        let telemetry = Arc::new(Telemetry::default());
        let (tx, mut rx) = mpsc::channel(16);
        let sink = ReadingSink::new(tx, telemetry.clone(), "jsonl");
        let source = Box::new(JsonlSource::from_reader(
            "jsonl",
            Box::new(std::io::Cursor::new(input.into_bytes())),
            false,
        ));
        source.run(sink, CancellationToken::new()).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().value, Value::Number(1.0));
        assert_eq!(rx.recv().await.unwrap().value, Value::Number(2.0));
        assert!(rx.recv().await.is_none());
        assert_eq!(telemetry.get(Counter::InputMalformed), 2);
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let spec = JsonlSpec {
            name: "j".into(),
            input: JsonlInput::File("/nonexistent/beffroi.jsonl".into()),
            follow: false,
        };
        let err = JsonlSource::open(&spec).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/beffroi.jsonl"), "{err}");
    }
}
