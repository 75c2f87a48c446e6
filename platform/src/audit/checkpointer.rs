//! The checkpointer: signs the head of every tenant's audit log whose head moved, after
//! verifying what was appended since the previous checkpoint.
//!
//! One round, per tenant with an audit log:
//! 1. anchor on the highest checkpoint whose signature verifies with a trusted key (the
//!    start of the log when there is none);
//! 2. verify the entries after it with `beffroi_audit::Verifier` (and the checkpoints above
//!    the anchor, if any);
//! 3. if the log is intact and has entries past the anchor, sign the head the verifier
//!    recomputed and store the checkpoint.
//!
//! It never signs over a damaged log: when the verification finds a problem the round logs
//! an error, counts `beffroi_audit_tampering_detected_total`, raises an `audit_tampered`
//! security event (when it runs in the server) and signs nothing for that tenant, until an
//! operator has looked. Several nodes may run rounds at once: a checkpoint is stored once per
//! seq (`Store::store_checkpoint` keeps the first), and they sign the same head with the
//! same key.

use std::sync::Arc;
use std::time::Duration;

use beffroi_api::audit::{anchor_at_or_below, check_log};
use beffroi_audit::{sign_checkpoint, AuditHead, Checkpoint};
use beffroi_protocol::{TenantId, Timestamp};
use beffroi_store::{SecurityEvent, SecurityEventKind, Store};
use beffroi_telemetry::{Metrics, SecurityEvents};
use tokio_util::sync::CancellationToken;

use crate::audit::PlatformAuditKey;

/// What a round did for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantOutcome {
    /// Nothing was appended since the last checkpoint.
    Unchanged {
        /// The seq of the last checkpoint.
        seq: u64,
    },
    /// A checkpoint was signed and stored at this seq.
    Signed {
        /// The head's seq.
        seq: u64,
    },
    /// Another node stored a checkpoint at this seq first.
    AlreadySigned {
        /// The head's seq.
        seq: u64,
    },
    /// The log is damaged: nothing was signed.
    Tampered {
        /// The first seq with a problem.
        first_bad_seq: u64,
        /// The verification report, for the log and the operator.
        report: String,
    },
    /// The store failed; retried at the next round.
    Failed {
        /// The error.
        error: String,
    },
}

/// Signs checkpoints of tenants' audit logs.
#[derive(Clone)]
pub struct Checkpointer {
    store: Arc<dyn Store>,
    key: Arc<PlatformAuditKey>,
    metrics: Arc<Metrics>,
    events: Option<SecurityEvents>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// A checkpointer signing with `key`; `events` receives an `audit_tampered` event per
    /// damaged log found (none from the CLI).
    pub fn new(
        store: Arc<dyn Store>,
        key: Arc<PlatformAuditKey>,
        metrics: Arc<Metrics>,
        events: Option<SecurityEvents>,
    ) -> Self {
        Self {
            store,
            key,
            metrics,
            events,
        }
    }

    /// One round over every tenant with an audit log, by tenant id.
    pub async fn round(&self) -> Result<Vec<(TenantId, TenantOutcome)>, beffroi_store::Error> {
        let tenants = self.store.audit_tenants().await?;
        let mut outcomes = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let outcome = match self.tenant(&tenant).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    self.metrics.audit_checkpoint_errors.incr();
                    tracing::warn!(%tenant, %error, "cannot checkpoint the audit log");
                    TenantOutcome::Failed {
                        error: error.to_string(),
                    }
                }
            };
            outcomes.push((tenant, outcome));
        }
        Ok(outcomes)
    }

    /// Checkpoints one tenant's log.
    async fn tenant(&self, tenant: &TenantId) -> Result<TenantOutcome, beffroi_store::Error> {
        let keys = self.key.keys().all();
        let checkpoints = self.store.audit_checkpoints(tenant).await?;
        let anchor = anchor_at_or_below(&checkpoints, u64::MAX, &keys);
        let head = self
            .store
            .audit_head(tenant)
            .await?
            .unwrap_or(AuditHead::GENESIS);
        if head == anchor {
            return Ok(TenantOutcome::Unchanged { seq: anchor.seq });
        }
        if head.seq < anchor.seq {
            let first_bad_seq = head.seq + 1;
            let report = format!(
                "truncated: the log's head is at seq {}, below the checkpoint at seq {}",
                head.seq, anchor.seq
            );
            self.tampered(tenant, first_bad_seq, &report);
            return Ok(TenantOutcome::Tampered {
                first_bad_seq,
                report,
            });
        }
        // Checkpoints below the anchor were checked when the anchor was signed.
        let ahead: Vec<Checkpoint> = checkpoints
            .into_iter()
            .filter(|cp| cp.seq >= anchor.seq)
            .collect();
        let check = check_log(self.store.as_ref(), tenant, anchor, &ahead, &keys).await?;
        if let Some(first_bad_seq) = check.first_bad_seq() {
            let report = check.to_string();
            self.tampered(tenant, first_bad_seq, &report);
            return Ok(TenantOutcome::Tampered {
                first_bad_seq,
                report,
            });
        }
        let verified = check.report.head;
        if verified.seq <= anchor.seq {
            return Ok(TenantOutcome::Unchanged { seq: anchor.seq });
        }
        let checkpoint =
            sign_checkpoint(self.key.signing_key(), tenant, verified, Timestamp::now());
        if self.store.store_checkpoint(&checkpoint).await? {
            self.metrics.audit_checkpoints.incr();
            tracing::debug!(%tenant, seq = verified.seq, "audit checkpoint signed");
            Ok(TenantOutcome::Signed { seq: verified.seq })
        } else {
            Ok(TenantOutcome::AlreadySigned { seq: verified.seq })
        }
    }

    fn tampered(&self, tenant: &TenantId, first_bad_seq: u64, report: &str) {
        self.metrics.audit_tampering_detected.incr();
        tracing::error!(
            %tenant,
            first_bad_seq,
            report,
            "the audit log was tampered with: no checkpoint signed"
        );
        if let Some(events) = &self.events {
            events.record(SecurityEvent {
                time: Timestamp::now(),
                tenant: Some(tenant.clone()),
                gateway: None,
                address: None,
                kind: SecurityEventKind::AuditTampered,
                detail: format!(
                    "audit log damaged from seq {first_bad_seq}; run `beffroi audit verify \
                     --tenant {tenant}`"
                ),
            });
        }
    }

    /// Runs a round every `interval` until `stop` is cancelled, then a last round (so that
    /// what the API recorded before it stopped is checkpointed).
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = stop.cancelled() => break,
            }
            self.logged_round().await;
        }
        self.logged_round().await;
    }

    async fn logged_round(&self) {
        if let Err(error) = self.round().await {
            self.metrics.audit_checkpoint_errors.incr();
            tracing::warn!(%error, "cannot list the tenants' audit logs");
        }
    }
}
