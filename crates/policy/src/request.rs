//! An access request: who asks, for whose data, on which channel, for what purpose, and
//! exactly what (raw rows or aggregates, which slice, which time range).

use std::collections::BTreeSet;

use beffroi_protocol::{SensorId, TenantId};
use serde::Serialize;

use crate::grantee::Grantee;
use crate::ids::{AgreementId, SensorTag, ZoneId};
use crate::pattern::MetricPattern;
use crate::purpose::Purpose;
use crate::scope::{Scope, Selection};
use crate::terms::{Action, Field, Function, SpatialLevel};
use crate::vocabulary::vocabulary;
use crate::window::{BucketSpec, TimeRange};

vocabulary!(
    /// The read path a request comes through. Recorded for the audit log; the rules are the
    /// same on every channel.
    Channel, "channel" {
        /// A REST query.
        Rest => "rest",
        /// A live websocket view.
        Live => "live",
        /// An export.
        Export => "export",
        /// An alarm rule of the grantee evaluated on pooled sensors: an alarm raised or
        /// cleared reveals the reading that decided it.
        Alarm => "alarm",
    }
);

/// One governed read. Empty zone, sensor and tag lists mean "no filter".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessRequest {
    /// Who asks (`public` when unauthenticated).
    pub requester: Grantee,
    /// Whose data.
    pub grantor: TenantId,
    /// Through which read path.
    pub channel: Channel,
    /// Why.
    pub purpose: Purpose,
    /// Only this agreement may justify the read, when set.
    pub agreement: Option<AgreementId>,
    /// Metric patterns (at least one).
    pub metrics: BTreeSet<MetricPattern>,
    /// Only these zones.
    pub zones: BTreeSet<ZoneId>,
    /// Only these sensors.
    pub sensors: BTreeSet<SensorId>,
    /// Only sensors carrying one of these tags.
    pub tags: BTreeSet<SensorTag>,
    /// The time range wanted, `[from, to)`. A live view that has no end passes a far `to`.
    pub range: TimeRange,
    /// Raw rows or aggregates.
    pub read: Read,
}

/// The shape of the data wanted.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Read {
    /// Raw rows.
    Raw {
        /// Columns wanted; empty: every column the agreement allows.
        fields: BTreeSet<Field>,
    },
    /// Aggregates per bucket and spatial unit.
    Aggregate {
        /// The bucket grid.
        bucket: BucketSpec,
        /// Functions wanted (at least one).
        functions: BTreeSet<Function>,
        /// Spatial unit wanted.
        spatial_level: SpatialLevel,
    },
}

impl Read {
    /// The action this read needs.
    pub fn action(&self) -> Action {
        match self {
            Read::Raw { .. } => Action::ReadRaw,
            Read::Aggregate { .. } => Action::ReadAggregate,
        }
    }
}

impl AccessRequest {
    /// The request's own scope (its filters; no filter is `All`).
    pub fn scope(&self) -> Scope {
        Scope {
            metrics: self.metrics.clone(),
            zones: Selection::from_list(&self.zones),
            sensors: Selection::from_list(&self.sensors),
            tags: Selection::from_list(&self.tags),
            territories: Selection::All,
        }
    }

    /// Why the request is malformed, if it is.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        if self.metrics.is_empty() {
            return Some("no metric requested");
        }
        if self.range.is_empty() {
            return Some("empty time range: from must be before to");
        }
        match &self.read {
            Read::Aggregate { bucket, .. } if !bucket.is_well_formed() => {
                Some("bucket width must be at least 1 s and its offset smaller than the width")
            }
            Read::Aggregate { functions, .. } if functions.is_empty() => {
                Some("no aggregate function requested")
            }
            _ => None,
        }
    }
}
