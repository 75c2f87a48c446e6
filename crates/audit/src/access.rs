//! The details of accesses and purges, and the summary of accesses a verification prints.
//!
//! The summary groups accesses by who (grantee and actor), decision, agreement, purpose and
//! channel, with counts, rows and first and last time: its size grows with the number of
//! distinct groups, never with the number of entries.

use std::collections::BTreeMap;
use std::fmt;

use beffroi_protocol::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{AuditActor, AuditEntry, AuditKind, Digest};

/// Which read path served (or refused) an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The REST API.
    Rest,
    /// A live view (websocket).
    Live,
    /// An export.
    Export,
    /// An alarm raised or cleared on a pooled sensor by the grantee's alarm rule.
    Alarm,
}

impl Channel {
    /// The stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Rest => "rest",
            Channel::Live => "live",
            Channel::Export => "export",
            Channel::Alarm => "alarm",
        }
    }
}

/// A sharing agreement, at the version that decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AgreementRef {
    /// The agreement's id.
    pub id: String,
    /// Its version.
    pub version: u64,
}

/// The detail of an [`AuditKind::AccessPermit`] or [`AuditKind::AccessDeny`] entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessDetail {
    /// Who the data went (or would have gone) to: a tenant, a partner, or `public`.
    pub grantee: String,
    /// The agreement that decided; `None` for the tenant reading its own data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<AgreementRef>,
    /// The purpose declared for the access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The read path.
    pub channel: Channel,
    /// What was asked (metrics, zones, sensors, range, bucket, function…).
    #[serde(default)]
    pub query: Value,
    /// Rows (readings or buckets) returned; 0 when denied.
    #[serde(default)]
    pub rows: u64,
    /// SHA-256 of what was returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_hash: Option<Digest>,
    /// Why it was denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The detail of an [`AuditKind::Purge`] entry: the purge receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeDetail {
    /// What was purged (`raw readings`, a metric class, an aggregate level…).
    pub what: String,
    /// Start of the purged range, if bounded below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    /// End of the purged range (exclusive).
    pub to: Timestamp,
    /// Rows (or chunks) removed.
    pub rows: u64,
}

/// One group of accesses in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AccessGroup {
    /// Who the data went to.
    pub grantee: String,
    /// Who asked (usually a token).
    pub actor: AuditActor,
    /// Permit or deny.
    pub kind: AuditKind,
    /// Under which agreement.
    pub agreement: Option<AgreementRef>,
    /// For which purpose.
    pub purpose: Option<String>,
    /// Through which read path.
    pub channel: Channel,
}

/// The accesses of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AccessStats {
    /// How many.
    pub count: u64,
    /// Rows returned in all.
    pub rows: u64,
    /// The earliest.
    pub first: Timestamp,
    /// The latest.
    pub last: Timestamp,
}

/// Who accessed what, when, under which agreement: the accesses of a log, grouped.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AccessSummary {
    /// The groups, in order (grantee, actor, decision, agreement, purpose, channel).
    #[serde(serialize_with = "groups_as_list")]
    pub groups: BTreeMap<AccessGroup, AccessStats>,
    /// Access entries whose detail is not an [`AccessDetail`] (not counted in a group).
    pub unreadable: u64,
    /// The seq of the first of them.
    pub first_unreadable: Option<u64>,
}

impl AccessSummary {
    /// Counts `entry` if it records an access.
    pub(crate) fn record(&mut self, entry: &AuditEntry) {
        if !entry.kind.is_access() {
            return;
        }
        let Ok(detail) = AccessDetail::deserialize(&entry.detail) else {
            self.unreadable += 1;
            self.first_unreadable.get_or_insert(entry.seq);
            return;
        };
        let group = AccessGroup {
            grantee: detail.grantee,
            actor: entry.actor.clone(),
            kind: entry.kind,
            agreement: detail.agreement,
            purpose: detail.purpose,
            channel: detail.channel,
        };
        let stats = self.groups.entry(group).or_insert(AccessStats {
            count: 0,
            rows: 0,
            first: entry.time,
            last: entry.time,
        });
        stats.count += 1;
        stats.rows = stats.rows.saturating_add(detail.rows);
        stats.first = stats.first.min(entry.time);
        stats.last = stats.last.max(entry.time);
    }
}

/// The groups as a JSON list of `{group…, stats…}` (a map's keys must be strings).
fn groups_as_list<S: serde::Serializer>(
    groups: &BTreeMap<AccessGroup, AccessStats>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Row<'a> {
        #[serde(flatten)]
        group: &'a AccessGroup,
        #[serde(flatten)]
        stats: &'a AccessStats,
    }
    s.collect_seq(groups.iter().map(|(group, stats)| Row { group, stats }))
}

impl fmt::Display for AccessSummary {
    /// One line per group: `first – last  grantee  by actor  decision  channel  agreement
    /// purpose  count, rows`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (g, s) in &self.groups {
            write!(
                f,
                "{} – {}  {}  by {}  {}  {}",
                s.first,
                s.last,
                g.grantee,
                g.actor,
                g.kind,
                g.channel.as_str()
            )?;
            match &g.agreement {
                Some(a) => write!(f, "  agreement {} v{}", a.id, a.version)?,
                None => f.write_str("  own data")?,
            }
            if let Some(purpose) = &g.purpose {
                write!(f, "  purpose {purpose:?}")?;
            }
            writeln!(f, "  ×{}, {} rows", s.count, s.rows)?;
        }
        if let Some(seq) = self.first_unreadable {
            writeln!(
                f,
                "{} access entries with an unreadable detail (first at seq {seq})",
                self.unreadable
            )?;
        }
        Ok(())
    }
}
