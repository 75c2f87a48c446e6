//! Binary `COPY … FROM STDIN` of reading rows: the fastest way into PostgreSQL.
//!
//! Format (PostgreSQL docs, "COPY — Binary Format"): the 11-byte signature
//! `PGCOPY\n\xff\r\n\0`, a 32-bit flags word and a 32-bit header-extension length (both 0);
//! then per row a 16-bit field count and, per field, a 32-bit length (-1 for NULL) followed by
//! the value in the type's binary send format (big-endian); then a 16-bit -1 trailer.
//! `timestamptz` is 64-bit microseconds since 2000-01-01 UTC; `text` is its UTF-8 bytes;
//! `int4`/`int8` are big-endian integers.

use sqlx::PgConnection;

use crate::decode::{value_columns, ReadingRow};
use crate::{CommitBatch, Error, Result};

/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// PostgreSQL's `timestamptz` range, in its own epoch: 4713 BC …
const PG_MIN_US: i64 = -211_813_488_000_000_000;
/// … to 294276 AD (exclusive).
const PG_END_US: i64 = 9_223_371_331_200_000_000;
/// Bytes buffered before a `CopyData` message is sent.
const SEND_BYTES: usize = 1 << 20;

const COPY_READINGS: &str = "COPY readings (time, id, tenant, series, value_num, value_bool, \
                             value_text) FROM STDIN (FORMAT binary)";

/// Refuses times PostgreSQL cannot store, before anything of the call is written.
pub(super) fn check_times(batches: &[CommitBatch]) -> Result<()> {
    for reading in batches.iter().flat_map(|b| &b.readings) {
        pg_micros(reading.time.unix_micros())?;
    }
    Ok(())
}

fn pg_micros(unix_us: i64) -> Result<i64> {
    unix_us
        .checked_sub(PG_EPOCH_US)
        .filter(|us| (PG_MIN_US..PG_END_US).contains(us))
        .ok_or_else(|| Error::Invalid {
            what: "reading time",
            reason: format!("{unix_us} µs since the epoch is outside PostgreSQL's range"),
        })
}

/// Copies `rows` into `readings` in the caller's transaction.
pub(super) async fn copy_readings(conn: &mut PgConnection, rows: &[ReadingRow<'_>]) -> Result<()> {
    // Encode first: a row that cannot be encoded must fail before the COPY starts.
    let mut chunks = Vec::new();
    let mut buf = Vec::with_capacity((rows.len() * 64 + 32).min(SEND_BYTES + 4096));
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
    for row in rows {
        encode_row(&mut buf, row)?;
        if buf.len() >= SEND_BYTES {
            chunks.push(std::mem::replace(
                &mut buf,
                Vec::with_capacity(SEND_BYTES + 4096),
            ));
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    chunks.push(buf);

    let mut copy = conn.copy_in_raw(COPY_READINGS).await?;
    for chunk in chunks {
        copy.send(chunk).await?;
    }
    copy.finish().await?;
    Ok(())
}

fn encode_row(buf: &mut Vec<u8>, row: &ReadingRow<'_>) -> Result<()> {
    let r = row.reading;
    let (num, boolean, text) = value_columns(&r.value)?;
    buf.extend_from_slice(&7i16.to_be_bytes());
    field(buf, &pg_micros(r.time.unix_micros())?.to_be_bytes());
    field(buf, &row.id.to_be_bytes());
    field(buf, &row.keys.tenant.to_be_bytes());
    field(buf, &row.keys.series.to_be_bytes());
    match num {
        Some(n) => field(buf, &n.to_be_bytes()),
        None => null(buf),
    }
    match boolean {
        Some(b) => field(buf, &[u8::from(b)]),
        None => null(buf),
    }
    match text {
        Some(t) => field(buf, t.as_bytes()),
        None => null(buf),
    }
    Ok(())
}

fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    // Fields here are at most a few hundred bytes (ids ≤ 64, strings ≤ 256).
    let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn null(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i32).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_map_to_postgres_epoch() {
        assert_eq!(pg_micros(PG_EPOCH_US).unwrap(), 0);
        assert_eq!(pg_micros(0).unwrap(), -PG_EPOCH_US);
        assert!(pg_micros(i64::MIN).is_err());
        assert!(pg_micros(PG_MIN_US + PG_EPOCH_US - 1).is_err());
        assert!(pg_micros(PG_MIN_US + PG_EPOCH_US).is_ok());
    }
}
