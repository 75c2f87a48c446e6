//! Shared raw views: the latest value of each series for every client that watches the same
//! readings with the same filter.
//!
//! ```text
//! committed batch ─► slot (series) ─► View (one per distinct filter): latest item per series,
//!                                     versioned, plus a bounded change log
//!                                        │ mark the view's clients "due" (one flag each)
//!                                        ▼
//! connection task ─► take_frames ─► changes since the version this client last read
//! ```
//! A value costs one insert per view, not one per client: a hundred operators on the same zone
//! cost the hub what one does. Each client only remembers the version it read up to. The
//! change log keeps the last changes in version order, so a client that keeps up reads just
//! what changed; one that fell further behind than the log reads the table of latest values,
//! which is bounded by the view's series. Either way it gets the latest value of each series
//! that changed (coalescing), never a growing backlog.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::protocol::FilterSpec;

/// Changes kept in the log beyond the view's series count: a client that keeps up with a
/// busy view finds what it missed there.
const LOG_SLACK: usize = 1024;

/// What identifies a view: its filter, normalized (lists sorted and deduplicated), so that two
/// requests naming the same series in another order share one view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ViewKey {
    metrics: Vec<String>,
    zones: Vec<String>,
    sensors: Vec<String>,
    bbox: Option<[u64; 4]>,
}

impl ViewKey {
    pub(crate) fn of(spec: &FilterSpec) -> Self {
        let sorted = |list: &[String]| {
            let mut list = list.to_vec();
            list.sort_unstable();
            list.dedup();
            list
        };
        Self {
            metrics: sorted(&spec.metrics),
            zones: sorted(&spec.zones),
            sensors: sorted(&spec.sensors),
            bbox: spec.bbox.map(|b| b.map(f64::to_bits)),
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    /// Bumped by every change.
    version: u64,
    /// Series id → (version of its latest change, its frame item).
    latest: HashMap<u32, (u64, Arc<str>)>,
    /// (version, series id) of recent changes, oldest first.
    log: VecDeque<(u64, u32)>,
}

/// What a client reads from a view.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// The latest item of each series that changed.
    pub(crate) items: Vec<Arc<str>>,
    /// Values that were replaced by a newer one before this read.
    pub(crate) coalesced: u64,
    /// The version read up to.
    pub(crate) version: u64,
}

/// One shared view.
#[derive(Debug, Default)]
pub(crate) struct View {
    table: Mutex<Table>,
}

impl View {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // Nothing panics while holding this lock; a poisoned table is still consistent.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The version a new subscriber starts from (it gets the snapshot separately).
    pub(crate) fn version(&self) -> u64 {
        self.lock().version
    }

    /// Records a batch's latest items, `(series id, item)`.
    pub(crate) fn update(&self, changes: Vec<(u32, Arc<str>)>) {
        let mut table = self.lock();
        for (series, item) in changes {
            table.version += 1;
            let version = table.version;
            table.latest.insert(series, (version, item));
            table.log.push_back((version, series));
        }
        let keep = table.latest.len() + LOG_SLACK;
        while table.log.len() > keep {
            table.log.pop_front();
        }
    }

    /// The latest item of every series changed after version `since`.
    pub(crate) fn changes_since(&self, since: u64) -> Changes {
        let table = self.lock();
        let mut changes = Changes {
            version: table.version,
            ..Changes::default()
        };
        let logged_from = table.log.front().map_or(table.version + 1, |(v, _)| *v);
        if since + 1 >= logged_from {
            // Every change after `since` is in the log: an entry is current when the series'
            // latest version is the entry's own.
            let start = table.log.partition_point(|(v, _)| *v <= since);
            for (version, series) in table.log.range(start..) {
                match table.latest.get(series) {
                    Some((latest, item)) if latest == version => changes.items.push(item.clone()),
                    _ => changes.coalesced += 1,
                }
            }
        } else {
            changes.items = table
                .latest
                .values()
                .filter(|(version, _)| *version > since)
                .map(|(_, item)| item.clone())
                .collect();
        }
        changes
    }
}

/// A view shared by reference.
pub(crate) type SharedView = Arc<View>;

#[cfg(test)]
mod tests {
    use super::*;

    fn item(text: &str) -> Arc<str> {
        text.into()
    }

    #[test]
    fn keys_ignore_order_and_duplicates() {
        let a = FilterSpec {
            zones: vec!["b".into(), "a".into(), "a".into()],
            ..FilterSpec::default()
        };
        let b = FilterSpec {
            zones: vec!["a".into(), "b".into()],
            ..FilterSpec::default()
        };
        assert_eq!(ViewKey::of(&a), ViewKey::of(&b));
        let c = FilterSpec {
            zones: vec!["a".into()],
            ..FilterSpec::default()
        };
        assert_ne!(ViewKey::of(&a), ViewKey::of(&c));
    }

    #[test]
    fn a_reader_gets_the_latest_of_each_changed_series_once() {
        let view = View::default();
        let start = view.version();
        view.update(vec![(1, item("a1")), (2, item("b1"))]);
        view.update(vec![(1, item("a2"))]);
        let changes = view.changes_since(start);
        assert_eq!(changes.items, vec![item("b1"), item("a2")]);
        assert_eq!(changes.coalesced, 1);
        assert!(view.changes_since(changes.version).items.is_empty());
        view.update(vec![(2, item("b2"))]);
        assert_eq!(view.changes_since(changes.version).items, vec![item("b2")]);
    }

    #[test]
    fn a_reader_behind_the_log_reads_the_table() {
        let view = View::default();
        view.update(vec![(1, item("first"))]);
        let after_first = view.version();
        // Far more changes than the log keeps, all on series 2.
        for i in 0..(2 * LOG_SLACK) {
            view.update(vec![(2, item(&format!("b{i}")))]);
        }
        let changes = view.changes_since(after_first);
        assert_eq!(
            changes.items,
            vec![item(&format!("b{}", 2 * LOG_SLACK - 1))]
        );
        // From the start, series 1 is included too (its change left the log long ago).
        let mut all = view.changes_since(0).items;
        all.sort();
        assert_eq!(
            all,
            vec![item(&format!("b{}", 2 * LOG_SLACK - 1)), item("first")]
        );
    }
}
