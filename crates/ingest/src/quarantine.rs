//! Rejected messages: counted, kept in the quarantine table with their reason, reported as
//! security events — and ingest goes on.
//!
//! # Which rejections are acknowledged
//! | reason | acked | why |
//! |---|---|---|
//! | `stale`, `future` | yes, once the quarantine record is durably written (with `settles_seq`: the store settles the seq in the same transaction, so the ack survives a restart) | the batch is authentic (validly signed by its gateway's key, on its own topic); the platform took responsibility for it, and the gateway would otherwise resend it forever |
//! | `bad_signature`, `unknown_key`, `revoked`, `retired_key` | no | the sender is not authenticated: nothing it says may move a gateway's ack (`revoked`, `retired_key`: signed by a key no longer in force at its signed time) |
//! | `malformed` | no | undecodable (no trustworthy seq) or an agent bug the operator must see |
//! | `replay` | no new ack | another batch is already committed under that seq; the ack already covers the seq |
//!
//! A gateway resending a rejected message is not a quarantine flood: repeats of
//! `(topic, seq or payload hash, reason)` are recognised in memory and only counted in
//! `ingest_rejected{reason}` (and acked again when the first one was), not written again.
//! The quarantine writer has a bounded queue; a record that does not fit, or that the store
//! refuses, is counted in `quarantine_errors` (never acked, so an authentic one comes back).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use beffroi_protocol::{Timestamp, Topic};
use beffroi_store::{QuarantineReason, QuarantineRecord, SecurityEvent, SecurityEventKind, Store};
use beffroi_telemetry::{Metrics, SecurityEvents};
use tokio::sync::mpsc;

use crate::acks::Acks;
use crate::sequence::{GatewayKey, Trackers};
use crate::subscriber::Inbound;

/// Most payload bytes kept with a quarantine record.
pub const MAX_QUARANTINED_PAYLOAD: usize = 64 * 1024;
/// Quarantine records waiting to be written.
const QUEUE: usize = 1024;
/// Most repeat keys remembered before the memory starts over.
const MAX_REMEMBERED: usize = 100_000;

/// A rejected message on its way to quarantine.
#[derive(Debug)]
pub(crate) struct Rejection {
    /// With `settles_seq` set when the seq is acknowledged once the record is durable.
    record: QuarantineRecord,
    /// Distinguishes repeats: the seq when authentic, else a payload hash.
    repeat_key: u64,
}

impl Rejection {
    /// A rejection of `inbound`, not acknowledged; `topic` when it parsed, `seq` when the
    /// payload was authentic and decoded. Repeats are recognised by seq, else by payload hash.
    pub(crate) fn of(
        inbound: &Inbound,
        topic: Option<&Topic>,
        seq: Option<u64>,
        reason: QuarantineReason,
        detail: String,
    ) -> Self {
        let payload = &inbound.publish.payload;
        let repeat_key = seq.unwrap_or_else(|| {
            let mut hasher = DefaultHasher::new();
            payload.hash(&mut hasher);
            hasher.finish()
        });
        let topic_text = match topic {
            Some(topic) => topic.to_string(),
            None => {
                let raw = &inbound.publish.topic;
                String::from_utf8_lossy(&raw[..raw.len().min(256)]).into_owned()
            }
        };
        Self {
            record: QuarantineRecord {
                tenant: topic.map(|t| t.tenant.clone()),
                gateway: topic.map(|t| t.gateway.clone()),
                topic: topic_text,
                seq,
                reason,
                detail,
                received_at: inbound.received_at,
                payload: payload[..payload.len().min(MAX_QUARANTINED_PAYLOAD)].to_vec(),
                settles_seq: false,
            },
            repeat_key,
        }
    }

    /// A rejection of a batch whose envelope is no longer at hand (found at commit time).
    pub(crate) fn detached(
        gateway: &GatewayKey,
        seq: u64,
        reason: QuarantineReason,
        detail: String,
        received_at: Timestamp,
    ) -> Self {
        Self {
            record: QuarantineRecord {
                tenant: Some(gateway.0.clone()),
                gateway: Some(gateway.1.clone()),
                topic: Topic::batch(&gateway.0, &gateway.1).to_string(),
                seq: Some(seq),
                reason,
                detail,
                received_at,
                payload: Vec::new(),
                settles_seq: false,
            },
            repeat_key: seq,
        }
    }

    /// Acknowledge the seq once the record is durable (authentic batches only): the record
    /// settles its seq in the store, so the ack survives a restart.
    pub(crate) fn acked(mut self) -> Self {
        self.record.settles_seq = self.record.seq.is_some() && self.gateway().is_some();
        self
    }

    /// Whether the seq is acknowledged once the record is durable.
    fn acks(&self) -> bool {
        self.record.settles_seq
    }

    fn gateway(&self) -> Option<GatewayKey> {
        Some((self.record.tenant.clone()?, self.record.gateway.clone()?))
    }

    fn repeat(&self) -> RepeatKey {
        (
            self.record.topic.clone(),
            self.record.reason,
            self.repeat_key,
        )
    }
}

type RepeatKey = (String, QuarantineReason, u64);

/// The handle the pipeline rejects messages through.
#[derive(Clone)]
pub(crate) struct Quarantine {
    tx: mpsc::Sender<Rejection>,
    seen: Arc<Mutex<HashSet<RepeatKey>>>,
    events: SecurityEvents,
    metrics: Arc<Metrics>,
    acks: Arc<Acks>,
}

impl Quarantine {
    /// The handle and the writer task's queue.
    pub(crate) fn new(
        events: SecurityEvents,
        metrics: Arc<Metrics>,
        acks: Arc<Acks>,
    ) -> (Self, QuarantineWriter) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let seen = Arc::new(Mutex::new(HashSet::new()));
        (
            Self {
                tx,
                seen: seen.clone(),
                events,
                metrics: metrics.clone(),
                acks: acks.clone(),
            },
            QuarantineWriter {
                rx,
                seen,
                metrics,
                acks,
            },
        )
    }

    /// Rejects a message; never waits.
    pub(crate) fn reject(&self, rejection: Rejection) {
        self.metrics
            .ingest_rejected
            .incr(rejection.record.reason.as_str());
        let key = rejection.repeat();
        let first = {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
            seen.insert(key.clone())
        };
        if !first {
            if rejection.acks() {
                if let Some(gateway) = rejection.gateway() {
                    self.acks.schedule(gateway);
                }
            }
            return;
        }
        self.events.record(SecurityEvent {
            time: rejection.record.received_at,
            tenant: rejection.record.tenant.clone(),
            gateway: rejection.record.gateway.clone(),
            address: None,
            kind: SecurityEventKind::Quarantined,
            detail: format!(
                "{} on {}: {}",
                rejection.record.reason.as_str(),
                rejection.record.topic,
                rejection.record.detail
            ),
        });
        if self.tx.try_send(rejection).is_err() {
            self.metrics.quarantine_errors.incr();
            forget(&self.seen, &key);
        }
    }
}

fn forget(seen: &Mutex<HashSet<RepeatKey>>, key: &RepeatKey) {
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(key);
}

/// The task writing quarantine records.
pub(crate) struct QuarantineWriter {
    rx: mpsc::Receiver<Rejection>,
    seen: Arc<Mutex<HashSet<RepeatKey>>>,
    metrics: Arc<Metrics>,
    acks: Arc<Acks>,
}

impl QuarantineWriter {
    /// Writes records until every [`Quarantine`] handle is dropped.
    pub(crate) async fn run(mut self, store: Arc<dyn Store>, trackers: Arc<Trackers>) {
        while let Some(rejection) = self.rx.recv().await {
            match store.quarantine(&rejection.record).await {
                Ok(()) => {
                    if let (true, Some(gateway), Some(seq)) =
                        (rejection.acks(), rejection.gateway(), rejection.record.seq)
                    {
                        trackers.with(&gateway, |t| t.settle(seq));
                        self.acks.schedule(gateway);
                    }
                }
                Err(error) => {
                    self.metrics.quarantine_errors.incr();
                    tracing::error!(%error, reason = rejection.record.reason.as_str(), "cannot write a quarantine record");
                    forget(&self.seen, &rejection.repeat());
                }
            }
        }
    }
}
