//! One connected client, as its connection task sees it: requests in ([`Client::handle`]),
//! frames out ([`Client::ready`] or, paced, [`crate::Pacer::ready`], then
//! [`Client::take_frames`]). The transport (the API's websocket route) owns the socket; this
//! type owns the protocol.
//!
//! A connection loop:
//! ```text
//! send hello
//! loop select {
//!   message from socket ─► handle ─► send the replies (and snapshots) at once
//!   Pacer::ready(client) ─► frames due (max_fps, cut with a commit) ─► take_frames ─► send
//!                           (each send bounded by send_timeout: past it, close 4408)
//!   Pacer::ready = Err(close) ─► send the close frame, end
//! }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use beffroi_protocol::{MetricName, SensorId, Timestamp};
use beffroi_store::{AlarmFilter, AlarmState, ReadingFilter, TokenScope};
use serde::Serialize;

use crate::filter::Filter;
use crate::frames::{buckets_frames, event_frame, readings_frames, Event, EventKind};
use crate::grant::Governor;
use crate::hub::Hub;
use crate::protocol::{
    close, to_json, ClientMessage, ErrorCode, Granularity, Reply, StreamKind, SubscribeRequest,
    MAX_SUB_ID_BYTES, PROTOCOL_VERSION,
};
use crate::queue::{ClientQueue, Close};
use crate::series::{bucket_start, BucketValue};
use crate::tenant::{ReadingsSub, SubRef};
use crate::view::ViewKey;

/// Most active alarms sent as the snapshot of an alarms subscription.
const ALARM_SNAPSHOT: u32 = 1000;

mod grantee;

#[derive(Debug)]
struct SubInfo {
    index: u32,
    /// A grantee view: it lives in the grantor's state, under a grant.
    grantee: Option<grantee::GranteeSub>,
}

/// A connected client; dropping it disconnects it from the hub.
#[derive(Debug)]
pub struct Client {
    hub: Hub,
    queue: Arc<ClientQueue>,
    scope: TokenScope,
    subs: HashMap<String, SubInfo>,
    next_sub: u32,
    min_interval: Duration,
    malformed: u32,
    /// Decides grantee views (set by the API; without it, they are refused).
    governor: Option<Arc<dyn Governor>>,
}

#[derive(Serialize)]
struct Hello<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    protocol: u32,
    #[serde(flatten)]
    scope: &'a TokenScope,
    server_time: Timestamp,
    limits: Limits,
}

#[derive(Serialize)]
struct Limits {
    max_subscriptions: usize,
    max_fps: u32,
    granularities: Vec<&'static str>,
}

impl Client {
    pub(crate) fn new(hub: Hub, queue: Arc<ClientQueue>, scope: TokenScope) -> Self {
        let max_fps = hub.config().max_fps.max(1);
        Self {
            hub,
            queue,
            scope,
            subs: HashMap::new(),
            next_sub: 1,
            min_interval: Duration::from_secs(1) / max_fps,
            malformed: 0,
            governor: None,
        }
    }

    /// Lets the client follow other tenants' readings under sharing agreements, as
    /// `governor` decides.
    pub fn govern(&mut self, governor: Arc<dyn Governor>) {
        self.governor = Some(governor);
    }

    /// The `hello` message.
    pub fn hello(&self) -> String {
        let config = self.hub.config();
        to_json(&Hello {
            kind: "hello",
            protocol: PROTOCOL_VERSION,
            scope: &self.scope,
            server_time: Timestamp::now(),
            limits: Limits {
                max_subscriptions: config.max_subscriptions,
                max_fps: config.max_fps,
                granularities: Granularity::labels(),
            },
        })
    }

    /// What the client's token grants.
    pub fn scope(&self) -> &TokenScope {
        &self.scope
    }

    /// Its queue (the pacer waits on it).
    pub(crate) fn queue(&self) -> &ClientQueue {
        &self.queue
    }

    /// Shortest time between two rounds of frames (`options.max_fps`).
    pub fn min_interval(&self) -> Duration {
        self.min_interval
    }

    /// Waits until frames are due, or the connection must close.
    pub async fn ready(&self) -> Result<(), Close> {
        self.queue.ready().await
    }

    /// Everything queued, as frames.
    pub fn take_frames(&self) -> Vec<String> {
        self.queue.take_frames()
    }

    /// Asks the connection to close (e.g. a write timed out).
    pub fn close(&self, reason: Close) {
        self.queue.close(reason);
    }

    /// Handles one text message; returns the frames to send at once (replies, snapshots), or
    /// the close when the client sent too many malformed messages in a row.
    pub async fn handle(&mut self, text: &str) -> Result<Vec<String>, Close> {
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(message) => {
                self.malformed = 0;
                message
            }
            Err(error) => {
                self.malformed += 1;
                if self.malformed >= self.hub.config().max_malformed {
                    return Err(Close::new(
                        close::PROTOCOL,
                        "malformed",
                        "too many malformed messages in a row",
                    ));
                }
                return Ok(vec![Reply::bad_request(None, error.to_string()).to_json()]);
            }
        };
        Ok(match message {
            ClientMessage::Auth { .. } => {
                vec![Reply::bad_request(None, "already authenticated").to_json()]
            }
            ClientMessage::Subscribe(request) => self.subscribe(request).await,
            ClientMessage::Unsubscribe { id } => vec![self.unsubscribe(id).to_json()],
            ClientMessage::Options { max_fps } => {
                let most = self.hub.config().max_fps;
                if (1..=most).contains(&max_fps) {
                    self.min_interval = Duration::from_secs(1) / max_fps;
                    Vec::new()
                } else {
                    vec![Reply::bad_request(None, format!("max_fps: must be 1..={most}")).to_json()]
                }
            }
            ClientMessage::Ping { nonce } => vec![Reply::Pong { nonce }.to_json()],
        })
    }

    fn unsubscribe(&mut self, id: String) -> Reply {
        match self.subs.remove(&id) {
            Some(info) => {
                self.drop_subscription(info, "unsubscribed");
                Reply::Unsubscribed { id }
            }
            None => Reply::Error {
                detail: format!("no subscription {id:?}"),
                id: Some(id),
                code: ErrorCode::UnknownSubscription,
            },
        }
    }

    /// Ends a subscription (`why` goes to the audit log for a grantee view).
    fn drop_subscription(&self, info: SubInfo, why: &str) {
        match info.grantee {
            Some(grantee) => self.end_grant(info.index, grantee, why),
            None => self.hub.unsubscribe(&self.scope, self.queue.id, info.index),
        }
        self.queue.forget(info.index);
        self.hub.metrics().live_subscriptions.add(-1);
    }

    /// Frees `id`'s place if it has one, then takes a subscription index for it; the error
    /// reply when the connection holds the most subscriptions it may.
    fn claim(&mut self, id: &str) -> Result<u32, String> {
        // Replacing a subscription frees its place first.
        if let Some(old) = self.subs.remove(id) {
            self.drop_subscription(old, "replaced");
        }
        let most = self.hub.config().max_subscriptions;
        if self.subs.len() >= most {
            return Err(Reply::Error {
                id: Some(id.to_owned()),
                code: ErrorCode::TooManySubscriptions,
                detail: format!("at most {most} subscriptions per connection"),
            }
            .to_json());
        }
        let index = self.next_sub;
        self.next_sub += 1;
        Ok(index)
    }

    /// Records subscription `id`; returns where the hub sends what it gets.
    fn register(&mut self, id: &str, info: SubInfo) -> SubRef {
        let index = info.index;
        self.subs.insert(id.to_owned(), info);
        self.queue.name(index, id.into());
        self.hub.metrics().live_subscriptions.add(1);
        SubRef {
            client: self.queue.clone(),
            sub: index,
        }
    }

    async fn subscribe(&mut self, request: SubscribeRequest) -> Vec<String> {
        let id = request.id.clone();
        if let Err(detail) = check_id(&id) {
            return vec![Reply::bad_request(None, detail).to_json()];
        }
        if request.grantor.is_some() || request.purpose.is_some() {
            return self.subscribe_as_grantee(request).await;
        }
        let refuse = |code, detail: String| {
            vec![Reply::Error {
                id: Some(id.clone()),
                code,
                detail,
            }
            .to_json()]
        };
        if matches!(self.scope, TokenScope::Partner { .. }) {
            return refuse(
                ErrorCode::Forbidden,
                "partner tokens follow shared readings only: subscribe with grantor and purpose"
                    .into(),
            );
        }
        if self.scope == TokenScope::Platform && request.stream != StreamKind::Security {
            return refuse(
                ErrorCode::Forbidden,
                "platform operators follow the security stream only".into(),
            );
        }
        if request.stream != StreamKind::Readings
            && (request.filter != Default::default() || request.granularity != Granularity::Raw)
        {
            return refuse(
                ErrorCode::BadRequest,
                "filter and granularity apply to the readings stream only".into(),
            );
        }
        let filter = match Filter::compile(&request.filter) {
            Ok(filter) => filter,
            Err(detail) => return refuse(ErrorCode::BadRequest, detail),
        };
        let index = match self.claim(&id) {
            Ok(index) => index,
            Err(reply) => return vec![reply],
        };
        let target = self.register(
            &id,
            SubInfo {
                index,
                grantee: None,
            },
        );
        match (&self.scope, request.stream) {
            (TokenScope::Tenant { tenant, .. }, StreamKind::Readings) => {
                let tenant = tenant.clone();
                let matched = self.hub.subscribe_readings(
                    &tenant,
                    ReadingsSub {
                        target,
                        filter,
                        key: ViewKey::of(&request.filter),
                        granularity: request.granularity,
                        snapshot: request.snapshot,
                        grant: None,
                    },
                );
                let mut frames = vec![Reply::Subscribed {
                    id: id.clone(),
                    stream: request.stream,
                    series: Some(matched.series),
                    embargo_s: None,
                }
                .to_json()];
                if request.snapshot {
                    match request.granularity {
                        Granularity::Raw => {
                            frames.extend(readings_frames(&id, true, &matched.latest));
                        }
                        Granularity::Bucket(width_s) => frames.extend(
                            self.bucket_snapshot(&tenant, &id, width_s, &matched.metas)
                                .await,
                        ),
                    }
                }
                frames
            }
            (scope, stream) => {
                self.hub.subscribe_events(scope, stream, target);
                let mut frames = vec![Reply::Subscribed {
                    id: id.clone(),
                    stream,
                    series: None,
                    embargo_s: None,
                }
                .to_json()];
                if request.snapshot {
                    frames.extend(self.event_snapshot(&id, stream).await);
                }
                frames
            }
        }
    }

    /// The last closed bucket of each matched series, from the store.
    async fn bucket_snapshot(
        &self,
        tenant: &beffroi_protocol::TenantId,
        id: &str,
        width_s: u32,
        metas: &[Arc<crate::series::SeriesMeta>],
    ) -> Vec<String> {
        if metas.is_empty() {
            return Vec::new();
        }
        let width_us = i64::from(width_s) * 1_000_000;
        let grace_us = i64::try_from(self.hub.config().bucket_grace.as_micros()).unwrap_or(0);
        let start = bucket_start(Timestamp::now().unix_micros() - grace_us, width_us) - width_us;
        let filter = ReadingFilter {
            tenant: tenant.clone(),
            sensors: Vec::new(),
            metrics: Vec::new(),
            zone: None,
            from: Timestamp::from_unix_micros(start),
            to: Timestamp::from_unix_micros(start + width_us),
        };
        let stored = match self.hub.store().buckets(&filter, width_us).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, "cannot read the bucket snapshot of a live view");
                return vec![Reply::bad_request(
                    Some(id.to_owned()),
                    "the snapshot could not be read; live buckets follow",
                )
                .to_json()];
            }
        };
        let wanted: HashMap<(&SensorId, &MetricName), &Arc<crate::series::SeriesMeta>> =
            metas.iter().map(|m| ((&m.sensor, &m.metric), m)).collect();
        let items: Vec<_> = stored
            .iter()
            .filter_map(|b| {
                wanted
                    .get(&(&b.sensor, &b.metric))
                    .map(|meta| ((*meta).clone(), BucketValue::from_store(b, width_us)))
            })
            .collect();
        buckets_frames(id, true, &items)
    }

    /// Active alarms (alarms stream) or every gateway (gateways stream), as snapshot frames.
    async fn event_snapshot(&self, id: &str, stream: StreamKind) -> Vec<String> {
        let TokenScope::Tenant { tenant, .. } = &self.scope else {
            return Vec::new();
        };
        let store = self.hub.store();
        let payloads: Result<Vec<String>, _> = match stream {
            StreamKind::Alarms => store
                .list_alarms(
                    tenant,
                    &AlarmFilter {
                        states: vec![AlarmState::Open, AlarmState::Acknowledged],
                    },
                    ALARM_SNAPSHOT,
                    0,
                )
                .await
                .map(|page| page.items.iter().map(to_json).collect()),
            StreamKind::Gateways => store
                .list_gateways(tenant)
                .await
                .map(|gateways| gateways.iter().map(to_json).collect()),
            StreamKind::Readings | StreamKind::Security => Ok(Vec::new()),
        };
        let kind = match stream {
            StreamKind::Alarms => EventKind::Alarm,
            _ => EventKind::Gateway,
        };
        match payloads {
            Ok(payloads) => payloads
                .into_iter()
                .map(|payload| {
                    let event = Event {
                        kind,
                        payload: payload.into(),
                    };
                    event_frame(id, &event, true)
                })
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot read the snapshot of a live stream");
                vec![Reply::bad_request(
                    Some(id.to_owned()),
                    "the snapshot could not be read; live changes follow",
                )
                .to_json()]
            }
        }
    }
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_SUB_ID_BYTES || id.chars().any(char::is_control) {
        return Err(format!(
            "id: 1..={MAX_SUB_ID_BYTES} bytes without control characters"
        ));
    }
    Ok(())
}

impl Drop for Client {
    fn drop(&mut self) {
        let subs = std::mem::take(&mut self.subs);
        let count = subs.len();
        for info in subs.into_values() {
            if let Some(grantee) = info.grantee {
                self.end_grant(info.index, grantee, "disconnected");
            }
        }
        self.hub.disconnect(self.queue.id, &self.scope, count);
    }
}
