//! Grantee live views through the governed read path: the [`Governor`] the websocket route
//! gives each connection.
//!
//! ```text
//! subscribe {grantor, purpose, filter} ─► AccessRequest (channel live) ─► decide
//!   Deny, or a permit live views cannot apply (aggregates) ─► access_deny ─► error
//!   Permit ─► pseudonym key ─► access_permit (rows 0: nothing has left yet) ─► Grant
//! embargoed grant, every tick ─► readings: the permit's population (the same as REST reads,
//!   cached POPULATION_TTL) ─► Store::readings page ─► the live crate admits and shapes each
//! agreements change / every RECHECK ─► decide again ─► deny, other version, rotated key ─► ended
//! view ends (unsubscribed, replaced, disconnected, ended) ─► access_permit with the values
//!   released and the SHA-256 of their items (`query.live.ended` says why)
//! ```
//! The entry that opens a view is written before its first value leaves; if it cannot be
//! written, the view is refused (fail closed). The closing entry is written after the fact;
//! when it cannot be, the failure is logged and counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use beffroi_audit::Digest;
use beffroi_live::{Governor, Grant, GrantRequest, Refusal};
use beffroi_policy::{
    decide, AccessRequest, Channel, Decision, MetricPattern, Purpose, Read, Scope, TimeRange,
    ZoneId,
};
use beffroi_protocol::{SensorId, TenantId, Timestamp};
use beffroi_store::{ReadingCursor, ReadingPage};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::population::{territories, Population};
use super::{
    query_with, record, record_closing, GovernedRead, Outcome, RawPage, Registry, Requester,
};
use crate::ApiState;

/// How far ahead a live view's request reaches: its agreement's `not_after` ends it sooner.
pub(super) const LIVE_HORIZON: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How long the population of a delayed view's permit is reused: a sensor that joins the
/// agreement's target reaches its delayed views within this time (one that leaves it is
/// never served: each value is admitted with the current registry).
const POPULATION_TTL: Duration = Duration::from_secs(10);

/// Decides the grantee views of one connection.
#[derive(Clone)]
pub struct LiveGovernor {
    state: ApiState,
    requester: Requester,
    /// The store filters of the permits its delayed views read.
    populations: Arc<Mutex<Populations>>,
}

/// Populations by grantor and scope, with when each was resolved.
type Populations = HashMap<(TenantId, Scope), (Instant, Arc<Population>)>;

impl std::fmt::Debug for LiveGovernor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveGovernor")
            .field("requester", &self.requester)
            .finish_non_exhaustive()
    }
}

impl LiveGovernor {
    /// The governor of a connection made by `requester`.
    pub fn new(state: ApiState, requester: Requester) -> Self {
        Self {
            state,
            requester,
            populations: Arc::default(),
        }
    }

    /// The store filters of `scope` in `grantor`'s data, at most [`POPULATION_TTL`] old.
    async fn population(
        &self,
        grantor: &TenantId,
        scope: &Scope,
    ) -> beffroi_store::Result<Arc<Population>> {
        let key = (grantor.clone(), scope.clone());
        let cached = || {
            // Nothing panics while holding this lock; a poisoned cache is still consistent.
            self.populations
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if let Some((at, population)) = cached().get(&key) {
            if at.elapsed() < POPULATION_TTL {
                return Ok(population.clone());
            }
        }
        let store = self.state.store.as_ref();
        let registry = Registry::load(store, grantor, &self.requester.grantee, scope).await?;
        let population = Arc::new(registry.population(store, grantor, scope).await?);
        let mut cache = cached();
        cache.retain(|_, (at, _)| at.elapsed() < POPULATION_TTL);
        cache.insert(key, (Instant::now(), population.clone()));
        Ok(population)
    }

    /// The governed read a live request stands for at `now`: its values from the live
    /// snapshot's horizon on.
    fn read(&self, request: &GrantRequest, now: Timestamp) -> Result<GovernedRead, Refusal> {
        let purpose: Purpose = request
            .purpose
            .parse()
            .map_err(|e| Refusal::bad_request(format!("purpose: {e}")))?;
        let mut metrics = request
            .filter
            .metrics
            .iter()
            .map(|m| m.parse::<MetricPattern>())
            .collect::<Result<std::collections::BTreeSet<_>, _>>()
            .map_err(|e| Refusal::bad_request(format!("filter.metrics: {e}")))?;
        if metrics.is_empty() {
            metrics.insert(MetricPattern::Any);
        }
        let zones = parse_all(&request.filter.zones, |z| ZoneId::new(z), "filter.zones")?;
        let sensors = parse_all(
            &request.filter.sensors,
            |s| SensorId::new(s),
            "filter.sensors",
        )?;
        let seed = self.state.live.config().seed_window;
        Ok(GovernedRead {
            request: AccessRequest {
                requester: self.requester.grantee.clone(),
                grantor: request.grantor.clone(),
                channel: Channel::Live,
                purpose,
                agreement: None,
                metrics,
                zones,
                sensors,
                tags: Default::default(),
                range: TimeRange::new(now.saturating_sub(seed), now.saturating_add(LIVE_HORIZON)),
                read: Read::Raw {
                    fields: Default::default(),
                },
            },
            actor: self.requester.actor.clone(),
            preview: false,
            page: RawPage {
                limit: 0,
                after: None,
            },
        })
    }
}

fn parse_all<T: Ord, E: std::fmt::Display>(
    items: &[String],
    parse: impl Fn(&str) -> Result<T, E>,
    field: &str,
) -> Result<std::collections::BTreeSet<T>, Refusal> {
    items
        .iter()
        .map(|item| parse(item).map_err(|e| Refusal::bad_request(format!("{field}: {e}"))))
        .collect()
}

/// The query an entry of a live view records: the request, and `live` facts.
fn live_query(read: &GovernedRead, now: Timestamp, live: Value) -> Result<Value, Refusal> {
    query_with(read, now, "live", live).map_err(unavailable)
}

fn unavailable(error: impl std::fmt::Display) -> Refusal {
    tracing::warn!(%error, "a grantee view cannot be audited");
    Refusal::denied(
        "audit_unavailable",
        "the audit log cannot be written, so no shared data is served",
    )
}

#[async_trait::async_trait]
impl Governor for LiveGovernor {
    async fn grant(&self, request: &GrantRequest) -> Result<Grant, Refusal> {
        let now = self.state.clock.now();
        let read = self.read(request, now)?;
        let agreements = self.state.agreements.current().await.map_err(unavailable)?;
        let opened = json!({ "opened": true });
        let permit = match decide(&read.request, &agreements, now) {
            Decision::Deny(deny) => {
                let reason = format!("{}: {}", deny.reason, deny.message);
                let query = live_query(&read, now, opened)?;
                let outcome = Outcome::Deny(deny.agreement.as_ref(), reason);
                record(&self.state, &read, query, outcome)
                    .await
                    .map_err(unavailable)?;
                return Err(Refusal::denied(deny.reason.as_str(), deny.message));
            }
            Decision::Permit(permit) => permit,
        };
        let agreement = permit.agreement.clone();
        let key = match super::permit_key(self.state.store.as_ref(), &read, &permit).await {
            Ok(key) => key,
            Err(error) => return Err(Refusal::denied("no_key", error.to_string())),
        };
        let store = self.state.store.as_ref();
        let territories = territories(store, &read.request.requester, &permit.transforms.scope)
            .await
            .map_err(unavailable)?;
        let clock = self.state.clock.clone();
        let query = live_query(&read, now, opened)?;
        match Grant::new(permit, key, territories, Box::new(move || clock.now())) {
            Ok(grant) => {
                let outcome = Outcome::Permit(&agreement, 0, None);
                record(&self.state, &read, query, outcome)
                    .await
                    .map_err(unavailable)?;
                Ok(grant)
            }
            Err(refusal) => {
                let outcome = Outcome::Deny(Some(&agreement), refusal.to_string());
                record(&self.state, &read, query, outcome)
                    .await
                    .map_err(unavailable)?;
                Err(refusal)
            }
        }
    }

    async fn recheck(&self, request: &GrantRequest, grant: &Grant) -> Option<Refusal> {
        let now = self.state.clock.now();
        let read = match self.read(request, now) {
            Ok(read) => read,
            Err(refusal) => return Some(refusal),
        };
        let agreements = match self.state.agreements.current().await {
            Ok(agreements) => agreements,
            Err(error) => return Some(unavailable(error)),
        };
        let permit = match decide(&read.request, &agreements, now) {
            Decision::Deny(deny) => {
                return Some(Refusal::denied(deny.reason.as_str(), deny.message));
            }
            Decision::Permit(permit) => permit,
        };
        if permit.agreement != grant.agreement {
            return Some(Refusal::denied(
                "agreement_changed",
                format!(
                    "the view was granted under agreement {} version {}; agreement {} version {} \
                     now applies: subscribe again",
                    grant.agreement.id,
                    grant.agreement.version,
                    permit.agreement.id,
                    permit.agreement.version
                ),
            ));
        }
        if let Some(epoch) = grant.key_epoch() {
            let current = self
                .state
                .store
                .pseudonym_key(&request.grantor, &grant.agreement.id)
                .await;
            match current {
                Ok(Some(key)) if key.epoch() == epoch => {}
                Ok(_) => {
                    return Some(Refusal::denied(
                        "key_rotated",
                        "the agreement's pseudonym key was rotated: subscribe again",
                    ))
                }
                Err(error) => return Some(unavailable(error)),
            }
        }
        None
    }

    fn ended(&self, request: GrantRequest, grant: Arc<Grant>, why: String) {
        let this = self.clone();
        tokio::spawn(async move {
            let now = this.state.clock.now();
            let (rows, digest) = grant.released();
            let read = match this.read(&request, now) {
                Ok(read) => read,
                Err(refusal) => {
                    // Unreachable in practice: the same request was read when it was granted.
                    this.state.metrics.audit_write_failures.incr();
                    tracing::error!(%refusal, grantor = %request.grantor, "cannot record the end of a grantee view");
                    return;
                }
            };
            let live = json!({
                "ended": why,
                "opened_at": grant.started().to_string(),
            });
            let query = query_with(&read, now, "live", live);
            let digest = Digest::new(digest);
            record_closing(&this.state, &read, query, &grant.agreement, rows, digest).await;
        });
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.state.agreements.subscribe()
    }

    async fn readings(
        &self,
        request: &GrantRequest,
        grant: &Grant,
        range: TimeRange,
        after: Option<ReadingCursor>,
        limit: u32,
    ) -> beffroi_store::Result<ReadingPage> {
        let population = self
            .population(&request.grantor, grant.population())
            .await?;
        if population.is_empty() {
            return Ok(ReadingPage {
                readings: Vec::new(),
                next: None,
            });
        }
        let filter = population.filter(&request.grantor, range);
        self.state.store.readings(&filter, limit, after).await
    }
}
