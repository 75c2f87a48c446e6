//! The benchmarks' machine-readable results: with `--json PATH` a benchmark writes, beside its printed tables,
//! one [`Record`] — its figures with their units, budgets and same-run baselines, and the
//! time series it sampled. `bench/report` runs the proof suite with `--json` and renders
//! `docs/benchmarks/` (markdown and PNG plots) from these files alone, so the report always
//! shows what the benchmarks printed.

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

/// How a figure is judged against its budget.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// The figure must be at least the budget.
    AtLeast,
    /// The figure must be at most the budget.
    AtMost,
}

/// One figure of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What it is, e.g. `"batched ingest"`.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Its unit, e.g. `"readings/s"`, `"ms"`, `"KiB"`.
    pub unit: String,
    /// The budget it is judged against, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<(Goal, f64)>,
    /// The same quantity measured for the baseline in the same run, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
}

/// The baseline a figure is compared with.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// What the baseline is, e.g. `"raw COPY"`.
    pub name: String,
    /// Its value, in the figure's unit.
    pub value: f64,
}

/// A sampled time series (soak memory, queue depths…) or a curve (latency against rate).
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// What it shows, e.g. `"platform RSS"`.
    pub name: String,
    /// The x axis, e.g. `"s"` or `"readings/s"`.
    pub x_unit: String,
    /// The y axis, e.g. `"MiB"`.
    pub y_unit: String,
    /// The points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// What one benchmark run writes with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// The benchmark, e.g. `"ingest"`.
    pub bench: String,
    /// What this run measured, e.g. `"PostgreSQL, batched"`.
    pub context: String,
    /// When it ran (RFC 3339, UTC).
    pub at: String,
    /// Its figures.
    pub figures: Vec<Figure>,
    /// Its series.
    pub series: Vec<Series>,
}

impl Record {
    /// An empty record for `bench` in `context`, stamped now.
    pub fn new(bench: &str, context: impl Into<String>) -> Self {
        Self {
            bench: bench.to_owned(),
            context: context.into(),
            at: beffroi_protocol::Timestamp::now().to_string(),
            figures: Vec::new(),
            series: Vec::new(),
        }
    }

    /// Adds a figure with no budget and no baseline; chain [`Record::budget`] and
    /// [`Record::baseline`] to set them.
    pub fn figure(&mut self, name: &str, value: f64, unit: &str) -> &mut Self {
        self.figures.push(Figure {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            budget: None,
            baseline: None,
        });
        self
    }

    /// Sets the budget of the last figure.
    pub fn budget(&mut self, goal: Goal, value: f64) -> &mut Self {
        if let Some(figure) = self.figures.last_mut() {
            figure.budget = Some((goal, value));
        }
        self
    }

    /// Sets the same-run baseline of the last figure.
    pub fn baseline(&mut self, name: &str, value: f64) -> &mut Self {
        if let Some(figure) = self.figures.last_mut() {
            figure.baseline = Some(Baseline {
                name: name.to_owned(),
                value,
            });
        }
        self
    }

    /// Adds a series.
    pub fn series(
        &mut self,
        name: &str,
        x_unit: &str,
        y_unit: &str,
        points: Vec<(f64, f64)>,
    ) -> &mut Self {
        self.series.push(Series {
            name: name.to_owned(),
            x_unit: x_unit.to_owned(),
            y_unit: y_unit.to_owned(),
            points,
        });
        self
    }

    /// Writes the record to `path` as pretty JSON, when a path was given.
    pub fn write(&self, path: Option<&Path>) -> anyhow::Result<()> {
        let Some(path) = path else { return Ok(()) };
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("writing the results to {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bench/report.py` reads exactly these fields: a change here must change it too.
    #[test]
    fn json_has_the_fields_the_report_reads() {
        let mut record = Record::new("ingest", "PostgreSQL, batched");
        record
            .figure("committed", 214_506.0, "readings/s")
            .budget(Goal::AtLeast, 250_000.0)
            .baseline("raw COPY", 209_412.0);
        record.figure("resends", 0.0, "batches");
        record.series("RSS", "s", "MiB", vec![(0.0, 100.0), (10.0, 101.5)]);
        let json: serde_json::Value = serde_json::to_value(&record).unwrap();
        assert_eq!(json["bench"], "ingest");
        assert_eq!(json["context"], "PostgreSQL, batched");
        assert!(json["at"].as_str().unwrap().ends_with('Z'));
        let committed = &json["figures"][0];
        assert_eq!(committed["name"], "committed");
        assert_eq!(committed["value"], 214_506.0);
        assert_eq!(committed["unit"], "readings/s");
        assert_eq!(
            committed["budget"],
            serde_json::json!(["at_least", 250_000.0])
        );
        assert_eq!(committed["baseline"]["name"], "raw COPY");
        assert_eq!(committed["baseline"]["value"], 209_412.0);
        let resends = json["figures"][1].as_object().unwrap();
        assert!(!resends.contains_key("budget") && !resends.contains_key("baseline"));
        assert_eq!(
            json["series"][0]["points"],
            serde_json::json!([[0.0, 100.0], [10.0, 101.5]])
        );
    }

    #[test]
    fn budget_and_baseline_apply_to_the_last_figure_only() {
        let mut record = Record::new("gate", "SQLite");
        record.budget(Goal::AtMost, 1.0);
        record.figure("a", 1.0, "x");
        record.figure("b", 2.0, "x").budget(Goal::AtMost, 50.0);
        assert!(record.figures[0].budget.is_none());
        assert!(matches!(record.figures[1].budget, Some((Goal::AtMost, b)) if b == 50.0));
    }

    #[test]
    fn writes_only_when_given_a_path() {
        let record = Record::new("live", "SQLite");
        record.write(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.json");
        record.write(Some(&path)).unwrap();
        let read: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(read["bench"], "live");
        let missing = dir.path().join("no-such-dir").join("x.json");
        assert!(record.write(Some(&missing)).is_err());
    }
}
