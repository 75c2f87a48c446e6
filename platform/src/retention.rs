//! The retention task: applies every tenant's retention policies (see
//! `beffroi_store::RetentionPolicy`) every `retention.interval_s`, and the same round by
//! hand (`beffroi retention apply`, see [`RetentionCommand`]), plus the audited policy
//! changes of the CLI.
//!
//! One round, per tenant (by id), per stored class, per kind (raw, aggregate) with a
//! duration: purge what is older than `now − days` (`Store::purge`; each batch has its
//! `purge` receipt in the tenant's audit log). The instance-wide `retention.max_raw_days`
//! caps every class's raw retention, and, when the tenant has no `*` class, its raw readings
//! of every metric no stored class governs are purged at that bound too (class `*`). On
//! TimescaleDB the same bound is also a `drop_chunks` retention policy (whole chunks of every
//! tenant, without per-tenant receipts); the hourly round purges, with receipts, what it
//! would drop, so it normally only finds empty chunks.
//!
//! A failed purge is logged and counted (`beffroi_retention_errors_total`) and retried at the
//! next round; the others go on. Rows purged are counted in
//! `beffroi_retention_purged_rows_total{kind}`.

mod command;

use std::sync::Arc;
use std::time::Duration;

use beffroi_api::audit::{audited, Change};
use beffroi_audit::{AuditActor, AuditKind};
use beffroi_policy::MetricPattern;
use beffroi_protocol::{TenantId, Timestamp};
use beffroi_store::{PurgeKind, PurgeReceipt, PurgeRequest, RetentionPolicy, Store};
use beffroi_telemetry::Metrics;
use tokio_util::sync::CancellationToken;

use crate::admin::{local_operator, AdminError};

pub use command::{run, RetentionCommand};

/// The `[retention]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// How often a round runs.
    pub interval: Duration,
    /// The instance-wide cap on raw retention (also the store's `OpenOptions::retention`).
    pub max_raw: Option<Duration>,
}

/// The actor of every purge the task makes.
fn retention_actor() -> AuditActor {
    AuditActor::System("retention".into())
}

/// One failed purge of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeFailure {
    /// The tenant.
    pub tenant: TenantId,
    /// The class.
    pub class: MetricPattern,
    /// What was purged.
    pub kind: PurgeKind,
    /// The error.
    pub error: String,
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Every purge that ran, with its receipt (rows may be 0).
    pub receipts: Vec<PurgeReceipt>,
    /// Purges that failed (retried at the next round).
    pub failures: Vec<PurgeFailure>,
}

/// Applies retention policies.
#[derive(Clone)]
pub struct Retention {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    max_raw: Option<Duration>,
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention")
            .field("max_raw", &self.max_raw)
            .finish_non_exhaustive()
    }
}

impl Retention {
    /// A task purging `store` with the instance-wide cap `max_raw`.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>, max_raw: Option<Duration>) -> Self {
        Self {
            store,
            metrics,
            max_raw,
        }
    }

    /// One round at `now` over every tenant, or only `only`.
    pub async fn round(
        &self,
        only: Option<&TenantId>,
        now: Timestamp,
    ) -> Result<RoundReport, beffroi_store::Error> {
        let tenants = match only {
            Some(tenant) => match self.store.tenant(tenant).await? {
                Some(found) => vec![found.id],
                None => {
                    return Err(beffroi_store::Error::NotFound {
                        what: "tenant",
                        id: tenant.to_string(),
                    })
                }
            },
            None => self
                .store
                .list_tenants()
                .await?
                .into_iter()
                .map(|t| t.id)
                .collect(),
        };
        let mut report = RoundReport::default();
        for tenant in tenants {
            let policies = self.store.retention_policies(&tenant).await?;
            for request in self.requests(&tenant, &policies, now) {
                self.purge(&request, &mut report).await;
            }
        }
        Ok(report)
    }

    /// The purges `policies` call for at `now`, with the instance-wide cap.
    fn requests(
        &self,
        tenant: &TenantId,
        policies: &[RetentionPolicy],
        now: Timestamp,
    ) -> Vec<PurgeRequest> {
        let cap = self.max_raw.map(|max| now.saturating_sub(max));
        let bound = |days: Option<u32>, kind: PurgeKind| {
            let own = days.map(|d| now.saturating_sub(Duration::from_secs(u64::from(d) * 86_400)));
            let cap = if kind == PurgeKind::Raw { cap } else { None };
            // The later bound is the shorter retention.
            own.max(cap)
        };
        let request = |class: &MetricPattern, kind, older_than| {
            PurgeRequest::new(
                tenant.clone(),
                class.clone(),
                kind,
                older_than,
                retention_actor(),
                now,
            )
        };
        let mut requests = Vec::new();
        for policy in policies {
            for kind in PurgeKind::ALL {
                if let Some(older_than) = bound(policy.days(kind), kind) {
                    requests.push(request(&policy.class, kind, older_than));
                }
            }
        }
        if let Some(cap) = cap {
            if !policies.iter().any(|p| p.class == MetricPattern::Any) {
                requests.push(request(&MetricPattern::Any, PurgeKind::Raw, cap));
            }
        }
        requests
    }

    async fn purge(&self, request: &PurgeRequest, report: &mut RoundReport) {
        match self.store.purge(request).await {
            Ok(receipt) => {
                if receipt.rows > 0 {
                    self.metrics
                        .retention_purged_rows
                        .add(receipt.kind.as_str(), receipt.rows);
                    tracing::info!(
                        tenant = %receipt.tenant,
                        class = %receipt.class,
                        kind = receipt.kind.as_str(),
                        rows = receipt.rows,
                        batches = receipt.batches,
                        from = ?receipt.from,
                        to = %receipt.to,
                        "retention purge"
                    );
                }
                report.receipts.push(receipt);
            }
            Err(error) => {
                self.metrics.retention_errors.incr();
                tracing::warn!(
                    tenant = %request.tenant,
                    class = %request.class,
                    kind = request.kind.as_str(),
                    %error,
                    "retention purge failed (retried at the next round)"
                );
                report.failures.push(PurgeFailure {
                    tenant: request.tenant.clone(),
                    class: request.class.clone(),
                    kind: request.kind,
                    error: error.to_string(),
                });
            }
        }
    }

    /// Runs a round every `interval` (the first one interval after the start) until `stop`.
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        let start = tokio::time::Instant::now() + interval;
        let mut ticker = tokio::time::interval_at(start, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = stop.cancelled() => return,
            }
            // Dropping a round mid-batch rolls the batch back with its receipt.
            let round = tokio::select! {
                round = self.round(None, Timestamp::now()) => round,
                () = stop.cancelled() => return,
            };
            if let Err(error) = round {
                self.metrics.retention_errors.incr();
                tracing::warn!(%error, "cannot list tenants or retention policies");
            }
        }
    }
}

/// Sets (creates or replaces) a tenant's policy for a class, recorded in its audit log
/// (`retention_change`, by the local operator) before it is applied.
pub async fn set_policy(store: &dyn Store, policy: &RetentionPolicy) -> Result<(), AdminError> {
    let change = policy_change(policy, "upsert");
    audited(store, &[change], async {
        Ok::<_, AdminError>(store.set_retention_policy(policy).await?)
    })
    .await?;
    Ok(())
}

/// The audit record of a change of `policy`: the class as id, the durations as request.
pub fn policy_change(policy: &RetentionPolicy, action: &'static str) -> Change {
    Change::new(
        policy.tenant.clone(),
        local_operator(),
        AuditKind::RetentionChange,
        action,
        "retention_policy",
        policy.class.to_string(),
    )
    .with_request(&serde_json::json!({
        "raw_days": policy.raw_days,
        "aggregate_days": policy.aggregate_days,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(class: &str, raw: Option<u32>, aggregate: Option<u32>) -> RetentionPolicy {
        RetentionPolicy {
            tenant: TenantId::new("lyon").expect("tenant"),
            class: class.parse().expect("class"),
            raw_days: raw,
            aggregate_days: aggregate,
            updated_at: Timestamp::from_unix_micros(0),
        }
    }

    async fn task(max_raw_days: Option<u64>) -> Retention {
        let store = beffroi_store::open("sqlite::memory:", Default::default())
            .await
            .expect("store");
        Retention::new(
            store,
            Arc::new(Metrics::default()),
            max_raw_days.map(|d| Duration::from_secs(d * 86_400)),
        )
    }

    #[tokio::test]
    async fn bounds_follow_policies_and_the_cap() {
        const DAY: i64 = 86_400_000_000;
        let now = Timestamp::from_unix_micros(1000 * DAY);
        let tenant = TenantId::new("lyon").expect("tenant");
        let policies = [
            policy("air.*", Some(30), Some(365)),
            policy("air.pm25", Some(3650), None),
        ];
        let summary = |requests: Vec<PurgeRequest>| {
            requests
                .into_iter()
                .map(|r| {
                    let days = (now.unix_micros() - r.older_than.unix_micros()) / DAY;
                    (r.class.to_string(), r.kind, days)
                })
                .collect::<Vec<_>>()
        };
        let uncapped = task(None).await.requests(&tenant, &policies, now);
        assert_eq!(
            summary(uncapped),
            vec![
                ("air.*".to_owned(), PurgeKind::Raw, 30),
                ("air.*".to_owned(), PurgeKind::Aggregate, 365),
                ("air.pm25".to_owned(), PurgeKind::Raw, 3650),
            ]
        );
        let capped = task(Some(100)).await.requests(&tenant, &policies, now);
        assert_eq!(
            summary(capped),
            vec![
                ("air.*".to_owned(), PurgeKind::Raw, 30),
                ("air.*".to_owned(), PurgeKind::Aggregate, 365),
                ("air.pm25".to_owned(), PurgeKind::Raw, 100),
                ("*".to_owned(), PurgeKind::Raw, 100),
            ]
        );
    }
}
