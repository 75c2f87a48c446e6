//! The delayed feed of an embargoed grantee view: each value reaches the grantee once it
//! passes the embargo (measured before `now − embargo_s`, the permit's cut), never before.
//!
//! ```text
//! subscribe under an embargoed permit ─► its own view, matched but not fed by the fan-out
//!   snapshot asked ─► the latest value of each series measured before the cut, read in
//!                     windows going back from it (newest first, at most SNAPSHOT_PAGES pages)
//!   task: at once, then every tick ─► Governor::readings([cursor, cut), after the last row)
//!     ─► pages of PAGE readings in (time, id) order, at most PAGES_PER_ROUND a round
//!     ─► the view's filter and the grant's coverage ─► Grant::item (admitted at `now`,
//!        allowed fields, pseudonym) ─► the view (latest per series) ─► the client's queue
//!        (the same frames, coalescing and slow-client close as undelayed values)
//! unsubscribe, replace, ended, disconnect ─► the task is cancelled, the grant closed
//! ```
//! Values never wait in memory for their embargo: the store keeps them, the feed keeps a
//! [`Cursor`]. A failed read is logged and counted (`beffroi_live_delayed_errors_total`), and
//! read again at the next tick from the same cursor. A reading committed after its embargo
//! had passed (a gateway's backlog after an outage) is behind the cursor: the view skips it,
//! as a live view skips a value older than the one it shows; REST reads serve it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use beffroi_policy::TimeRange;
use beffroi_protocol::{MetricName, SensorId, Timestamp};
use beffroi_store::{ReadingCursor, StoredReading};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::filter::Filter;
use crate::grant::{Governor, Grant, GrantRequest};
use crate::hub::Hub;
use crate::series::{LiveValue, SeriesMeta};
use crate::tenant::{feeds, SubRef};
use crate::view::SharedView;

/// Readings per page read from the store (their items are made on the executor: a page costs
/// well under a millisecond of CPU).
const PAGE: u32 = 256;
/// Most pages a round reads: a view far behind catches up over several ticks.
const PAGES_PER_ROUND: usize = 40;
/// Most pages a snapshot reads.
const SNAPSHOT_PAGES: usize = 40;
/// The first snapshot window, before the cut.
const FIRST_WINDOW: Duration = Duration::from_secs(1);
/// Each snapshot window is this many times as long as the one after it.
const WINDOW_GROWTH: i64 = 4;

/// How far a delayed feed released: every reading measured before `from` and, in the range
/// being paged, every one up to the row `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    from: Timestamp,
    after: Option<ReadingCursor>,
}

impl Cursor {
    /// Nothing measured from `start` on released yet.
    pub(crate) fn new(start: Timestamp) -> Self {
        Self {
            from: start,
            after: None,
        }
    }

    /// The range to read when values measured before `cut` may be released; `None` when
    /// nothing before the cut is left (the cut never takes the cursor back).
    pub(crate) fn range(&self, cut: Timestamp) -> Option<TimeRange> {
        let behind = self
            .after
            .is_some_and(|after| cut.unix_micros() <= after.time_us);
        let range = TimeRange::new(self.from, cut);
        (!behind && !range.is_empty()).then_some(range)
    }

    /// Where the next page of the range starts.
    pub(crate) fn after(&self) -> Option<ReadingCursor> {
        self.after
    }

    /// Moves past a page read over `range`: after its last row while more follow (`next`),
    /// past the whole range on its last page. Returns whether more follow.
    pub(crate) fn advance(&mut self, range: TimeRange, next: Option<ReadingCursor>) -> bool {
        match next {
            Some(next) => {
                self.after = Some(next);
                true
            }
            None => {
                self.from = range.to;
                self.after = None;
                false
            }
        }
    }
}

/// The windows a snapshot reads, newest first: `[cut − FIRST_WINDOW, cut)`, then each
/// [`WINDOW_GROWTH`] times as long as the one before, back to `horizon`.
fn snapshot_windows(cut: Timestamp, horizon: Timestamp) -> impl Iterator<Item = TimeRange> {
    let mut end = cut;
    let mut span_us = i64::try_from(FIRST_WINDOW.as_micros()).unwrap_or(i64::MAX);
    std::iter::from_fn(move || {
        if end <= horizon {
            return None;
        }
        let start = Timestamp::from_unix_micros(end.unix_micros().saturating_sub(span_us));
        let window = TimeRange::new(start.max(horizon), end);
        end = window.from;
        span_us = span_us.saturating_mul(WINDOW_GROWTH);
        Some(window)
    })
}

/// The delayed feed of one embargoed view.
pub(crate) struct DelayedFeed {
    hub: Hub,
    governor: Arc<dyn Governor>,
    request: GrantRequest,
    grant: Arc<Grant>,
    filter: Filter,
    view: SharedView,
    target: SubRef,
    cursor: Cursor,
}

impl DelayedFeed {
    /// The feed of `view` (subscription `target`), starting at the cut: values measured
    /// before it are the snapshot's.
    pub(crate) fn new(
        hub: Hub,
        governor: Arc<dyn Governor>,
        request: GrantRequest,
        grant: Arc<Grant>,
        filter: Filter,
        view: SharedView,
        target: SubRef,
    ) -> Self {
        let start = grant.served().map_or(grant.started(), |served| served.to);
        Self {
            hub,
            governor,
            request,
            grant,
            filter,
            view,
            target,
            cursor: Cursor::new(start),
        }
    }

    /// The snapshot: the latest value measured before the cut of each series the view takes,
    /// as items, oldest first. Windows are read back from the cut until every series in
    /// `wanted` has a value, the permit's range starts, or [`SNAPSHOT_PAGES`] pages were read
    /// (a window read in part is left out: its values may not be its series' latest).
    pub(crate) async fn snapshot(
        &self,
        wanted: &[Arc<SeriesMeta>],
    ) -> beffroi_store::Result<Vec<Arc<str>>> {
        let Some(served) = self.grant.served() else {
            return Ok(Vec::new());
        };
        let cut = self.cursor.from.min(served.to);
        let wanted: HashSet<(&SensorId, &MetricName)> =
            wanted.iter().map(|m| (&m.sensor, &m.metric)).collect();
        let mut latest: HashMap<(SensorId, MetricName), StoredReading> = HashMap::new();
        let mut pages = SNAPSHOT_PAGES;
        'windows: for window in snapshot_windows(cut, served.from) {
            let mut found = HashMap::new();
            let mut cursor = Cursor::new(window.from);
            loop {
                if pages == 0 {
                    break 'windows;
                }
                pages -= 1;
                let page = self
                    .governor
                    .readings(&self.request, &self.grant, window, cursor.after(), PAGE)
                    .await?;
                for reading in page.readings {
                    // In time order: the last one of a series is its latest.
                    found.insert((reading.sensor.clone(), reading.metric.clone()), reading);
                }
                if !cursor.advance(window, page.next) {
                    break;
                }
            }
            for (series, reading) in found {
                latest.entry(series).or_insert(reading);
            }
            let complete = wanted
                .iter()
                .all(|(s, m)| latest.contains_key(&((*s).clone(), (*m).clone())));
            if !wanted.is_empty() && complete {
                break;
            }
        }
        let mut readings: Vec<StoredReading> = latest.into_values().collect();
        readings
            .sort_by(|a, b| (a.time, &a.sensor, &a.metric).cmp(&(b.time, &b.sensor, &b.metric)));
        Ok(self.items(&readings).into_iter().map(|(_, i)| i).collect())
    }

    /// Releases what passes the embargo: at once, then every tick, until `cancel` fires.
    pub(crate) async fn run(mut self, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(self.hub.config().tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.round() => {}
            }
        }
    }

    /// One round: the pages of what passed the embargo since the last, until caught up or
    /// [`PAGES_PER_ROUND`] pages were read; a failed read ends the round (the next one reads
    /// the same page again).
    async fn round(&mut self) {
        for _ in 0..PAGES_PER_ROUND {
            let Some(range) = self
                .grant
                .served()
                .and_then(|served| self.cursor.range(served.to))
            else {
                return;
            };
            let page = match self
                .governor
                .readings(&self.request, &self.grant, range, self.cursor.after(), PAGE)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    self.hub.metrics().live_delayed_errors.incr();
                    tracing::warn!(
                        %error,
                        grantor = %self.request.grantor,
                        "cannot read the values of a delayed view; read again at the next tick"
                    );
                    return;
                }
            };
            let changes = self.items(&page.readings);
            if !changes.is_empty() {
                self.view.update(changes);
                self.target.client.view_changed();
            }
            if !self.cursor.advance(range, page.next) {
                return;
            }
        }
    }

    /// The items of `readings` (in order) the view shows, with their series ids: those its
    /// filter and grant take, admitted and shaped by the grant.
    fn items(&self, readings: &[StoredReading]) -> Vec<(u32, Arc<str>)> {
        let Some(series) = self.hub.series_of(&self.request.grantor, readings) else {
            return Vec::new();
        };
        readings
            .iter()
            .filter_map(|reading| {
                let (meta, info) = series.get(&(&reading.sensor, &reading.metric))?;
                if !feeds(&self.filter, Some(&self.grant), meta, info) {
                    return None;
                }
                // The series keeps the unit of its latest value; this one has its own.
                let own;
                let meta = if meta.unit == reading.unit {
                    meta.as_ref()
                } else {
                    own = SeriesMeta {
                        id: meta.id,
                        sensor: meta.sensor.clone(),
                        metric: meta.metric.clone(),
                        unit: reading.unit.clone(),
                    };
                    &own
                };
                let value = LiveValue {
                    time: reading.time,
                    value: reading.value.clone(),
                    gateway: Arc::new(reading.gateway.clone()),
                };
                let item = self.grant.item(meta, info, &value)?;
                Some((meta.id, item))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix_micros(s * 1_000_000)
    }

    fn row(s: i64, id: i64) -> ReadingCursor {
        ReadingCursor {
            time_us: s * 1_000_000,
            id,
        }
    }

    #[test]
    fn a_cursor_pages_a_range_then_moves_past_it() {
        let mut cursor = Cursor::new(at(100));
        assert_eq!(cursor.range(at(100)), None, "nothing before the start");
        let range = cursor.range(at(110)).unwrap();
        assert_eq!(range, TimeRange::new(at(100), at(110)));
        // A full page: the next one starts after its last row, in the same range.
        assert!(cursor.advance(range, Some(row(104, 7))));
        assert_eq!(cursor.after(), Some(row(104, 7)));
        // The cut moved on meanwhile: the range grows, still after that row.
        let range = cursor.range(at(112)).unwrap();
        assert_eq!(range, TimeRange::new(at(100), at(112)));
        assert_eq!(cursor.after(), Some(row(104, 7)));
        // Its last page: everything before the cut was read.
        assert!(!cursor.advance(range, None));
        assert_eq!(cursor, Cursor::new(at(112)));
        assert_eq!(cursor.range(at(112)), None);
        assert_eq!(
            cursor.range(at(113)),
            Some(TimeRange::new(at(112), at(113)))
        );
    }

    #[test]
    fn a_cut_going_back_never_releases_a_row_again() {
        let mut cursor = Cursor::new(at(100));
        let range = cursor.range(at(110)).unwrap();
        cursor.advance(range, Some(row(108, 3)));
        // The clock went back before the last row released: nothing to read.
        assert_eq!(cursor.range(at(108)), None);
        assert_eq!(cursor.range(at(105)), None);
        // And before the start: nothing either.
        let mut fresh = Cursor::new(at(100));
        assert_eq!(fresh.range(at(90)), None);
        let range = fresh.range(at(101)).unwrap();
        fresh.advance(range, None);
        assert_eq!(fresh.range(at(100)), None);
    }

    #[test]
    fn snapshot_windows_go_back_from_the_cut_growing_to_the_horizon() {
        let windows: Vec<TimeRange> = snapshot_windows(at(1000), at(950)).collect();
        assert_eq!(
            windows,
            vec![
                TimeRange::new(at(999), at(1000)),
                TimeRange::new(at(995), at(999)),
                TimeRange::new(at(979), at(995)),
                TimeRange::new(at(950), at(979)),
            ]
        );
        assert_eq!(snapshot_windows(at(1000), at(1000)).count(), 0);
        // A day back takes a handful of windows, not thousands.
        assert!(snapshot_windows(at(100_000), at(100_000 - 86_400)).count() <= 10);
    }
}
