//! Grantee exports: what an agreement grants, as one download (CSV or SenML), decided on the
//! `export` channel.
//!
//! ```text
//! request (channel export) ─► permitted? ─► no: access_deny, 403
//!   aggregate permit ─► cells (a bounded set) as CSV ─► access_permit, rows + SHA-256 ─► send
//!   raw permit ─► pseudonym key, registry, population
//!     ─► access_permit (rows 0, query.export.opened) ─► 200, then streamed:
//!        store page (keyset cursor) ─► admits ─► shared_row ─► CSV / SenML chunk ─► next page
//!     ─► stream dropped (completed, disconnected, error) ─► access_permit with the rows
//!        released and the SHA-256 of the bytes handed to the connection (query.export.ended)
//! ```
//!
//! Memory stays flat whatever the range: one store page is held at a time, and the next one
//! is read only when the connection has taken the previous chunk. The opening entry is
//! written before any byte leaves; if it cannot be, the answer is the 503 of every governed
//! read and nothing is sent. The closing entry is written after the fact, as a live view's is
//! ([`record_closing`]).
//!
//! Raw columns are the permitted fields in their canonical order, `received_at` excepted (the
//! store does not keep it per reading). A SenML record carries what the fields allow: `n`
//! from `sensor` and `metric` (`<sensor>:<metric>`), `u` from `unit`, `t` from `time`, the
//! value from `value`; `zone`, `gateway` and `seq` are CSV-only.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use axum::body::Body as HttpBody;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use beffroi_audit::Digest;
use beffroi_formats::csv::write_record;
use beffroi_formats::senml::{Pack, Record};
use beffroi_policy::{shared_row, AgreementRef, Field, Permit, PseudonymKey, RowSource, Shape};
use beffroi_protocol::Timestamp;
use beffroi_store::{ReadingCursor, ReadingFilter};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::cells::shared_cells;
use super::population::Registry;
use super::rows::admitted;
use super::{permit_key, permitted, query_with, record, record_closing, GovernedRead, Outcome};
use crate::error::{ApiError, Result};
use crate::ApiState;

/// Longest `to - from` of an export (a REST page of raw rows reaches 31 days).
pub const MAX_EXPORT_RANGE: Duration = Duration::from_secs(366 * 86_400);

/// Readings read from the store per page of a raw export.
const PAGE_ROWS: u32 = 1_000;

/// What an export is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// RFC 4180 CSV with a header line.
    Csv,
    /// An RFC 8428 SenML JSON pack (raw rows only).
    Senml,
}

impl FromStr for ExportFormat {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        match text {
            "csv" => Ok(Self::Csv),
            "senml" => Ok(Self::Senml),
            _ => Err(format!("{text:?} is not an export format: csv or senml")),
        }
    }
}

impl ExportFormat {
    /// Its name, as the `format` parameter takes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Senml => "senml",
        }
    }

    const fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8; header=present",
            Self::Senml => "application/senml+json",
        }
    }

    const fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Senml => "senml.json",
        }
    }
}

/// Decides `read` (an `export` channel request), audits, and answers with the download.
pub(crate) async fn serve_export(
    state: &ApiState,
    read: GovernedRead,
    format: ExportFormat,
) -> Result<Response> {
    let (permit, now) = permitted(state, &read).await?;
    let name = file_name(&read, &permit.agreement, format);
    let mut response = match permit.transforms.shape.clone() {
        Shape::Aggregate(aggregation) => {
            if format != ExportFormat::Csv {
                return Err(ApiError::bad_request(
                    "format: aggregates export as csv only",
                ));
            }
            let agreement = permit.agreement.clone();
            let cells = shared_cells(state, &read, permit, &aggregation, now).await?;
            // Written to memory: an error here is unreachable, but is not a panic.
            let bytes = cells.to_csv().map_err(encode_error)?;
            let rows = u64::try_from(cells.rows()).unwrap_or(u64::MAX);
            let query = query_with(&read, now, "export", json!({ "format": format.as_str() }))?;
            let outcome = Outcome::Permit(&agreement, rows, Some(Digest::of(&bytes)));
            record(state, &read, query, outcome).await?;
            bytes.into_response()
        }
        Shape::Raw { fields } => {
            let export = RawExport::open(state, read, permit, fields, format, now).await?;
            HttpBody::from_stream(export.into_stream()).into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .map_err(|e| ApiError::bad_request(format!("file name {name:?}: {e}")))?;
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    Ok(response)
}

/// An instant in a file name: `20260101T000000000000Z` (letters and digits only, so it is a
/// valid header value).
pub(crate) fn compact_time(t: Timestamp) -> String {
    t.to_string()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// `<grantor>_<agreement>_<from>_<to>.<ext>`, times as [`compact_time`].
fn file_name(read: &GovernedRead, agreement: &AgreementRef, format: ExportFormat) -> String {
    let range = &read.request.range;
    format!(
        "{}_{}_{}_{}.{}",
        read.request.grantor,
        agreement.id,
        compact_time(range.from),
        compact_time(range.to),
        format.extension()
    )
}

/// Where a raw export stands; what its closing entry says.
enum Progress {
    Running,
    Completed,
    Failed(String),
}

/// A raw export being streamed. Dropping it (at the end, on an error, or when the client
/// goes away) writes the closing entry.
struct RawExport {
    state: ApiState,
    read: GovernedRead,
    permit: Permit,
    fields: BTreeSet<Field>,
    key: Option<PseudonymKey>,
    registry: Registry,
    /// The store filter still to read; `None` once every page is read (or none may be).
    filter: Option<ReadingFilter>,
    after: Option<ReadingCursor>,
    /// The decision instant: rows are admitted as of it.
    now: Timestamp,
    /// `None` once the closing bytes are out (or an error cut the export).
    encoder: Option<Encoder>,
    format: ExportFormat,
    rows: u64,
    sent: Sha256,
    progress: Progress,
}

impl RawExport {
    /// Prepares the export of a raw permit, then writes its opening entry.
    async fn open(
        state: &ApiState,
        read: GovernedRead,
        permit: Permit,
        fields: BTreeSet<Field>,
        format: ExportFormat,
        now: Timestamp,
    ) -> Result<Self> {
        let grantor = &read.request.grantor;
        let key = permit_key(state.store.as_ref(), &read, &permit).await?;
        let registry = Registry::load(
            state.store.as_ref(),
            grantor,
            &read.request.requester,
            permit.transforms.population(),
        )
        .await?;
        let mut filter = None;
        if let Some(range) = permit.transforms.served_range(now) {
            let population = registry
                .population(
                    state.store.as_ref(),
                    grantor,
                    permit.transforms.population(),
                )
                .await?;
            if !population.is_empty() {
                filter = Some(population.filter(grantor, range));
            }
        }
        let encoder = Encoder::new(format, &fields)
            .map_err(|e| ApiError::bad_request(format!("cannot encode the export: {e}")))?;
        let opened = json!({ "format": format.as_str(), "opened": true });
        let query = query_with(&read, now, "export", opened)?;
        record(
            state,
            &read,
            query,
            Outcome::Permit(&permit.agreement, 0, None),
        )
        .await?;
        tracing::debug!(
            grantor = %grantor,
            requester = %read.request.requester,
            agreement = %permit.agreement.id,
            "grantee export opened"
        );
        Ok(Self {
            state: state.clone(),
            read,
            permit,
            fields,
            key,
            registry,
            filter,
            after: None,
            now,
            encoder: Some(encoder),
            format,
            rows: 0,
            sent: Sha256::new(),
            progress: Progress::Running,
        })
    }

    /// The body: one chunk per store page; an error ends it (the client sees a cut body).
    fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = std::result::Result<Vec<u8>, std::io::Error>> + Send {
        futures_util::stream::unfold(self, |mut export| async move {
            match export.next_chunk().await {
                Ok(Some(chunk)) => {
                    export.sent.update(&chunk);
                    Some((Ok(chunk), export))
                }
                Ok(None) => None,
                Err(error) => {
                    tracing::warn!(%error, grantor = %export.read.request.grantor, "a grantee export failed");
                    export.progress = Progress::Failed(error.to_string());
                    export.encoder = None;
                    Some((Err(std::io::Error::other(error.to_string())), export))
                }
            }
        })
    }

    /// The next non-empty chunk, the closing bytes, or `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            let Some(filter) = &self.filter else {
                let Some(encoder) = self.encoder.take() else {
                    if matches!(self.progress, Progress::Running) {
                        self.progress = Progress::Completed;
                    }
                    return Ok(None);
                };
                return Ok(Some(encoder.finish().map_err(encode_error)?));
            };
            let page = self
                .state
                .store
                .readings(filter, PAGE_ROWS, self.after)
                .await?;
            let Some(encoder) = self.encoder.as_mut() else {
                return Ok(None);
            };
            for reading in &page.readings {
                let written = admitted(
                    &self.registry,
                    &self.permit,
                    self.key.as_ref(),
                    self.now,
                    reading,
                    |source| encoder.row(source, &self.fields),
                );
                if let Some(written) = written {
                    written.map_err(encode_error)?;
                    self.rows += 1;
                }
            }
            self.after = page.next;
            if page.next.is_none() {
                self.filter = None;
            }
            let chunk = encoder.take();
            if !chunk.is_empty() {
                return Ok(Some(chunk));
            }
        }
    }
}

fn encode_error(error: std::io::Error) -> ApiError {
    ApiError::bad_request(format!("cannot encode the export: {error}"))
}

impl Drop for RawExport {
    fn drop(&mut self) {
        let ended = match &self.progress {
            Progress::Running => "disconnected".to_owned(),
            Progress::Completed => "completed".to_owned(),
            Progress::Failed(error) => format!("error: {error}"),
        };
        let digest = Digest::new(self.sent.clone().finalize().into());
        let (state, read) = (self.state.clone(), self.read.clone());
        let (agreement, rows, format) = (self.permit.agreement.clone(), self.rows, self.format);
        let opened_at = self.now;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            state.metrics.audit_write_failures.incr();
            tracing::error!(grantor = %read.request.grantor, "no runtime to record the end of a grantee export");
            return;
        };
        runtime.spawn(async move {
            let now = state.clock.now();
            let facts = json!({
                "format": format.as_str(),
                "ended": ended,
                "opened_at": opened_at.to_string(),
            });
            let query = query_with(&read, now, "export", facts);
            record_closing(&state, &read, query, &agreement, rows, digest).await;
        });
    }
}

/// Writes rows in the export's format into a buffer taken after each page.
enum Encoder {
    Csv { columns: Vec<Field>, out: Vec<u8> },
    Senml(Pack<Vec<u8>>),
}

impl Encoder {
    /// Starts the body: the header line, or the opening of the pack.
    fn new(format: ExportFormat, fields: &BTreeSet<Field>) -> std::io::Result<Self> {
        Ok(match format {
            ExportFormat::Csv => {
                let columns: Vec<Field> = fields
                    .iter()
                    .copied()
                    .filter(|f| *f != Field::ReceivedAt)
                    .collect();
                let mut out = Vec::new();
                let header: Vec<&str> = columns.iter().map(|f| f.as_str()).collect();
                write_record(&mut out, &header)?;
                Self::Csv { columns, out }
            }
            ExportFormat::Senml => Self::Senml(Pack::new(Vec::new())?),
        })
    }

    /// Writes one row, with only `fields`.
    fn row(&mut self, source: &RowSource<'_>, fields: &BTreeSet<Field>) -> std::io::Result<()> {
        match self {
            Self::Csv { columns, out } => {
                let row = shared_row(source, fields);
                let record: Vec<String> = columns
                    .iter()
                    .map(|c| row.get(c.as_str()).map(cell_text).unwrap_or_default())
                    .collect();
                write_record(out, &record)
            }
            Self::Senml(pack) => {
                let has = |f: Field| fields.contains(&f);
                let metric = source.metric.as_str();
                let name = match (has(Field::Sensor), has(Field::Metric)) {
                    (true, true) => Some(format!("{}:{metric}", source.sensor)),
                    (true, false) => Some(source.sensor.to_owned()),
                    (false, true) => Some(metric.to_owned()),
                    (false, false) => None,
                };
                pack.record(&Record {
                    name: name.as_deref(),
                    unit: has(Field::Unit).then(|| source.unit.as_str()),
                    time: has(Field::Time).then_some(source.time),
                    value: has(Field::Value).then_some(source.value),
                })
            }
        }
    }

    /// What was written since the last call.
    fn take(&mut self) -> Vec<u8> {
        match self {
            Self::Csv { out, .. } => std::mem::take(out),
            Self::Senml(pack) => std::mem::take(pack.get_mut()),
        }
    }

    /// The last bytes: what is left, and the end of the pack.
    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Csv { out, .. } => Ok(out),
            Self::Senml(pack) => pack.finish(),
        }
    }
}

/// A JSON scalar of a shaped row as CSV text: strings as they are, `null` empty.
fn cell_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
