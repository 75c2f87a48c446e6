//! One tenant's live state while at least one of its clients is connected: the sensors' registry
//! entries, the series seen (each with its latest value, its bucket tracks and the
//! subscriptions it feeds), and the subscriptions themselves.
//!
//! Matching is done when something changes, not per reading: a view is matched against every
//! known series when it is made, a new series against every view when it first appears, a
//! sensor's series again when its registry entry changes. Raw subscriptions with the same
//! filter share one [`View`]: fan-out of a reading is one hash lookup, one insert per view it
//! feeds and one flag per client of those views. Bucket subscriptions get one push each per
//! closed bucket. The view of an embargoed grant is matched like the others but fed by its
//! delayed feed (`delayed`), never by the fan-out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use beffroi_protocol::{GatewayId, MetricName, Reading, SensorId, Unit, Value};
use beffroi_store::{CommitBatch, Sensor, StoredReading};
use beffroi_telemetry::Metrics;

use crate::filter::{Filter, SensorInfo};
use crate::frames::{reading_item, Event};
use crate::grant::Grant;
use crate::protocol::{Granularity, StreamKind};
use crate::queue::ClientQueue;
use crate::series::{Added, BucketTrack, BucketValue, LiveValue, SeriesMeta};
use crate::view::{SharedView, ViewKey};

/// One subscription's place in a fan-out list.
#[derive(Debug, Clone)]
pub(crate) struct SubRef {
    pub(crate) client: Arc<ClientQueue>,
    pub(crate) sub: u32,
}

impl SubRef {
    fn is(&self, client: u64, sub: Option<u32>) -> bool {
        self.client.id == client && sub.is_none_or(|s| s == self.sub)
    }
}

/// A readings subscription.
#[derive(Debug)]
pub(crate) struct ReadingsSub {
    pub(crate) target: SubRef,
    pub(crate) filter: Filter,
    /// Raw subscriptions with equal keys share a view.
    pub(crate) key: ViewKey,
    pub(crate) granularity: Granularity,
    /// Whether [`Matched::latest`] is wanted.
    pub(crate) snapshot: bool,
    /// A grantee's view of another tenant's readings (raw only): its own view, never shared.
    pub(crate) grant: Option<Arc<Grant>>,
}

/// A shared raw view, its filter and its subscribers.
#[derive(Debug)]
struct ViewEntry {
    view: SharedView,
    filter: Filter,
    grant: Option<Arc<Grant>>,
    subscribers: Vec<SubRef>,
}

/// Whether a view with `filter` (and `grant`, for a grantee's) takes a series: its filter
/// matches it, and its grant covers it.
pub(crate) fn feeds(
    filter: &Filter,
    grant: Option<&Grant>,
    meta: &SeriesMeta,
    info: &SensorInfo,
) -> bool {
    filter.matches(meta.sensor.as_str(), meta.metric.as_str(), info)
        && grant.is_none_or(|g| g.covers(meta, info))
}

impl ViewEntry {
    /// Whether the view takes a series.
    fn feeds(&self, meta: &SeriesMeta, info: &SensorInfo) -> bool {
        feeds(&self.filter, self.grant.as_deref(), meta, info)
    }

    /// Whether its grant holds values back: its delayed feed fills it, not the fan-out.
    fn delayed(&self) -> bool {
        self.grant.as_ref().is_some_and(|g| g.embargo().is_some())
    }

    /// Whether the fan-out feeds it a series' values.
    fn fed_live(&self, meta: &SeriesMeta, info: &SensorInfo) -> bool {
        !self.delayed() && self.feeds(meta, info)
    }

    /// The item this view shows for a series' value: the shared one, or its grant's.
    fn item(
        &self,
        meta: &SeriesMeta,
        info: &SensorInfo,
        value: &LiveValue,
        shared: &mut Option<Arc<str>>,
    ) -> Option<Arc<str>> {
        match &self.grant {
            Some(grant) => grant.item(meta, info, value),
            None => Some(
                shared
                    .get_or_insert_with(|| reading_item(meta, value))
                    .clone(),
            ),
        }
    }
}

/// The buckets of one width of one series, and who gets them.
#[derive(Debug)]
struct WidthSlot {
    width_s: u32,
    subs: Vec<SubRef>,
    track: BucketTrack,
}

/// One series.
#[derive(Debug)]
struct Slot {
    meta: Arc<SeriesMeta>,
    latest: Option<LiveValue>,
    /// The views it feeds (ids in [`TenantState`]'s `views`).
    raw: Vec<u64>,
    widths: Vec<WidthSlot>,
    /// Its latest value changed in the batch being applied (pushed once, after the batch).
    changed: bool,
}

/// A sensor's series and its registry entry.
#[derive(Debug, Default)]
struct SensorEntry {
    info: SensorInfo,
    slots: Vec<Slot>,
}

/// A bucket width someone watches, since when (buckets that started earlier were not fully
/// seen and are completed from the store when they close).
#[derive(Debug, Clone, Copy)]
struct Tracked {
    width_s: u32,
    since_us: i64,
}

/// A closed bucket that started before its width was tracked: its aggregate comes from the
/// store.
#[derive(Debug)]
pub(crate) struct Incomplete {
    pub(crate) meta: Arc<SeriesMeta>,
    pub(crate) start_us: i64,
    pub(crate) width_us: i64,
    pub(crate) subs: Vec<SubRef>,
}

/// What a subscription matched when it was made.
#[derive(Debug, Default)]
pub(crate) struct Matched {
    /// How many series.
    pub(crate) series: usize,
    /// Their latest values (raw subscriptions fed by the fan-out).
    pub(crate) latest: Vec<Arc<str>>,
    /// The series (bucket subscriptions and delayed views: their snapshot comes from the
    /// store).
    pub(crate) metas: Vec<Arc<SeriesMeta>>,
    /// The view read (raw subscriptions).
    pub(crate) view: Option<SharedView>,
}

/// A tenant's live state.
#[derive(Debug, Default)]
pub(crate) struct TenantState {
    registry: HashMap<SensorId, SensorInfo>,
    sensors: HashMap<String, SensorEntry>,
    /// Bucket subscriptions (raw ones are in `views`).
    subs: Vec<ReadingsSub>,
    views: HashMap<u64, ViewEntry>,
    view_ids: HashMap<ViewKey, u64>,
    next_view: u64,
    events: HashMap<StreamKind, Vec<SubRef>>,
    tracked: Vec<Tracked>,
    /// Connected clients of this tenant.
    pub(crate) clients: usize,
    /// A reading named a sensor the registry does not know: reload it.
    pub(crate) registry_dirty: bool,
    /// Gateways that reported health since the last refresh (only kept while someone follows
    /// the gateways stream).
    pub(crate) gateways_dirty: HashSet<GatewayId>,
}

impl TenantState {
    /// A state with the registry and the latest stored values.
    pub(crate) fn new(
        sensors: &[Sensor],
        latest: Vec<StoredReading>,
        next_id: &mut impl FnMut() -> u32,
    ) -> Self {
        let mut state = Self {
            registry: sensors
                .iter()
                .map(|s| (s.id.clone(), SensorInfo::from(s)))
                .collect(),
            ..Self::default()
        };
        for stored in latest {
            let gateway = Arc::new(stored.gateway.clone());
            let reading = Reading {
                sensor: stored.sensor,
                metric: stored.metric,
                unit: stored.unit,
                time: stored.time,
                value: stored.value,
            };
            let (slot, _) = state.slot(&reading, next_id);
            slot.latest = Some(LiveValue {
                time: reading.time,
                value: reading.value,
                gateway,
            });
        }
        state
    }

    /// The slot of a reading's series and its index in its sensor's entry, made (and matched)
    /// on first sight; its unit becomes the reading's.
    fn slot(&mut self, reading: &Reading, next_id: &mut impl FnMut() -> u32) -> (&mut Slot, usize) {
        let (entry, index) =
            self.sensor_slot(&reading.sensor, &reading.metric, &reading.unit, next_id);
        let slot = &mut entry.slots[index];
        if slot.meta.unit != reading.unit {
            slot.meta = Arc::new(SeriesMeta {
                id: slot.meta.id,
                sensor: slot.meta.sensor.clone(),
                metric: slot.meta.metric.clone(),
                unit: reading.unit.clone(),
            });
        }
        (slot, index)
    }

    /// A stored reading's series (made and matched on first sight, with `unit`; an existing
    /// one keeps the unit of its latest value) and its sensor's registry entry.
    pub(crate) fn series(
        &mut self,
        sensor: &SensorId,
        metric: &MetricName,
        unit: &Unit,
        next_id: &mut impl FnMut() -> u32,
    ) -> (Arc<SeriesMeta>, SensorInfo) {
        let (entry, index) = self.sensor_slot(sensor, metric, unit, next_id);
        (entry.slots[index].meta.clone(), entry.info.clone())
    }

    /// The entry of `sensor` and the index of its `metric` series in it, both made (and
    /// matched) on first sight.
    fn sensor_slot(
        &mut self,
        sensor: &SensorId,
        metric: &MetricName,
        unit: &Unit,
        next_id: &mut impl FnMut() -> u32,
    ) -> (&mut SensorEntry, usize) {
        let Self {
            registry,
            sensors,
            subs,
            views,
            tracked,
            registry_dirty,
            ..
        } = self;
        if !sensors.contains_key(sensor.as_str()) {
            let info = registry.get(sensor).cloned().unwrap_or_else(|| {
                *registry_dirty = true;
                SensorInfo::default()
            });
            sensors.insert(
                sensor.as_str().to_owned(),
                SensorEntry {
                    info,
                    slots: Vec::new(),
                },
            );
        }
        // Inserted just above when missing (looked up by `&str` first so that the hot path,
        // a known sensor, allocates nothing).
        #[allow(clippy::expect_used)]
        let entry = sensors
            .get_mut(sensor.as_str())
            .expect("the sensor's entry exists");
        let index = match entry.slots.iter().position(|s| s.meta.metric == *metric) {
            Some(index) => index,
            None => {
                let meta = Arc::new(SeriesMeta {
                    id: next_id(),
                    sensor: sensor.clone(),
                    metric: metric.clone(),
                    unit: unit.clone(),
                });
                let mut slot = Slot {
                    meta,
                    latest: None,
                    changed: false,
                    raw: Vec::new(),
                    widths: tracked
                        .iter()
                        .map(|t| WidthSlot {
                            width_s: t.width_s,
                            subs: Vec::new(),
                            track: BucketTrack::new(i64::from(t.width_s) * 1_000_000),
                        })
                        .collect(),
                };
                attach_all(&mut slot, &entry.info, subs, views);
                entry.slots.push(slot);
                entry.slots.len() - 1
            }
        };
        (entry, index)
    }

    /// Fans committed batches of this tenant (in commit order) out to the subscriptions their
    /// series feed: each series' latest value once per call (a batch often holds several
    /// readings of one series, and the fan-out hands over what queued up together), bucket
    /// revisions as they happen.
    pub(crate) fn apply_batches<'a>(
        &mut self,
        batches: &[&'a CommitBatch],
        next_id: &mut impl FnMut() -> u32,
        metrics: &Metrics,
    ) {
        let mut changed: Vec<(&'a str, usize)> = Vec::new();
        for batch in batches {
            let gateway = Arc::new(batch.gateway.clone());
            for reading in &batch.readings {
                let (slot, index) = self.slot(reading, next_id);
                if slot.latest.as_ref().is_none_or(|l| l.time <= reading.time) {
                    slot.latest = Some(LiveValue {
                        time: reading.time,
                        value: reading.value.clone(),
                        gateway: gateway.clone(),
                    });
                    if !slot.raw.is_empty() && !slot.changed {
                        slot.changed = true;
                        changed.push((reading.sensor.as_str(), index));
                    }
                }
                let Value::Number(number) = reading.value else {
                    continue;
                };
                for width in &mut slot.widths {
                    match width.track.add(reading.time, number) {
                        Added::Open => {}
                        Added::Revised(bucket) => {
                            for target in &width.subs {
                                target.client.push_bucket(target.sub, &slot.meta, bucket);
                            }
                        }
                        Added::Late => metrics.live_late_readings.incr(),
                    }
                }
            }
        }
        // Grouped by view, so each view is locked, and its clients told, once per call.
        let mut by_view: HashMap<u64, Vec<(u32, Arc<str>)>> = HashMap::new();
        for (sensor, index) in changed {
            let Some(entry) = self.sensors.get_mut(sensor) else {
                continue;
            };
            let Some(slot) = entry.slots.get_mut(index) else {
                continue;
            };
            slot.changed = false;
            if let Some(value) = &slot.latest {
                // Serialized once for every ungoverned view; a grant shapes its own.
                let mut shared = None;
                for id in &slot.raw {
                    let Some(view) = self.views.get(id) else {
                        continue;
                    };
                    if let Some(item) = view.item(&slot.meta, &entry.info, value, &mut shared) {
                        by_view.entry(*id).or_default().push((slot.meta.id, item));
                    }
                }
            }
        }
        for (id, changes) in by_view {
            if let Some(entry) = self.views.get(&id) {
                entry.view.update(changes);
                for target in &entry.subscribers {
                    target.client.view_changed();
                }
            }
        }
    }

    /// Adds a readings subscription (replacing none: the caller removed the old one) and
    /// returns what it matches now. `now_us` starts tracking its width if nobody did.
    pub(crate) fn subscribe(&mut self, sub: ReadingsSub, now_us: i64) -> Matched {
        let mut matched = Matched::default();
        match sub.granularity {
            Granularity::Raw => {
                let (id, created) = self.view_for(&sub);
                let Some(view) = self.views.get(&id) else {
                    return matched;
                };
                let delayed = view.delayed();
                for entry in self.sensors.values_mut() {
                    for slot in &mut entry.slots {
                        if !view.feeds(&slot.meta, &entry.info) {
                            continue;
                        }
                        matched.series += 1;
                        if delayed {
                            // Its values come from the store once they pass the embargo.
                            matched.metas.push(slot.meta.clone());
                            continue;
                        }
                        if created {
                            slot.raw.push(id);
                        }
                        if let Some(latest) = slot.latest.as_ref().filter(|_| sub.snapshot) {
                            matched.latest.extend(view.item(
                                &slot.meta,
                                &entry.info,
                                latest,
                                &mut None,
                            ));
                        }
                    }
                }
                if let Some(entry) = self.views.get_mut(&id) {
                    // Read under the hub's lock, like the snapshot above: what changes
                    // after it comes through the view.
                    let version = entry.view.version();
                    sub.target
                        .client
                        .add_view(sub.target.sub, entry.view.clone(), version);
                    entry.subscribers.push(sub.target);
                    matched.view = Some(entry.view.clone());
                }
            }
            Granularity::Bucket(width_s) => {
                self.track(width_s, now_us);
                for entry in self.sensors.values_mut() {
                    for slot in &mut entry.slots {
                        if attach(slot, &entry.info, &sub) {
                            matched.series += 1;
                            matched.metas.push(slot.meta.clone());
                        }
                    }
                }
                self.subs.push(sub);
            }
        }
        matched
    }

    /// The view for a raw subscription's filter, and whether it was made now (then it is not
    /// attached to any series yet). A grantee's subscription always gets a view of its own.
    fn view_for(&mut self, sub: &ReadingsSub) -> (u64, bool) {
        if sub.grant.is_none() {
            if let Some(id) = self.view_ids.get(&sub.key) {
                return (*id, false);
            }
        }
        self.next_view += 1;
        let id = self.next_view;
        if sub.grant.is_none() {
            self.view_ids.insert(sub.key.clone(), id);
        }
        self.views.insert(
            id,
            ViewEntry {
                view: SharedView::default(),
                filter: sub.filter.clone(),
                grant: sub.grant.clone(),
                subscribers: Vec::new(),
            },
        );
        (id, true)
    }

    fn track(&mut self, width_s: u32, now_us: i64) {
        if self.tracked.iter().any(|t| t.width_s == width_s) {
            return;
        }
        self.tracked.push(Tracked {
            width_s,
            since_us: now_us,
        });
        for entry in self.sensors.values_mut() {
            for slot in &mut entry.slots {
                slot.widths.push(WidthSlot {
                    width_s,
                    subs: Vec::new(),
                    track: BucketTrack::new(i64::from(width_s) * 1_000_000),
                });
            }
        }
    }

    /// Follows an event stream.
    pub(crate) fn subscribe_events(&mut self, stream: StreamKind, target: SubRef) {
        self.events.entry(stream).or_default().push(target);
    }

    /// Whether someone follows `stream`.
    pub(crate) fn follows(&self, stream: StreamKind) -> bool {
        self.events
            .get(&stream)
            .is_some_and(|subs| !subs.is_empty())
    }

    /// Sends an event to the followers of `stream`.
    pub(crate) fn publish(&self, stream: StreamKind, event: &Event) {
        for target in self.events.get(&stream).into_iter().flatten() {
            target.client.push_event(target.sub, event.clone());
        }
    }

    /// Removes subscription `sub` of `client`, or all of the client's when `sub` is `None`;
    /// stops tracking widths nobody watches any more. Returns how many were removed.
    pub(crate) fn unsubscribe(&mut self, client: u64, sub: Option<u32>) -> usize {
        let before = self.subscriptions();
        self.subs.retain(|s| !s.target.is(client, sub));
        for entry in self.views.values_mut() {
            entry.subscribers.retain(|t| !t.is(client, sub));
        }
        let unwatched: HashSet<u64> = self
            .views
            .iter()
            .filter(|(_, entry)| entry.subscribers.is_empty())
            .map(|(id, _)| *id)
            .collect();
        self.views.retain(|id, _| !unwatched.contains(id));
        self.view_ids.retain(|_, id| !unwatched.contains(id));
        for targets in self.events.values_mut() {
            targets.retain(|t| !t.is(client, sub));
        }
        let watched: HashSet<u32> = self
            .subs
            .iter()
            .filter_map(|s| match s.granularity {
                Granularity::Bucket(width) => Some(width),
                Granularity::Raw => None,
            })
            .collect();
        self.tracked.retain(|t| watched.contains(&t.width_s));
        for entry in self.sensors.values_mut() {
            for slot in &mut entry.slots {
                slot.raw.retain(|id| !unwatched.contains(id));
                slot.widths.retain_mut(|w| {
                    w.subs.retain(|t| !t.is(client, sub));
                    watched.contains(&w.width_s)
                });
            }
        }
        before - self.subscriptions()
    }

    fn subscriptions(&self) -> usize {
        self.subs.len()
            + self
                .views
                .values()
                .map(|v| v.subscribers.len())
                .sum::<usize>()
            + self.events.values().map(Vec::len).sum::<usize>()
    }

    /// Closes the buckets due at `now_us`: complete ones go to their subscribers, those that
    /// started before their width was tracked are returned, to be completed from the store.
    pub(crate) fn close_buckets(&mut self, now_us: i64, grace_us: i64) -> Vec<Incomplete> {
        let mut incomplete = Vec::new();
        let tracked = &self.tracked;
        for entry in self.sensors.values_mut() {
            for slot in &mut entry.slots {
                for width in &mut slot.widths {
                    let since_us = tracked
                        .iter()
                        .find(|t| t.width_s == width.width_s)
                        .map_or(i64::MAX, |t| t.since_us);
                    for bucket in width.track.close(now_us, grace_us) {
                        if bucket.start_us >= since_us {
                            for target in &width.subs {
                                target.client.push_bucket(target.sub, &slot.meta, bucket);
                            }
                        } else if !width.subs.is_empty() {
                            incomplete.push(Incomplete {
                                meta: slot.meta.clone(),
                                start_us: bucket.start_us,
                                width_us: bucket.width_us,
                                subs: width.subs.clone(),
                            });
                        }
                    }
                }
            }
        }
        incomplete
    }

    /// Adopts a bucket completed from the store as the series' last closed one (so a late
    /// reading revises the complete aggregate).
    pub(crate) fn restore_bucket(&mut self, meta: &SeriesMeta, bucket: BucketValue) {
        if let Some(slot) = self
            .sensors
            .get_mut(meta.sensor.as_str())
            .and_then(|e| e.slots.iter_mut().find(|s| s.meta.id == meta.id))
        {
            let width_s = u32::try_from(bucket.width_us / 1_000_000).unwrap_or(u32::MAX);
            if let Some(width) = slot.widths.iter_mut().find(|w| w.width_s == width_s) {
                width.track.restore_closed(bucket);
            }
        }
    }

    /// Replaces the registry; sensors whose entry changed are matched again.
    pub(crate) fn reload_registry(&mut self, sensors: &[Sensor]) {
        self.registry = sensors
            .iter()
            .map(|s| (s.id.clone(), SensorInfo::from(s)))
            .collect();
        self.registry_dirty = false;
        let Self {
            registry,
            sensors,
            subs,
            views,
            ..
        } = self;
        for (id, entry) in sensors.iter_mut() {
            let info = SensorId::new(id.as_str())
                .ok()
                .and_then(|id| registry.get(&id).cloned())
                .unwrap_or_default();
            if info == entry.info {
                continue;
            }
            entry.info = info;
            for slot in &mut entry.slots {
                slot.raw.clear();
                for width in &mut slot.widths {
                    width.subs.clear();
                }
                attach_all(slot, &entry.info, subs, views);
            }
        }
    }
}

/// Adds `slot` to every view and bucket subscription whose filter matches it.
fn attach_all(
    slot: &mut Slot,
    info: &SensorInfo,
    subs: &[ReadingsSub],
    views: &HashMap<u64, ViewEntry>,
) {
    for (id, entry) in views {
        if entry.fed_live(&slot.meta, info) {
            slot.raw.push(*id);
        }
    }
    for sub in subs {
        attach(slot, info, sub);
    }
}

/// Adds bucket subscription `sub` to `slot`'s fan-out lists if its filter matches; returns
/// whether it did.
fn attach(slot: &mut Slot, info: &SensorInfo, sub: &ReadingsSub) -> bool {
    if !sub
        .filter
        .matches(slot.meta.sensor.as_str(), slot.meta.metric.as_str(), info)
    {
        return false;
    }
    if let Granularity::Bucket(width_s) = sub.granularity {
        if let Some(width) = slot.widths.iter_mut().find(|w| w.width_s == width_s) {
            width.subs.push(sub.target.clone());
        }
    }
    true
}
