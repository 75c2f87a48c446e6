//! SQLite: pages of raw readings, read in index order (see [`crate::paging`] for the walk and
//! the merge).
//!
//! SQLite's planner takes the ordered index scans here without statistics: the walk searches
//! the `(tenant, time)` index (which ends with the rowid, the reading's id) and the merge
//! runs a `UNION ALL` of `(series, time)` index ranges, which it merges in order, reading
//! lazily. The series the plan is chosen from and the page are read in one transaction
//! (one snapshot).

use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::query::{READING_COLUMNS, READING_JOINS};
use super::SqliteStore;
use crate::paging::{
    page_start, push_selected_series, selects_series, PagePlan, SELECTED_READ, SERIES_COUNTED,
};
use crate::rows::reading_page_from;
use crate::{ReadingCursor, ReadingFilter, ReadingPage, Result};

/// The columns of `readings x` a page's subquery returns.
const PAGE_SCAN: &str = "SELECT x.id, x.time, x.series, x.value_num, x.value_bool, \
     x.value_text FROM readings x";

impl SqliteStore {
    pub(super) async fn select_readings(
        &self,
        filter: &ReadingFilter,
        limit: u32,
        after: Option<ReadingCursor>,
    ) -> Result<ReadingPage> {
        let limit = limit.max(1);
        let mut tx = self.pool.begin().await?;
        let (plan, series) = page_plan(&mut tx, filter).await?;
        let rows = match plan {
            PagePlan::Empty => Vec::new(),
            _ => {
                let mut q = QueryBuilder::new("");
                push_page(&mut q, filter, limit, after, plan, &series);
                q.build().fetch_all(&mut *tx).await?
            }
        };
        tx.commit().await?;
        reading_page_from(&rows, limit)
    }
}

/// How to read a page of `filter`, and the ids of the series it selects when a merge reads
/// them (ascending; at most [`SELECTED_READ`], a walk selects them in its statement).
async fn page_plan(
    conn: &mut SqliteConnection,
    filter: &ReadingFilter,
) -> Result<(PagePlan, Vec<i64>)> {
    if !selects_series(filter) {
        return Ok((PagePlan::Walk, Vec::new()));
    }
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT s.id, (SELECT count(*) FROM (SELECT 1 FROM series WHERE tenant = ",
    );
    q.push_bind(filter.tenant.as_str().to_owned())
        .push(" LIMIT ")
        .push_bind(SERIES_COUNTED)
        .push(")) AS counted FROM (");
    push_selected_series(&mut q, filter);
    q.push(") s ORDER BY s.id LIMIT ").push_bind(SELECTED_READ);
    let rows = q.build().fetch_all(conn).await?;
    let counted = match rows.first() {
        Some(row) => row.try_get("counted")?,
        None => 0,
    };
    let selected: Vec<i64> = rows
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<_, _>>()?;
    Ok((PagePlan::choose(selected.len(), counted), selected))
}

/// The statement of a page read by `plan` (a walk or a merge of `series`, see
/// [`page_plan`]): the columns [`crate::rows::reading_page_from`] reads, of at most
/// `limit + 1` readings in order.
fn push_page(
    q: &mut QueryBuilder<'_, Sqlite>,
    filter: &ReadingFilter,
    limit: u32,
    after: Option<ReadingCursor>,
    plan: PagePlan,
    series: &[i64],
) {
    // The page first, in a subquery of `readings` alone: the joins then run once per row of
    // the page, not of the range.
    q.push(READING_COLUMNS).push("(");
    if plan == PagePlan::Merge {
        // One branch per series (a `(series, time)` index range, in order), merged.
        for (i, id) in series.iter().enumerate() {
            if i > 0 {
                q.push(" UNION ALL ");
            }
            q.push(PAGE_SCAN).push(" WHERE x.series = ").push_bind(*id);
            push_range(q, filter, after);
        }
    } else {
        q.push(PAGE_SCAN)
            .push(" WHERE x.tenant = (SELECT key FROM tenants WHERE id = ")
            .push_bind(filter.tenant.as_str().to_owned())
            .push(")");
        if selects_series(filter) {
            q.push(" AND x.series IN (");
            push_selected_series(q, filter);
            q.push(")");
        }
        push_range(q, filter, after);
    }
    q.push(" ORDER BY time, id LIMIT ")
        .push_bind(i64::from(limit) + 1)
        .push(")")
        .push(READING_JOINS)
        .push(" ORDER BY r.time, r.id");
}

/// `AND` the readings of `x` in the page's range: from its start ([`page_start`]) to the
/// filter's end, after the cursor.
fn push_range(
    q: &mut QueryBuilder<'_, Sqlite>,
    filter: &ReadingFilter,
    after: Option<ReadingCursor>,
) {
    q.push(" AND x.time >= ")
        .push_bind(page_start(filter, after))
        .push(" AND x.time < ")
        .push_bind(filter.to.unix_micros());
    if let Some(cursor) = after {
        q.push(" AND (x.time, x.id) > (")
            .push_bind(cursor.time_us)
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
}
