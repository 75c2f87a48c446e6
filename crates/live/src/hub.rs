//! The hub: every connected client, per tenant, and the fan-out of what happens after commit.
//!
//! ```text
//! committed batch ──► batch_committed ──► tenant state ──► client queues (latest per series)
//! alarm change    ──► alarm_changed   ──┐
//! security event  ──► security_event ──┼─► followers of the stream ──► client queues (in order)
//! health recorded ──► health_recorded ──┘ (gateway states fetched on the next tick)
//! tick (1 s)      ──► close buckets, complete early buckets from the store,
//!                     reload registries, refresh gateway states
//! ```
//! Fan-out methods are synchronous and never wait on a client: they hold the hub's lock for
//! a few hash lookups and one queue insert per subscription fed. A tenant's state exists only
//! while one of its clients is connected; its first client loads the sensors and the latest
//! stored values ([`Hub::connect`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use beffroi_protocol::{GatewayId, MetricName, SensorId, TenantId, Timestamp};
use beffroi_store::{
    Alarm, CommitBatch, GatewayRecord, ReadingFilter, SecurityEvent, Store, StoredReading,
    TokenScope,
};
use beffroi_telemetry::Metrics;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::config::LiveConfig;
use crate::filter::SensorInfo;
use crate::frames::{Event, EventKind};
use crate::notice::{Notice, NOTICES};
use crate::protocol::{close, to_json, StreamKind};
use crate::queue::{ClientQueue, Close};
use crate::series::{BucketValue, SeriesMeta};
use crate::tenant::{Incomplete, Matched, ReadingsSub, SubRef, TenantState};
use crate::LiveError;

/// How often [`Hub::all_closed`] looks at the client count.
const CLOSE_POLL: Duration = Duration::from_millis(10);

/// The series of stored readings by `(sensor, metric)`, with their sensors' registry entries.
pub(crate) type SeriesOf<'a> =
    HashMap<(&'a SensorId, &'a MetricName), (Arc<SeriesMeta>, SensorInfo)>;

/// The live hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

struct Inner {
    config: LiveConfig,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    state: Mutex<HubState>,
    /// Serializes tenant activations (each loads from the store).
    activation: tokio::sync::Mutex<()>,
    next_client: AtomicU64,
    next_series: AtomicU32,
    /// Changes made on this node, for a cluster relay ([`Hub::notices`]).
    notices: broadcast::Sender<Notice>,
}

#[derive(Default)]
struct HubState {
    tenants: HashMap<TenantId, TenantEntry>,
    /// Platform operators following the security events of no tenant.
    platform: Vec<SubRef>,
    clients: HashMap<u64, Arc<ClientQueue>>,
    closing: bool,
}

impl HubState {
    fn leave(&mut self, tenant: &TenantId, client: u64, sub: Option<u32>) {
        if let Some(entry) = self.tenants.get_mut(tenant) {
            entry.state.unsubscribe(client, sub);
            entry.state.clients = entry.state.clients.saturating_sub(1);
            if entry.state.clients == 0 {
                self.tenants.remove(tenant);
            }
        }
    }
}

struct TenantEntry {
    state: TenantState,
    registry_loaded: Instant,
}

impl Hub {
    /// A hub reading the registry and stored values from `store`.
    pub fn new(config: LiveConfig, store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                metrics,
                state: Mutex::new(HubState::default()),
                activation: tokio::sync::Mutex::new(()),
                next_client: AtomicU64::new(1),
                next_series: AtomicU32::new(1),
                notices: broadcast::channel(NOTICES).0,
            }),
        }
    }

    /// The hub's configuration.
    pub fn config(&self) -> &LiveConfig {
        &self.inner.config
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // No code panics while holding the lock; a poisoned state is still consistent.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn next_series_id(&self) -> impl FnMut() -> u32 + '_ {
        || self.inner.next_series.fetch_add(1, Ordering::Relaxed)
    }

    /// Connects a client with `scope` (from its token). A tenant's first client loads the
    /// tenant's sensors and latest stored values.
    pub async fn connect(&self, scope: TokenScope) -> Result<Client, LiveError> {
        if let TokenScope::Tenant { tenant, .. } = &scope {
            self.join(tenant).await?;
        }
        let id = self.inner.next_client.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(ClientQueue::new(
            id,
            self.inner.config.event_capacity,
            self.inner.metrics.clone(),
        ));
        let closing = {
            let mut hub = self.lock();
            hub.clients.insert(id, queue.clone());
            hub.closing
        };
        self.inner.metrics.live_clients.add(1);
        let client = Client::new(self.clone(), queue, scope);
        if closing {
            // Dropping the client undoes the registration.
            return Err(LiveError::ShuttingDown);
        }
        Ok(client)
    }

    /// Counts a client in `tenant`'s state: its own tenant when it connects, a grantor for
    /// each grantee view. The first loads the state; [`Hub::leave`] undoes it.
    pub(crate) async fn join(&self, tenant: &TenantId) -> Result<(), LiveError> {
        if self.join_tenant(tenant) {
            return Ok(());
        }
        let _activation = self.inner.activation.lock().await;
        if !self.join_tenant(tenant) {
            let state = self.load_tenant(tenant).await?;
            let mut hub = self.lock();
            let entry = hub.tenants.entry(tenant.clone()).or_insert(TenantEntry {
                state,
                registry_loaded: Instant::now(),
            });
            entry.state.clients += 1;
        }
        Ok(())
    }

    /// Undoes a [`Hub::join`]: removes `client`'s subscription `sub` (or all of them) from
    /// `tenant`'s state, which goes after its last client.
    pub(crate) fn leave(&self, tenant: &TenantId, client: u64, sub: Option<u32>) {
        self.lock().leave(tenant, client, sub);
    }

    /// Counts a client in its tenant's state if the state exists.
    fn join_tenant(&self, tenant: &TenantId) -> bool {
        match self.lock().tenants.get_mut(tenant) {
            Some(entry) => {
                entry.state.clients += 1;
                true
            }
            None => false,
        }
    }

    async fn load_tenant(&self, tenant: &TenantId) -> Result<TenantState, LiveError> {
        let store = &self.inner.store;
        let sensors = store.list_sensors(tenant).await?;
        let since = Timestamp::now().saturating_sub(self.inner.config.seed_window);
        let latest = store.latest_readings(tenant, since).await?;
        Ok(TenantState::new(
            &sensors,
            latest,
            &mut self.next_series_id(),
        ))
    }

    /// Forgets a client and its subscriptions (called when a [`Client`] is dropped).
    pub(crate) fn disconnect(&self, client: u64, scope: &TokenScope, subscriptions: usize) {
        let mut hub = self.lock();
        if hub.clients.remove(&client).is_none() {
            return;
        }
        match scope {
            TokenScope::Tenant { tenant, .. } => hub.leave(tenant, client, None),
            TokenScope::Platform => hub.platform.retain(|t| t.client.id != client),
            // A partner's client only has grantee views, which it left already.
            TokenScope::Partner { .. } => {}
        }
        drop(hub);
        self.inner.metrics.live_clients.add(-1);
        self.inner
            .metrics
            .live_subscriptions
            .add(-i64::try_from(subscriptions).unwrap_or(0));
    }

    /// Adds a readings subscription for a tenant's client.
    pub(crate) fn subscribe_readings(&self, tenant: &TenantId, sub: ReadingsSub) -> Matched {
        let now_us = Timestamp::now().unix_micros();
        self.lock()
            .tenants
            .get_mut(tenant)
            .map(|entry| entry.state.subscribe(sub, now_us))
            .unwrap_or_default()
    }

    /// The series of `readings` (stored readings of `tenant`, read by a delayed view) as the
    /// tenant's state knows them, made on first sight, with their sensors' registry entries;
    /// `None` when the state is gone (no client follows the tenant any more).
    pub(crate) fn series_of<'a>(
        &self,
        tenant: &TenantId,
        readings: &'a [StoredReading],
    ) -> Option<SeriesOf<'a>> {
        let mut hub = self.lock();
        let entry = hub.tenants.get_mut(tenant)?;
        let mut next_id = self.next_series_id();
        let mut series = HashMap::new();
        for reading in readings {
            series
                .entry((&reading.sensor, &reading.metric))
                .or_insert_with(|| {
                    entry.state.series(
                        &reading.sensor,
                        &reading.metric,
                        &reading.unit,
                        &mut next_id,
                    )
                });
        }
        Some(series)
    }

    /// Follows an event stream for a client with `scope`.
    pub(crate) fn subscribe_events(&self, scope: &TokenScope, stream: StreamKind, target: SubRef) {
        let mut hub = self.lock();
        match scope {
            TokenScope::Tenant { tenant, .. } => {
                if let Some(entry) = hub.tenants.get_mut(tenant) {
                    entry.state.subscribe_events(stream, target);
                }
            }
            TokenScope::Platform => hub.platform.push(target),
            TokenScope::Partner { .. } => {}
        }
    }

    /// Removes one subscription of a client.
    pub(crate) fn unsubscribe(&self, scope: &TokenScope, client: u64, sub: u32) {
        let mut hub = self.lock();
        match scope {
            TokenScope::Tenant { tenant, .. } => {
                if let Some(entry) = hub.tenants.get_mut(tenant) {
                    entry.state.unsubscribe(client, Some(sub));
                }
            }
            TokenScope::Platform => hub
                .platform
                .retain(|t| !(t.client.id == client && t.sub == sub)),
            TokenScope::Partner { .. } => {}
        }
    }

    /// Fans a committed batch out to the live views of its tenant.
    pub fn batch_committed(&self, batch: &CommitBatch) {
        self.batches_committed([batch]);
    }

    /// Batches committed, in commit order, fanned out together: the hub is locked once, and
    /// each view updated and its clients told once per tenant, whatever the number of
    /// batches (one reading per message makes many small batches).
    pub fn batches_committed<'a>(&self, batches: impl IntoIterator<Item = &'a CommitBatch>) {
        // By tenant, each tenant's in commit order; most calls name one tenant or a few.
        let mut by_tenant: Vec<(&TenantId, Vec<&CommitBatch>)> = Vec::new();
        for batch in batches {
            match by_tenant.iter_mut().find(|(t, _)| **t == batch.tenant) {
                Some((_, group)) => group.push(batch),
                None => by_tenant.push((&batch.tenant, vec![batch])),
            }
        }
        let mut hub = self.lock();
        for (tenant, group) in by_tenant {
            if let Some(entry) = hub.tenants.get_mut(tenant) {
                entry
                    .state
                    .apply_batches(&group, &mut self.next_series_id(), &self.inner.metrics);
            }
        }
    }

    /// A gateway's health report was recorded: its state is sent to followers of the gateways
    /// stream on the next tick.
    pub fn health_recorded(&self, tenant: &TenantId, gateway: &GatewayId) {
        let mut hub = self.lock();
        if let Some(entry) = hub.tenants.get_mut(tenant) {
            if entry.state.follows(StreamKind::Gateways) {
                entry.state.gateways_dirty.insert(gateway.clone());
            }
        }
    }

    /// Sends a security event to its tenant's followers, or to platform operators when it
    /// belongs to no tenant.
    pub fn security_event(&self, event: &SecurityEvent) {
        let event_frame = Event {
            kind: EventKind::Security,
            payload: to_json(event).into(),
        };
        let hub = self.lock();
        match &event.tenant {
            Some(tenant) => {
                if let Some(entry) = hub.tenants.get(tenant) {
                    entry.state.publish(StreamKind::Security, &event_frame);
                }
            }
            None => {
                for target in &hub.platform {
                    target.client.push_event(target.sub, event_frame.clone());
                }
            }
        }
    }

    /// Sends an alarm's new state to its tenant's followers (and offers it to the relay).
    pub fn alarm_changed(&self, alarm: &Alarm) {
        self.publish(&alarm.tenant, StreamKind::Alarms, EventKind::Alarm, alarm);
        self.offer(|| Notice::Alarm {
            alarm: Box::new(alarm.clone()),
        });
    }

    /// Sends a gateway's state to its tenant's followers (and offers it to the relay).
    pub fn gateway_changed(&self, gateway: &GatewayRecord) {
        self.publish_gateway(gateway);
        self.offer(|| Notice::Gateway {
            gateway: Box::new(gateway.clone()),
        });
    }

    /// A tenant's alarm rules changed: nothing live changes on this node (the alert engine is
    /// told by the API), but other nodes' alert engines must hear of it (offered to the relay).
    pub fn rules_changed(&self, tenant: &TenantId) {
        self.offer(|| Notice::Rules {
            tenant: tenant.clone(),
        });
    }

    /// Changes made on this node, as they happen, for a relay to the other nodes of a
    /// cluster. Nothing is kept when no relay listens.
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.inner.notices.subscribe()
    }

    /// Applies a notice relayed from another node, without offering it again. Rule changes
    /// concern the alert engine only (the relay tells it).
    pub fn apply_notice(&self, notice: &Notice) {
        match notice {
            Notice::Alarm { alarm } => {
                self.publish(&alarm.tenant, StreamKind::Alarms, EventKind::Alarm, alarm);
            }
            Notice::Gateway { gateway } => self.publish_gateway(gateway),
            Notice::Registry { tenant } => self.mark_registry_dirty(tenant),
            Notice::Rules { .. } => {}
        }
    }

    fn offer(&self, notice: impl FnOnce() -> Notice) {
        if self.inner.notices.receiver_count() > 0 {
            // Only fails when the last receiver left meanwhile: nobody to tell.
            let _ = self.inner.notices.send(notice());
        }
    }

    fn publish_gateway(&self, gateway: &GatewayRecord) {
        self.publish(
            &gateway.tenant,
            StreamKind::Gateways,
            EventKind::Gateway,
            gateway,
        );
    }

    fn publish<T: serde::Serialize>(
        &self,
        tenant: &TenantId,
        stream: StreamKind,
        kind: EventKind,
        value: &T,
    ) {
        let hub = self.lock();
        let Some(entry) = hub.tenants.get(tenant) else {
            return;
        };
        if entry.state.follows(stream) {
            let event = Event {
                kind,
                payload: to_json(value).into(),
            };
            entry.state.publish(stream, &event);
        }
    }

    /// A tenant's sensors or zones changed: its views are matched again on the next tick
    /// (and the change is offered to the relay).
    pub fn registry_changed(&self, tenant: &TenantId) {
        self.mark_registry_dirty(tenant);
        self.offer(|| Notice::Registry {
            tenant: tenant.clone(),
        });
    }

    fn mark_registry_dirty(&self, tenant: &TenantId) {
        if let Some(entry) = self.lock().tenants.get_mut(tenant) {
            entry.state.registry_dirty = true;
        }
    }

    /// Runs [`Hub::tick`] every `config.tick` until `shutdown` fires.
    pub async fn maintain(self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.inner.config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => self.tick(Timestamp::now()).await,
            }
        }
    }

    /// Closes the buckets due at `now` (completing from the store those whose start was not
    /// seen), reloads registries that changed or are due, and sends the state of gateways
    /// that reported health.
    pub async fn tick(&self, now: Timestamp) {
        let grace_us = i64::try_from(self.inner.config.bucket_grace.as_micros()).unwrap_or(0);
        let mut incomplete = Vec::new();
        let mut reload = Vec::new();
        let mut gateways = Vec::new();
        {
            let mut hub = self.lock();
            for (tenant, entry) in &mut hub.tenants {
                let due = entry.state.close_buckets(now.unix_micros(), grace_us);
                if !due.is_empty() {
                    incomplete.push((tenant.clone(), due));
                }
                if entry.state.registry_dirty
                    || entry.registry_loaded.elapsed() >= self.inner.config.registry_refresh
                {
                    reload.push(tenant.clone());
                    entry.registry_loaded = Instant::now();
                }
                if !entry.state.gateways_dirty.is_empty() {
                    let dirty = std::mem::take(&mut entry.state.gateways_dirty);
                    gateways.push((tenant.clone(), dirty));
                }
            }
        }
        for (tenant, due) in incomplete {
            self.complete_from_store(&tenant, due).await;
        }
        for tenant in reload {
            match self.inner.store.list_sensors(&tenant).await {
                Ok(sensors) => {
                    if let Some(entry) = self.lock().tenants.get_mut(&tenant) {
                        entry.state.reload_registry(&sensors);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, %tenant, "cannot reload sensors for live views")
                }
            }
        }
        for (tenant, ids) in gateways {
            for id in ids {
                match self.inner.store.gateway(&tenant, &id).await {
                    Ok(Some(record)) => self.gateway_changed(&record),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%error, gateway = %id, "cannot read a gateway's state for live views")
                    }
                }
            }
        }
    }

    /// Sends the store's aggregates for buckets that closed before their start was seen.
    async fn complete_from_store(&self, tenant: &TenantId, due: Vec<Incomplete>) {
        let mut ranges: HashMap<(i64, i64), Vec<Incomplete>> = HashMap::new();
        for item in due {
            ranges
                .entry((item.start_us, item.width_us))
                .or_default()
                .push(item);
        }
        for ((start_us, width_us), items) in ranges {
            let filter = ReadingFilter {
                tenant: tenant.clone(),
                sensors: Vec::new(),
                metrics: Vec::new(),
                zone: None,
                from: Timestamp::from_unix_micros(start_us),
                to: Timestamp::from_unix_micros(start_us.saturating_add(width_us)),
            };
            let stored = match self.inner.store.buckets(&filter, width_us).await {
                Ok(stored) => stored,
                Err(error) => {
                    tracing::warn!(%error, %tenant, "cannot complete a live bucket from the store");
                    continue;
                }
            };
            let by_series: HashMap<(&str, &str), &beffroi_store::Bucket> = stored
                .iter()
                .map(|b| ((b.sensor.as_str(), b.metric.as_str()), b))
                .collect();
            let mut restored = Vec::new();
            for item in items {
                let key = (item.meta.sensor.as_str(), item.meta.metric.as_str());
                let Some(bucket) = by_series.get(&key) else {
                    continue;
                };
                let value = BucketValue::from_store(bucket, width_us);
                for target in &item.subs {
                    target.client.push_bucket(target.sub, &item.meta, value);
                }
                restored.push((item.meta, value));
            }
            if let Some(entry) = self.lock().tenants.get_mut(tenant) {
                for (meta, value) in restored {
                    entry.state.restore_bucket(&meta, value);
                }
            }
        }
    }

    /// Closes every connection with 1001 (server shutting down) and refuses new ones.
    pub fn close_all(&self) {
        let mut hub = self.lock();
        hub.closing = true;
        for client in hub.clients.values() {
            client.close(Close::new(
                close::GOING_AWAY,
                "shutdown",
                "the server is shutting down",
            ));
        }
    }

    /// Waits until every client's session has ended — after [`Hub::close_all`], once each sent
    /// its close frame — or `limit` passed; true when none is left.
    pub async fn all_closed(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.client_count() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(CLOSE_POLL).await;
        }
        true
    }

    /// Connected clients.
    pub fn client_count(&self) -> usize {
        self.lock().clients.len()
    }
}
