//! A client's grantee views: readings of another tenant, followed under a sharing agreement
//! (see [`crate::grant`]).
//!
//! ```text
//! subscribe {grantor, purpose} ─► checks ─► claim a place ─► Governor::grant ─► join the
//!   grantor's state ─► its own view, fed what the grant admits ─► subscribed (+ snapshot)
//!   embargoed permit: fed by its delayed feed (`crate::delayed`), not the fan-out;
//!   `subscribed.embargo_s` says by how long
//! recheck (agreements changed, or every RECHECK) ─► Governor::recheck ─► refused: ended
//! unsubscribe, replace, disconnect, ended ─► cancel the delayed feed, close the grant, leave
//!   the grantor's state, Governor::ended
//! ```

use std::sync::Arc;

use beffroi_policy::Purpose;
use beffroi_protocol::TenantId;
use beffroi_store::TokenScope;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Client, SubInfo};
use crate::delayed::DelayedFeed;
use crate::filter::Filter;
use crate::frames::readings_frames;
use crate::grant::{Grant, GrantRequest, Refusal};
use crate::protocol::{Granularity, Reply, StreamKind, SubscribeRequest};
use crate::tenant::ReadingsSub;
use crate::view::ViewKey;

/// A running grantee view.
#[derive(Debug)]
pub(super) struct GranteeSub {
    request: GrantRequest,
    grant: Arc<Grant>,
    /// Stops its delayed feed (embargoed permits).
    feed: Option<CancellationToken>,
}

impl Client {
    /// `subscribe` with `grantor` and `purpose`.
    pub(super) async fn subscribe_as_grantee(&mut self, request: SubscribeRequest) -> Vec<String> {
        let id = request.id.clone();
        let refuse = |refusal: Refusal| {
            vec![Reply::Error {
                id: Some(id.clone()),
                code: refusal.code,
                detail: refusal.to_string(),
            }
            .to_json()]
        };
        let snapshot = request.snapshot;
        let (grant_request, filter) = match self.grant_request(request) {
            Ok(checked) => checked,
            Err(refusal) => return refuse(refusal),
        };
        let Some(governor) = self.governor.clone() else {
            return refuse(Refusal::denied(
                "unavailable",
                "this server does not offer grantee views",
            ));
        };
        let index = match self.claim(&id) {
            Ok(index) => index,
            Err(reply) => return vec![reply],
        };
        let grant = match governor.grant(&grant_request).await {
            Ok(grant) => Arc::new(grant),
            Err(refusal) => return refuse(refusal),
        };
        let grantor = grant_request.grantor.clone();
        let key = ViewKey::of(&grant_request.filter);
        let embargo_s = grant.embargo().map(|embargo| embargo.as_secs());
        let feed = embargo_s.map(|_| CancellationToken::new());
        if let Err(error) = self.hub.join(&grantor).await {
            tracing::warn!(%error, %grantor, "cannot load a grantor's live state");
            governor.ended(grant_request, grant, "unavailable".into());
            return refuse(Refusal::denied(
                "unavailable",
                "the shared readings could not be loaded; try again",
            ));
        }
        let target = self.register(
            &id,
            SubInfo {
                index,
                grantee: Some(GranteeSub {
                    request: grant_request.clone(),
                    grant: grant.clone(),
                    feed: feed.clone(),
                }),
            },
        );
        let matched = self.hub.subscribe_readings(
            &grantor,
            ReadingsSub {
                target: target.clone(),
                filter: filter.clone(),
                key,
                granularity: Granularity::Raw,
                snapshot,
                grant: Some(grant.clone()),
            },
        );
        let mut frames = vec![Reply::Subscribed {
            id: id.clone(),
            stream: StreamKind::Readings,
            series: Some(matched.series),
            embargo_s,
        }
        .to_json()];
        frames.extend(readings_frames(&id, true, &matched.latest));
        if let (Some(cancel), Some(view)) = (feed, matched.view) {
            let delayed = DelayedFeed::new(
                self.hub.clone(),
                governor,
                grant_request,
                grant,
                filter,
                view,
                target,
            );
            if snapshot {
                match delayed.snapshot(&matched.metas).await {
                    Ok(items) => frames.extend(readings_frames(&id, true, &items)),
                    Err(error) => {
                        self.hub.metrics().live_delayed_errors.incr();
                        tracing::warn!(
                            %error,
                            %grantor,
                            "cannot read the snapshot of a delayed view"
                        );
                        frames.push(
                            Reply::bad_request(
                                Some(id.clone()),
                                "the snapshot could not be read; delayed values follow",
                            )
                            .to_json(),
                        );
                    }
                }
            }
            tokio::spawn(delayed.run(cancel));
        }
        frames
    }

    /// The grant request of a grantee `subscribe`, or why it is malformed or not allowed.
    fn grant_request(&self, request: SubscribeRequest) -> Result<(GrantRequest, Filter), Refusal> {
        let (Some(grantor), Some(purpose)) = (request.grantor, request.purpose) else {
            return Err(Refusal::bad_request(
                "grantor and purpose: a grantee view needs both",
            ));
        };
        if request.stream != StreamKind::Readings || request.granularity != Granularity::Raw {
            return Err(Refusal::bad_request(
                "grantor: grantee views follow raw readings (stream \"readings\", granularity \"raw\")",
            ));
        }
        let grantor =
            TenantId::new(&grantor).map_err(|e| Refusal::bad_request(format!("grantor: {e}")))?;
        purpose
            .parse::<Purpose>()
            .map_err(|e| Refusal::bad_request(format!("purpose: {e}")))?;
        match &self.scope {
            TokenScope::Platform => {
                return Err(Refusal::denied(
                    "platform_token",
                    "platform operators read no tenant's data",
                ))
            }
            TokenScope::Tenant { tenant, .. } if *tenant == grantor => {
                return Err(Refusal::bad_request(
                    "grantor: that is your own tenant; subscribe without grantor and purpose",
                ))
            }
            TokenScope::Tenant { .. } | TokenScope::Partner { .. } => {}
        }
        let filter = Filter::compile(&request.filter).map_err(Refusal::bad_request)?;
        Ok((
            GrantRequest {
                grantor,
                purpose,
                filter: request.filter,
            },
            filter,
        ))
    }

    /// Stops a grantee view (its delayed feed, and its grant: nothing more is released),
    /// leaves its place in its grantor's state and records its end.
    pub(super) fn end_grant(&self, index: u32, sub: GranteeSub, why: &str) {
        if let Some(feed) = &sub.feed {
            feed.cancel();
        }
        sub.grant.close();
        self.hub
            .leave(&sub.request.grantor, self.queue.id, Some(index));
        if let Some(governor) = &self.governor {
            governor.ended(sub.request, sub.grant, why.to_owned());
        }
    }

    /// Whether the client follows another tenant's readings (then [`Client::recheck`] must
    /// run when [`Client::grant_changes`] moves, and every [`crate::RECHECK`]).
    pub fn has_grants(&self) -> bool {
        self.subs.values().any(|info| info.grantee.is_some())
    }

    /// A receiver that moves when sharing agreements change.
    pub fn grant_changes(&self) -> Option<watch::Receiver<u64>> {
        self.governor.as_ref().map(|g| g.changes())
    }

    /// Decides every grantee view again; ends those no longer permitted and returns their
    /// `ended` messages.
    pub async fn recheck(&mut self) -> Vec<String> {
        let Some(governor) = self.governor.clone() else {
            return Vec::new();
        };
        let mut ended = Vec::new();
        for (id, info) in &self.subs {
            if let Some(sub) = &info.grantee {
                if let Some(refusal) = governor.recheck(&sub.request, &sub.grant).await {
                    ended.push((id.clone(), refusal));
                }
            }
        }
        let mut frames = Vec::with_capacity(ended.len());
        for (id, refusal) in ended {
            if let Some(info) = self.subs.remove(&id) {
                self.drop_subscription(info, &refusal.to_string());
            }
            frames.push(
                Reply::Ended {
                    id,
                    reason: refusal.reason,
                    detail: refusal.detail,
                }
                .to_json(),
            );
        }
        frames
    }
}
