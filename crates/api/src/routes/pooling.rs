//! `GET /api/v1/pooling/usage` (admin): what an operator's pooled sensor network served each
//! beneficiary, per calendar month or day — to bill its partners or report to them.
//!
//! One row per pooling agreement and period: the beneficiary, the pooled **sensors** (the
//! operator's sensors that stood inside the agreement's target at some time of the period
//! while the agreement pooled it: its validity window, placements included), the
//! **accesses** permitted under the agreement (REST reads, exports, live views — each
//! opening and closing counted once per entry — and alarm changes on pooled sensors), the
//! **readings served** (rows of those accesses: a REST page's rows, an export's and a live
//! view's values at their closing entry, one per alarm change) and the accesses **denied**
//! that named the agreement.
//!
//! The figures come from the operator's own audit log, the tamper-evident record of every
//! access decision, so a report can be checked against it line by line. Reading it is an
//! access to the log: it needs the admin role and is recorded (query `{"resource":
//! "pooling_usage", …}`) before the answer leaves, like `GET /api/v1/audit`.
//!
//! Parameters: `from`, `to` (RFC 3339, `[from, to)`; default: the current month so far, at
//! most 366 days), `period` (`month`, the default, or `day`; periods are cut at `from` and
//! `to`), `format` (`json`, the default, or `csv`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use beffroi_audit::{AccessDetail, AuditKind};
use beffroi_policy::{Agreement, AgreementId, Grantee, Scope, TimeRange};
use beffroi_protocol::{MetricName, TenantId, Timestamp};
use beffroi_store::{AuditFilter, Role};
use serde::{Deserialize as _, Serialize};
use serde_json::json;

use crate::audit::record_access;
use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::governed::{compact_time, Registry};
use crate::query::QueryParams;
use crate::routes::readings::time_range;
use crate::ApiState;

/// Longest range of one report.
const MAX_RANGE: Duration = Duration::from_secs(366 * 86_400);
/// Audit entries read per store call.
const PAGE: u32 = 1000;
/// The columns of the CSV form, in order.
const CSV_HEADER: &str =
    "beneficiary,agreement,period_from,period_to,sensors,accesses,readings_served,denied";

/// How a report is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Month,
    Day,
}

impl Period {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "month" => Ok(Self::Month),
            "day" => Ok(Self::Day),
            other => Err(format!("expected month or day, got {other:?}")),
        }
    }

    /// The periods covering `range`, cut at its ends.
    fn cut(self, range: TimeRange) -> Vec<TimeRange> {
        let mut periods = Vec::new();
        let mut from = range.from;
        while from < range.to {
            let next = match self {
                Self::Month => from.next_month_start(),
                Self::Day => {
                    let day = 86_400_000_000;
                    Timestamp::from_unix_micros((from.unix_micros().div_euclid(day) + 1) * day)
                }
            };
            let to = next.min(range.to);
            periods.push(TimeRange::new(from, to));
            from = to;
        }
        periods
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    /// The beneficiary tenant.
    pub beneficiary: TenantId,
    /// The pooling agreement.
    pub agreement: AgreementId,
    /// Start of the period.
    pub period_from: Timestamp,
    /// End of the period (exclusive).
    pub period_to: Timestamp,
    /// The operator's sensors pooled to the beneficiary in the period.
    pub sensors: u64,
    /// Accesses permitted under the agreement.
    pub accesses: u64,
    /// Readings those accesses served.
    pub readings_served: u64,
    /// Accesses denied that named the agreement.
    pub denied: u64,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct UsageReport {
    /// The operator.
    pub operator: TenantId,
    /// Its range.
    pub from: Timestamp,
    /// Its end (exclusive).
    pub to: Timestamp,
    /// The rows, by agreement then period.
    pub items: Vec<UsageRow>,
}

/// What the audit log says of one agreement in one period.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    accesses: u64,
    readings: u64,
    denied: u64,
}

/// The caller's pooling usage report (admin); the read is recorded before it is answered.
pub async fn usage(
    State(state): State<ApiState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Response> {
    caller.require(Role::Admin)?;
    query.allow_only(&["from", "to", "period", "format"])?;
    let now = state.clock.now();
    let range = if query.single("from")?.is_some() {
        let (from, to) = time_range(&query, now, MAX_RANGE)?;
        TimeRange::new(from, to)
    } else {
        let to = query
            .parsed("to", crate::routes::readings::parse_time)?
            .unwrap_or(now);
        TimeRange::new(to.month_start(), to)
    };
    if range.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the range from {} to {} is empty",
            range.from, range.to
        )));
    }
    let period = query
        .parsed("period", Period::parse)?
        .unwrap_or(Period::Month);
    let csv = match query.single("format")? {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format: expected json or csv, got {other:?}"
            )))
        }
    };
    let report = report(&state, &caller.tenant, range, period).await?;
    let body = if csv {
        to_csv(&report.items)
    } else {
        serde_json::to_string(&report)
            .map_err(|e| ApiError::bad_request(format!("cannot encode the report: {e}")))?
    };
    let read = json!({
        "resource": "pooling_usage", "from": range.from, "to": range.to,
        "period": match period { Period::Month => "month", Period::Day => "day" },
    });
    let rows = report.items.len() as u64;
    record_access(&state, &caller, read, rows, body.as_bytes()).await?;
    if !csv {
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    let name = format!(
        "attachment; filename=\"pooling-usage_{}_{}_{}.csv\"",
        caller.tenant,
        compact_time(range.from),
        compact_time(range.to)
    );
    let headers = [
        (
            header::CONTENT_TYPE,
            "text/csv; charset=utf-8; header=present".to_owned(),
        ),
        (header::CONTENT_DISPOSITION, name),
    ];
    Ok((headers, body).into_response())
}

/// The rows of `operator`'s pooling agreements over `range`, cut by `period`.
async fn report(
    state: &ApiState,
    operator: &TenantId,
    range: TimeRange,
    period: Period,
) -> Result<UsageReport> {
    let pooling: Vec<Agreement> = state
        .store
        .list_agreements(operator)
        .await?
        .into_iter()
        .map(|r| r.agreement)
        .filter(|a| a.pooling)
        .collect();
    let periods = period.cut(range);
    let tallies = tally(state, operator, range, &periods, &pooling).await?;
    let metrics = state.store.series_metrics(operator).await?;
    let mut items = Vec::new();
    for agreement in &pooling {
        let Grantee::Tenant(beneficiary) = &agreement.grantee else {
            continue;
        };
        let scope = Scope::of_target(&agreement.target);
        let registry =
            Registry::load(state.store.as_ref(), operator, &agreement.grantee, &scope).await?;
        let covered: Vec<MetricName> = metrics
            .iter()
            .filter(|m| scope.metrics.iter().any(|p| p.matches(m)))
            .cloned()
            .collect();
        for (i, period) in periods.iter().enumerate() {
            let pooled = TimeRange::new(
                period.from.max(agreement.not_before),
                period.to.min(agreement.not_after),
            );
            let tally = tallies
                .get(&(agreement.id.clone(), i))
                .copied()
                .unwrap_or_default();
            let sensors = if pooled.is_empty() {
                0
            } else {
                registry.count_during(&scope, &covered, pooled)
            };
            if sensors == 0 && tally.accesses == 0 && tally.denied == 0 {
                continue;
            }
            items.push(UsageRow {
                beneficiary: beneficiary.clone(),
                agreement: agreement.id.clone(),
                period_from: period.from,
                period_to: period.to,
                sensors,
                accesses: tally.accesses,
                readings_served: tally.readings,
                denied: tally.denied,
            });
        }
    }
    Ok(UsageReport {
        operator: operator.clone(),
        from: range.from,
        to: range.to,
        items,
    })
}

/// The access entries of `operator`'s log in `range` that name one of `pooling`, tallied by
/// agreement and period index.
async fn tally(
    state: &ApiState,
    operator: &TenantId,
    range: TimeRange,
    periods: &[TimeRange],
    pooling: &[Agreement],
) -> Result<BTreeMap<(AgreementId, usize), Tally>> {
    let filter = AuditFilter {
        kinds: vec![AuditKind::AccessPermit, AuditKind::AccessDeny],
        from: Some(range.from),
        to: Some(range.to),
    };
    let mut tallies: BTreeMap<(AgreementId, usize), Tally> = BTreeMap::new();
    let mut after = 0;
    loop {
        let entries = state
            .store
            .audit_entries(operator, &filter, after, PAGE)
            .await?;
        for entry in &entries {
            let Ok(detail) = AccessDetail::deserialize(&entry.detail) else {
                continue;
            };
            let Some(agreement) = detail
                .agreement
                .and_then(|a| pooling.iter().find(|p| p.id.as_str() == a.id))
            else {
                continue;
            };
            let Some(index) = periods.iter().position(|p| p.contains(entry.time)) else {
                continue;
            };
            let tally = tallies.entry((agreement.id.clone(), index)).or_default();
            if entry.kind == AuditKind::AccessPermit {
                tally.accesses += 1;
                tally.readings = tally.readings.saturating_add(detail.rows);
            } else {
                tally.denied += 1;
            }
        }
        match entries.last() {
            Some(last) if entries.len() == PAGE as usize => after = last.seq,
            _ => return Ok(tallies),
        }
    }
}

/// The rows as RFC 4180 CSV with a header (ids are slugs: no field needs quoting).
fn to_csv(rows: &[UsageRow]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push_str("\r\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\r\n",
            r.beneficiary,
            r.agreement,
            r.period_from,
            r.period_to,
            r.sensors,
            r.accesses,
            r.readings_served,
            r.denied
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap_or_else(|| panic!("{text}"))
    }

    #[test]
    fn periods_are_calendar_months_or_days_cut_at_the_range() {
        let range = TimeRange::new(at("2026-11-20T12:00:00Z"), at("2027-01-03T00:00:00Z"));
        let months: Vec<_> = Period::Month
            .cut(range)
            .iter()
            .map(|p| (p.from.to_string(), p.to.to_string()))
            .collect();
        assert_eq!(
            months,
            [
                ("2026-11-20T12:00:00.000000Z", "2026-12-01T00:00:00.000000Z"),
                ("2026-12-01T00:00:00.000000Z", "2027-01-01T00:00:00.000000Z"),
                ("2027-01-01T00:00:00.000000Z", "2027-01-03T00:00:00.000000Z"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        let days = Period::Day.cut(TimeRange::new(
            at("2026-12-01T06:00:00Z"),
            at("2026-12-03T00:00:00Z"),
        ));
        assert_eq!(days.len(), 2);
        assert_eq!(days[1].from, at("2026-12-02T00:00:00Z"));
        assert!(Period::parse("week").is_err());
    }
}
