//! UTC timestamps with microsecond precision (the precision of PostgreSQL `timestamptz`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC instant, in microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `micros` microseconds after the Unix epoch (negative: before).
    pub const fn from_unix_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// The instant `millis` milliseconds after the Unix epoch, saturating.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis.saturating_mul(1000))
    }

    /// Fractional seconds since the epoch (SenML `t`), rounded to the microsecond; `None`
    /// when not finite or out of range.
    pub fn from_unix_seconds_f64(seconds: f64) -> Option<Self> {
        let micros = (seconds * 1e6).round();
        (micros.is_finite() && micros.abs() < 9.0e18).then_some(Self(micros as i64))
    }

    /// Microseconds since the Unix epoch.
    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    /// The current time of the system clock.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Signed distance `self - earlier`, saturating.
    pub fn micros_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// This instant moved by `delta`, saturating.
    pub fn saturating_add(self, delta: Duration) -> Self {
        let micros = i64::try_from(delta.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(micros))
    }

    /// This instant moved back by `delta`, saturating.
    pub fn saturating_sub(self, delta: Duration) -> Self {
        let micros = i64::try_from(delta.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(micros))
    }

    /// The first instant of this instant's calendar month (UTC).
    pub fn month_start(self) -> Self {
        let (year, month, _) = civil_from_days(self.0.div_euclid(MICROS_PER_DAY));
        Self(days_from_civil(year, month, 1) * MICROS_PER_DAY)
    }

    /// The first instant of the calendar month after this instant's (UTC).
    pub fn next_month_start(self) -> Self {
        let (year, month, _) = civil_from_days(self.0.div_euclid(MICROS_PER_DAY));
        let (year, month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        Self(days_from_civil(year, month, 1).saturating_mul(MICROS_PER_DAY))
    }
}

/// Microseconds in a day.
const MICROS_PER_DAY: i64 = 86_400_000_000;

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_micros()).unwrap_or(i64::MAX)),
            Err(before) => Self(-i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX)),
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(time: Timestamp) -> Self {
        let micros = Duration::from_micros(time.0.unsigned_abs());
        if time.0 >= 0 {
            UNIX_EPOCH + micros
        } else {
            UNIX_EPOCH - micros
        }
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with microseconds, e.g. `2026-11-23T02:27:13.000000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}

impl Timestamp {
    /// Parses RFC 3339 (`2026-11-23T02:27:13Z`, `2026-11-23T03:27:13.5+01:00`); fractions
    /// beyond microseconds are truncated. `None` when malformed.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<i64> {
            let part = text.get(range)?;
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let mut pos = 19;
        let mut micros = 0i64;
        if b.get(pos) == Some(&b'.') {
            pos += 1;
            let start = pos;
            while b.get(pos).is_some_and(u8::is_ascii_digit) {
                if pos - start < 6 {
                    micros = micros * 10 + i64::from(b[pos] - b'0');
                }
                pos += 1;
            }
            if pos == start {
                return None;
            }
            for _ in (pos - start)..6 {
                micros *= 10;
            }
        }
        let offset_secs = match b.get(pos)? {
            b'Z' | b'z' if pos + 1 == b.len() => 0,
            sign @ (b'+' | b'-') if pos + 6 == b.len() && b[pos + 3] == b':' => {
                let (oh, om) = (num(pos + 1..pos + 3)?, num(pos + 4..pos + 6)?);
                if oh > 23 || om > 59 {
                    return None;
                }
                let offset = oh * 3600 + om * 60;
                if *sign == b'-' {
                    -offset
                } else {
                    offset
                }
            }
            _ => return None,
        };
        let secs =
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59)
                - offset_secs;
        Some(Self(secs * 1_000_000 + micros))
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    /// Accepts RFC 3339 text or SenML-style seconds since the epoch.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Seconds(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(text) => Timestamp::parse_rfc3339(&text)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 time {text:?}"))),
            Raw::Seconds(secs) => Timestamp::from_unix_seconds_f64(secs)
                .ok_or_else(|| serde::de::Error::custom("time out of range")),
        }
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_months() {
        let at = |text: &str| Timestamp::parse_rfc3339(text).unwrap();
        let mid = at("2026-12-05T14:00:00Z");
        assert_eq!(mid.month_start(), at("2026-12-01T00:00:00Z"));
        assert_eq!(mid.next_month_start(), at("2027-01-01T00:00:00Z"));
        assert_eq!(
            at("2028-02-29T23:59:59Z").next_month_start(),
            at("2028-03-01T00:00:00Z")
        );
        let start = at("2026-03-01T00:00:00Z");
        assert_eq!(
            (start.month_start(), start.next_month_start()),
            (start, at("2026-04-01T00:00:00Z"))
        );
        assert_eq!(
            at("1969-12-31T23:00:00Z").month_start(),
            at("1969-12-01T00:00:00Z")
        );
    }

    #[test]
    fn converts_to_and_from_system_time() {
        for micros in [0, 1_764_000_000_123_456, -86_400_000_001] {
            let time = Timestamp::from_unix_micros(micros);
            assert_eq!(Timestamp::from(SystemTime::from(time)), time);
        }
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(
            Timestamp::from_unix_micros(0).to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            Timestamp::from_unix_micros(1_795_400_833_123_456).to_string(),
            "2026-11-23T02:27:13.123456Z"
        );
        assert_eq!(
            Timestamp::from_unix_micros(-1).to_string(),
            "1969-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn parses_rfc3339() {
        let parse = |s| Timestamp::parse_rfc3339(s).map(Timestamp::unix_micros);
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse("2026-11-23T02:27:13.123456Z"),
            Some(1_795_400_833_123_456)
        );
        assert_eq!(
            parse("2026-11-23T03:27:13.1234567+01:00"),
            Some(1_795_400_833_123_456)
        );
        assert_eq!(
            parse("2024-02-29T00:00:00-00:30"),
            Some(1_709_166_600_000_000)
        );
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-23T02:27:13",
            "2026-11-23T02:27:13.Z",
            "2026-11-23T02:27:13Zx",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        for micros in [
            -86_400_000_001i64,
            0,
            951_782_400_000_000,
            1_795_400_833_123_456,
        ] {
            let t = Timestamp::from_unix_micros(micros);
            assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t));
        }
    }

    #[test]
    fn senml_seconds() {
        let t = Timestamp::from_unix_seconds_f64(1.5).expect("finite");
        assert_eq!(t.unix_micros(), 1_500_000);
        assert!(Timestamp::from_unix_seconds_f64(f64::NAN).is_none());
    }
}
