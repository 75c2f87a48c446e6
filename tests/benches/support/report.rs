//! The printed report: one row per figure with its budget, a PASS/FAIL marker, the baseline's
//! figure measured in the same run and the ratio between them.

/// One megabyte as budgets count it: 10^6 bytes (stricter than a MiB).
pub const MB: f64 = 1e6;

/// Formats bytes as decimal megabytes.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / MB)
}

/// Formats a rate in bytes per second as decimal kilobytes per second.
pub fn kilobytes_per_s(bytes_per_s: f64) -> String {
    format!("{:.1} kB/s", bytes_per_s / 1e3)
}

/// Formats a CPU share in percent of one core.
pub fn percent(value: f64) -> String {
    format!("{value:.2} %")
}

/// One row of the table.
#[derive(Debug)]
pub struct Row {
    /// What is measured.
    pub figure: &'static str,
    /// The agent's value, in the budget's unit.
    pub value: f64,
    /// That unit, as the JSON record names it (`B`, `%`, `B/s`).
    pub unit: &'static str,
    /// The agent's value as printed.
    pub shown: String,
    /// The budget: the value must be at most this (`None`: informational).
    pub budget: Option<(f64, &'static str)>,
    /// The baseline's value in the same unit and as printed, when measured.
    pub baseline: Option<(f64, String)>,
}

impl Row {
    /// Whether the row meets its budget (`None`: no budget).
    pub fn passes(&self) -> Option<bool> {
        self.budget.map(|(limit, _)| self.value <= limit)
    }
}

/// `agent / baseline`, with how many times less the agent uses.
fn ratio(value: f64, baseline: f64) -> String {
    if value <= 0.0 || baseline <= 0.0 {
        return "n/a".to_owned();
    }
    format!("{:.3} ({:.1}× less)", value / baseline, baseline / value)
}

/// Prints the table; returns the figures that miss their budget.
pub fn print_table(rows: &[Row]) -> Vec<&'static str> {
    println!(
        "  {:<34} {:>10}  {:>9}  {:<7} {:>12}  agent/baseline",
        "figure", "agent", "budget", "verdict", "baseline"
    );
    let mut missed = Vec::new();
    for row in rows {
        let budget = row.budget.map_or("—", |(_, text)| text);
        let verdict = match row.passes() {
            Some(true) => "PASS",
            Some(false) => {
                missed.push(row.figure);
                "FAIL"
            }
            None => "",
        };
        let (baseline, ratio) = match &row.baseline {
            Some((value, shown)) => (shown.clone(), ratio(row.value, *value)),
            None => ("—".to_owned(), "—".to_owned()),
        };
        println!(
            "  {:<34} {:>10}  {:>9}  {:<7} {:>12}  {ratio}",
            row.figure, row.shown, budget, verdict, baseline
        );
    }
    missed
}
