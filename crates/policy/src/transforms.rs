//! What a permit obliges the query layer to do: the effective scope, the served time range,
//! the shape of the output (raw columns, or buckets, functions, spatial level and k), and
//! whether to pseudonymise.
//!
//! [`Transforms::admits`] is the one per-reading rule: the store applies it to rows it
//! returns, exports to rows they write, and the live hub to every value it pushes, with the
//! current `now` — so a live view stops at `valid_until` and never shows data younger than
//! the embargo, exactly like a REST query made at that instant.

use std::collections::BTreeSet;

use beffroi_protocol::Timestamp;
use serde::Serialize;

use crate::reading::ReadingFacts;
use crate::scope::Scope;
use crate::terms::{Field, Function, SpatialLevel};
use crate::window::{seconds_before, BucketSpec, TimeRange};

/// The query layer's orders for one permitted read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transforms {
    /// What may be served: request filters intersected with the agreement's target.
    pub scope: Scope,
    /// The time range served at the instant of the decision.
    pub range: TimeRange,
    /// How the served range moves with time (live views).
    pub window: TimeWindow,
    /// The agreement's `not_after`: nothing is served from this instant on.
    pub valid_until: Timestamp,
    /// Pooling agreements: only readings measured in this period (the agreement's validity
    /// window) are served, whatever the request's range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<TimeRange>,
    /// Replace sensor ids by [`crate::pseudonym()`]s (raw `sensor` column, sensor-level units).
    pub pseudonymise: bool,
    /// Raw rows or aggregates.
    pub shape: Shape,
}

/// The time window of a permit, evaluated at any `now`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimeWindow {
    /// First instant served (aggregates: the start of the bucket holding the requested
    /// `from`).
    pub from: Timestamp,
    /// End of the request (aggregates: rounded up to a bucket boundary).
    pub until: Timestamp,
    /// Nothing measured at or after `now − embargo_s` is served.
    pub embargo_s: u64,
    /// For aggregates: only whole buckets of this grid, ended before `now − embargo_s`, are
    /// served (a partial bucket compared with the full one later would reveal a finer
    /// bucket than agreed).
    pub whole_buckets: Option<BucketSpec>,
}

impl TimeWindow {
    /// The range served at `now`, if any.
    pub fn served(&self, now: Timestamp) -> Option<TimeRange> {
        let cut = seconds_before(now, self.embargo_s);
        let cut = match &self.whole_buckets {
            Some(grid) => grid.floor(cut),
            None => cut,
        };
        let range = TimeRange::new(self.from, self.until.min(cut));
        (!range.is_empty()).then_some(range)
    }
}

/// The shape of the output.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Raw rows with only these columns.
    Raw {
        /// Columns to keep; every other column is dropped.
        fields: BTreeSet<Field>,
    },
    /// Aggregates.
    Aggregate(Aggregation),
}

/// How to aggregate and what to suppress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregation {
    /// The grid of the served buckets.
    pub bucket: BucketSpec,
    /// The agreement's finest grid (its `min_bucket_s` on the epoch; the requested grid when
    /// a raw agreement has none): cells are computed and suppressed at this grid, then
    /// rolled up (see [`crate::suppress()`]).
    pub fine_bucket: BucketSpec,
    /// Functions to compute and publish.
    pub functions: BTreeSet<Function>,
    /// Spatial unit of the cells.
    pub spatial_level: SpatialLevel,
    /// Minimum distinct sensors per published cell.
    pub k: u32,
    /// The readings cells are computed from: the agreement's own target over the served
    /// metrics when `k > 1` (a canonical grid, so suppression cannot depend on request
    /// filters), the effective scope when `k = 1`. Units outside [`Transforms::scope`] are
    /// computed but not published.
    pub grid: Scope,
}

impl Transforms {
    /// The readings rows or cells are computed from: the effective scope for raw rows, the
    /// canonical grid for aggregates.
    pub fn population(&self) -> &Scope {
        match &self.shape {
            Shape::Raw { .. } => &self.scope,
            Shape::Aggregate(aggregation) => &aggregation.grid,
        }
    }

    /// The range served at `now`; `None` once the agreement has expired or when nothing is
    /// old enough. A pooling agreement's range stays inside its period, so the first and last
    /// buckets of an aggregate may hold only the part of them measured in it.
    pub fn served_range(&self, now: Timestamp) -> Option<TimeRange> {
        if now >= self.valid_until {
            return None;
        }
        let range = self.window.served(now)?;
        let Some(period) = self.period else {
            return Some(range);
        };
        let range = TimeRange::new(range.from.max(period.from), range.to.min(period.to));
        (!range.is_empty()).then_some(range)
    }

    /// Whether `reading` may enter this read at `now`: in [`Transforms::population`] and in
    /// [`Transforms::served_range`] (for a pooling agreement, inside its
    /// [`Transforms::period`]). Cheap enough to call per value.
    pub fn admits(&self, reading: &ReadingFacts<'_>, now: Timestamp) -> bool {
        self.served_range(now)
            .is_some_and(|range| range.contains(reading.time))
            && self.population().admits(reading)
    }
}
