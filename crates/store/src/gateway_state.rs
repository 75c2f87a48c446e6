//! The `health` JSON column of a gateway row, shared by both SQL backends.

use beffroi_protocol::{Gap, Health, Timestamp};
use serde::{Deserialize, Serialize};

use crate::seq::GapRange;
use crate::GatewayState;

/// What the last health report said, kept as JSON in `gateways.health`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct HealthState {
    spool_batches: u64,
    spool_bytes: u64,
    oldest_unacked_age_s: Option<u64>,
    batches_dropped: u64,
    readings_dropped: u64,
    gaps: Vec<Gap>,
    agent_version: Option<String>,
    rss_bytes: u64,
}

impl HealthState {
    /// The state a health report carries.
    pub(crate) fn from_health(health: &Health) -> Self {
        Self {
            spool_batches: health.spool_batches,
            spool_bytes: health.spool_bytes,
            oldest_unacked_age_s: health.oldest_unacked_age_s,
            batches_dropped: health.batches_dropped,
            readings_dropped: health.readings_dropped,
            gaps: health.gaps.clone(),
            agent_version: Some(health.agent_version.clone()),
            rss_bytes: health.rss_bytes,
        }
    }

    /// The full gateway state, with the columns kept outside the JSON.
    pub(crate) fn into_state(
        self,
        last_seen: Option<Timestamp>,
        last_committed_seq: Option<u64>,
    ) -> GatewayState {
        GatewayState {
            last_seen,
            spool_batches: self.spool_batches,
            spool_bytes: self.spool_bytes,
            oldest_unacked_age_s: self.oldest_unacked_age_s,
            batches_dropped: self.batches_dropped,
            readings_dropped: self.readings_dropped,
            gaps: self.gaps,
            agent_version: self.agent_version,
            rss_bytes: self.rss_bytes,
            last_committed_seq,
        }
    }
}

/// The gaps of a report as stored ranges: reversed ranges are dropped and seqs are capped at
/// `i64::MAX` (the database's `BIGINT`).
pub(crate) fn gap_ranges(health: &Health) -> Vec<(GapRange, &Gap)> {
    let cap = |s: u64| s.min(i64::MAX as u64);
    health
        .gaps
        .iter()
        .filter(|g| g.first_seq <= g.last_seq && g.last_seq > 0)
        .map(|g| ((cap(g.first_seq.max(1)), cap(g.last_seq)), g))
        .collect()
}
