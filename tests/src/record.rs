//! What the consumer recorded: per gateway, the batches received (by seq, with their payload
//! hash), duplicates, seq conflicts, health reports and gaps, and the commit-ack computation.

use std::collections::BTreeMap;

use beffroi_protocol::{CommitAck, Gap, GatewayId, Health, Reading, TenantId};

/// Most seqs an ack lists above `contiguous` (the protocol's limit).
pub const MAX_ACK_ABOVE: usize = 4096;

/// One batch as first received.
#[derive(Debug, Clone)]
pub struct ReceivedBatch {
    /// SHA-256 of the signed payload (the batch's CBOR).
    pub payload_hash: [u8; 32],
    /// Its readings.
    pub readings: Vec<Reading>,
}

/// What the consumer saw from one gateway.
#[derive(Debug, Clone, Default)]
pub struct GatewayRecord {
    /// Verified batches by seq (first copy).
    pub batches: BTreeMap<u64, ReceivedBatch>,
    /// Seqs in the order they first arrived.
    pub arrival_order: Vec<u64>,
    /// Batches received again with the same payload.
    pub duplicates: u64,
    /// Seqs received again with a *different* payload (seq reuse: must never happen).
    pub conflicts: Vec<u64>,
    /// Verified health reports, in arrival order.
    pub health: Vec<Health>,
    /// Every distinct gap reported in health messages.
    pub gaps: Vec<Gap>,
    /// Messages on this gateway's topics that failed to parse or verify.
    pub failures: Vec<String>,
    /// `contiguous` of the last computed ack.
    pub contiguous: u64,
    /// Acks published.
    pub acks_sent: u64,
}

impl GatewayRecord {
    /// Readings in the distinct batches received.
    pub fn reading_count(&self) -> usize {
        self.batches.values().map(|b| b.readings.len()).sum()
    }

    /// Every reading received, once per distinct seq, in seq order.
    pub fn readings(&self) -> impl Iterator<Item = &Reading> {
        self.batches.values().flat_map(|b| b.readings.iter())
    }

    /// Highest seq received (0: none).
    pub fn max_seq(&self) -> u64 {
        self.batches.keys().next_back().copied().unwrap_or(0)
    }

    /// The latest health report.
    pub fn last_health(&self) -> Option<&Health> {
        self.health.last()
    }

    /// A counter from the latest health report.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.last_health()
            .and_then(|h| h.counters.get(name).copied())
    }

    /// The gap containing `seq`, if any.
    pub fn gap_for(&self, seq: u64) -> Option<&Gap> {
        self.gaps
            .iter()
            .filter(|g| g.first_seq <= seq && seq <= g.last_seq)
            .max_by_key(|g| g.last_seq)
    }

    /// Seqs in `1..=up_to` neither received nor in a reported gap.
    pub fn uncovered(&self, up_to: u64) -> Vec<u64> {
        (1..=up_to)
            .filter(|seq| !self.batches.contains_key(seq) && self.gap_for(*seq).is_none())
            .collect()
    }

    /// Advances `contiguous` over received seqs and reported gaps; returns the ack to send.
    pub(crate) fn commit(&mut self, tenant: &TenantId, gateway: &GatewayId) -> CommitAck {
        let mut contiguous = self.contiguous;
        loop {
            let next = contiguous + 1;
            if self.batches.contains_key(&next) {
                contiguous = next;
            } else if let Some(gap) = self.gap_for(next) {
                contiguous = gap.last_seq;
            } else {
                break;
            }
        }
        self.contiguous = contiguous;
        let above = self
            .batches
            .range(contiguous + 1..)
            .map(|(&seq, _)| seq)
            .take(MAX_ACK_ABOVE)
            .collect();
        CommitAck {
            tenant: tenant.clone(),
            gateway: gateway.clone(),
            contiguous,
            above,
        }
    }

    /// One line for failure messages.
    pub fn describe(&self) -> String {
        let seqs = match (self.batches.keys().next(), self.batches.keys().next_back()) {
            (Some(first), Some(last)) => format!("{first}..={last}"),
            _ => "none".to_owned(),
        };
        let uncovered = self.uncovered(self.max_seq());
        let health = self.last_health().map(|h| {
            format!(
                "spool_batches={} next_seq={} dropped={} gaps={:?} counters={:?}",
                h.spool_batches, h.next_seq, h.batches_dropped, h.gaps, h.counters
            )
        });
        format!(
            "batches={} (seqs {seqs}, {} uncovered: {:?}) readings={} duplicates={} \
             conflicts={:?} gaps={:?} contiguous={} acks_sent={} health_reports={} \
             last_health={health:?} failures={:?}",
            self.batches.len(),
            uncovered.len(),
            &uncovered[..uncovered.len().min(10)],
            self.reading_count(),
            self.duplicates,
            self.conflicts,
            self.gaps,
            self.contiguous,
            self.acks_sent,
            self.health.len(),
            &self.failures[..self.failures.len().min(5)],
        )
    }
}

/// Everything the consumer has recorded.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Per (tenant, gateway).
    pub gateways: BTreeMap<(String, String), GatewayRecord>,
    /// Messages whose topic could not even be parsed.
    pub unattributed_failures: Vec<String>,
    /// CONNACKs received (1 + reconnects).
    pub connections: u64,
    /// Whether the subscriptions are in place on the current connection.
    pub subscribed: bool,
    /// Connection errors seen by the event loop.
    pub connection_errors: u64,
}

impl Snapshot {
    /// The record of one gateway, if anything arrived from it.
    pub fn gateway(&self, tenant: &str, gateway: &str) -> Option<&GatewayRecord> {
        self.gateways.get(&(tenant.to_owned(), gateway.to_owned()))
    }

    /// Readings received from a gateway (0 if none).
    pub fn reading_count(&self, tenant: &str, gateway: &str) -> usize {
        self.gateway(tenant, gateway)
            .map_or(0, GatewayRecord::reading_count)
    }

    /// A multi-line summary for failure messages.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "connections={} subscribed={} connection_errors={} unattributed_failures={:?}",
            self.connections,
            self.subscribed,
            self.connection_errors,
            &self.unattributed_failures[..self.unattributed_failures.len().min(5)]
        );
        for ((tenant, gateway), record) in &self.gateways {
            text.push_str(&format!("\n  {tenant}/{gateway}: {}", record.describe()));
        }
        text
    }
}
