//! `GET /api/v1/readings` (raw, keyset-paginated) and `GET /api/v1/readings/buckets`
//! (avg/min/max/count per bucket, sensor and metric).
//!
//! Common parameters: `sensor` and `metric` (repeatable, at most [`MAX_IDS_PER_PARAM`] each),
//! `zone`, `from` and `to` (RFC 3339; the range is `[from, to)`). A missing `to` is now, a
//! missing `from` is `to` − 24 h; `from` must be before `to`. Raw queries span at most
//! [`MAX_RAW_RANGE`]; bucket queries at most [`MAX_BUCKET_RANGE`] and [`MAX_BUCKETS`] buckets.
//! A `+` in a UTC offset must be sent as `%2B` (a bare `+` decodes to a space, which is
//! accepted in the offset position for convenience).

use std::time::Duration;

use axum::extract::State;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use beffroi_protocol::{MetricName, SensorId, Timestamp};
use beffroi_store::{Bucket, ReadingCursor, ReadingFilter, StoredReading};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::json::ApiJson;
use crate::query::{parse_limit, QueryParams};
use crate::routes::zones::parse_zone_id;
use crate::ApiState;

/// The range queried when `from` is missing.
pub const DEFAULT_RANGE: Duration = Duration::from_secs(24 * 3600);
/// Longest `to - from` of a raw query (paginate within it).
pub const MAX_RAW_RANGE: Duration = Duration::from_secs(31 * 86_400);
/// Longest `to - from` of a bucket query.
pub const MAX_BUCKET_RANGE: Duration = Duration::from_secs(366 * 86_400);
/// Most buckets a query's range may produce (one week of 1-minute buckets).
pub const MAX_BUCKETS: i64 = 7 * 24 * 60;
/// Default page size of raw readings.
pub const DEFAULT_LIMIT: u32 = 1000;
/// Largest page size of raw readings.
pub const MAX_LIMIT: u32 = 10_000;
/// Most values of a repeatable `sensor` or `metric` parameter.
pub const MAX_IDS_PER_PARAM: usize = 100;

/// A page of raw readings.
#[derive(Debug, Serialize)]
pub struct ReadingsPage {
    /// Start of the range queried (after defaults).
    pub from: Timestamp,
    /// End of the range queried (exclusive).
    pub to: Timestamp,
    /// Readings ordered by time.
    pub items: Vec<StoredReading>,
    /// Pass as `cursor` (with the same filter) for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Aggregates over one range.
#[derive(Debug, Serialize)]
pub struct BucketsResponse {
    /// Start of the range queried (after defaults).
    pub from: Timestamp,
    /// End of the range queried (exclusive).
    pub to: Timestamp,
    /// The bucket width.
    pub bucket: &'static str,
    /// Buckets (aligned on the Unix epoch) ordered by start, sensor, metric.
    pub items: Vec<Bucket>,
}

/// A bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketWidth {
    /// One minute.
    Minute,
    /// Five minutes.
    FiveMinutes,
    /// Fifteen minutes.
    FifteenMinutes,
    /// One hour (the default).
    Hour,
    /// One day (UTC).
    Day,
}

impl BucketWidth {
    /// Every width, in order.
    pub const ALL: [BucketWidth; 5] = [
        Self::Minute,
        Self::FiveMinutes,
        Self::FifteenMinutes,
        Self::Hour,
        Self::Day,
    ];

    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "1m",
            Self::FiveMinutes => "5m",
            Self::FifteenMinutes => "15m",
            Self::Hour => "1h",
            Self::Day => "1d",
        }
    }

    /// The width in microseconds.
    pub fn micros(self) -> i64 {
        const MINUTE: i64 = 60_000_000;
        match self {
            Self::Minute => MINUTE,
            Self::FiveMinutes => 5 * MINUTE,
            Self::FifteenMinutes => 15 * MINUTE,
            Self::Hour => 60 * MINUTE,
            Self::Day => 24 * 60 * MINUTE,
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|w| w.as_str() == text)
            .ok_or_else(|| format!("must be one of 1m, 5m, 15m, 1h, 1d, got {text:?}"))
    }
}

/// Raw readings, oldest first: `limit` (1..=10000, default 1000) per page, continued with
/// `cursor`.
pub async fn raw(
    State(state): State<ApiState>,
    caller: Caller,
    query: QueryParams,
) -> Result<ApiJson<ReadingsPage>> {
    query.allow_only(&["sensor", "metric", "zone", "from", "to", "limit", "cursor"])?;
    let filter = filter(&state, caller, &query, MAX_RAW_RANGE).await?;
    let limit = query
        .parsed("limit", |v| parse_limit(v, MAX_LIMIT))?
        .unwrap_or(DEFAULT_LIMIT);
    let after = query.parsed("cursor", decode_cursor)?;
    let page = state.store.readings(&filter, limit, after).await?;
    Ok(ApiJson(ReadingsPage {
        from: filter.from,
        to: filter.to,
        items: page.readings,
        next_cursor: page.next.map(encode_cursor),
    }))
}

/// Numeric readings aggregated per `bucket` (1m, 5m, 15m, 1h or 1d; default 1h).
pub async fn buckets(
    State(state): State<ApiState>,
    caller: Caller,
    query: QueryParams,
) -> Result<ApiJson<BucketsResponse>> {
    query.allow_only(&["sensor", "metric", "zone", "from", "to", "bucket"])?;
    let width = query
        .parsed("bucket", BucketWidth::parse)?
        .unwrap_or(BucketWidth::Hour);
    let filter = filter(&state, caller, &query, MAX_BUCKET_RANGE).await?;
    let span = filter.to.micros_since(filter.from);
    // Buckets touched by [from, to) when aligned on the epoch.
    let first = filter.from.unix_micros().div_euclid(width.micros());
    let last = (filter.to.unix_micros() - 1).div_euclid(width.micros());
    let count = last - first + 1;
    if count > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "the range ({} s) at bucket={} gives {count} buckets, at most {MAX_BUCKETS}: \
             use a wider bucket or a shorter range",
            span / 1_000_000,
            width.as_str()
        )));
    }
    let items = state.store.buckets(&filter, width.micros()).await?;
    Ok(ApiJson(BucketsResponse {
        from: filter.from,
        to: filter.to,
        bucket: width.as_str(),
        items,
    }))
}

/// Builds the caller's filter from the common parameters.
async fn filter(
    state: &ApiState,
    caller: Caller,
    query: &QueryParams,
    max_range: Duration,
) -> Result<ReadingFilter> {
    let sensors = ids(query, "sensor", SensorId::new)?;
    let metrics = ids(query, "metric", MetricName::new)?;
    let zone = query.parsed("zone", parse_zone_id)?;
    let (from, to) = time_range(query, Timestamp::now(), max_range)?;
    if let Some(zone) = &zone {
        let zones = state.store.list_zones(&caller.tenant).await?;
        if !zones.iter().any(|z| &z.id == zone) {
            return Err(ApiError::NotFound(format!("zone {zone} not found")));
        }
    }
    Ok(ReadingFilter {
        tenant: caller.tenant,
        sensors,
        metrics,
        zone,
        from,
        to,
    })
}

/// `from` and `to` of a query: a missing `to` is `now`, a missing `from` is `to` −
/// [`DEFAULT_RANGE`]; `from` must be before `to`, at most `max_range` before.
pub(crate) fn time_range(
    query: &QueryParams,
    now: Timestamp,
    max_range: Duration,
) -> Result<(Timestamp, Timestamp)> {
    let to = query.parsed("to", parse_time)?.unwrap_or(now);
    let from = match query.parsed("from", parse_time)? {
        Some(from) => from,
        None => Timestamp::from_unix_micros(to.unix_micros().saturating_sub(micros(DEFAULT_RANGE))),
    };
    if from >= to {
        return Err(ApiError::bad_request(format!(
            "from ({from}) must be before to ({to})"
        )));
    }
    if to.micros_since(from) > micros(max_range) {
        return Err(ApiError::bad_request(format!(
            "the range from {from} to {to} is longer than the {} days allowed",
            max_range.as_secs() / 86_400
        )));
    }
    Ok((from, to))
}

/// Every value of a repeatable `key` (at most [`MAX_IDS_PER_PARAM`]) parsed with `parse`.
pub(crate) fn ids<T, E: std::fmt::Display>(
    query: &QueryParams,
    key: &str,
    parse: impl Fn(String) -> Result<T, E>,
) -> Result<Vec<T>> {
    let values: Vec<&str> = query.all(key).collect();
    if values.len() > MAX_IDS_PER_PARAM {
        return Err(ApiError::bad_request(format!(
            "{key}: at most {MAX_IDS_PER_PARAM} values"
        )));
    }
    values
        .into_iter()
        .map(|v| parse(v.to_owned()).map_err(|e| ApiError::bad_request(format!("{key}: {e}"))))
        .collect()
}

/// A duration in microseconds, saturating.
pub(crate) fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Parses RFC 3339, accepting a space for the `+` of an offset (an unescaped `+` in a query).
pub(crate) fn parse_time(text: &str) -> Result<Timestamp, String> {
    let repaired;
    let text = match text.len().checked_sub(6) {
        Some(at) if text.len() > 20 && text.as_bytes()[at] == b' ' => {
            repaired = format!("{}+{}", &text[..at], &text[at + 1..]);
            repaired.as_str()
        }
        _ => text,
    };
    Timestamp::parse_rfc3339(text)
        .ok_or_else(|| format!("{text:?} is not an RFC 3339 time such as 2026-01-31T08:00:00Z"))
}

/// A cursor as the client sees it: base64url of the big-endian time and row id.
pub fn encode_cursor(cursor: ReadingCursor) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&cursor.time_us.to_be_bytes());
    bytes[8..].copy_from_slice(&cursor.id.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Parses [`encode_cursor`].
pub fn decode_cursor(text: &str) -> Result<ReadingCursor, String> {
    let invalid = || "not a cursor returned by this endpoint".to_owned();
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| invalid())?;
    let (time, id) = bytes.split_at(8);
    Ok(ReadingCursor {
        time_us: i64::from_be_bytes(time.try_into().map_err(|_| invalid())?),
        id: i64::from_be_bytes(id.try_into().map_err(|_| invalid())?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = ReadingCursor {
            time_us: -5,
            id: i64::MAX,
        };
        assert_eq!(decode_cursor(&encode_cursor(cursor)), Ok(cursor));
        for bad in ["", "abc", "!!!!", &URL_SAFE_NO_PAD.encode([0u8; 15])] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_parse_with_repaired_offsets() {
        let utc = parse_time("2026-01-31T08:00:00Z").expect("valid");
        assert_eq!(parse_time("2026-01-31T09:00:00+01:00"), Ok(utc));
        assert_eq!(parse_time("2026-01-31T09:00:00 01:00"), Ok(utc));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-01-31").is_err());
    }

    #[test]
    fn bucket_widths_parse() {
        for w in BucketWidth::ALL {
            assert_eq!(BucketWidth::parse(w.as_str()), Ok(w));
        }
        assert!(BucketWidth::parse("2m").is_err());
    }
}
