//! The rules an agreement must follow before it is stored (and that [`crate::decide()`] checks
//! again before relying on one): every bad term is reported with its path and a typed
//! [`Problem`], in a fixed order.
//!
//! | path | rule |
//! |---|---|
//! | any | no unknown key, no unknown purpose, function or field |
//! | `version` | ≥ 1 |
//! | `not_after` | after `not_before` |
//! | `purposes`, `functions`, `target.metrics` | not empty |
//! | `k` | ≥ 1 |
//! | `min_bucket_s` | ≥ 1 when present; required for `read_aggregate` |
//! | `spatial_level` | `sensor` for `read_raw` (raw rows are per sensor) |
//! | `k` | 1 for `read_raw`, and for `sensor`-level aggregates (a sensor cell holds one sensor) |
//! | `fields` | required for `read_raw`, refused for `read_aggregate`; no `gateway` when pseudonymising |
//! | `prohibitions[i].target` | metrics not empty; no tags, no territories |
//! | `pooling` | the grantee is another tenant (the beneficiary) |
//! | `target.territories` | pooling agreements only; raw rows, or aggregates per sensor (zone cells are cut by the operator's zones, which cannot follow a sensor across territories) |

use std::fmt;

use crate::agreement::{Agreement, UnknownTerms};
use crate::error::{Error, Result};
use crate::grantee::Grantee;
use crate::terms::{Action, Field, SpatialLevel};
use crate::vocabulary::{Term, TermSet};

/// One bad term of an agreement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct TermError {
    /// Where: `k`, `target.metrics`, `prohibitions[0].target.tags`, an unknown key's path.
    pub path: String,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A key this build does not know.
    UnknownTerm,
    /// A word outside its vocabulary.
    UnknownValue {
        /// The vocabulary (`purpose`, `function`, `field`).
        kind: &'static str,
        /// The word.
        value: String,
    },
    /// Absent, but another term requires it.
    Required(&'static str),
    /// An empty list that must hold at least one item.
    Empty,
    /// Zero where at least 1 is required.
    Zero,
    /// `not_after` is not after `not_before`: the agreement could never permit.
    EmptyWindow,
    /// Contradicts another term; says which and why.
    Contradiction(&'static str),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::UnknownTerm => f.write_str("unknown term"),
            Problem::UnknownValue { kind, value } => write!(f, "unknown {kind} {value:?}"),
            Problem::Required(why) => write!(f, "required {why}"),
            Problem::Empty => f.write_str("must not be empty"),
            Problem::Zero => f.write_str("must be at least 1"),
            Problem::EmptyWindow => f.write_str("must be after not_before"),
            Problem::Contradiction(why) => f.write_str(why),
        }
    }
}

/// Collects problems in order.
#[derive(Default)]
struct Report(Vec<TermError>);

impl Report {
    fn check(&mut self, ok: bool, path: impl Into<String>, problem: Problem) {
        if !ok {
            self.0.push(TermError {
                path: path.into(),
                problem,
            });
        }
    }
}

impl Agreement {
    /// Checks every term; lists all problems found.
    pub fn validate(&self) -> Result<()> {
        let mut report = Report::default();
        self.unknown_terms_into(&mut report);
        report.check(self.version >= 1, "version", Problem::Zero);
        report.check(
            self.not_before < self.not_after,
            "not_after",
            Problem::EmptyWindow,
        );
        report.check(!self.purposes.is_empty(), "purposes", Problem::Empty);
        report.check(
            !self.target.metrics.is_empty(),
            "target.metrics",
            Problem::Empty,
        );
        report.check(!self.functions.is_empty(), "functions", Problem::Empty);
        report.check(self.k >= 1, "k", Problem::Zero);
        report.check(self.min_bucket_s != Some(0), "min_bucket_s", Problem::Zero);
        match self.action {
            Action::ReadAggregate => self.check_aggregate(&mut report),
            Action::ReadRaw => self.check_raw(&mut report),
        }
        report.check(
            !(self.pseudonymise && self.fields.contains(Field::Gateway)),
            "fields",
            Problem::Contradiction(
                "gateway identifies the device that pseudonymisation hides; drop it or stop pseudonymising",
            ),
        );
        self.check_pooling(&mut report);
        for (i, prohibition) in self.prohibitions.iter().enumerate() {
            report.check(
                prohibition.target.territories.is_empty(),
                format!("prohibitions[{i}].target.territories"),
                Problem::Contradiction(
                    "a prohibition cannot be scoped by territory: decisions are taken before sensors are placed; scope it by metric, zone or sensor",
                ),
            );
            report.check(
                !prohibition.target.metrics.is_empty(),
                format!("prohibitions[{i}].target.metrics"),
                Problem::Empty,
            );
            report.check(
                prohibition.target.tags.is_empty(),
                format!("prohibitions[{i}].target.tags"),
                Problem::Contradiction(
                    "a prohibition cannot be scoped by tag: decisions are taken before sensors are resolved; scope it by metric, zone or sensor",
                ),
            );
        }
        if report.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidAgreement(report.0))
        }
    }

    /// Every key and word not understood, at every level.
    fn unknown_terms_into(&self, report: &mut Report) {
        let keys = |report: &mut Report, prefix: &str, terms: &UnknownTerms| {
            for key in terms.keys() {
                report.check(false, format!("{prefix}{key}"), Problem::UnknownTerm);
            }
        };
        keys(report, "", &self.unknown_terms);
        keys(report, "target.", &self.target.unknown_terms);
        words(report, "purposes", &self.purposes);
        words(report, "functions", &self.functions);
        words(report, "fields", &self.fields);
        for (i, prohibition) in self.prohibitions.iter().enumerate() {
            keys(
                report,
                &format!("prohibitions[{i}]."),
                &prohibition.unknown_terms,
            );
            keys(
                report,
                &format!("prohibitions[{i}].target."),
                &prohibition.target.unknown_terms,
            );
        }
    }

    fn check_pooling(&self, report: &mut Report) {
        if self.pooling {
            let other_tenant = matches!(&self.grantee, Grantee::Tenant(beneficiary) if *beneficiary != self.grantor);
            report.check(
                other_tenant,
                "grantee",
                Problem::Contradiction(
                    "a pooling agreement names another tenant of this platform as beneficiary",
                ),
            );
            report.check(
                self.target.territories.is_empty()
                    || self.action == Action::ReadRaw
                    || self.spatial_level == SpatialLevel::Sensor,
                "target.territories",
                Problem::Contradiction(
                    "territories place each reading where its sensor stood: raw rows or aggregates per sensor (spatial_level sensor); zone cells are cut by the operator's zones",
                ),
            );
        } else {
            report.check(
                self.target.territories.is_empty(),
                "target.territories",
                Problem::Contradiction(
                    "territories are zones of a beneficiary: only pooling agreements have them",
                ),
            );
        }
    }

    fn check_aggregate(&self, report: &mut Report) {
        report.check(
            self.min_bucket_s.is_some(),
            "min_bucket_s",
            Problem::Required("for read_aggregate"),
        );
        report.check(
            self.fields.is_empty(),
            "fields",
            Problem::Contradiction("fields apply to read_raw only"),
        );
        report.check(
            !(self.spatial_level == SpatialLevel::Sensor && self.k > 1),
            "k",
            Problem::Contradiction(
                "a sensor-level cell holds one sensor: k > 1 would suppress every cell; use spatial_level zone",
            ),
        );
    }

    fn check_raw(&self, report: &mut Report) {
        report.check(
            self.spatial_level == SpatialLevel::Sensor,
            "spatial_level",
            Problem::Contradiction("read_raw serves rows per sensor: spatial_level must be sensor"),
        );
        report.check(
            self.k <= 1,
            "k",
            Problem::Contradiction("read_raw serves one sensor per row: k must be 1"),
        );
        report.check(
            !self.fields.is_empty(),
            "fields",
            Problem::Required("for read_raw: the columns a row may carry"),
        );
    }
}

fn words<T: Term>(report: &mut Report, path: &str, set: &TermSet<T>) {
    for word in set.unrecognised() {
        report.check(
            false,
            path,
            Problem::UnknownValue {
                kind: T::KIND,
                value: word.clone(),
            },
        );
    }
}
