//! The alert engine: every tenant's enabled rules and the state they need, fed with what
//! happened, answering with what to do to alarms ([`Action`]). Pure: no IO, no clock — the
//! caller passes `now` — so every rule is tested with exact times.
//!
//! | rule | input | raises | resolves |
//! |---|---|---|---|
//! | threshold | committed readings | condition held `for_s` (see `threshold`) | first reading where it does not hold |
//! | threshold, `pooled` | also the readings of other tenants its pool watches admit (see `pooled`) | the same, per pooled sensor | the same |
//! | gateway offline | batches, health reports, ticks | no batch nor health for `after_s` | the gateway is heard again |
//! | spool gap | health reports | each new gap (first time seen) | — (by hand) |
//! | security | security events of the tenant | each event (repeats count occurrences) | — (by hand) |
//! | certificate expiry | gateways' certificate expiry, ticks | less than `before_s` left | a renewed certificate, or revocation |
//!
//! A disabled rule is not loaded. Liveness is known only for gateways heard at least once
//! (seeded from the store's `last_seen` when a tenant's rules are loaded). Certificate expiry
//! comes from the store too, at every reload: renewals are recorded there by whichever node
//! served them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use beffroi_protocol::{
    Gap, GatewayId, Health, MetricName, Reading, SensorId, TenantId, Timestamp, Value,
};
use beffroi_store::{
    Alarm, AlarmRule, AlarmSubject, CommitBatch, Comparison, GatewayRecord, NewAlarm,
    RuleCondition, RuleId, SecurityEvent, Sensor, ZoneId,
};

use crate::pooled::PoolWatch;
use crate::threshold::{Step, Threshold};

/// Gaps remembered per gateway (a health report carries at most 64).
const GAPS_REMEMBERED: usize = 256;

/// What to do to an alarm.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open it, or count an occurrence on the active one.
    Raise(NewAlarm),
    /// Its condition ended: clear the active one automatically.
    Resolve {
        /// The tenant.
        tenant: TenantId,
        /// The rule.
        rule: RuleId,
        /// The subject.
        subject: AlarmSubject,
        /// When.
        at: Timestamp,
    },
}

#[derive(Debug, Default)]
struct Liveness {
    last_seen: Option<Timestamp>,
    /// Offline rules whose alarm is active for this gateway.
    offline: HashSet<RuleId>,
    /// When its current certificate expires (none: no certificate, or revoked).
    cert_not_after: Option<Timestamp>,
    /// Certificate-expiry rules whose alarm is active for this gateway.
    expiring: HashSet<RuleId>,
}

#[derive(Debug, Default)]
struct TenantRules {
    rules: Vec<AlarmRule>,
    zones: HashMap<SensorId, ZoneId>,
    /// Threshold states by rule and subject (a series, own or pooled).
    thresholds: HashMap<(RuleId, AlarmSubject), Threshold>,
    gateways: HashMap<GatewayId, Liveness>,
    gaps_seen: HashMap<GatewayId, Vec<(u64, u64)>>,
}

impl TenantRules {
    /// Records that a gateway was heard at `now`; resolves its offline alarms.
    fn heard(&mut self, tenant: &TenantId, gateway: &GatewayId, now: Timestamp) -> Vec<Action> {
        let live = self.gateways.entry(gateway.clone()).or_default();
        live.last_seen = Some(live.last_seen.map_or(now, |seen| seen.max(now)));
        live.offline
            .drain()
            .map(|rule| Action::Resolve {
                tenant: tenant.clone(),
                rule,
                subject: AlarmSubject::Gateway {
                    gateway: gateway.clone(),
                },
                at: now,
            })
            .collect()
    }
}

/// Every tenant's rules and state.
#[derive(Debug, Default)]
pub struct Engine {
    tenants: HashMap<TenantId, TenantRules>,
}

impl Engine {
    /// Replaces a tenant's rules (disabled ones are dropped). The state of a rule whose
    /// definition is unchanged (same id and `updated_at`) is kept; others start afresh.
    pub fn set_rules(&mut self, tenant: &TenantId, rules: Vec<AlarmRule>) {
        let rules: Vec<AlarmRule> = rules.into_iter().filter(|r| r.enabled).collect();
        let state = self.tenants.entry(tenant.clone()).or_default();
        let kept: HashSet<&RuleId> = rules
            .iter()
            .filter(|r| {
                state
                    .rules
                    .iter()
                    .any(|old| old.id == r.id && old.updated_at == r.updated_at)
            })
            .map(|r| &r.id)
            .collect();
        state.thresholds.retain(|(rule, _), _| kept.contains(rule));
        for live in state.gateways.values_mut() {
            live.offline.retain(|rule| kept.contains(rule));
            live.expiring.retain(|rule| kept.contains(rule));
        }
        state.rules = rules;
    }

    /// Tenants that have at least one enabled rule.
    pub fn tenants(&self) -> impl Iterator<Item = &TenantId> {
        self.tenants
            .iter()
            .filter(|(_, t)| !t.rules.is_empty())
            .map(|(id, _)| id)
    }

    /// Whether a tenant has a gateway-offline or certificate-expiry rule (its gateways are
    /// then worth seeding).
    pub fn watches_gateways(&self, tenant: &TenantId) -> bool {
        self.tenants.get(tenant).is_some_and(|t| {
            t.rules.iter().any(|r| {
                matches!(
                    r.condition,
                    RuleCondition::GatewayOffline { .. } | RuleCondition::CertificateExpiry { .. }
                )
            })
        })
    }

    /// A tenant's sensors (zones of threshold alarms, zone-scoped rules).
    pub fn set_sensors(&mut self, tenant: &TenantId, sensors: &[Sensor]) {
        let state = self.tenants.entry(tenant.clone()).or_default();
        state.zones = sensors
            .iter()
            .filter_map(|s| Some((s.id.clone(), s.zone.clone()?)))
            .collect();
    }

    /// Seeds gateways' last contact (what they did while this node was down) and their
    /// certificates' expiry (a revoked gateway has none) from the store.
    pub fn seed_gateways(&mut self, tenant: &TenantId, gateways: &[GatewayRecord]) {
        let state = self.tenants.entry(tenant.clone()).or_default();
        for gateway in gateways {
            let live = state.gateways.entry(gateway.id.clone()).or_default();
            if let Some(seen) = gateway.state.last_seen {
                live.last_seen = Some(live.last_seen.map_or(seen, |known| known.max(seen)));
            }
            live.cert_not_after = gateway.cert_not_after.filter(|_| !gateway.revoked);
        }
    }

    /// Resumes from the alarms active in the store: their conditions are known to hold, so the
    /// next normal reading (or contact) resolves them and nothing opens them twice.
    pub fn resume(&mut self, active: &[Alarm]) {
        for alarm in active {
            let Some(state) = self.tenants.get_mut(&alarm.tenant) else {
                continue;
            };
            match &alarm.subject {
                AlarmSubject::Series { .. } | AlarmSubject::Pooled { .. } => {
                    state.thresholds.insert(
                        (alarm.rule.clone(), alarm.subject.clone()),
                        Threshold::active(),
                    );
                }
                AlarmSubject::Gateway { gateway } => {
                    let expiry = state.rules.iter().any(|r| {
                        r.id == alarm.rule
                            && matches!(r.condition, RuleCondition::CertificateExpiry { .. })
                    });
                    let live = state.gateways.entry(gateway.clone()).or_default();
                    if expiry {
                        live.expiring.insert(alarm.rule.clone());
                    } else {
                        live.offline.insert(alarm.rule.clone());
                    }
                }
                AlarmSubject::Gap {
                    gateway,
                    first_seq,
                    last_seq,
                } => remember_gap(state, gateway, (*first_seq, *last_seq)),
                AlarmSubject::Security { .. } => {}
            }
        }
    }

    /// A committed batch: threshold rules, and the gateway was heard.
    pub fn batch(&mut self, batch: &CommitBatch, now: Timestamp) -> Vec<Action> {
        let Some(state) = self.tenants.get_mut(&batch.tenant) else {
            return Vec::new();
        };
        let mut actions = state.heard(&batch.tenant, &batch.gateway, now);
        let TenantRules {
            rules,
            zones,
            thresholds,
            ..
        } = state;
        for rule in rules.iter() {
            let Some(threshold) = ThresholdRule::of(rule) else {
                continue;
            };
            for reading in batch
                .readings
                .iter()
                .filter(|r| r.metric == *threshold.metric)
            {
                let zone = zones.get(&reading.sensor);
                if !threshold.selects(reading.sensor.as_str(), zone.into_iter()) {
                    continue;
                }
                let subject = AlarmSubject::Series {
                    sensor: reading.sensor.clone(),
                    metric: reading.metric.clone(),
                };
                let zone = zone.cloned();
                actions.extend(threshold.observe(
                    &batch.tenant,
                    thresholds,
                    subject,
                    zone,
                    reading,
                ));
            }
        }
        actions
    }

    /// An operator's committed batch as the pooled rules watching it see it: each `watches`
    /// entry on `batch`'s tenant admits the readings its rule may evaluate (no other reading
    /// reaches the rule).
    pub fn pooled(
        &mut self,
        batch: &CommitBatch,
        watches: &[Arc<dyn PoolWatch>],
        now: Timestamp,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        for watch in watches.iter().filter(|w| *w.operator() == batch.tenant) {
            let Some(state) = self.tenants.get_mut(watch.beneficiary()) else {
                continue;
            };
            let TenantRules {
                rules, thresholds, ..
            } = state;
            let Some(threshold) = rules
                .iter()
                .find(|r| r.id == *watch.rule())
                .and_then(ThresholdRule::of)
                .filter(|t| t.pooled)
            else {
                continue;
            };
            for reading in batch
                .readings
                .iter()
                .filter(|r| r.metric == *threshold.metric)
            {
                let Some(seen) = watch.admit(reading, now) else {
                    continue;
                };
                if !threshold.selects(&seen.sensor, seen.zones.iter()) {
                    continue;
                }
                let zone = threshold
                    .zone
                    .cloned()
                    .or_else(|| seen.zones.first().cloned());
                let subject = AlarmSubject::Pooled {
                    operator: batch.tenant.clone(),
                    sensor: seen.sensor,
                    metric: reading.metric.clone(),
                };
                actions.extend(threshold.observe(
                    watch.beneficiary(),
                    thresholds,
                    subject,
                    zone,
                    reading,
                ));
            }
        }
        actions
    }

    /// Every enabled threshold rule that also watches pooled sensors.
    pub fn pooled_rules(&self) -> Vec<AlarmRule> {
        self.tenants
            .values()
            .flat_map(|t| &t.rules)
            .filter(|r| ThresholdRule::of(r).is_some_and(|t| t.pooled))
            .cloned()
            .collect()
    }

    /// A tenant's enabled rule.
    pub fn rule(&self, tenant: &TenantId, id: &RuleId) -> Option<&AlarmRule> {
        self.tenants.get(tenant)?.rules.iter().find(|r| r.id == *id)
    }

    /// A recorded health report: the gateway was heard; new gaps raise gap alarms.
    pub fn health(&mut self, health: &Health, now: Timestamp) -> Vec<Action> {
        let Some(state) = self.tenants.get_mut(&health.tenant) else {
            return Vec::new();
        };
        let mut actions = state.heard(&health.tenant, &health.gateway, now);
        let new_gaps: Vec<&Gap> = health
            .gaps
            .iter()
            .filter(|g| {
                !state
                    .gaps_seen
                    .get(&health.gateway)
                    .is_some_and(|seen| seen.contains(&(g.first_seq, g.last_seq)))
            })
            .collect();
        for gap in new_gaps {
            remember_gap(state, &health.gateway, (gap.first_seq, gap.last_seq));
            for rule in &state.rules {
                let RuleCondition::SpoolGap { reasons } = &rule.condition else {
                    continue;
                };
                if !reasons.is_empty() && !reasons.contains(&gap.reason) {
                    continue;
                }
                let message = format!(
                    "gateway {} reported a gap: seqs {}..={} ({} batches, {} readings, {})",
                    health.gateway,
                    gap.first_seq,
                    gap.last_seq,
                    gap.batches,
                    gap.readings,
                    gap.reason.as_str()
                );
                let subject = AlarmSubject::Gap {
                    gateway: health.gateway.clone(),
                    first_seq: gap.first_seq,
                    last_seq: gap.last_seq,
                };
                actions.push(raise(
                    &health.tenant,
                    rule,
                    subject,
                    None,
                    message,
                    None,
                    now,
                ));
            }
        }
        actions
    }

    /// A security event of a tenant (events of no tenant raise no tenant's alarm).
    pub fn security(&mut self, event: &SecurityEvent) -> Vec<Action> {
        let Some(tenant) = &event.tenant else {
            return Vec::new();
        };
        let Some(state) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        state
            .rules
            .iter()
            .filter(|rule| match &rule.condition {
                RuleCondition::Security { events } => {
                    events.is_empty() || events.contains(&event.kind)
                }
                _ => false,
            })
            .map(|rule| {
                let subject = AlarmSubject::Security {
                    gateway: event.gateway.clone(),
                    event: event.kind,
                };
                let message = format!("{}: {}", event.kind.as_str(), event.detail);
                raise(tenant, rule, subject, None, message, None, event.time)
            })
            .collect()
    }

    /// Time passed: gateways silent for longer than an offline rule allows raise its alarm;
    /// certificates closer to expiry than a rule's notice raise its alarm, renewed ones
    /// resolve it.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Action> {
        let mut actions = Vec::new();
        for (tenant, state) in &mut self.tenants {
            certificate_expiry(tenant, state, now, &mut actions);
            let TenantRules {
                rules, gateways, ..
            } = state;
            for rule in rules.iter() {
                let RuleCondition::GatewayOffline {
                    after_s,
                    gateways: only,
                } = &rule.condition
                else {
                    continue;
                };
                let after_us = i64::try_from(after_s.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
                for (gateway, live) in gateways.iter_mut() {
                    if !only.is_empty() && !only.contains(gateway) {
                        continue;
                    }
                    let Some(seen) = live.last_seen else {
                        continue;
                    };
                    if now.micros_since(seen) < after_us || live.offline.contains(&rule.id) {
                        continue;
                    }
                    live.offline.insert(rule.id.clone());
                    let subject = AlarmSubject::Gateway {
                        gateway: gateway.clone(),
                    };
                    let message =
                        format!("gateway {gateway} silent since {seen} (more than {after_s} s)");
                    actions.push(raise(tenant, rule, subject, None, message, None, now));
                }
            }
        }
        actions
    }
}

/// A threshold rule's terms, borrowed from its condition.
struct ThresholdRule<'a> {
    rule: &'a AlarmRule,
    metric: &'a MetricName,
    zone: Option<&'a ZoneId>,
    sensors: &'a [SensorId],
    op: Comparison,
    limit: f64,
    for_s: u64,
    pooled: bool,
}

impl<'a> ThresholdRule<'a> {
    /// The terms of `rule`, if it is a threshold rule.
    fn of(rule: &'a AlarmRule) -> Option<Self> {
        let RuleCondition::Threshold {
            metric,
            zone,
            sensors,
            op,
            value,
            for_s,
            pooled,
        } = &rule.condition
        else {
            return None;
        };
        Some(Self {
            rule,
            metric,
            zone: zone.as_ref(),
            sensors,
            op: *op,
            limit: *value,
            for_s: *for_s,
            pooled: pooled.is_some(),
        })
    }

    /// Whether the rule's sensor and zone scope take `sensor` (an id, or a pooled sensor's
    /// pseudonym, which no rule lists), standing in `zones`.
    fn selects<'z>(&self, sensor: &str, mut zones: impl Iterator<Item = &'z ZoneId>) -> bool {
        (self.sensors.is_empty() || self.sensors.iter().any(|s| s.as_str() == sensor))
            && self.zone.is_none_or(|wanted| zones.any(|z| z == wanted))
    }

    /// Feeds `reading` (of the rule's metric, about `subject`) to the subject's threshold
    /// state; the alarm to raise or resolve when it changes.
    fn observe(
        &self,
        tenant: &TenantId,
        thresholds: &mut HashMap<(RuleId, AlarmSubject), Threshold>,
        subject: AlarmSubject,
        zone: Option<ZoneId>,
        reading: &Reading,
    ) -> Option<Action> {
        let Value::Number(value) = reading.value else {
            return None;
        };
        let hold_us = i64::try_from(self.for_s.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        let step = thresholds
            .entry((self.rule.id.clone(), subject.clone()))
            .or_insert_with(Threshold::new)
            .observe(reading.time, self.op.holds(value, self.limit), hold_us);
        match step {
            Step::Stay => None,
            Step::Raise => {
                let at = match &subject {
                    AlarmSubject::Pooled {
                        operator, sensor, ..
                    } => format!("{sensor} (pooled, operated by {operator})"),
                    _ => reading.sensor.to_string(),
                };
                let message = format!(
                    "{metric} = {value} {unit} {op} {limit} for ≥ {for_s} s at {at}",
                    metric = self.metric,
                    unit = reading.unit,
                    op = self.op.symbol(),
                    limit = self.limit,
                    for_s = self.for_s,
                );
                Some(raise(
                    tenant,
                    self.rule,
                    subject,
                    zone,
                    message,
                    Some(value),
                    reading.time,
                ))
            }
            Step::Resolve => Some(Action::Resolve {
                tenant: tenant.clone(),
                rule: self.rule.id.clone(),
                subject,
                at: reading.time,
            }),
        }
    }
}

/// Certificate-expiry rules of one tenant at `now`.
fn certificate_expiry(
    tenant: &TenantId,
    state: &mut TenantRules,
    now: Timestamp,
    actions: &mut Vec<Action>,
) {
    let TenantRules {
        rules, gateways, ..
    } = state;
    for rule in rules.iter() {
        let RuleCondition::CertificateExpiry {
            before_s,
            gateways: only,
        } = &rule.condition
        else {
            continue;
        };
        let notice_us = i64::try_from(before_s.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        for (gateway, live) in gateways.iter_mut() {
            if !only.is_empty() && !only.contains(gateway) {
                continue;
            }
            let subject = AlarmSubject::Gateway {
                gateway: gateway.clone(),
            };
            let due = live
                .cert_not_after
                .filter(|not_after| not_after.micros_since(now) < notice_us);
            match (due, live.expiring.contains(&rule.id)) {
                (Some(not_after), false) => {
                    live.expiring.insert(rule.id.clone());
                    let left_s = not_after.micros_since(now) / 1_000_000;
                    let message = if left_s > 0 {
                        format!(
                            "certificate of gateway {gateway} expires at {not_after} \
                             (in {left_s} s): its renewal is failing"
                        )
                    } else {
                        format!("certificate of gateway {gateway} expired at {not_after}")
                    };
                    actions.push(raise(tenant, rule, subject, None, message, None, now));
                }
                (None, true) => {
                    live.expiring.remove(&rule.id);
                    actions.push(Action::Resolve {
                        tenant: tenant.clone(),
                        rule: rule.id.clone(),
                        subject,
                        at: now,
                    });
                }
                _ => {}
            }
        }
    }
}

/// The action that raises `rule`'s alarm about `subject`.
fn raise(
    tenant: &TenantId,
    rule: &AlarmRule,
    subject: AlarmSubject,
    zone: Option<ZoneId>,
    message: String,
    value: Option<f64>,
    at: Timestamp,
) -> Action {
    Action::Raise(NewAlarm {
        tenant: tenant.clone(),
        rule: rule.id.clone(),
        rule_name: rule.name.clone(),
        severity: rule.severity,
        subject,
        zone,
        message,
        value,
        at,
    })
}

fn remember_gap(state: &mut TenantRules, gateway: &GatewayId, gap: (u64, u64)) {
    let seen = state.gaps_seen.entry(gateway.clone()).or_default();
    if seen.contains(&gap) {
        return;
    }
    if seen.len() >= GAPS_REMEMBERED {
        seen.remove(0);
    }
    seen.push(gap);
}

#[cfg(test)]
mod tests;
