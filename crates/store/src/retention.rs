//! Retention per tenant and metric class, shared by both backends: the policy and purge
//! types, the most-specific-class rule and the purge receipts written to the audit log.
//!
//! # Classes and the most-specific rule
//!
//! A class is a [`MetricPattern`]: an exact metric (`air.pm25`), every metric under a dotted
//! prefix (`air.*`) or every metric (`*`). A tenant has at most one policy per class. A metric
//! is **governed** by the most specific of its tenant's classes that match it: an exact metric
//! before any prefix, a longer prefix before a shorter one (`air.no2.*` before `air.*`), any
//! prefix before `*`. Two patterns matching the same metric are always nested, so this order
//! is total and the governing class is unique. A purge of class `C` therefore deletes the
//! rows of the metrics `C` matches *minus* those governed by a more specific class of the
//! tenant: a `air.pm25` policy keeping ten years is not undone by a `air.*` policy keeping
//! one. A purge of a class that has no stored policy (by hand) follows the same rule.
//!
//! # What a purge deletes, per backend
//!
//! - **Raw**: readings of the class's series older than the bound, with `DELETE` on every
//!   backend, at most [`PurgeRequest::batch_rows`] rows per statement and transaction, so a
//!   large purge never holds a long lock or builds a huge transaction. On TimescaleDB, chunks
//!   span every tenant, so a per-tenant purge cannot drop chunks: `drop_chunks` (the
//!   `add_retention_policy` created from [`crate::OpenOptions::retention`]) only enforces the
//!   instance-wide bound. A `DELETE` on compressed chunks is supported by TimescaleDB ≥ 2.11;
//!   on an older server that refuses it, the compressed chunks older than the bound are
//!   decompressed and the batch retried once (the compression policy compresses them again).
//!   The continuous aggregates keep what the purged readings summed up: they are refreshed
//!   over the purged range first, and the deletes do not invalidate them (TimescaleDB ≥ 2.28).
//! - **Aggregates**: only TimescaleDB stores aggregates (the continuous aggregates
//!   `readings_1m`, `readings_1h`, `readings_1d`): their materialized rows of the class's
//!   series whose bucket *ends* at or before the bound are deleted the same way, per view (a
//!   cagg's own retention policy would apply to every tenant). SQLite and plain PostgreSQL
//!   compute buckets from the raw readings at query time and store none: an aggregate purge
//!   there deletes nothing and its receipt says why ([`PurgeReceipt::note`]).
//!
//! # Receipts
//!
//! Every batch that deletes rows appends an [`AuditKind::Purge`] entry ([`PurgeDetail`]:
//! what, the oldest purged time, the bound, the row count) to the tenant's audit chain **in
//! the same transaction** as its `DELETE`: a purge is never un-audited, and a purge
//! interrupted between batches leaves exactly the receipts of the batches that committed.
//! A batch that deletes nothing writes no entry. The returned [`PurgeReceipt`] sums the
//! batches.
//!
//! The instance-wide retention of [`crate::OpenOptions::retention`] stays an upper bound on
//! every class: the platform's retention task purges each class at the earlier of its own
//! bound and the instance's.

use beffroi_audit::{AuditActor, AuditKind, NewAuditEntry, PurgeDetail};
use beffroi_policy::MetricPattern;
use beffroi_protocol::{MetricName, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::decode::{corrupt, id};
use crate::rows::Columns;
use crate::{Error, Result};

/// Rows deleted per statement and transaction by default (see [`PurgeRequest::batch_rows`]).
pub const PURGE_BATCH_ROWS: u32 = 50_000;

/// The longest retention a policy may state, in days (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// How long a tenant keeps the data of one metric class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// The tenant.
    pub tenant: TenantId,
    /// The metric class (`air.pm25`, `air.*` or `*`).
    pub class: MetricPattern,
    /// Days raw readings are kept; `None`: kept (up to the instance-wide retention).
    pub raw_days: Option<u32>,
    /// Days stored aggregates are kept; `None`: kept (up to the instance-wide retention).
    pub aggregate_days: Option<u32>,
    /// When it was last set.
    pub updated_at: Timestamp,
}

impl RetentionPolicy {
    /// Checks the durations: each at least one day and at most [`MAX_RETENTION_DAYS`].
    pub fn validate(&self) -> Result<()> {
        for (what, days) in [
            ("raw_days", self.raw_days),
            ("aggregate_days", self.aggregate_days),
        ] {
            if let Some(days) = days {
                if !(1..=MAX_RETENTION_DAYS).contains(&days) {
                    return Err(Error::Invalid {
                        what,
                        reason: format!("{days} days: must be 1..={MAX_RETENTION_DAYS}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The days kept for `kind`.
    pub fn days(&self, kind: PurgeKind) -> Option<u32> {
        match kind {
            PurgeKind::Raw => self.raw_days,
            PurgeKind::Aggregate => self.aggregate_days,
        }
    }
}

/// How specific a class is: higher wins (see the module doc). Exact metrics rank above every
/// prefix, longer prefixes above shorter ones, and `*` lowest.
pub fn specificity(class: &MetricPattern) -> (u8, usize) {
    match class {
        MetricPattern::Any => (0, 0),
        MetricPattern::Prefix(prefix) => (1, prefix.as_str().len()),
        MetricPattern::Exact(name) => (2, name.as_str().len()),
    }
}

/// The class governing `metric` among `classes`: the most specific one that matches it.
pub fn governing_class<'a>(
    classes: impl IntoIterator<Item = &'a MetricPattern>,
    metric: &MetricName,
) -> Option<&'a MetricPattern> {
    classes
        .into_iter()
        .filter(|class| class.matches(metric))
        .max_by_key(|class| specificity(class))
}

/// The policy governing `metric` among a tenant's `policies` (see [`governing_class`]).
pub fn governing_policy<'a>(
    policies: &'a [RetentionPolicy],
    metric: &MetricName,
) -> Option<&'a RetentionPolicy> {
    let class = governing_class(policies.iter().map(|p| &p.class), metric)?;
    policies.iter().find(|p| &p.class == class)
}

/// Whether a purge of `class` covers `metric`, given the tenant's stored `classes`: `class`
/// matches it and no more specific stored class does.
pub(crate) fn purges(
    class: &MetricPattern,
    classes: &[MetricPattern],
    metric: &MetricName,
) -> bool {
    class.matches(metric)
        && !classes
            .iter()
            .any(|other| other.matches(metric) && specificity(other) > specificity(class))
}

/// Raw readings or stored aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurgeKind {
    /// Raw readings.
    Raw,
    /// Stored aggregates (TimescaleDB continuous aggregates).
    Aggregate,
}

impl PurgeKind {
    /// Both kinds.
    pub const ALL: [PurgeKind; 2] = [PurgeKind::Raw, PurgeKind::Aggregate];

    /// The stable label (`raw`, `aggregate`) for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeKind::Raw => "raw",
            PurgeKind::Aggregate => "aggregate",
        }
    }
}

/// A purge to run: one tenant, one class, one kind, everything older than a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRequest {
    /// The tenant.
    pub tenant: TenantId,
    /// The class (see the module doc for the metrics it covers).
    pub class: MetricPattern,
    /// Raw readings or stored aggregates.
    pub kind: PurgeKind,
    /// Rows strictly older than this are deleted (aggregates: buckets that end at or before
    /// it).
    pub older_than: Timestamp,
    /// Who purges (`system:retention`, `user:…`), for the receipts.
    pub actor: AuditActor,
    /// When, for the receipts.
    pub at: Timestamp,
    /// Rows deleted per statement and transaction, at least 1 ([`PURGE_BATCH_ROWS`]).
    pub batch_rows: u32,
}

impl PurgeRequest {
    /// A purge by `actor` at `at` in batches of [`PURGE_BATCH_ROWS`].
    pub fn new(
        tenant: TenantId,
        class: MetricPattern,
        kind: PurgeKind,
        older_than: Timestamp,
        actor: AuditActor,
        at: Timestamp,
    ) -> Self {
        Self {
            tenant,
            class,
            kind,
            older_than,
            actor,
            at,
            batch_rows: PURGE_BATCH_ROWS,
        }
    }

    /// `batch_rows` as a SQL `LIMIT`.
    pub(crate) fn limit(&self) -> i64 {
        i64::from(self.batch_rows.max(1))
    }

    /// What a receipt of this purge says was purged; `view`: the aggregate view of one batch.
    pub(crate) fn what(&self, view: Option<&str>) -> String {
        match (self.kind, view) {
            (PurgeKind::Raw, _) => format!("raw readings of metric class {}", self.class),
            (PurgeKind::Aggregate, None) => format!("aggregates of metric class {}", self.class),
            (PurgeKind::Aggregate, Some(view)) => {
                format!("aggregates {view} of metric class {}", self.class)
            }
        }
    }

    /// Whether a batch of `rows` rows was the last one (it deleted less than a full batch).
    pub(crate) fn last_batch(&self, rows: u64) -> bool {
        rows < u64::from(self.batch_rows.max(1))
    }

    /// The audit entry of one batch that deleted `rows` (> 0), the oldest at `from`.
    pub(crate) fn batch_entry(
        &self,
        what: String,
        from: Option<Timestamp>,
        rows: u64,
    ) -> Result<NewAuditEntry> {
        let detail = PurgeDetail {
            what,
            from,
            to: self.older_than,
            rows,
        };
        NewAuditEntry::new(
            self.tenant.clone(),
            self.at,
            self.actor.clone(),
            AuditKind::Purge,
            &detail,
        )
        .map_err(|e| Error::Invalid {
            what: "purge receipt",
            reason: e.to_string(),
        })
    }

    /// An empty receipt, to add batches to.
    pub(crate) fn receipt(&self) -> PurgeReceipt {
        PurgeReceipt {
            tenant: self.tenant.clone(),
            class: self.class.clone(),
            kind: self.kind,
            what: self.what(None),
            from: None,
            to: self.older_than,
            rows: 0,
            batches: 0,
            note: None,
        }
    }
}

/// What a purge removed: the sum of its batches, each receipted in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReceipt {
    /// The tenant.
    pub tenant: TenantId,
    /// The class.
    pub class: MetricPattern,
    /// Raw readings or aggregates.
    pub kind: PurgeKind,
    /// What was purged, as the audit entries say it.
    pub what: String,
    /// The oldest purged time (bucket start for aggregates); `None` when nothing was purged.
    pub from: Option<Timestamp>,
    /// The bound: everything older was purged.
    pub to: Timestamp,
    /// Rows deleted.
    pub rows: u64,
    /// Batches that deleted rows: as many `purge` entries were appended to the audit log.
    pub batches: u64,
    /// Why nothing could be deleted, when the backend stores nothing of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl PurgeReceipt {
    /// Adds a committed batch of `rows` rows, the oldest at `from`.
    pub(crate) fn add_batch(&mut self, rows: u64, from: Option<Timestamp>) {
        self.rows += rows;
        self.batches += 1;
        self.from = match (self.from, from) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Adds the batches of another receipt of the same purge (another aggregate view).
    pub(crate) fn merge(&mut self, other: &PurgeReceipt) {
        self.rows += other.rows;
        self.batches += other.batches;
        self.from = match (self.from, other.from) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// The note of an aggregate purge on a backend that stores no aggregates.
pub(crate) const NO_STORED_AGGREGATES: &str = "this backend stores no aggregates: buckets are \
     computed from the raw readings at query time, so only the raw retention applies";

/// `retention_policies`: `tenant, class, raw_days, aggregate_days, updated_at` (time in
/// microseconds).
pub(crate) fn policy_from(r: &impl Columns) -> Result<RetentionPolicy> {
    const TABLE: &str = "retention_policies";
    let days = |col: &str| -> Result<Option<u32>> {
        r.opt_int(col)?
            .map(|d| u32::try_from(d).map_err(|e| corrupt(TABLE, format!("{col}: {e}"))))
            .transpose()
    };
    Ok(RetentionPolicy {
        tenant: id(TABLE, r.text("tenant")?, TenantId::new)?,
        class: stored_class(r.text("class")?)?,
        raw_days: days("raw_days")?,
        aggregate_days: days("aggregate_days")?,
        updated_at: r.time("updated_at")?,
    })
}

/// A stored class.
pub(crate) fn stored_class(text: &str) -> Result<MetricPattern> {
    text.parse()
        .map_err(|e| corrupt("retention_policies", format!("class: {e}")))
}

/// The `(id, metric)` rows of a tenant's series that a purge of `class` covers, given the
/// tenant's stored classes (see [`purges`]): their ids.
pub(crate) fn class_series(
    class: &MetricPattern,
    stored: &[MetricPattern],
    series: &[(i64, String)],
) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    for (series_id, metric) in series {
        let metric = id("series", metric, MetricName::new)?;
        if purges(class, stored, &metric) {
            ids.push(*series_id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> MetricPattern {
        text.parse().expect("pattern")
    }

    fn m(text: &str) -> MetricName {
        MetricName::new(text).expect("metric")
    }

    #[test]
    fn most_specific_class_governs() {
        let classes = [p("*"), p("air.*"), p("air.no2.*"), p("air.pm25")];
        let gov = |metric| governing_class(&classes, &m(metric)).map(ToString::to_string);
        assert_eq!(gov("air.pm25").as_deref(), Some("air.pm25"));
        assert_eq!(gov("air.no2.hourly").as_deref(), Some("air.no2.*"));
        assert_eq!(gov("air.o3").as_deref(), Some("air.*"));
        assert_eq!(gov("noise.laeq").as_deref(), Some("*"));
        assert_eq!(governing_class(&classes[1..], &m("noise.laeq")), None);
    }

    #[test]
    fn a_purge_leaves_more_specific_classes_alone() {
        let classes = [p("air.*"), p("air.pm25")];
        assert!(purges(&p("air.*"), &classes, &m("air.no2")));
        assert!(!purges(&p("air.*"), &classes, &m("air.pm25")));
        assert!(purges(&p("air.pm25"), &classes, &m("air.pm25")));
        assert!(!purges(&p("air.*"), &classes, &m("noise.laeq")));
        // A class without a stored policy (by hand) follows the same rule.
        assert!(purges(&p("*"), &classes, &m("noise.laeq")));
        assert!(!purges(&p("*"), &classes, &m("air.no2")));
    }

    #[test]
    fn durations_are_checked() {
        let policy = |raw, aggregate| RetentionPolicy {
            tenant: TenantId::new("lyon").expect("tenant"),
            class: p("air.*"),
            raw_days: raw,
            aggregate_days: aggregate,
            updated_at: Timestamp::from_unix_micros(0),
        };
        assert!(policy(Some(1), None).validate().is_ok());
        assert!(policy(None, Some(MAX_RETENTION_DAYS)).validate().is_ok());
        assert!(policy(Some(0), None).validate().is_err());
        assert!(policy(None, Some(MAX_RETENTION_DAYS + 1))
            .validate()
            .is_err());
    }

    #[test]
    fn receipts_sum_batches() {
        let request = PurgeRequest::new(
            TenantId::new("lyon").expect("tenant"),
            p("*"),
            PurgeKind::Raw,
            Timestamp::from_unix_micros(100),
            AuditActor::System("retention".into()),
            Timestamp::from_unix_micros(200),
        );
        let mut receipt = request.receipt();
        receipt.add_batch(3, Some(Timestamp::from_unix_micros(50)));
        receipt.add_batch(2, Some(Timestamp::from_unix_micros(10)));
        assert_eq!((receipt.rows, receipt.batches), (5, 2));
        assert_eq!(receipt.from, Some(Timestamp::from_unix_micros(10)));
    }
}
