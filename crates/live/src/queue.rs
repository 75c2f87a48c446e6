//! One client's bounded, coalescing queue: what the hub has for it since its last frame.
//!
//! ```text
//! hub (fan-out, under the hub lock) ──push──► Queue ──take_frames──► connection task ──► socket
//!        values:  the raw views it reads (shared, see `view`), and the version read up to
//!        buckets: latest per (subscription, series, bucket start)
//!        events:  alarms, security events, gateway states in order, at most `event_capacity`
//! ```
//! Values and buckets are bounded by the series a client's subscriptions match, so they never
//! grow with the ingest rate: a slow client gets fewer, newer values. Events cannot be
//! coalesced; when `event_capacity` of them wait, the client is closed as too slow. Pushing
//! never waits: the hub holds the queue's lock for one insert, and a view's change only sets
//! the client's `due` flag.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use beffroi_telemetry::Metrics;
use tokio::sync::Notify;

use crate::frames::{buckets_frames, event_frame, readings_frames, Event};
use crate::protocol::close;
use crate::series::{BucketValue, SeriesMeta};
use crate::view::SharedView;

/// Why the server closes a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The websocket close code ([`crate::close`]).
    pub code: u16,
    /// A short reason (at most 123 bytes, the close frame's limit).
    pub reason: String,
    /// The metric label of the reason.
    pub label: &'static str,
}

impl Close {
    /// A close with `code`, a reason and its metric label.
    pub fn new(code: u16, label: &'static str, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > 123 {
            let mut end = 123;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        Self {
            code,
            reason,
            label,
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    /// Subscription index → the client's id for it (frames name it).
    names: HashMap<u32, Arc<str>>,
    /// The raw views of its subscriptions, with the version read up to.
    views: Vec<ViewRead>,
    buckets: HashMap<(u32, u32, i64), (Arc<SeriesMeta>, BucketValue)>,
    events: VecDeque<(u32, Event)>,
    closed: Option<Close>,
}

/// A raw subscription's view and how far the client read it.
#[derive(Debug)]
struct ViewRead {
    sub: u32,
    view: SharedView,
    read: u64,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.buckets.is_empty() && self.events.is_empty()
    }
}

/// The part of a client the hub holds: its queue and how to wake its connection task.
#[derive(Debug)]
pub(crate) struct ClientQueue {
    pub(crate) id: u64,
    queue: Mutex<Queue>,
    /// A view it reads changed since its last frames.
    due: AtomicBool,
    notify: Notify,
    /// The connection task waits for the next change (views changed, buckets, events,
    /// close) to cut its frames with it (`pacer`): wake it through `changed`.
    awaiting_change: AtomicBool,
    changed: Notify,
    event_capacity: usize,
    metrics: Arc<Metrics>,
}

impl ClientQueue {
    pub(crate) fn new(id: u64, event_capacity: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            id,
            queue: Mutex::new(Queue::default()),
            due: AtomicBool::new(false),
            notify: Notify::new(),
            awaiting_change: AtomicBool::new(false),
            changed: Notify::new(),
            event_capacity,
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding this lock; a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Names subscription `sub` (frames carry the name).
    pub(crate) fn name(&self, sub: u32, name: Arc<str>) {
        self.lock().names.insert(sub, name);
    }

    /// Forgets subscription `sub` and whatever waits for it.
    pub(crate) fn forget(&self, sub: u32) {
        let mut q = self.lock();
        q.names.remove(&sub);
        q.views.retain(|v| v.sub != sub);
        q.buckets.retain(|(s, _, _), _| *s != sub);
        q.events.retain(|(s, _)| *s != sub);
    }

    /// Subscription `sub` reads `view` from `version` on.
    pub(crate) fn add_view(&self, sub: u32, view: SharedView, version: u64) {
        self.lock().views.push(ViewRead {
            sub,
            view,
            read: version,
        });
    }

    /// A view it reads changed: frames are due (one flag, whatever the number of values).
    pub(crate) fn view_changed(&self) {
        // Already due, the usual case in a busy view: a load, no write. The view's lock orders
        // this with `take_frames` (which clears the flag, then reads the view).
        if !self.due.load(Ordering::Acquire) && !self.due.swap(true, Ordering::AcqRel) {
            self.notify.notify_one();
        }
        self.signal_change();
    }

    /// Something changed: wakes the connection task if it waits for the next change. One
    /// load when it does not (this runs for every client of a view at every commit).
    fn signal_change(&self) {
        if self.awaiting_change.load(Ordering::Acquire)
            && self.awaiting_change.swap(false, Ordering::AcqRel)
        {
            self.changed.notify_waiters();
        }
    }

    /// Waits for the next change (view, bucket, event or close) from now on.
    pub(crate) async fn next_change(&self) {
        // Clears the flag however this ends, the caller's timeout included.
        struct Awaiting<'a>(&'a AtomicBool);
        impl Drop for Awaiting<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        // Registered before the flag is raised: a change that sees the flag wakes it.
        let notified = self.changed.notified();
        self.awaiting_change.store(true, Ordering::Release);
        let _awaiting = Awaiting(&self.awaiting_change);
        notified.await;
    }

    /// A closed (or revised) bucket of a series for `sub`.
    pub(crate) fn push_bucket(&self, sub: u32, meta: &Arc<SeriesMeta>, bucket: BucketValue) {
        let mut q = self.lock();
        if q.closed.is_some() {
            return;
        }
        let was_empty = q.is_empty();
        let replaced = q
            .buckets
            .insert((sub, meta.id, bucket.start_us), (meta.clone(), bucket))
            .is_some();
        drop(q);
        if replaced {
            self.metrics.live_coalesced.incr();
        }
        if was_empty {
            self.notify.notify_one();
        }
        self.signal_change();
    }

    /// An event for `sub`; closes the client as too slow when its events overflow.
    pub(crate) fn push_event(&self, sub: u32, event: Event) {
        let mut q = self.lock();
        if q.closed.is_some() {
            return;
        }
        if q.events.len() >= self.event_capacity {
            q.closed = Some(Close::new(
                close::TOO_SLOW,
                "too_slow",
                "too slow: live events overflowed the queue",
            ));
        } else {
            q.events.push_back((sub, event));
        }
        drop(q);
        self.notify.notify_one();
        self.signal_change();
    }

    /// Asks the connection to close (unless it is closing already).
    pub(crate) fn close(&self, reason: Close) {
        let mut q = self.lock();
        if q.closed.is_none() {
            q.closed = Some(reason);
        }
        drop(q);
        self.notify.notify_one();
        self.signal_change();
    }

    /// Whether something is queued now; `Err` when the client must close.
    pub(crate) fn pending(&self) -> Result<bool, Close> {
        let q = self.lock();
        if let Some(reason) = &q.closed {
            return Err(reason.clone());
        }
        Ok(!q.is_empty() || self.due.load(Ordering::Acquire))
    }

    /// Waits until something is queued or the client must close.
    pub(crate) async fn ready(&self) -> Result<(), Close> {
        loop {
            // Registered before checking, so a push between the check and the wait is seen.
            let notified = self.notify.notified();
            if self.pending()? {
                return Ok(());
            }
            notified.await;
        }
    }

    /// Everything queued, as JSON frames: events first (in order), then one or more frames
    /// per subscription with values and buckets.
    pub(crate) fn take_frames(&self) -> Vec<String> {
        // Cleared first: a view changing from here on makes the next round due.
        self.due.store(false, Ordering::Release);
        let mut values = Vec::new();
        let mut coalesced = 0;
        let (names, buckets, events) = {
            let mut q = self.lock();
            for read in &mut q.views {
                let changes = read.view.changes_since(read.read);
                read.read = changes.version;
                coalesced += changes.coalesced;
                if !changes.items.is_empty() {
                    values.push((read.sub, changes.items));
                }
            }
            (
                q.names.clone(),
                std::mem::take(&mut q.buckets),
                std::mem::take(&mut q.events),
            )
        };
        self.metrics.live_coalesced.add(coalesced);
        let items = (values.iter().map(|(_, v)| v.len()).sum::<usize>()
            + buckets.len()
            + events.len()) as u64;
        let mut frames = Vec::new();
        for (sub, event) in events {
            if let Some(name) = names.get(&sub) {
                frames.push(event_frame(name, &event, false));
            }
        }
        for (sub, items) in values {
            if let Some(name) = names.get(&sub) {
                frames.extend(readings_frames(name, false, &items));
            }
        }
        let mut by_sub: HashMap<u32, Vec<(Arc<SeriesMeta>, BucketValue)>> = HashMap::new();
        for ((sub, _, _), item) in buckets {
            by_sub.entry(sub).or_default().push(item);
        }
        for (sub, mut items) in by_sub {
            if let Some(name) = names.get(&sub) {
                items.sort_by_key(|(meta, b)| (b.start_us, meta.id));
                frames.extend(buckets_frames(name, false, &items));
            }
        }
        self.metrics.live_frames.add(frames.len() as u64);
        self.metrics.live_values.add(items);
        frames
    }
}
