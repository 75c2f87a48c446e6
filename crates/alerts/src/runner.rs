//! The alert task: feeds the [`Engine`] with what the fan-out hands it, writes the resulting
//! alarm changes to the store and pushes them to live views.
//!
//! ```text
//! fan-out ──try_send──► inputs (bounded) ──► engine ──► actions ──► store ──► hub (live)
//!                       ticks (1 s) ───────►   │                      │ failed: retried
//!                       rule/registry reloads ─┘                      ▼ next tick
//!                       agreement changes ──► pooled rules' watches (see `pooled`)
//! ```
//! Handing work over never waits: when the queue is full the input is dropped and counted in
//! `beffroi_live_fanout_lagged_total`, never slowing ingest. Alarm writes that fail are kept
//! and retried at the next tick (at most [`MAX_RETRIES`] waiting, oldest dropped and counted).
//!
//! The clock ([`Clock`]) is tokio's, anchored to the wall clock when the task starts: it never
//! jumps with the system clock, and tests can anchor it elsewhere or pause it.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use beffroi_live::Hub;
use beffroi_protocol::{Health, TenantId, Timestamp};
use beffroi_store::{AlarmRule, CommitBatch, SecurityEvent, Store};
use beffroi_telemetry::Metrics;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::{Action, Engine};
use crate::pooled::{Pool, PoolGovernor, Verdict};

/// Inputs waiting for the engine.
pub const QUEUE: usize = 4096;
/// Failed alarm writes kept for a retry.
pub const MAX_RETRIES: usize = 10_000;
/// How often time-based rules run and failed writes are retried.
pub const TICK: Duration = Duration::from_secs(1);
/// How often every tenant's rules and sensors are reloaded (changes made on another node).
pub const RELOAD: Duration = Duration::from_secs(30);
/// The name of the store lease that elects the one node of a cluster running the engine.
pub const LEASE_NAME: &str = "alerts";
/// How long the engine's lease lasts unless renewed (its holder renews it every [`TICK`]):
/// the longest a cluster goes without an engine after its node dies.
pub const LEASE: Duration = Duration::from_secs(5);

/// A wall clock that follows tokio's time (paused in tests).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: Timestamp,
    start: tokio::time::Instant,
}

impl Clock {
    /// Anchored now.
    pub fn start() -> Self {
        Self::anchored(Timestamp::now())
    }

    /// Reading `wall` now (tests run the engine ahead of the wall clock).
    pub fn anchored(wall: Timestamp) -> Self {
        Self {
            wall,
            start: tokio::time::Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.wall.saturating_add(self.start.elapsed())
    }
}

enum Input {
    Batch(Arc<CommitBatch>),
    Health(Arc<Health>),
    Security(Arc<SecurityEvent>),
    RulesChanged(TenantId),
    RegistryChanged(TenantId),
}

/// The handle through which the platform hands work to the alert task; cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    tx: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").finish_non_exhaustive()
    }
}

/// The alert task, to be run once.
pub struct AlertTask {
    rx: mpsc::Receiver<Input>,
    store: Arc<dyn Store>,
    hub: Hub,
    metrics: Arc<Metrics>,
    /// This node's name as the holder of the engine's lease; `None`: a single node, which
    /// always runs the engine.
    holder: Option<String>,
    /// Pooled rules' watches and their governor (none: own sensors only).
    pool: Pool,
}

impl Alerts {
    /// A handle and its task (run it with [`AlertTask::run`]).
    pub fn new(store: Arc<dyn Store>, hub: Hub, metrics: Arc<Metrics>) -> (Self, AlertTask) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Self {
                tx,
                metrics: metrics.clone(),
            },
            AlertTask {
                rx,
                store,
                hub,
                metrics,
                holder: None,
                pool: Pool::default(),
            },
        )
    }

    fn send(&self, input: Input) {
        if self.tx.try_send(input).is_err() {
            self.metrics.live_fanout_lagged.incr();
        }
    }

    /// A batch was committed.
    pub fn batch_committed(&self, batch: Arc<CommitBatch>) {
        self.send(Input::Batch(batch));
    }

    /// A health report was recorded.
    pub fn health_recorded(&self, health: Arc<Health>) {
        self.send(Input::Health(health));
    }

    /// A security event was recorded.
    pub fn security_event(&self, event: Arc<SecurityEvent>) {
        self.send(Input::Security(event));
    }

    /// A tenant's rules changed (created, edited, deleted).
    pub fn rules_changed(&self, tenant: TenantId) {
        self.send(Input::RulesChanged(tenant));
    }

    /// A tenant's sensors changed (zones of threshold rules).
    pub fn registry_changed(&self, tenant: TenantId) {
        self.send(Input::RegistryChanged(tenant));
    }
}

impl AlertTask {
    /// Runs the engine only while this node holds the store's [`LEASE_NAME`] lease as
    /// `holder`: of the nodes of a cluster, which all hear of every batch and health report
    /// through the cluster relay, one evaluates the rules, so that each condition raises its
    /// alarm once. A node that takes the lease over resumes from the active alarms; a
    /// threshold's pending duration starts afresh there.
    pub fn leased(mut self, holder: String) -> Self {
        self.holder = Some(holder);
        self
    }

    /// Lets threshold rules with a `pooled` purpose watch other tenants' sensors as far as
    /// `governor` permits (see [`PoolGovernor`]); without it they watch their own only.
    pub fn pooling(mut self, governor: Arc<dyn PoolGovernor>) -> Self {
        self.pool = Pool::new(governor);
        self
    }

    /// Runs until `shutdown` fires (or every handle is dropped).
    pub async fn run(self, shutdown: CancellationToken) {
        self.run_with_clock(shutdown, Clock::start()).await;
    }

    /// [`AlertTask::run`] with a given clock.
    pub async fn run_with_clock(mut self, shutdown: CancellationToken, clock: Clock) {
        let mut engine = Engine::default();
        let mut pool = std::mem::take(&mut self.pool);
        let mut retries: VecDeque<Action> = VecDeque::new();
        let mut leading = self.lead(false).await;
        let mut loaded = leading && self.load_all(&mut engine, &mut pool, &clock).await;
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reload = tokio::time::interval(RELOAD);
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reload.reset();
        loop {
            let actions = tokio::select! {
                () = shutdown.cancelled() => {
                    // Apply what was already handed over, then stop.
                    while let Ok(input) = self.rx.try_recv() {
                        if leading {
                            let actions =
                                self.evaluate(&mut engine, &mut pool, input, &clock).await;
                            self.apply_all(actions, &mut retries, &engine, &pool).await;
                        }
                    }
                    self.resign(leading).await;
                    return;
                }
                input = self.rx.recv() => match input {
                    None => return,
                    Some(input) if leading => {
                        self.evaluate(&mut engine, &mut pool, input, &clock).await
                    }
                    // Another node runs the engine: it hears of the same inputs.
                    Some(_) => Vec::new(),
                },
                _ = ticker.tick() => {
                    let was_leading = leading;
                    leading = self.lead(leading).await;
                    if leading != was_leading {
                        // Taken over: resume from the store. Lost: forget, so that a later
                        // take-over starts from the store again.
                        engine = Engine::default();
                        retries.clear();
                        loaded = false;
                    }
                    if !leading {
                        continue;
                    }
                    if !loaded {
                        loaded = self.load_all(&mut engine, &mut pool, &clock).await;
                    }
                    let mut due: Vec<Action> = retries.drain(..).collect();
                    due.extend(engine.tick(clock.now()));
                    due
                }
                _ = reload.tick(), if leading => {
                    loaded = self.load_all(&mut engine, &mut pool, &clock).await;
                    Vec::new()
                }
                () = pool.agreements_changed(), if leading => {
                    pool.refresh(&engine, clock.now(), &self.metrics).await;
                    Vec::new()
                }
            };
            self.apply_all(actions, &mut retries, &engine, &pool).await;
        }
    }

    /// Whether this node runs the engine now: always without a lease; otherwise after
    /// taking or renewing it (a store error counts as not holding it, since another node may
    /// take it over meanwhile). `was` is the previous answer, for the log.
    async fn lead(&self, was: bool) -> bool {
        let Some(holder) = &self.holder else {
            self.metrics.alerts_leader.set(1);
            return true;
        };
        let now = Timestamp::now();
        let held = match self
            .store
            .renew_lease(LEASE_NAME, holder, now, now.saturating_add(LEASE))
            .await
        {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(%error, "cannot renew the alert engine's lease");
                false
            }
        };
        if held != was {
            if held {
                tracing::info!(node = %holder, "this node runs the alert engine");
            } else if was {
                tracing::warn!(node = %holder, "this node no longer runs the alert engine");
            }
        }
        self.metrics.alerts_leader.set(i64::from(held));
        held
    }

    /// Gives the lease up at shutdown, so that another node takes the engine over at once.
    async fn resign(&self, leading: bool) {
        if let (Some(holder), true) = (&self.holder, leading) {
            if let Err(error) = self.store.release_lease(LEASE_NAME, holder).await {
                tracing::warn!(%error, "cannot release the alert engine's lease");
            }
        }
        self.metrics.alerts_leader.set(0);
    }

    /// What one input asks of alarms.
    async fn evaluate(
        &self,
        engine: &mut Engine,
        pool: &mut Pool,
        input: Input,
        clock: &Clock,
    ) -> Vec<Action> {
        match input {
            Input::Batch(batch) => {
                let now = clock.now();
                let mut actions = engine.batch(&batch, now);
                actions.extend(engine.pooled(&batch, pool.watches(), now));
                actions
            }
            Input::Health(health) => engine.health(&health, clock.now()),
            Input::Security(event) => engine.security(&event),
            Input::RulesChanged(tenant) => {
                self.load_tenant(engine, &tenant).await;
                pool.refresh(engine, clock.now(), &self.metrics).await;
                Vec::new()
            }
            Input::RegistryChanged(tenant) => {
                self.load_sensors(engine, &tenant).await;
                // An operator's sensors, or a beneficiary's zones, may have moved.
                pool.refresh(engine, clock.now(), &self.metrics).await;
                Vec::new()
            }
        }
    }

    /// Applies actions in order; those the store refused wait for the next tick.
    async fn apply_all(
        &self,
        actions: Vec<Action>,
        retries: &mut VecDeque<Action>,
        engine: &Engine,
        pool: &Pool,
    ) {
        for action in actions {
            if !self.apply(&action, engine, pool).await {
                if retries.len() >= MAX_RETRIES {
                    retries.pop_front();
                    tracing::error!("alarm retry queue full: the oldest alarm change is lost");
                }
                retries.push_back(action);
            }
        }
    }

    /// Loads every tenant's rules (and what they need), resumes from active alarms and decides
    /// the pooled rules' watches. False when the store failed (tried again at the next tick).
    async fn load_all(&self, engine: &mut Engine, pool: &mut Pool, clock: &Clock) -> bool {
        let rules = match self.store.all_alarm_rules().await {
            Ok(rules) => rules,
            Err(error) => {
                tracing::warn!(%error, "cannot load alarm rules; retrying");
                return false;
            }
        };
        let mut by_tenant: Vec<(TenantId, Vec<AlarmRule>)> = Vec::new();
        for rule in rules {
            match by_tenant.last_mut() {
                Some((tenant, list)) if *tenant == rule.tenant => list.push(rule),
                _ => by_tenant.push((rule.tenant.clone(), vec![rule])),
            }
        }
        let mut known: HashSet<TenantId> = engine.tenants().cloned().collect();
        for (tenant, rules) in by_tenant {
            known.remove(&tenant);
            self.install(engine, &tenant, rules).await;
        }
        // Tenants whose last rule was deleted on another node.
        for tenant in known {
            engine.set_rules(&tenant, Vec::new());
        }
        let resumed = self.resume(engine, None).await;
        pool.refresh(engine, clock.now(), &self.metrics).await;
        resumed
    }

    /// Reloads one tenant's rules and resumes its active alarms.
    async fn load_tenant(&self, engine: &mut Engine, tenant: &TenantId) {
        match self.store.list_alarm_rules(tenant).await {
            Ok(rules) => {
                self.install(engine, tenant, rules).await;
                self.resume(engine, Some(tenant)).await;
            }
            Err(error) => tracing::warn!(%error, %tenant, "cannot reload alarm rules"),
        }
    }

    async fn install(&self, engine: &mut Engine, tenant: &TenantId, rules: Vec<AlarmRule>) {
        engine.set_rules(tenant, rules);
        self.load_sensors(engine, tenant).await;
        if engine.watches_gateways(tenant) {
            match self.store.list_gateways(tenant).await {
                Ok(gateways) => engine.seed_gateways(tenant, &gateways),
                Err(error) => tracing::warn!(%error, %tenant, "cannot seed gateways"),
            }
        }
    }

    async fn load_sensors(&self, engine: &mut Engine, tenant: &TenantId) {
        match self.store.list_sensors(tenant).await {
            Ok(sensors) => engine.set_sensors(tenant, &sensors),
            Err(error) => tracing::warn!(%error, %tenant, "cannot load sensors for alarm rules"),
        }
    }

    async fn resume(&self, engine: &mut Engine, tenant: Option<&TenantId>) -> bool {
        match self.store.active_alarms().await {
            Ok(active) => {
                let active: Vec<_> = active
                    .into_iter()
                    .filter(|a| tenant.is_none_or(|t| a.tenant == *t))
                    .collect();
                engine.resume(&active);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot load active alarms; retrying");
                false
            }
        }
    }

    /// Writes one alarm change and pushes it live; false when it is to be retried (the store
    /// failed, or a pooled sensor's change could not be recorded in its operator's log). A
    /// pooled sensor's change the policy engine now refuses is dropped and counted.
    async fn apply(&self, action: &Action, engine: &Engine, pool: &Pool) -> bool {
        match pool.reveal(action, engine).await {
            Verdict::Recorded => {}
            Verdict::Refused(reason) => {
                self.metrics.alerts_pooled_refused.incr();
                tracing::info!(%reason, ?action, "alarm change on a pooled sensor refused: dropped");
                return true;
            }
            Verdict::Unavailable(reason) => {
                self.metrics.alert_errors.incr();
                tracing::warn!(%reason, "cannot record an alarm change on a pooled sensor; retrying at the next tick");
                return false;
            }
        }
        let written = match action {
            Action::Raise(alarm) => self.store.raise_alarm(alarm).await.map(|raised| {
                if raised.opened {
                    self.metrics.alarms_raised.incr();
                }
                Some(raised.alarm)
            }),
            Action::Resolve {
                tenant,
                rule,
                subject,
                at,
            } => self
                .store
                .resolve_alarm(tenant, rule, subject, *at)
                .await
                .inspect(|resolved| {
                    if resolved.is_some() {
                        self.metrics.alarms_resolved.incr();
                    }
                }),
        };
        match written {
            Ok(alarm) => {
                if let Some(alarm) = alarm {
                    self.hub.alarm_changed(&alarm);
                }
                true
            }
            Err(error) => {
                self.metrics.alert_errors.incr();
                tracing::warn!(%error, "cannot write an alarm change; retrying at the next tick");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_tokio_time() {
        let wall = Timestamp::from_unix_micros(1_000_000);
        let clock = Clock::anchored(wall);
        assert_eq!(clock.now(), wall);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), Timestamp::from_unix_micros(91_000_000));
    }
}
