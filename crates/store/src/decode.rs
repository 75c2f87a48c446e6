//! Conversions between stored columns and model values, shared by both SQL backends.
//!
//! Reading rows keep a value in exactly one of three columns (`value_num`, `value_bool`,
//! `value_text`); ids are validated again on the way out, so a row written by a foreign writer
//! or damaged on disk becomes [`Error::Corrupt`], never a panic.

use beffroi_protocol::{Reading, Timestamp, Value};
use serde::Serialize;

use crate::series::{SeriesIds, SeriesMap};
use crate::{AlarmAction, AlarmRule, CommitBatch, Error, Result, TokenScope};

/// Readings a batch may hold: a reading's id keeps its position in the low 16 bits.
const MAX_BATCH_READINGS: usize = 1 << 16;

/// One reading row to write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadingRow<'a> {
    /// `batch id << 16 | idx` (see [`reading_id`]).
    pub id: i64,
    /// The tenant's integer key and the series id.
    pub keys: SeriesIds,
    /// The reading.
    pub reading: &'a Reading,
}

/// The id of the reading at `idx` in the batch `batch_id`: unique, ordered like (batch, idx),
/// and the way back to the batch (`id >> 16`).
pub(crate) fn reading_id(batch_id: i64, idx: usize) -> Result<i64> {
    let idx = i64::try_from(idx)
        .ok()
        .filter(|&i| i < MAX_BATCH_READINGS as i64);
    idx.and_then(|i| {
        batch_id
            .checked_mul(MAX_BATCH_READINGS as i64)?
            .checked_add(i)
    })
    .ok_or_else(|| Error::Invalid {
        what: "reading id",
        reason: format!("batch {batch_id}, position {idx:?} is out of range"),
    })
}

/// The rows of the batches that have an id in `batch_ids` (the ones to write), batch by batch
/// in batch order, keyed through `series`.
pub(crate) fn reading_rows<'a>(
    batches: &'a [CommitBatch],
    batch_ids: &[Option<i64>],
    series: &SeriesMap<'_>,
) -> Result<Vec<ReadingRow<'a>>> {
    let total = batches.iter().map(|b| b.readings.len()).sum();
    let mut rows = Vec::with_capacity(total);
    for (batch, batch_id) in batches.iter().zip(batch_ids) {
        let Some(batch_id) = *batch_id else { continue };
        for (idx, r) in batch.readings.iter().enumerate() {
            let key = (
                batch.tenant.as_str(),
                r.sensor.as_str(),
                r.metric.as_str(),
                r.unit.as_str(),
            );
            rows.push(ReadingRow {
                id: reading_id(batch_id, idx)?,
                keys: series.ids(key)?,
                reading: r,
            });
        }
    }
    Ok(rows)
}

/// Batch ids for the benchmark's bulk load, which writes readings without `batches` rows:
/// negative, below every reading id in the table (`lowest`), so they never meet a real one.
pub(crate) fn baseline_batch_ids(lowest: Option<i64>, batches: usize) -> Vec<Option<i64>> {
    let below = lowest
        .unwrap_or(0)
        .min(0)
        .div_euclid(MAX_BATCH_READINGS as i64);
    (1..=batches as i64).map(|k| Some(below - k)).collect()
}

/// The earliest and latest reading times of a batch (microseconds), `None` when empty.
pub(crate) fn time_range(batch: &CommitBatch) -> (Option<i64>, Option<i64>) {
    let times = batch.readings.iter().map(|r| r.time.unix_micros());
    (times.clone().min(), times.max())
}

/// Checks a whole call before any of it is written: seqs fit `BIGINT`, values are storable.
pub(crate) fn check_batches(batches: &[CommitBatch]) -> Result<()> {
    for batch in batches {
        seq_to_db(batch.seq)?;
        if batch.readings.len() > MAX_BATCH_READINGS {
            return Err(Error::Invalid {
                what: "batch",
                reason: format!(
                    "{} readings; a batch holds at most {MAX_BATCH_READINGS}",
                    batch.readings.len()
                ),
            });
        }
        check_readings(&batch.readings)?;
    }
    Ok(())
}

/// Longest quarantined payload kept, in bytes.
pub(crate) const MAX_QUARANTINE_PAYLOAD: usize = 64 * 1024;

/// Parses a stored id with `parse` (one of the protocol's validating constructors).
pub(crate) fn id<T, E: std::fmt::Display>(
    table: &'static str,
    text: &str,
    parse: impl FnOnce(String) -> std::result::Result<T, E>,
) -> Result<T> {
    parse(text.to_owned()).map_err(|e| corrupt(table, e.to_string()))
}

/// Parses an optional stored id.
pub(crate) fn opt_id<T, E: std::fmt::Display>(
    table: &'static str,
    text: Option<&str>,
    parse: impl FnOnce(String) -> std::result::Result<T, E>,
) -> Result<Option<T>> {
    text.map(|t| id(table, t, parse)).transpose()
}

/// A [`Error::Corrupt`] for `table`.
pub(crate) fn corrupt(table: &'static str, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        table,
        reason: reason.into(),
    }
}

/// A stored non-negative integer as `u64`.
pub(crate) fn unsigned(table: &'static str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| corrupt(table, format!("negative count or seq {value}")))
}

/// A seq as the database's `BIGINT`.
pub(crate) fn seq_to_db(seq: u64) -> Result<i64> {
    i64::try_from(seq).map_err(|_| Error::Invalid {
        what: "seq",
        reason: format!("{seq} is above {}", i64::MAX),
    })
}

/// A count as `BIGINT`, saturating (counts never approach `i64::MAX`).
pub(crate) fn count_to_db(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// A 32-byte column.
pub(crate) fn bytes32(table: &'static str, bytes: &[u8]) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| corrupt(table, format!("expected 32 bytes, found {}", bytes.len())))
}

/// A 64-byte column.
pub(crate) fn bytes64(table: &'static str, bytes: &[u8]) -> Result<[u8; 64]> {
    bytes
        .try_into()
        .map_err(|_| corrupt(table, format!("expected 64 bytes, found {}", bytes.len())))
}

/// The three value columns of a reading.
pub(crate) type ValueColumns<'a> = (Option<f64>, Option<bool>, Option<&'a str>);

/// Splits a value into its columns, refusing what the database could not keep faithfully.
pub(crate) fn value_columns(value: &Value) -> Result<ValueColumns<'_>> {
    match value {
        Value::Number(n) if !n.is_finite() => Err(Error::Invalid {
            what: "reading value",
            reason: format!("{n} is not finite"),
        }),
        Value::Number(n) => Ok((Some(*n), None, None)),
        Value::Bool(b) => Ok((None, Some(*b), None)),
        Value::Text(t) => Ok((None, None, Some(t.as_str()))),
    }
}

/// Rebuilds a value from its columns: exactly one must be set.
pub(crate) fn value_from_columns(
    num: Option<f64>,
    boolean: Option<bool>,
    text: Option<String>,
) -> Result<Value> {
    match (num, boolean, text) {
        (Some(n), None, None) if n.is_finite() => Ok(Value::Number(n)),
        (None, Some(b), None) => Ok(Value::Bool(b)),
        (None, None, Some(t)) => Ok(Value::Text(t)),
        _ => Err(corrupt(
            "readings",
            "a reading must have exactly one finite value column set",
        )),
    }
}

/// Checks what every backend needs from a batch before writing any of it.
pub(crate) fn check_readings(readings: &[Reading]) -> Result<()> {
    for reading in readings {
        value_columns(&reading.value)?;
    }
    Ok(())
}

/// Whether `error` is a unique-constraint violation.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// Whether `error` is a foreign-key violation.
pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_foreign_key_violation())
}

/// Refuses a bucket width the arithmetic cannot use.
pub(crate) fn check_bucket(bucket_us: i64) -> Result<()> {
    if bucket_us <= 0 {
        return Err(Error::Invalid {
            what: "bucket width",
            reason: format!("{bucket_us} µs; must be positive"),
        });
    }
    Ok(())
}

/// The `role` of a platform token (whose `tenant` is NULL).
pub(crate) const PLATFORM_ROLE: &str = "platform";

/// The `role` of a partner token (whose `tenant` is NULL and `partner` set).
pub(crate) const PARTNER_ROLE: &str = "partner";

/// A token scope as its `(tenant, partner, role)` columns: a platform token has neither
/// tenant nor partner and the role [`PLATFORM_ROLE`]; a partner token only a partner and the
/// role [`PARTNER_ROLE`].
pub(crate) fn scope_columns(scope: &TokenScope) -> (Option<&str>, Option<&str>, &str) {
    match scope {
        TokenScope::Tenant { tenant, role } => (Some(tenant.as_str()), None, role.as_str()),
        TokenScope::Platform => (None, None, PLATFORM_ROLE),
        TokenScope::Partner { partner } => (None, Some(partner.as_str()), PARTNER_ROLE),
    }
}

/// The four columns of an alarm action: `(at, by token id, by name, comment)`.
pub(crate) type ActionColumns<'a> = (i64, Option<&'a str>, Option<&'a str>, Option<&'a str>);

/// Splits an acknowledgement or a clearance into its columns.
pub(crate) fn action_columns(action: &AlarmAction) -> ActionColumns<'_> {
    (
        action.at.unix_micros(),
        action.by.as_ref().map(|a| a.token_id.as_str()),
        action.by.as_ref().map(|a| a.name.as_str()),
        action.comment.as_deref(),
    )
}

/// `value` as JSON text, for a column that keeps JSON as text (SQLite).
pub(crate) fn json_text<T: Serialize>(what: &'static str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Invalid {
        what,
        reason: e.to_string(),
    })
}

/// Refuses a rule that breaks its own invariants ([`AlarmRule::validate`]): among them, a
/// non-finite threshold would be written as JSON `null` and never read back.
pub(crate) fn check_rule(rule: &AlarmRule) -> Result<()> {
    rule.validate().map_err(|reason| Error::Invalid {
        what: "alarm rule",
        reason,
    })
}

/// Refuses a value the database could not keep faithfully (SQLite stores NaN as NULL).
pub(crate) fn check_finite(what: &'static str, value: Option<f64>) -> Result<()> {
    match value {
        Some(v) if !v.is_finite() => Err(Error::Invalid {
            what,
            reason: format!("{v} is not finite"),
        }),
        _ => Ok(()),
    }
}

/// A timestamp column (SQLite: integer microseconds).
pub(crate) fn time(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(micros)
}

/// The first [`MAX_QUARANTINE_PAYLOAD`] bytes of a payload.
pub(crate) fn capped_payload(payload: &[u8]) -> &[u8] {
    &payload[..payload.len().min(MAX_QUARANTINE_PAYLOAD)]
}

/// The offset of the next page when `fetched` rows came back for a page of `limit` (the
/// caller asks for `limit + 1` rows to know whether another page exists).
pub(crate) fn next_offset(offset: u64, limit: u32, fetched: usize) -> Option<u64> {
    (fetched > limit as usize).then(|| offset.saturating_add(u64::from(limit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_columns_round_trip() {
        for value in [
            Value::Number(-1.5),
            Value::Bool(true),
            Value::Text("open".into()),
        ] {
            let (n, b, t) = value_columns(&value).unwrap();
            assert_eq!(
                value_from_columns(n, b, t.map(str::to_owned)).unwrap(),
                value
            );
        }
        assert!(value_columns(&Value::Number(f64::NAN)).is_err());
        assert!(value_from_columns(None, None, None).is_err());
        assert!(value_from_columns(Some(1.0), Some(true), None).is_err());
    }

    #[test]
    fn reading_ids_keep_batch_and_position() {
        assert_eq!(reading_id(3, 5).unwrap(), 3 << 16 | 5);
        assert_eq!(reading_id(3, 65_535).unwrap() >> 16, 3);
        assert!(reading_id(3, 65_536).is_err());
        assert!(reading_id(i64::MAX >> 10, 0).is_err());
        let ids = baseline_batch_ids(Some(-70_000), 2);
        assert_eq!(ids, vec![Some(-3), Some(-4)]);
        assert!(reading_id(-3, 65_535).unwrap() < -70_000);
        assert_eq!(baseline_batch_ids(None, 1), vec![Some(-1)]);
        assert_eq!(baseline_batch_ids(Some(10), 1), vec![Some(-1)]);
    }

    #[test]
    fn ids_and_sizes_are_checked() {
        assert!(id("t", "Bad Id", beffroi_protocol::TenantId::new).is_err());
        assert!(bytes64("batches", &[0; 63]).is_err());
        assert!(unsigned("batches", -1).is_err());
        assert!(seq_to_db(u64::MAX).is_err());
        assert_eq!(next_offset(0, 2, 3), Some(2));
        assert_eq!(next_offset(4, 2, 2), None);
    }
}
