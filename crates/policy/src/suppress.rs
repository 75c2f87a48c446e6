//! Small-cell suppression with complementary suppression, over the cell table the store
//! computes for one metric of an aggregate permit.
//!
//! # Input
//! One [`Cell`] per (fine bucket, spatial unit) with data, at the permit's
//! [`Aggregation::fine_bucket`] grid, computed from the readings of
//! [`Aggregation::grid`] — every unit of the agreement's scope, whatever the request
//! filtered, so that what is suppressed never depends on the request. Units must partition
//! the sensors (a sensor counts in one unit per bucket): with zones, sensors without a zone
//! go in a unit of their own or are out of scope. Cells with no sensor are ignored.
//!
//! # Rules
//! Within each fine bucket, the cells and the bucket's total (computed here as the sum of
//! the cells, so it never covers anything outside the grid) form a group.
//! - **Primary**: a cell with fewer than `k` distinct sensors is suppressed. The total is
//!   published when it has at least `k` distinct sensors.
//! - **Complementary**: while the total is published and the suppressed cells of the group
//!   hold, together, fewer than `k` sensors, the published cell with the fewest distinct
//!   sensors (ties: smallest unit) is suppressed too; if no cell is left to suppress, the
//!   total is suppressed instead. With one small cell, this suppresses exactly one partner,
//!   so `total − published cells` sums at least two cells and at least `k + 1` sensors; it
//!   never reveals a suppressed cell, nor any group of fewer than `k` sensors.
//! - **Roll-up**: a coarser bucket (a multiple of the fine one, aligned on it) is the sum of
//!   the published fine cells of its unit, and its total the sum of the published fine
//!   totals. Every published coarse value is thus a combination of published fine values:
//!   comparing bucket sizes reveals nothing the fine publication does not, and no coarse
//!   value contains a suppressed cell. Distinct-sensor counts are not rolled up (a sensor
//!   spans buckets) and never published; `fine_buckets` tells how many fine buckets a
//!   published value covers, so a partial coarse value is visible as such.
//!
//! Values are published for the permit's functions only (`avg` from the rolled-up sum and
//! count). Deterministic: the output depends only on the table and the aggregation.

use std::collections::{BTreeMap, BTreeSet};

use beffroi_protocol::Timestamp;

use crate::error::{Error, Result};
use crate::terms::Function;
use crate::transforms::Aggregation;

/// Statistics of one cell, as computed by the store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellStats {
    /// Distinct sensors with at least one value in the cell.
    pub distinct_sensors: u32,
    /// Number of values.
    pub count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// One cell of the fine grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell<U> {
    /// Start of its fine bucket.
    pub bucket: Timestamp,
    /// Its spatial unit (zone id, or sensor id at sensor level).
    pub unit: U,
    /// Its statistics.
    pub stats: CellStats,
}

/// Published values: only the permitted functions are present.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Values {
    /// Mean.
    pub avg: Option<f64>,
    /// Minimum.
    pub min: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
    /// Number of values.
    pub count: Option<u64>,
    /// Sum.
    pub sum: Option<f64>,
}

/// A published cell of the requested grid.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedCell<U> {
    /// Start of its bucket (requested grid).
    pub bucket: Timestamp,
    /// Its spatial unit.
    pub unit: U,
    /// How many published fine buckets it sums.
    pub fine_buckets: u32,
    /// Its values.
    pub values: Values,
}

/// A published total over all units of a bucket (requested grid).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedTotal {
    /// Start of its bucket.
    pub bucket: Timestamp,
    /// How many published fine totals it sums.
    pub fine_buckets: u32,
    /// Its values.
    pub values: Values,
}

/// What may be published, and how much was withheld.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication<U> {
    /// Published cells, by bucket then unit.
    pub cells: Vec<PublishedCell<U>>,
    /// Published totals, by bucket.
    pub totals: Vec<PublishedTotal>,
    /// Fine cells suppressed (primary and complementary).
    pub suppressed_cells: usize,
    /// Fine totals suppressed.
    pub suppressed_totals: usize,
}

/// Running sums of published fine values.
#[derive(Debug, Clone, Copy)]
struct Sum {
    fine_buckets: u32,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Sum {
    fn of(stats: &CellStats) -> Self {
        Self {
            fine_buckets: 1,
            count: stats.count,
            sum: stats.sum,
            min: stats.min,
            max: stats.max,
        }
    }

    /// Adds a sum from other fine buckets.
    fn add(&mut self, other: &Sum) {
        self.fine_buckets += other.fine_buckets;
        self.merge_values(other);
    }

    /// Merges the values of another cell of the same fine bucket.
    fn merge_values(&mut self, other: &Sum) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    fn values(&self, functions: &BTreeSet<Function>) -> Values {
        let has = |f| functions.contains(&f);
        Values {
            avg: (has(Function::Avg) && self.count > 0).then(|| self.sum / self.count as f64),
            min: has(Function::Min).then_some(self.min),
            max: has(Function::Max).then_some(self.max),
            count: has(Function::Count).then_some(self.count),
            sum: has(Function::Sum).then_some(self.sum),
        }
    }
}

/// Applies the rules of this module to `cells` (one metric) for `aggregation`.
///
/// Fails when a cell does not start on a fine bucket boundary, or when two cells share a
/// bucket and unit: the table is then not the canonical grid, and publishing from it could
/// break the guarantees.
pub fn suppress<U: Ord + Clone>(
    cells: &[Cell<U>],
    aggregation: &Aggregation,
) -> Result<Publication<U>> {
    let fine = aggregation.fine_bucket;
    let k = u64::from(aggregation.k);
    let mut groups: BTreeMap<Timestamp, Vec<&Cell<U>>> = BTreeMap::new();
    for cell in cells.iter().filter(|c| c.stats.distinct_sensors > 0) {
        if !fine.is_boundary(cell.bucket) {
            return Err(Error::CellTable {
                bucket: cell.bucket,
                reason: "not on a boundary of the agreement's fine bucket grid",
            });
        }
        groups.entry(cell.bucket).or_default().push(cell);
    }

    let mut cell_sums: BTreeMap<(Timestamp, &U), Sum> = BTreeMap::new();
    let mut total_sums: BTreeMap<Timestamp, Sum> = BTreeMap::new();
    let mut suppressed_cells = 0;
    let mut suppressed_totals = 0;
    for (bucket, mut group) in groups {
        group.sort_by(|a, b| a.unit.cmp(&b.unit));
        if group.windows(2).any(|pair| pair[0].unit == pair[1].unit) {
            return Err(Error::CellTable {
                bucket,
                reason: "two cells for the same unit",
            });
        }
        let sensors = |c: &Cell<U>| u64::from(c.stats.distinct_sensors);
        let mut hidden: Vec<bool> = group.iter().map(|c| sensors(c) < k).collect();
        let mut hidden_sensors: u64 = group
            .iter()
            .filter(|c| sensors(c) < k)
            .map(|c| sensors(c))
            .sum();
        let mut total_published = group.iter().map(|c| sensors(c)).sum::<u64>() >= k;
        let primary = hidden.contains(&true);
        while primary && total_published && hidden_sensors < k {
            let partner = (0..group.len()).filter(|i| !hidden[*i]).min_by(|a, b| {
                (sensors(group[*a]), &group[*a].unit).cmp(&(sensors(group[*b]), &group[*b].unit))
            });
            match partner {
                Some(i) => {
                    hidden[i] = true;
                    hidden_sensors += sensors(group[i]);
                }
                None => total_published = false,
            }
        }
        let coarse = aggregation.bucket.floor(bucket);
        for (cell, hide) in group.iter().zip(&hidden) {
            if *hide {
                suppressed_cells += 1;
                continue;
            }
            let sum = Sum::of(&cell.stats);
            cell_sums
                .entry((coarse, &cell.unit))
                .and_modify(|s| s.add(&sum))
                .or_insert(sum);
        }
        if !total_published {
            suppressed_totals += 1;
            continue;
        }
        let total = group
            .iter()
            .map(|c| Sum::of(&c.stats))
            .reduce(|mut total, sum| {
                total.merge_values(&sum);
                total
            });
        if let Some(total) = total {
            total_sums
                .entry(coarse)
                .and_modify(|s| s.add(&total))
                .or_insert(total);
        }
    }

    let functions = &aggregation.functions;
    Ok(Publication {
        cells: cell_sums
            .into_iter()
            .map(|((bucket, unit), sum)| PublishedCell {
                bucket,
                unit: unit.clone(),
                fine_buckets: sum.fine_buckets,
                values: sum.values(functions),
            })
            .collect(),
        totals: total_sums
            .into_iter()
            .map(|(bucket, sum)| PublishedTotal {
                bucket,
                fine_buckets: sum.fine_buckets,
                values: sum.values(functions),
            })
            .collect(),
        suppressed_cells,
        suppressed_totals,
    })
}
