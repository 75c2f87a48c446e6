//! The governance benchmark's printed table: latencies of each query pair, the governed /
//! direct ratios, and the governed read's own steps.

use std::fmt::Write as _;

use super::measure::{PairResult, Parts, StoreResult};
use super::seed::{Seeded, K, RAW_PAGE};
use crate::bench::histogram::Summary;
use crate::bench::report::thousands;

/// Everything one run measured.
#[derive(Debug, Clone)]
pub(crate) struct GovernanceResult {
    /// The data and queries.
    pub seeded: Seeded,
    /// Aggregates over HTTP.
    pub aggregate: PairResult,
    /// One raw page over HTTP.
    pub raw: PairResult,
    /// Aggregates through the store.
    pub store: StoreResult,
    /// The governed read's steps alone.
    pub parts: Parts,
}

/// A latency in µs, in the unit that reads best.
fn latency(us: f64) -> String {
    if us < 10.0 {
        format!("{us:.2} µs")
    } else if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 100_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.0} ms", us / 1000.0)
    }
}

fn kib(bytes: usize) -> String {
    format!("{:.0} KiB", bytes as f64 / 1024.0)
}

/// The governed query's extra time at p50 (or what it saves).
fn delta(us: f64) -> String {
    if us < 0.0 {
        format!("{} less per query at p50", latency(-us))
    } else {
        format!("+{} per query at p50", latency(us))
    }
}

fn ratio(governed: f64, direct: f64) -> String {
    format!("{:.2}×", governed / direct.max(1e-9))
}

/// One latency row: p50, p99, mean, queries/s (one client, one after the other), note.
fn row(out: &mut String, name: &str, s: &Summary, note: &str) {
    let _ = writeln!(
        out,
        "{name:<50} {:>10} {:>10} {:>10} {:>10}  {note}",
        latency(s.p50_us as f64),
        latency(s.p99_us as f64),
        latency(s.mean_us),
        format!("{:.1}", 1e6 / s.mean_us.max(1e-9)),
    );
}

fn ratio_row(out: &mut String, governed: &Summary, direct: &Summary, note: &str) {
    let _ = writeln!(
        out,
        "{:<50} {:>10} {:>10} {:>10} {:>10}  {note}",
        "  governed / direct",
        ratio(governed.p50_us as f64, direct.p50_us as f64),
        ratio(governed.p99_us as f64, direct.p99_us as f64),
        ratio(governed.mean_us, direct.mean_us),
        "",
    );
}

fn pair(out: &mut String, title: &str, names: [&str; 2], p: &PairResult) {
    let _ = writeln!(
        out,
        "-- {title} ({} rounds, alternated, one keep-alive connection)",
        p.direct.count
    );
    row(
        out,
        names[0],
        &p.direct,
        &format!(
            "{} rows, {}",
            thousands(p.direct_rows as f64),
            kib(p.direct_bytes)
        ),
    );
    row(
        out,
        names[1],
        &p.governed,
        &format!(
            "{} rows, {}",
            thousands(p.governed_rows as f64),
            kib(p.governed_bytes)
        ),
    );
    ratio_row(
        out,
        &p.governed,
        &p.direct,
        &delta(p.governed.p50_us as f64 - p.direct.p50_us as f64),
    );
}

/// The table.
pub(crate) fn render(backend: &str, context: &str, r: &GovernanceResult) -> String {
    let s = &r.seeded;
    let mut out = String::new();
    let _ = writeln!(out, "\nGovernance benchmark — {backend} ({context})");
    let _ = writeln!(
        out,
        "data   : {} sensors × {} metrics × {} h at one reading a minute = {} readings in {} \
         zones (seeded through Store::commit in {:.1} s, {} readings/s)",
        s.sensors,
        s.metrics,
        s.hours,
        thousands(s.readings as f64),
        s.zones,
        s.elapsed.as_secs_f64(),
        thousands(s.readings as f64 / s.elapsed.as_secs_f64().max(1e-9))
    );
    let _ = writeln!(
        out,
        "queries: {} from {} to {}; aggregate agreement 1 h, avg/min/max/count, k = {K}, zone \
         level; raw agreement {RAW_PAGE} rows a page{}",
        s.metric,
        s.from,
        s.to,
        if s.pseudonymise {
            ", sensor ids pseudonymised"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "{:<50} {:>10} {:>10} {:>10} {:>10}  answer",
        "figure", "p50", "p99", "mean", "queries/s"
    );
    pair(
        &mut out,
        "aggregates over HTTP, 1 h buckets",
        [
            "direct   GET /readings/buckets (per sensor)",
            "governed GET /shared/{grantor}/aggregates (zones)",
        ],
        &r.aggregate,
    );
    pair(
        &mut out,
        "one raw page over HTTP",
        [
            "direct   GET /readings",
            "governed GET /shared/{grantor}/readings",
        ],
        &r.raw,
    );
    let st = &r.store;
    let _ = writeln!(
        out,
        "-- aggregates through the store, no HTTP ({} rounds, alternated)",
        st.direct.count
    );
    row(
        &mut out,
        "direct   Store::buckets (per sensor)",
        &st.direct,
        &format!("{} rows", thousands(st.direct_rows as f64)),
    );
    row(
        &mut out,
        "governed lookups + Store::governed_cells (zones)",
        &st.governed,
        &format!("{} cells", thousands(st.governed_rows as f64)),
    );
    row(
        &mut out,
        "  of which grantor, registry, series lookups",
        &st.lookups,
        "",
    );
    row(&mut out, "  of which Store::governed_cells", &st.cells, "");
    ratio_row(&mut out, &st.governed, &st.direct, "");
    let p = &r.parts;
    let _ = writeln!(out, "-- the governed read's own steps, alone");
    let _ = writeln!(
        out,
        "{:<50} {:>10} {:>10} {:>10} {:>10}  {} agreements in the set",
        "decide",
        "",
        "",
        latency(p.decide_us),
        "",
        p.agreements
    );
    row(
        &mut out,
        "audit append (one entry, one transaction)",
        &p.audit,
        &format!("{} appends", p.audit.count),
    );
    let _ = writeln!(
        out,
        "{:<50} {:>10} {:>10} {:>10} {:>10}  {}",
        "SHA-256 of the governed aggregate body",
        "",
        "",
        latency(p.hash_us),
        "",
        kib(p.body_bytes)
    );
    let _ = writeln!(
        out,
        "   suppression and JSON are the rest of the governed time; `suppress` alone: cargo \
         bench -p beffroi-policy"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_in_their_unit() {
        assert_eq!(latency(0.456), "0.46 µs");
        assert_eq!(latency(12.4), "12 µs");
        assert_eq!(latency(1_234.0), "1.23 ms");
        assert_eq!(latency(250_000.0), "250 ms");
        assert_eq!(ratio(3.0, 2.0), "1.50×");
        assert_eq!(delta(-2_500.0), "2.50 ms less per query at p50");
        assert_eq!(delta(40.0), "+40 µs per query at p50");
    }
}
