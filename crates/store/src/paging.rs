//! How a page of raw readings is read, for both SQL backends.
//!
//! A page is the first `limit + 1` readings of a tenant's `[from, to)` in `(time, id)` order
//! after a cursor (the extra row tells whether a next page exists). Selecting every matching
//! reading and sorting them costs the range, not the page; both plans below read rows in index
//! order from the page's start ([`page_start`]) and stop after about `limit + 1`:
//!
//! - [`PagePlan::Walk`]: the `(tenant, time, id)` index, keeping the readings of the selected
//!   series. It also steps over the readings of the tenant's other series: about `limit + 1`
//!   times (tenant's series / selected series) rows. Right with no series filter or a broad
//!   one (a metric, a zone).
//! - [`PagePlan::Merge`]: one range of the `(series, time)` index per selected series, merged
//!   in `(time, id)` order: about `limit + 1` rows whatever the filter leaves out, but one
//!   branch of the statement per series. Right when the filter selects few of the tenant's
//!   series (a sensor, one metric of a small zone).
//!
//! The choice needs how many series the filter selects (a backend that keeps only their
//! number past a merge's reads at most [`SELECTED_READ`]) and whether the tenant has many more
//! (counted up to [`SERIES_COUNTED`]). Both plans return the same rows; the choice only
//! decides how many are read.

use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::{ReadingCursor, ReadingFilter};

/// Most series a merge reads, one branch of its statement each.
pub(crate) const MERGE_MAX_SERIES: usize = 32;
/// A merge is chosen when the tenant has at least this many series per selected one: a walk
/// would step over about as many rows per row it returns.
const MERGE_MIN_RATIO: usize = 16;
/// Selected series enough to choose: one more than a merge takes.
pub(crate) const SELECTED_READ: i64 = MERGE_MAX_SERIES as i64 + 1;
/// Series of the tenant counted to choose: enough to tell whether [`MERGE_MIN_RATIO`] holds.
pub(crate) const SERIES_COUNTED: i64 = (MERGE_MAX_SERIES * MERGE_MIN_RATIO) as i64;

/// How one page is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PagePlan {
    /// The filter selects no series: the page is empty.
    Empty,
    /// Walk the tenant's readings in order, keeping the selected series' (all without a
    /// series filter).
    Walk,
    /// Merge the readings of the selected series.
    Merge,
}

impl PagePlan {
    /// The plan for a series filter that selects `selected` of the tenant's `counted` series
    /// (either may stop at [`SELECTED_READ`] and [`SERIES_COUNTED`]).
    pub(crate) fn choose(selected: usize, counted: i64) -> Self {
        let wanted = i64::try_from(selected.saturating_mul(MERGE_MIN_RATIO));
        match selected {
            0 => Self::Empty,
            n if n <= MERGE_MAX_SERIES && wanted.is_ok_and(|w| w <= counted) => Self::Merge,
            _ => Self::Walk,
        }
    }
}

/// Whether `filter` narrows the tenant's series (by sensor, metric or zone).
pub(crate) fn selects_series(filter: &ReadingFilter) -> bool {
    !(filter.sensors.is_empty() && filter.metrics.is_empty() && filter.zone.is_none())
}

/// Where a page starts, in microseconds: at the range's start, or at the cursor's time when
/// later (a row after the cursor is not older than it). The indexes seek to it; the cursor's
/// row comparison alone left SQLite scanning from the range's start on every later page.
pub(crate) fn page_start(filter: &ReadingFilter, after: Option<ReadingCursor>) -> i64 {
    let from = filter.from.unix_micros();
    after.map_or(from, |cursor| from.max(cursor.time_us))
}

/// `SELECT id FROM series WHERE …`: the tenant's series that `filter` selects by sensor,
/// metric and zone (the same SQL on both backends).
pub(crate) fn push_selected_series<'a, DB>(q: &mut QueryBuilder<'a, DB>, filter: &ReadingFilter)
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
{
    let tenant = filter.tenant.as_str().to_owned();
    q.push("SELECT id FROM series WHERE tenant = ")
        .push_bind(tenant.clone());
    if !filter.sensors.is_empty() {
        q.push(" AND sensor IN (");
        let mut list = q.separated(", ");
        for sensor in &filter.sensors {
            list.push_bind(sensor.as_str().to_owned());
        }
        q.push(")");
    }
    if !filter.metrics.is_empty() {
        q.push(" AND metric IN (");
        let mut list = q.separated(", ");
        for metric in &filter.metrics {
            list.push_bind(metric.as_str().to_owned());
        }
        q.push(")");
    }
    if let Some(zone) = &filter.zone {
        q.push(" AND sensor IN (SELECT id FROM sensors WHERE tenant = ")
            .push_bind(tenant)
            .push(" AND zone = ")
            .push_bind(zone.as_str().to_owned())
            .push(")");
    }
}

#[cfg(test)]
mod tests {
    use beffroi_protocol::{MetricName, TenantId, Timestamp};

    use super::*;

    fn filter(from: i64) -> ReadingFilter {
        ReadingFilter {
            tenant: TenantId::new("t").expect("tenant"),
            sensors: vec![],
            metrics: vec![],
            zone: None,
            from: Timestamp::from_unix_micros(from),
            to: Timestamp::from_unix_micros(from + 1_000),
        }
    }

    #[test]
    fn few_selected_series_of_many_merge_and_the_rest_walk() {
        assert_eq!(PagePlan::choose(0, 500), PagePlan::Empty);
        assert_eq!(PagePlan::choose(1, 16), PagePlan::Merge);
        assert_eq!(PagePlan::choose(1, 15), PagePlan::Walk);
        assert_eq!(PagePlan::choose(2, 32), PagePlan::Merge);
        assert_eq!(PagePlan::choose(2, 31), PagePlan::Walk);
        assert_eq!(PagePlan::choose(32, SERIES_COUNTED), PagePlan::Merge);
        // More than a merge takes: walk, however many series the tenant has.
        let too_many = usize::try_from(SELECTED_READ).expect("small");
        assert_eq!(PagePlan::choose(too_many, SERIES_COUNTED), PagePlan::Walk);
        assert_eq!(PagePlan::choose(5_000, i64::MAX), PagePlan::Walk);
    }

    #[test]
    fn a_page_starts_at_the_later_of_the_range_start_and_the_cursor() {
        let f = filter(1_000);
        assert_eq!(page_start(&f, None), 1_000);
        let cursor = |time_us| Some(ReadingCursor { time_us, id: 5 });
        assert_eq!(page_start(&f, cursor(1_500)), 1_500);
        assert_eq!(page_start(&f, cursor(400)), 1_000);
    }

    #[test]
    fn only_sensor_metric_and_zone_filters_select_series() {
        let all = filter(0);
        assert!(!selects_series(&all));
        let metric = ReadingFilter {
            metrics: vec![MetricName::new("air.no2").expect("metric")],
            ..all
        };
        assert!(selects_series(&metric));
    }
}
