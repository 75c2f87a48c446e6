//! Small-cell suppression: primary, complementary (checked by brute force against
//! differencing), roll-up from published cells only, determinism and table errors.

use std::collections::{BTreeMap, BTreeSet};

use beffroi_policy::{
    suppress, Aggregation, BucketSpec, Cell, CellStats, Error, Function, Publication, Scope,
    Selection, SpatialLevel,
};
use beffroi_protocol::Timestamp;
use proptest::prelude::*;

use crate::support::{at, patterns, HOUR};

fn aggregation(k: u32, bucket_hours: u32, functions: &[Function]) -> Aggregation {
    Aggregation {
        bucket: BucketSpec::epoch_aligned(bucket_hours * HOUR),
        fine_bucket: BucketSpec::epoch_aligned(HOUR),
        functions: functions.iter().copied().collect(),
        spatial_level: SpatialLevel::Zone,
        k,
        grid: Scope {
            metrics: patterns(&["air.pm25"]),
            zones: Selection::All,
            sensors: Selection::All,
            tags: Selection::All,
            territories: Selection::All,
        },
    }
}

fn hour(n: i64) -> Timestamp {
    at(n * i64::from(HOUR))
}

/// A cell whose sum is `sum` and every other statistic follows from its sensors.
fn cell(bucket: Timestamp, unit: &'static str, sensors: u32, sum: f64) -> Cell<&'static str> {
    Cell {
        bucket,
        unit,
        stats: CellStats {
            distinct_sensors: sensors,
            count: u64::from(sensors) * 4,
            sum,
            min: 0.0,
            max: sum,
        },
    }
}

fn published_units<U: Clone + Ord>(publication: &Publication<U>) -> BTreeSet<U> {
    publication.cells.iter().map(|c| c.unit.clone()).collect()
}

const SUM: &[Function] = &[Function::Sum];

#[test]
fn nothing_is_suppressed_when_every_cell_has_k_sensors() {
    let cells = [cell(hour(0), "a", 3, 1.0), cell(hour(0), "b", 4, 2.0)];
    let out = suppress(&cells, &aggregation(3, 1, SUM)).unwrap();
    assert_eq!(published_units(&out), ["a", "b"].into());
    assert_eq!(out.totals.len(), 1);
    assert_eq!(out.totals[0].values.sum, Some(3.0));
    assert_eq!((out.suppressed_cells, out.suppressed_totals), (0, 0));
}

#[test]
fn a_single_small_cell_gets_a_complementary_partner() {
    let cells = [
        cell(hour(0), "a", 5, 10.0),
        cell(hour(0), "b", 1, 20.0),
        cell(hour(0), "c", 4, 30.0),
        cell(hour(0), "d", 6, 40.0),
    ];
    let out = suppress(&cells, &aggregation(3, 1, SUM)).unwrap();
    // b is small; c is the published cell with the fewest sensors: suppressed with it.
    assert_eq!(published_units(&out), ["a", "d"].into());
    assert_eq!(out.suppressed_cells, 2);
    let total = out.totals[0].values.sum.unwrap();
    assert_eq!(total, 100.0);
    // total − published = b + c, never b alone.
    assert_eq!(total - 10.0 - 40.0, 50.0);
}

#[test]
fn ties_go_to_the_smallest_unit() {
    let cells = [
        cell(hour(0), "a", 1, 1.0),
        cell(hour(0), "c", 4, 2.0),
        cell(hour(0), "b", 4, 3.0),
    ];
    let out = suppress(&cells, &aggregation(3, 1, SUM)).unwrap();
    assert_eq!(published_units(&out), ["c"].into());
}

#[test]
fn small_cells_that_together_hold_fewer_than_k_sensors_get_a_partner() {
    let cells = [
        cell(hour(0), "a", 1, 1.0),
        cell(hour(0), "b", 1, 2.0),
        cell(hour(0), "c", 5, 3.0),
        cell(hour(0), "d", 5, 4.0),
    ];
    let out = suppress(&cells, &aggregation(3, 1, SUM)).unwrap();
    assert_eq!(published_units(&out), ["d"].into());
    assert_eq!(out.totals.len(), 1);
}

#[test]
fn a_total_with_fewer_than_k_sensors_is_suppressed() {
    let cells = [cell(hour(0), "a", 1, 1.0), cell(hour(0), "b", 1, 2.0)];
    let out = suppress(&cells, &aggregation(3, 1, SUM)).unwrap();
    assert!(out.cells.is_empty() && out.totals.is_empty());
    assert_eq!((out.suppressed_cells, out.suppressed_totals), (2, 1));
}

#[test]
fn the_roll_up_ignores_suppressed_fine_cells() {
    let cells = [
        cell(hour(0), "a", 5, 1.0),
        cell(hour(0), "b", 1, 10.0),
        cell(hour(0), "c", 4, 100.0),
        cell(hour(1), "a", 5, 1_000.0),
        cell(hour(1), "b", 5, 10_000.0),
        cell(hour(1), "c", 5, 100_000.0),
    ];
    let out = suppress(&cells, &aggregation(3, 2, SUM)).unwrap();
    let by_unit: BTreeMap<_, _> = out
        .cells
        .iter()
        .map(|c| (c.unit, (c.bucket, c.fine_buckets, c.values.sum.unwrap())))
        .collect();
    assert_eq!(by_unit["a"], (hour(0), 2, 1_001.0));
    assert_eq!(by_unit["b"], (hour(0), 1, 10_000.0));
    assert_eq!(by_unit["c"], (hour(0), 1, 100_000.0));
    assert_eq!(out.totals.len(), 1);
    assert_eq!(out.totals[0].fine_buckets, 2);
    assert_eq!(out.totals[0].values.sum, Some(111_111.0));
}

#[test]
fn only_permitted_functions_are_published() {
    let cells = [cell(hour(0), "a", 3, 12.0)];
    let out = suppress(&cells, &aggregation(3, 1, &[Function::Avg, Function::Max])).unwrap();
    let values = out.cells[0].values;
    assert_eq!(values.avg, Some(1.0));
    assert_eq!(values.max, Some(12.0));
    assert_eq!((values.min, values.count, values.sum), (None, None, None));
}

#[test]
fn the_output_does_not_depend_on_the_order_of_the_table() {
    let mut cells = vec![
        cell(hour(0), "a", 1, 1.0),
        cell(hour(0), "b", 4, 2.0),
        cell(hour(1), "c", 4, 3.0),
        cell(hour(0), "d", 4, 4.0),
        cell(hour(1), "a", 3, 5.0),
    ];
    let first = suppress(&cells, &aggregation(3, 2, SUM)).unwrap();
    cells.reverse();
    assert_eq!(suppress(&cells, &aggregation(3, 2, SUM)).unwrap(), first);
}

#[test]
fn a_table_off_the_fine_grid_or_with_duplicates_is_refused() {
    let misaligned = [cell(at(60), "a", 3, 1.0)];
    assert!(matches!(
        suppress(&misaligned, &aggregation(3, 1, SUM)),
        Err(Error::CellTable { .. })
    ));
    let duplicate = [cell(hour(0), "a", 3, 1.0), cell(hour(0), "a", 4, 1.0)];
    assert!(matches!(
        suppress(&duplicate, &aggregation(3, 1, SUM)),
        Err(Error::CellTable { .. })
    ));
}

/// Units and their distinct sensors for one fine bucket, with sums large and random enough
/// that only a structural relation can make two combinations equal.
fn table() -> impl Strategy<Value = (u32, Vec<(u32, u64)>)> {
    (
        2u32..5,
        prop::collection::vec((0u32..7, 1u64..(1 << 40)), 2..6),
    )
}

const UNITS: [&str; 6] = ["u0", "u1", "u2", "u3", "u4", "u5"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No combination `Σ ε·v` (ε ∈ {−1, 0, 1}) of published values (cells and total)
    /// equals a suppressed cell: differencing cannot recover it. Published cells and the
    /// remainder behind the total hold at least k sensors each.
    #[test]
    fn suppressed_cells_cannot_be_recomputed((k, units) in table()) {
        let cells: Vec<_> = units
            .iter()
            .zip(UNITS)
            .map(|((sensors, sum), unit)| cell(hour(0), unit, *sensors, *sum as f64))
            .collect();
        let out = suppress(&cells, &aggregation(k, 1, SUM)).unwrap();
        let published: BTreeSet<&str> = published_units(&out);
        let mut values: Vec<i128> = out
            .cells
            .iter()
            .map(|c| c.values.sum.unwrap() as i128)
            .collect();
        values.extend(out.totals.iter().map(|t| t.values.sum.unwrap() as i128));

        let present: Vec<_> = cells.iter().filter(|c| c.stats.distinct_sensors > 0).collect();
        let hidden: Vec<_> = present.iter().filter(|c| !published.contains(c.unit)).collect();
        for c in present.iter().filter(|c| published.contains(c.unit)) {
            prop_assert!(c.stats.distinct_sensors >= k);
        }
        if !out.totals.is_empty() && !hidden.is_empty() {
            let hidden_sensors: u32 = hidden.iter().map(|c| c.stats.distinct_sensors).sum();
            prop_assert!(hidden_sensors >= k, "remainder of {hidden_sensors} sensors");
            prop_assert!(hidden.len() >= 2);
        }
        for target in &hidden {
            let goal = target.stats.sum as i128;
            let combos = 3usize.pow(values.len() as u32);
            for mut code in 0..combos {
                let mut total = 0i128;
                let mut used = false;
                for v in &values {
                    match code % 3 {
                        1 => { total += v; used = true; }
                        2 => { total -= v; used = true; }
                        _ => {}
                    }
                    code /= 3;
                }
                prop_assert!(!(used && total == goal), "{} recomputed from {values:?}", target.unit);
            }
        }
    }

    /// Every coarse value is the sum of the published fine values it covers.
    #[test]
    fn coarse_values_sum_published_fine_values(
        k in 2u32..4,
        buckets in prop::collection::vec(prop::collection::vec((0u32..6, 1u64..1000), 3), 2..5),
    ) {
        let cells: Vec<_> = buckets
            .iter()
            .enumerate()
            .flat_map(|(b, units)| {
                units.iter().zip(UNITS).map(move |((sensors, sum), unit)| {
                    cell(hour(b as i64), unit, *sensors, *sum as f64)
                })
            })
            .collect();
        let fine = suppress(&cells, &aggregation(k, 1, SUM)).unwrap();
        let coarse = suppress(&cells, &aggregation(k, 4, SUM)).unwrap();
        let mut expected: BTreeMap<(Timestamp, &str), (u32, f64)> = BTreeMap::new();
        for c in &fine.cells {
            let start = BucketSpec::epoch_aligned(4 * HOUR).floor(c.bucket);
            let entry = expected.entry((start, c.unit)).or_default();
            entry.0 += 1;
            entry.1 += c.values.sum.unwrap();
        }
        let got: BTreeMap<(Timestamp, &str), (u32, f64)> = coarse
            .cells
            .iter()
            .map(|c| ((c.bucket, c.unit), (c.fine_buckets, c.values.sum.unwrap())))
            .collect();
        prop_assert_eq!(got, expected);
        let fine_total: f64 = fine.totals.iter().map(|t| t.values.sum.unwrap()).sum();
        let coarse_total: f64 = coarse.totals.iter().map(|t| t.values.sum.unwrap()).sum();
        prop_assert_eq!(fine_total, coarse_total);
        prop_assert_eq!(fine.suppressed_cells, coarse.suppressed_cells);
    }
}
