//! Aggregates of a permitted read: cells computed by the database at the agreement's fine
//! grid over the permit's canonical grid (`Aggregation::grid`, the whole agreement scope when
//! `k > 1`), suppressed by `beffroi_policy::suppress` and rolled up to the requested bucket,
//! then only the units inside the request's scope published.
//!
//! A unit of the scope that had data in a bucket but whose value may not be published is
//! listed with `"suppressed": true` and no value. Totals are over every unit of the grid
//! (they are what the suppression protected). Zone cells leave out sensors without a zone.
//!
//! A pooling permit by territory (sensor cells only, `docs/pooling.md`) keeps a fine cell only
//! if its sensor stood inside the territories for the whole of the cell's fine bucket: a cell
//! never mixes readings measured inside with readings measured outside, so a sensor that
//! crossed a boundary during a bucket has no cell for it.

use std::collections::{BTreeMap, BTreeSet};

use beffroi_formats::csv::write_record;
use beffroi_formats::senml::number_text;
use beffroi_policy::{
    pseudonym, suppress, Aggregation, AgreementRef, Cell, CellStats, Function, Permit, Purpose,
    Selection, SpatialLevel, TimeRange, Values,
};
use beffroi_protocol::{MetricName, SensorId, TenantId, Timestamp};
use beffroi_store::{CellQuery, CellRow, CellUnit};
use serde::Serialize;

use super::population::Registry;
use super::{permit_key, Body, GovernedRead};
use crate::error::{ApiError, Result};
use crate::ApiState;

const MICROS_PER_SECOND: i64 = 1_000_000;

/// Shared aggregates.
#[derive(Debug, Serialize)]
pub struct SharedCells {
    /// Whose data.
    pub grantor: TenantId,
    /// The agreement that permits it.
    pub agreement: AgreementRef,
    /// The purpose stated.
    pub purpose: Purpose,
    /// Start of the range served (a bucket boundary).
    pub from: Timestamp,
    /// End of the range served (a bucket boundary, exclusive).
    pub to: Timestamp,
    /// Bucket width, in seconds.
    pub bucket_s: u32,
    /// The spatial unit of the cells.
    pub level: SpatialLevel,
    /// The functions computed.
    pub functions: BTreeSet<Function>,
    /// Minimum distinct sensors behind a published value.
    pub k: u32,
    /// Cells, by metric, bucket and unit.
    pub cells: Vec<SharedCell>,
    /// Totals over every unit, by metric and bucket.
    pub totals: Vec<SharedTotal>,
    /// Fine cells and totals withheld.
    pub suppressed: Suppressed,
}

/// One cell: published values, or `suppressed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedCell {
    /// The metric.
    pub metric: MetricName,
    /// Start of the bucket.
    pub bucket: Timestamp,
    /// The zone, or the sensor (pseudonymised when the agreement says so).
    pub unit: String,
    /// Nothing of it may be published.
    pub suppressed: bool,
    /// Fine buckets summed (published cells only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fine_buckets: Option<u32>,
    /// The values (published cells only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<ValuesJson>,
}

/// A total over every unit of a bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedTotal {
    /// The metric.
    pub metric: MetricName,
    /// Start of the bucket.
    pub bucket: Timestamp,
    /// Fine buckets summed.
    pub fine_buckets: u32,
    /// The values.
    pub values: ValuesJson,
}

/// Published values: only the permitted functions appear.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ValuesJson {
    /// Mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg: Option<f64>,
    /// Minimum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Maximum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Number of values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Sum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
}

impl From<Values> for ValuesJson {
    fn from(v: Values) -> Self {
        Self {
            avg: v.avg,
            min: v.min,
            max: v.max,
            count: v.count,
            sum: v.sum,
        }
    }
}

/// Counts of what was withheld.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Suppressed {
    /// Fine cells suppressed (primary and complementary).
    pub cells: usize,
    /// Fine totals suppressed.
    pub totals: usize,
}

/// The body of a permitted aggregate read.
pub(crate) async fn publish_cells(
    state: &ApiState,
    read: &GovernedRead,
    permit: Permit,
    aggregation: &Aggregation,
    now: Timestamp,
) -> Result<Body> {
    let answer = shared_cells(state, read, permit, aggregation, now).await?;
    Body::json(&answer, answer.rows())
}

impl SharedCells {
    /// Cells and totals: the rows the audit log counts.
    pub(crate) fn rows(&self) -> usize {
        self.cells.len() + self.totals.len()
    }
}

/// The cells and totals of a permitted aggregate read.
pub(crate) async fn shared_cells(
    state: &ApiState,
    read: &GovernedRead,
    permit: Permit,
    aggregation: &Aggregation,
    now: Timestamp,
) -> Result<SharedCells> {
    let transforms = &permit.transforms;
    let grantor = &read.request.grantor;
    let key = permit_key(state.store.as_ref(), read, &permit).await?;
    let mut answer = SharedCells {
        grantor: grantor.clone(),
        agreement: permit.agreement.clone(),
        purpose: read.request.purpose,
        from: transforms.range.from,
        to: transforms.range.to,
        bucket_s: aggregation.bucket.width_s,
        level: aggregation.spatial_level,
        functions: aggregation.functions.clone(),
        k: aggregation.k,
        cells: Vec::new(),
        totals: Vec::new(),
        suppressed: Suppressed::default(),
    };
    let Some(range) = transforms.served_range(now) else {
        return Ok(answer);
    };
    (answer.from, answer.to) = (range.from, range.to);
    let registry = Registry::load(
        state.store.as_ref(),
        grantor,
        &read.request.requester,
        &aggregation.grid,
    )
    .await?;
    let population = registry
        .population(state.store.as_ref(), grantor, &aggregation.grid)
        .await?;
    let fine = aggregation.fine_bucket;
    let rows = state
        .store
        .governed_cells(&CellQuery {
            tenant: grantor.clone(),
            metrics: population.metrics,
            sensors: population.sensors,
            from: range.from,
            to: range.to,
            bucket_us: i64::from(fine.width_s) * MICROS_PER_SECOND,
            offset_us: i64::from(fine.offset_s) * MICROS_PER_SECOND,
            unit: match aggregation.spatial_level {
                SpatialLevel::Sensor => CellUnit::Sensor,
                SpatialLevel::Zone => CellUnit::Zone,
            },
        })
        .await?;
    let placed = matches!(aggregation.grid.territories, Selection::Only(_));
    let fine_us = i64::from(fine.width_s) * MICROS_PER_SECOND;
    let mut by_metric: BTreeMap<MetricName, Vec<Cell<SensorId>>> = BTreeMap::new();
    for row in rows {
        let bucket = TimeRange::new(
            row.bucket,
            Timestamp::from_unix_micros(row.bucket.unix_micros().saturating_add(fine_us)),
        );
        if placed && !registry.admits_throughout(&aggregation.grid, &row.metric, &row.unit, bucket)
        {
            continue;
        }
        by_metric
            .entry(row.metric.clone())
            .or_default()
            .push(cell(row));
    }
    let label = |unit: &SensorId| match (&key, aggregation.spatial_level) {
        (Some(key), SpatialLevel::Sensor) => pseudonym(key, &permit.grantee, unit),
        _ => unit.to_string(),
    };
    for (metric, cells) in by_metric {
        let publication = suppress(&cells, aggregation)
            .map_err(|e| ApiError::Conflict(format!("cannot publish {metric}: {e}")))?;
        // A placed grid is the scope itself (sensor cells have k = 1): its cells are in it.
        let placed_units: BTreeSet<&SensorId> = cells.iter().map(|c| &c.unit).collect();
        let in_scope = |unit: &SensorId| match aggregation.spatial_level {
            SpatialLevel::Zone => transforms.scope.zones.contains(unit),
            SpatialLevel::Sensor if placed => placed_units.contains(unit),
            SpatialLevel::Sensor => registry.admits(&transforms.scope, &metric, unit),
        };
        let mut published = BTreeSet::new();
        for cell in publication.cells.iter().filter(|c| in_scope(&c.unit)) {
            published.insert((cell.bucket, &cell.unit));
            answer.cells.push(SharedCell {
                metric: metric.clone(),
                bucket: cell.bucket,
                unit: label(&cell.unit),
                suppressed: false,
                fine_buckets: Some(cell.fine_buckets),
                values: Some(cell.values.into()),
            });
        }
        let withheld: BTreeSet<(Timestamp, &SensorId)> = cells
            .iter()
            .filter(|c| c.stats.distinct_sensors > 0 && in_scope(&c.unit))
            .map(|c| (aggregation.bucket.floor(c.bucket), &c.unit))
            .filter(|key| !published.contains(key))
            .collect();
        for (bucket, unit) in withheld {
            answer.cells.push(SharedCell {
                metric: metric.clone(),
                bucket,
                unit: label(unit),
                suppressed: true,
                fine_buckets: None,
                values: None,
            });
        }
        answer
            .totals
            .extend(publication.totals.into_iter().map(|total| SharedTotal {
                metric: metric.clone(),
                bucket: total.bucket,
                fine_buckets: total.fine_buckets,
                values: total.values.into(),
            }));
        answer.suppressed.cells += publication.suppressed_cells;
        answer.suppressed.totals += publication.suppressed_totals;
    }
    answer
        .cells
        .sort_by(|a, b| (&a.metric, a.bucket, &a.unit).cmp(&(&b.metric, b.bucket, &b.unit)));
    Ok(answer)
}

/// A store cell as the suppression takes it.
fn cell(row: CellRow) -> Cell<SensorId> {
    Cell {
        bucket: row.bucket,
        unit: row.unit,
        stats: CellStats {
            distinct_sensors: row.sensors,
            count: row.count,
            sum: row.sum,
            min: row.min,
            max: row.max,
        },
    }
}

/// The header of a cells export before its function columns.
const CELLS_HEADER: [&str; 6] = [
    "kind",
    "metric",
    "bucket",
    "unit",
    "suppressed",
    "fine_buckets",
];

impl SharedCells {
    /// The cells then the totals as RFC 4180 CSV: `kind` (`cell` or `total`), `metric`,
    /// `bucket` (RFC 3339 UTC), `unit` (the zone or sensor; empty for a total), `suppressed`,
    /// `fine_buckets`, then one column per function computed (empty where suppressed).
    pub(crate) fn to_csv(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let header = CELLS_HEADER
            .into_iter()
            .chain(self.functions.iter().map(|f| f.as_str()));
        write_record(&mut out, &header.collect::<Vec<_>>())?;
        let values = |values: Option<ValuesJson>| {
            self.functions.iter().map(move |f| {
                let Some(v) = values else {
                    return String::new();
                };
                let number = match f {
                    Function::Avg => v.avg,
                    Function::Min => v.min,
                    Function::Max => v.max,
                    Function::Sum => v.sum,
                    Function::Count => return v.count.map(|c| c.to_string()).unwrap_or_default(),
                };
                number.map(number_text).unwrap_or_default()
            })
        };
        for cell in &self.cells {
            let mut record = vec![
                "cell".to_owned(),
                cell.metric.to_string(),
                cell.bucket.to_string(),
                cell.unit.clone(),
                cell.suppressed.to_string(),
                cell.fine_buckets.map(|n| n.to_string()).unwrap_or_default(),
            ];
            record.extend(values(cell.values));
            write_record(&mut out, &record)?;
        }
        for total in &self.totals {
            let mut record = vec![
                "total".to_owned(),
                total.metric.to_string(),
                total.bucket.to_string(),
                String::new(),
                "false".to_owned(),
                total.fine_buckets.to_string(),
            ];
            record.extend(values(Some(total.values)));
            write_record(&mut out, &record)?;
        }
        Ok(out)
    }
}
