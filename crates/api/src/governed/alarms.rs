//! Alarm rules on pooled sensors through the governed read path: the
//! [`beffroi_alerts::PoolGovernor`] the platform gives the alert engine.
//!
//! ```text
//! pooled rule (beneficiary, purpose, metric) × each tenant with a pooling agreement for it
//!   ─► AccessRequest (channel alarm, raw time/value/metric/sensor, any time) ─► decide
//!   Permit, not embargoed ─► Watch: the permit's transforms, its pseudonym key, the
//!     operator's registry with every move placed in the beneficiary's zones
//!   Deny ─► no watch (nothing was read: nothing is recorded)
//! Watch::admit(reading, now) ─► Transforms::admits (period, validity, territory where the
//!   sensor stood when it measured) ─► the sensor id as the beneficiary sees it, its zones
//! alarm raised or cleared ─► decide again ─► access_permit (1 row, SHA-256 of the change)
//!   or access_deny in the operator's log ─► only then is the alarm written
//! ```
//! Deciding a watch reads nothing, so it is not recorded; what reaches the beneficiary is an
//! alarm, and each is an access in the operator's audit log (`query.alarm` names the rule,
//! the change and the sensor), counted by the pooling usage report like any other access.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use beffroi_alerts::{Action, PoolGovernor, PoolWatch, Seen, Verdict};
use beffroi_audit::{AuditActor, Digest};
use beffroi_policy::{
    decide, pseudonym, AccessRequest, Channel, Decision, Field, Grantee, MetricPattern, Permit,
    PseudonymKey, Purpose, Read, TimeRange, Transforms,
};
use beffroi_protocol::{MetricName, Reading, TenantId, Timestamp};
use beffroi_store::{AlarmRule, AlarmSubject, RuleCondition, RuleId, Store};
use serde_json::json;
use tokio::sync::watch;

use super::live::LIVE_HORIZON;
use super::population::{areas_of, Registry};
use super::{permit_key, query_with, record_in, GovernedRead, Outcome, RawPage};
use crate::clock::Clock;
use crate::governed::AgreementCache;

/// Who the audit log records as asking: the alert engine, on the beneficiary's rule.
const ACTOR: &str = "alerts";

/// Decides pooled alarm rules' watches and records what their alarms reveal.
#[derive(Clone)]
pub struct PoolAlarms {
    store: Arc<dyn Store>,
    agreements: AgreementCache,
    clock: Clock,
}

impl std::fmt::Debug for PoolAlarms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolAlarms").finish_non_exhaustive()
    }
}

/// One pooled rule's view of one operator's readings.
struct Watch {
    beneficiary: TenantId,
    rule: RuleId,
    operator: TenantId,
    /// Whom pseudonyms are keyed for.
    grantee: Grantee,
    transforms: Transforms,
    key: Option<PseudonymKey>,
    /// The operator's sensors, their moves placed in the beneficiary's zones.
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("beneficiary", &self.beneficiary)
            .field("rule", &self.rule)
            .field("operator", &self.operator)
            .finish_non_exhaustive()
    }
}

impl PoolWatch for Watch {
    fn beneficiary(&self) -> &TenantId {
        &self.beneficiary
    }

    fn rule(&self) -> &RuleId {
        &self.rule
    }

    fn operator(&self) -> &TenantId {
        &self.operator
    }

    fn admit(&self, reading: &Reading, now: Timestamp) -> Option<Seen> {
        let facts = self
            .registry
            .facts(&reading.metric, &reading.sensor, reading.time);
        if !self.transforms.admits(&facts, now) {
            return None;
        }
        let sensor = match &self.key {
            Some(key) => pseudonym(key, &self.grantee, &reading.sensor),
            None => reading.sensor.to_string(),
        };
        Some(Seen {
            sensor,
            zones: facts.territories.to_vec(),
        })
    }
}

/// The governed read a pooled rule's alarms stand for, decided at `now`.
fn alarm_read(
    beneficiary: &TenantId,
    operator: &TenantId,
    purpose: Purpose,
    metric: &MetricName,
    now: Timestamp,
) -> GovernedRead {
    GovernedRead {
        request: AccessRequest {
            requester: Grantee::Tenant(beneficiary.clone()),
            grantor: operator.clone(),
            channel: Channel::Alarm,
            purpose,
            agreement: None,
            metrics: BTreeSet::from([MetricPattern::Exact(metric.clone())]),
            zones: BTreeSet::new(),
            sensors: BTreeSet::new(),
            tags: BTreeSet::new(),
            // Readings can reach the platform long after they were measured (an agent's
            // spool): every measurement time the agreement serves, each reading admitted by
            // the permit's served range at its arrival.
            range: TimeRange::new(
                Timestamp::from_unix_micros(0),
                now.saturating_add(LIVE_HORIZON),
            ),
            // What an alarm shows: when, what, where, how much.
            read: Read::Raw {
                fields: BTreeSet::from([Field::Time, Field::Value, Field::Metric, Field::Sensor]),
            },
        },
        actor: AuditActor::System(ACTOR.into()),
        preview: false,
        page: RawPage {
            limit: 0,
            after: None,
        },
    }
}

/// The purpose and metric of a pooled threshold rule.
fn pooled_terms(rule: &AlarmRule) -> Option<(Purpose, &MetricName)> {
    match &rule.condition {
        RuleCondition::Threshold {
            metric,
            pooled: Some(purpose),
            ..
        } => Some((*purpose, metric)),
        _ => None,
    }
}

impl PoolAlarms {
    /// Decided against `agreements`, read from `store`, at `clock`'s time.
    pub fn new(store: Arc<dyn Store>, agreements: AgreementCache, clock: Clock) -> Self {
        Self {
            store,
            agreements,
            clock,
        }
    }

    /// The operator's registry with its sensors' moves placed in the beneficiary's zones.
    async fn registry(
        &self,
        operator: &TenantId,
        beneficiary: &TenantId,
    ) -> beffroi_store::Result<Registry> {
        let zones = areas_of(self.store.list_zones(beneficiary).await?);
        let sensors = self.store.list_sensors(operator).await?;
        let placements = self.store.sensor_placements(operator).await?;
        Ok(Registry::new(sensors, &placements, &zones))
    }

    /// The watch `permit` gives `rule` on `operator`'s readings; `None` when it cannot serve
    /// alarms (embargoed, or pseudonymising without a key).
    async fn watch(
        &self,
        rule: &AlarmRule,
        operator: &TenantId,
        read: &GovernedRead,
        permit: Permit,
        registry: Arc<Registry>,
    ) -> Option<Watch> {
        if permit.transforms.window.embargo_s > 0 {
            tracing::debug!(rule = %rule.id, %operator, agreement = %permit.agreement.id, "embargoed: no pooled alarms");
            return None;
        }
        let key = match permit_key(self.store.as_ref(), read, &permit).await {
            Ok(key) => key,
            Err(error) => {
                tracing::warn!(%error, rule = %rule.id, %operator, "no pooled alarms under this agreement");
                return None;
            }
        };
        Some(Watch {
            beneficiary: rule.tenant.clone(),
            rule: rule.id.clone(),
            operator: operator.clone(),
            grantee: permit.grantee,
            transforms: permit.transforms,
            key,
            registry,
        })
    }
}

#[async_trait::async_trait]
impl PoolGovernor for PoolAlarms {
    async fn watches(
        &self,
        rules: &[AlarmRule],
        now: Timestamp,
    ) -> Result<Vec<Arc<dyn PoolWatch>>, String> {
        let agreements = self.agreements.current().await.map_err(|e| e.to_string())?;
        let mut registries: HashMap<(TenantId, TenantId), Arc<Registry>> = HashMap::new();
        let mut watches: Vec<Arc<dyn PoolWatch>> = Vec::new();
        for rule in rules {
            let Some((purpose, metric)) = pooled_terms(rule) else {
                continue;
            };
            let beneficiary = Grantee::Tenant(rule.tenant.clone());
            let operators: BTreeSet<&TenantId> = agreements
                .iter()
                .filter(|a| a.pooling && a.grantor != rule.tenant && a.grantee.covers(&beneficiary))
                .map(|a| &a.grantor)
                .collect();
            for operator in operators {
                let read = alarm_read(&rule.tenant, operator, purpose, metric, now);
                let Decision::Permit(permit) = decide(&read.request, &agreements, now) else {
                    continue;
                };
                let pair = (operator.clone(), rule.tenant.clone());
                let registry = match registries.get(&pair) {
                    Some(registry) => registry.clone(),
                    None => {
                        let registry = Arc::new(
                            self.registry(operator, &rule.tenant)
                                .await
                                .map_err(|e| e.to_string())?,
                        );
                        registries.insert(pair, registry.clone());
                        registry
                    }
                };
                if let Some(watch) = self.watch(rule, operator, &read, permit, registry).await {
                    watches.push(Arc::new(watch));
                }
            }
        }
        Ok(watches)
    }

    async fn reveal(&self, action: &Action, rule: &AlarmRule) -> Verdict {
        let (change, subject, value, at) = match action {
            Action::Raise(alarm) => ("raised", &alarm.subject, alarm.value, alarm.at),
            Action::Resolve { subject, at, .. } => ("cleared", subject, None, *at),
        };
        let (
            AlarmSubject::Pooled {
                operator,
                sensor,
                metric,
            },
            Some((purpose, _)),
        ) = (subject, pooled_terms(rule))
        else {
            return Verdict::Refused(format!("rule {} does not watch pooled sensors", rule.id));
        };
        let now = self.clock.now();
        let read = alarm_read(&rule.tenant, operator, purpose, metric, now);
        let agreements = match self.agreements.current().await {
            Ok(agreements) => agreements,
            Err(error) => return Verdict::Unavailable(error.to_string()),
        };
        let revealed = json!({
            "rule": rule.id,
            "rule_name": rule.name,
            "change": change,
            "sensor": sensor,
            "metric": metric,
            "value": value,
            "at": at.to_string(),
        });
        let query = match query_with(&read, now, "alarm", revealed.clone()) {
            Ok(query) => query,
            Err(error) => return Verdict::Unavailable(error.to_string()),
        };
        let (outcome, verdict) = match decide(&read.request, &agreements, now) {
            Decision::Permit(permit) if permit.transforms.window.embargo_s > 0 => {
                let reason = format!(
                    "agreement {} now holds values back ({} s embargo): alarms would reveal them",
                    permit.agreement.id, permit.transforms.window.embargo_s
                );
                let outcome = Outcome::Deny(Some(&permit.agreement), reason.clone());
                let written = record_in(self.store.as_ref(), &read, query, outcome).await;
                (written, Verdict::Refused(reason))
            }
            Decision::Permit(permit) => {
                let digest = Digest::of(revealed.to_string().as_bytes());
                let outcome = Outcome::Permit(&permit.agreement, 1, Some(digest));
                (
                    record_in(self.store.as_ref(), &read, query, outcome).await,
                    Verdict::Recorded,
                )
            }
            Decision::Deny(deny) => {
                let reason = format!("{}: {}", deny.reason, deny.message);
                let outcome = Outcome::Deny(deny.agreement.as_ref(), reason.clone());
                let written = record_in(self.store.as_ref(), &read, query, outcome).await;
                (written, Verdict::Refused(reason))
            }
        };
        match outcome {
            Ok(()) => verdict,
            Err(error) => Verdict::Unavailable(error.to_string()),
        }
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.agreements.subscribe()
    }
}
