//! Alarm rules and alarms: the records the alert engine and the API keep in the store.
//!
//! A rule names a condition ([`RuleCondition`]) and a severity. While the condition holds for a
//! subject (a sensor's metric, a gateway, a gap, a kind of security event) there is at most one
//! *active* alarm for that `(tenant, rule, subject)`: raising it again while it is open or
//! acknowledged counts an occurrence instead of opening another, which makes raising
//! idempotent across platform nodes. The lifecycle:
//!
//! ```text
//!            raise                 acknowledge (who, when, comment)
//!   (none) ─────────► open ─────────────────────────────► acknowledged
//!                       │  clear: automatic when the          │
//!                       │  condition ends, or by hand         │ clear
//!                       ▼                                     ▼
//!                    cleared ◄────────────────────────────────┘
//! ```
//! Cleared alarms are kept as history; the same condition later opens a new alarm.

use beffroi_protocol::{GapReason, GatewayId, MetricName, SensorId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use beffroi_policy::Purpose;

use crate::{SecurityEventKind, ZoneId};

/// An alarm rule id, unique within its tenant; reuses the slug grammar.
pub type RuleId = SensorId;

/// Longest rule name, in characters.
pub const MAX_RULE_NAME_CHARS: usize = 100;
/// Longest comment on an acknowledgement or a clearance, in characters.
pub const MAX_COMMENT_CHARS: usize = 1000;
/// Longest duration a threshold must hold, or a gateway may stay silent (7 days).
pub const MAX_RULE_DURATION_S: u64 = 7 * 86_400;
/// Shortest silence that counts as a gateway being offline.
pub const MIN_OFFLINE_AFTER_S: u64 = 10;
/// Longest notice a certificate-expiry rule may ask for (a certificate's whole life, at most).
pub const MAX_CERTIFICATE_NOTICE_S: u64 = 365 * 86_400;
/// Most sensors, gateways or event kinds one rule may list.
pub const MAX_RULE_LIST: usize = 1000;

/// How serious an alarm is, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For information.
    Info,
    /// Needs a look.
    Warning,
    /// Needs action.
    Major,
    /// Needs action now.
    Critical,
}

impl Severity {
    /// The stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }

    /// Parses [`Severity::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Info, Self::Warning, Self::Major, Self::Critical]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// How a reading is compared with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Above.
    Gt,
    /// At or above.
    Ge,
    /// Below.
    Lt,
    /// At or below.
    Le,
}

impl Comparison {
    /// Whether `value` compared with `threshold` this way holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gt => value > threshold,
            Comparison::Ge => value >= threshold,
            Comparison::Lt => value < threshold,
            Comparison::Le => value <= threshold,
        }
    }

    /// The operator as written in alarm messages (`>`, `≥`, `<`, `≤`).
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Gt => ">",
            Comparison::Ge => "≥",
            Comparison::Lt => "<",
            Comparison::Le => "≤",
        }
    }
}

/// What a rule watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleCondition {
    /// A numeric metric compared with a value, holding for at least `for_s` seconds of
    /// measurement time (0: at the first reading that satisfies it). One alarm per sensor.
    Threshold {
        /// The metric.
        metric: MetricName,
        /// Only sensors registered in this zone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<ZoneId>,
        /// Only these sensors (empty: every sensor, within `zone` if set).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        sensors: Vec<SensorId>,
        /// The comparison.
        op: Comparison,
        /// The threshold, in the metric's unit.
        value: f64,
        /// How long the condition must hold before the alarm opens.
        #[serde(default)]
        for_s: u64,
        /// Also the sensors other tenants pool with this one, for this purpose: each operator's
        /// readings that a pooling agreement allows this tenant to read for it, decided by the
        /// policy engine as any read is (`zone` then means the sensors standing inside the
        /// zone's boundary when they measured; `sensors`, ids as this tenant sees them). An
        /// alarm about one is recorded in its operator's audit log. Absent: own sensors only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pooled: Option<Purpose>,
    },
    /// No health report nor batch from a gateway for `after_s` seconds (only gateways seen at
    /// least once). One alarm per gateway, cleared when it is heard again.
    GatewayOffline {
        /// Silence that makes a gateway offline.
        after_s: u64,
        /// Only these gateways (empty: all).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        gateways: Vec<GatewayId>,
    },
    /// A gateway reported a gap: seqs that will never arrive. One alarm per gap, cleared by
    /// hand.
    SpoolGap {
        /// Only gaps with these reasons (empty: all).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reasons: Vec<GapReason>,
    },
    /// A gateway's client certificate expires in less than `before_s` seconds (or has
    /// expired): its automatic renewal is failing. One alarm per gateway, cleared when a
    /// renewed certificate is recorded or the gateway is revoked.
    CertificateExpiry {
        /// How long before expiry the alarm opens.
        before_s: u64,
        /// Only these gateways (empty: all).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        gateways: Vec<GatewayId>,
    },
    /// Security events of the tenant (bad signature, replay, ACL violation, refused
    /// certificate…). One alarm per gateway and kind; repeats count occurrences. Cleared by
    /// hand.
    Security {
        /// Only these kinds (empty: all).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        events: Vec<SecurityEventKind>,
    },
}

impl RuleCondition {
    /// The stable label of the condition's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            RuleCondition::Threshold { .. } => "threshold",
            RuleCondition::GatewayOffline { .. } => "gateway_offline",
            RuleCondition::SpoolGap { .. } => "spool_gap",
            RuleCondition::CertificateExpiry { .. } => "certificate_expiry",
            RuleCondition::Security { .. } => "security",
        }
    }

    /// Checks the condition's invariants; the error names the field and the reason.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            RuleCondition::Threshold {
                value,
                for_s,
                sensors,
                ..
            } => {
                if !value.is_finite() {
                    return Err("condition.value: must be a finite number".into());
                }
                if *for_s > MAX_RULE_DURATION_S {
                    return Err(format!("condition.for_s: at most {MAX_RULE_DURATION_S}"));
                }
                check_list("condition.sensors", sensors.len())
            }
            RuleCondition::GatewayOffline { after_s, gateways } => {
                if !(MIN_OFFLINE_AFTER_S..=MAX_RULE_DURATION_S).contains(after_s) {
                    return Err(format!(
                        "condition.after_s: must be {MIN_OFFLINE_AFTER_S}..={MAX_RULE_DURATION_S}"
                    ));
                }
                check_list("condition.gateways", gateways.len())
            }
            RuleCondition::CertificateExpiry { before_s, gateways } => {
                if !(1..=MAX_CERTIFICATE_NOTICE_S).contains(before_s) {
                    return Err(format!(
                        "condition.before_s: must be 1..={MAX_CERTIFICATE_NOTICE_S}"
                    ));
                }
                check_list("condition.gateways", gateways.len())
            }
            RuleCondition::SpoolGap { reasons } => check_list("condition.reasons", reasons.len()),
            RuleCondition::Security { events } => check_list("condition.events", events.len()),
        }
    }
}

fn check_list(field: &str, len: usize) -> Result<(), String> {
    if len > MAX_RULE_LIST {
        return Err(format!("{field}: at most {MAX_RULE_LIST} entries"));
    }
    Ok(())
}

/// A tenant's alarm rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRule {
    /// The tenant.
    pub tenant: TenantId,
    /// The rule.
    pub id: RuleId,
    /// Display name ("PM2.5 above 50 µg/m³ for 10 min").
    pub name: String,
    /// Severity of the alarms it raises.
    pub severity: Severity,
    /// Disabled rules raise nothing (their active alarms are left as they are).
    pub enabled: bool,
    /// What it watches.
    pub condition: RuleCondition,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

impl AlarmRule {
    /// Checks the name and the condition; the error names the field and the reason.
    pub fn validate(&self) -> Result<(), String> {
        let chars = self.name.chars().count();
        if chars == 0 || chars > MAX_RULE_NAME_CHARS || self.name.trim().is_empty() {
            return Err(format!(
                "name: 1..={MAX_RULE_NAME_CHARS} characters, not blank"
            ));
        }
        if self.name.chars().any(char::is_control) {
            return Err("name: no control characters".into());
        }
        self.condition.validate()
    }
}

/// What an alarm is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlarmSubject {
    /// One sensor's metric (threshold rules).
    Series {
        /// The sensor.
        sensor: SensorId,
        /// The metric.
        metric: MetricName,
    },
    /// A gateway (offline rules).
    Gateway {
        /// The gateway.
        gateway: GatewayId,
    },
    /// A gap a gateway reported (gap rules).
    Gap {
        /// The gateway.
        gateway: GatewayId,
        /// First seq of the gap.
        first_seq: u64,
        /// Last seq of the gap.
        last_seq: u64,
    },
    /// One metric of a sensor another tenant operates and pools with this one (threshold
    /// rules watching pooled sensors).
    Pooled {
        /// The tenant that operates the sensor.
        operator: TenantId,
        /// The sensor, as this tenant sees it: its id, or its pseudonym (`p_…`) when the
        /// agreement pseudonymises.
        sensor: String,
        /// The metric.
        metric: MetricName,
    },
    /// A kind of security event, from one gateway when known (security rules).
    Security {
        /// The gateway, when the event names one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gateway: Option<GatewayId>,
        /// The kind of event.
        event: SecurityEventKind,
    },
}

impl AlarmSubject {
    /// A stable text key: at most one active alarm per `(tenant, rule, key)`.
    pub fn key(&self) -> String {
        match self {
            AlarmSubject::Series { sensor, metric } => format!("series:{sensor}:{metric}"),
            AlarmSubject::Pooled {
                operator,
                sensor,
                metric,
            } => format!("pooled:{operator}:{sensor}:{metric}"),
            AlarmSubject::Gateway { gateway } => format!("gateway:{gateway}"),
            AlarmSubject::Gap {
                gateway,
                first_seq,
                last_seq,
            } => format!("gap:{gateway}:{first_seq}-{last_seq}"),
            AlarmSubject::Security { gateway, event } => format!(
                "security:{}:{}",
                gateway.as_ref().map_or("-", GatewayId::as_str),
                event.as_str()
            ),
        }
    }
}

/// Where an alarm is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    /// Raised, nobody acknowledged it yet.
    Open,
    /// Someone acknowledged it; the condition may still hold.
    Acknowledged,
    /// Over: the condition ended, or someone cleared it. Kept as history.
    Cleared,
}

impl AlarmState {
    /// The stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Open => "open",
            AlarmState::Acknowledged => "acknowledged",
            AlarmState::Cleared => "cleared",
        }
    }

    /// Parses [`AlarmState::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Open, Self::Acknowledged, Self::Cleared]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// Open or acknowledged.
    pub fn is_active(self) -> bool {
        self != AlarmState::Cleared
    }
}

/// Who acted on an alarm: an API token, by id and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The token id (public).
    pub token_id: String,
    /// The token's name ("control room").
    pub name: String,
}

/// An acknowledgement or a clearance by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmAction {
    /// When.
    pub at: Timestamp,
    /// Who; `None` for an automatic clearance (the condition ended).
    pub by: Option<Actor>,
    /// Why, if they said.
    pub comment: Option<String>,
}

/// An alarm, active or cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// Its id, unique across the platform.
    pub id: i64,
    /// The tenant.
    pub tenant: TenantId,
    /// The rule that raised it.
    pub rule: RuleId,
    /// The rule's name when it was raised (kept if the rule is renamed or deleted).
    pub rule_name: String,
    /// Its severity.
    pub severity: Severity,
    /// What it is about.
    pub subject: AlarmSubject,
    /// The zone of its sensor, when it has one (the map colours zones by alarm).
    pub zone: Option<ZoneId>,
    /// Where it is in its lifecycle.
    pub state: AlarmState,
    /// What happened, in words ("air.pm25 = 63.2 ug/m3 > 50 for 600 s").
    pub message: String,
    /// The value that raised it or last confirmed it, for threshold rules.
    pub value: Option<f64>,
    /// When it opened.
    pub opened_at: Timestamp,
    /// When the condition was last confirmed (a new occurrence).
    pub last_at: Timestamp,
    /// How many times the condition was raised while the alarm was active.
    pub occurrences: u64,
    /// The acknowledgement, once acknowledged.
    pub acknowledged: Option<AlarmAction>,
    /// The clearance, once cleared.
    pub cleared: Option<AlarmAction>,
    /// When the record last changed (clients keep the newest copy).
    pub updated_at: Timestamp,
}

/// An alarm to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlarm {
    /// The tenant.
    pub tenant: TenantId,
    /// The rule.
    pub rule: RuleId,
    /// The rule's name.
    pub rule_name: String,
    /// Severity.
    pub severity: Severity,
    /// What it is about.
    pub subject: AlarmSubject,
    /// The zone of its sensor, if any.
    pub zone: Option<ZoneId>,
    /// What happened.
    pub message: String,
    /// The value, for threshold rules.
    pub value: Option<f64>,
    /// When.
    pub at: Timestamp,
}

/// What raising an alarm did.
#[derive(Debug, Clone, PartialEq)]
pub struct Raised {
    /// The alarm as stored now.
    pub alarm: Alarm,
    /// True when a new alarm opened; false when an active one counted an occurrence.
    pub opened: bool,
}

/// Which alarms a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlarmFilter {
    /// Only alarms in these states (empty: all).
    pub states: Vec<AlarmState>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threshold(json: &str) -> Result<RuleCondition, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn conditions_parse_strictly_and_validate() {
        let c = threshold(
            r#"{"kind":"threshold","metric":"air.pm25","op":"gt","value":50,"for_s":600}"#,
        )
        .expect("valid");
        assert_eq!(c.kind(), "threshold");
        assert!(c.validate().is_ok());
        assert!(threshold(
            r#"{"kind":"threshold","metric":"air.pm25","op":"gt","value":1,"typo":1}"#
        )
        .is_err());
        assert!(threshold(r#"{"kind":"nope"}"#).is_err());
        assert!(threshold(r#"{"kind":"threshold","metric":"Air","op":"gt","value":1}"#).is_err());
        let long = threshold(&format!(
            r#"{{"kind":"threshold","metric":"a","op":"lt","value":1,"for_s":{}}}"#,
            MAX_RULE_DURATION_S + 1
        ))
        .expect("parses");
        assert!(long.validate().unwrap_err().contains("for_s"));
        let offline = threshold(r#"{"kind":"gateway_offline","after_s":5}"#).expect("parses");
        assert!(offline.validate().unwrap_err().contains("after_s"));
    }

    #[test]
    fn subject_keys_are_distinct_and_stable() {
        let gw = GatewayId::new("gw-1").expect("valid");
        let keys = [
            AlarmSubject::Series {
                sensor: SensorId::new("s1").expect("valid"),
                metric: MetricName::new("air.pm25").expect("valid"),
            },
            AlarmSubject::Pooled {
                operator: TenantId::new("metro").expect("valid"),
                sensor: "s1".into(),
                metric: MetricName::new("air.pm25").expect("valid"),
            },
            AlarmSubject::Gateway {
                gateway: gw.clone(),
            },
            AlarmSubject::Gap {
                gateway: gw.clone(),
                first_seq: 3,
                last_seq: 9,
            },
            AlarmSubject::Security {
                gateway: Some(gw),
                event: SecurityEventKind::AclViolation,
            },
            AlarmSubject::Security {
                gateway: None,
                event: SecurityEventKind::AclViolation,
            },
        ]
        .map(|s| s.key());
        assert_eq!(keys[0], "series:s1:air.pm25");
        assert_eq!(keys[1], "pooled:metro:s1:air.pm25");
        assert_eq!(keys[3], "gap:gw-1:3-9");
        assert_eq!(keys[5], "security:-:acl_violation");
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len());
    }

    #[test]
    fn comparisons_and_severities() {
        assert!(Comparison::Gt.holds(2.0, 1.0) && !Comparison::Gt.holds(1.0, 1.0));
        assert!(Comparison::Ge.holds(1.0, 1.0) && Comparison::Le.holds(1.0, 1.0));
        assert!(Comparison::Lt.holds(0.5, 1.0) && !Comparison::Lt.holds(1.0, 1.0));
        assert!(Severity::Critical > Severity::Major && Severity::Warning > Severity::Info);
        assert_eq!(Severity::parse("major"), Some(Severity::Major));
        assert_eq!(AlarmState::parse("cleared"), Some(AlarmState::Cleared));
    }
}
