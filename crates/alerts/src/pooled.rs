//! Alarm rules on pooled sensors: a tenant's threshold rule with a `pooled` purpose also
//! watches the sensors other tenants (operators) pool with it, exactly as far as the policy
//! engine lets it read them for that purpose.
//!
//! ```text
//! rules, agreements or registries change; every RELOAD ─► PoolGovernor::watches
//!   (the API: decide each pooled rule against each operator's pooling agreements, channel
//!   `alarm`) ─► PoolWatch per (rule, operator) permitted
//! operator's committed batch ─► each watch on it ─► PoolWatch::admit (the permit's
//!   Transforms::admits at `now`: period, validity, territory where the sensor stood when it
//!   measured; the sensor id as the beneficiary sees it) ─► the rule's threshold
//! alarm raised or cleared on a pooled subject ─► PoolGovernor::reveal (decided again, then
//!   recorded in the operator's audit log) ─► only then written and pushed live
//! ```
//! The engine never sees a reading its watch did not admit, so a rule learns nothing of
//! sensors outside the agreement, not even that they exist. An embargoed agreement gives no
//! watch: an alarm would reveal values before the embargo allows.

use std::fmt;
use std::sync::Arc;

use beffroi_protocol::{Reading, TenantId, Timestamp};
use beffroi_store::{AlarmRule, AlarmSubject, RuleId, ZoneId};
use beffroi_telemetry::Metrics;
use tokio::sync::watch;

use crate::engine::{Action, Engine};

/// An operator's reading as a beneficiary's rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The sensor's id for the beneficiary, or its pseudonym (`p_…`) when the agreement
    /// pseudonymises.
    pub sensor: String,
    /// The beneficiary's zones the sensor stood inside when it measured.
    pub zones: Vec<ZoneId>,
}

/// What one pooled rule may watch of one operator's readings: a permit of the policy engine
/// for the rule's metric and purpose, in force until the watches are decided again.
pub trait PoolWatch: Send + Sync + fmt::Debug {
    /// The tenant whose rule it is.
    fn beneficiary(&self) -> &TenantId;
    /// The rule.
    fn rule(&self) -> &RuleId;
    /// The tenant whose readings it watches.
    fn operator(&self) -> &TenantId;
    /// How the beneficiary sees `reading` of the operator, if the permit admits it at `now`.
    fn admit(&self, reading: &Reading, now: Timestamp) -> Option<Seen>;
}

/// Whether an alarm change on a pooled sensor may be shown to its beneficiary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Permitted, and recorded in the operator's audit log.
    Recorded,
    /// The policy engine refuses it now (the agreement ended or changed): dropped.
    Refused(String),
    /// It could not be decided or recorded: retried later.
    Unavailable(String),
}

/// Decides what pooled rules watch and records what their alarms reveal; the API implements
/// it with the policy engine, the agreements and the operators' audit logs.
#[async_trait::async_trait]
pub trait PoolGovernor: Send + Sync + fmt::Debug {
    /// The watches of `rules` (enabled threshold rules with a `pooled` purpose) at `now`: one
    /// per rule and operator whose pooling agreements permit it; an error when the agreements
    /// or registries cannot be read (the watches in force are kept: each still admits a
    /// reading only while its agreement is valid).
    async fn watches(
        &self,
        rules: &[AlarmRule],
        now: Timestamp,
    ) -> Result<Vec<Arc<dyn PoolWatch>>, String>;

    /// Decides again and records in the operator's audit log that `action` (about a pooled
    /// subject) reveals a reading to the beneficiary, under `rule`: before it is written.
    async fn reveal(&self, action: &Action, rule: &AlarmRule) -> Verdict;

    /// A receiver whose value moves when agreements change.
    fn changes(&self) -> watch::Receiver<u64>;
}

/// The alert task's side of pooling: the governor, if the platform gave one, and the watches
/// it decided last.
#[derive(Default)]
pub(crate) struct Pool {
    governor: Option<Arc<dyn PoolGovernor>>,
    changes: Option<watch::Receiver<u64>>,
    watches: Vec<Arc<dyn PoolWatch>>,
}

impl Pool {
    /// Pooled rules decided by `governor`.
    pub(crate) fn new(governor: Arc<dyn PoolGovernor>) -> Self {
        Self {
            changes: Some(governor.changes()),
            governor: Some(governor),
            watches: Vec::new(),
        }
    }

    /// The watches in force.
    pub(crate) fn watches(&self) -> &[Arc<dyn PoolWatch>] {
        &self.watches
    }

    /// Decides the watches of `engine`'s pooled rules again at `now`.
    pub(crate) async fn refresh(&mut self, engine: &Engine, now: Timestamp, metrics: &Metrics) {
        let Some(governor) = &self.governor else {
            return;
        };
        let rules = engine.pooled_rules();
        if rules.is_empty() {
            self.watches.clear();
        } else {
            match governor.watches(&rules, now).await {
                Ok(watches) => self.watches = watches,
                Err(error) => {
                    tracing::warn!(%error, "cannot decide the pooled alarm rules' watches; keeping those in force");
                }
            }
        }
        metrics
            .alerts_pooled_watches
            .set(i64::try_from(self.watches.len()).unwrap_or(i64::MAX));
    }

    /// Resolves when agreements change (never without a governor).
    pub(crate) async fn agreements_changed(&mut self) {
        if let Some(changes) = &mut self.changes {
            if changes.changed().await.is_ok() {
                return;
            }
        }
        std::future::pending().await
    }

    /// Whether `action` may be applied: always unless it is about a pooled sensor, which the
    /// governor decides and records first.
    pub(crate) async fn reveal(&self, action: &Action, engine: &Engine) -> Verdict {
        let (tenant, rule) = match action {
            Action::Raise(alarm) if matches!(alarm.subject, AlarmSubject::Pooled { .. }) => {
                (&alarm.tenant, &alarm.rule)
            }
            Action::Resolve {
                tenant,
                rule,
                subject: AlarmSubject::Pooled { .. },
                ..
            } => (tenant, rule),
            _ => return Verdict::Recorded,
        };
        let (Some(governor), Some(rule)) = (&self.governor, engine.rule(tenant, rule)) else {
            return Verdict::Refused(format!(
                "rule {rule} of {tenant} no longer watches pooled sensors"
            ));
        };
        governor.reveal(action, rule).await
    }
}
