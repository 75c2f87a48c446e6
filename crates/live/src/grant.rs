//! Grantee live views: a subscription to another tenant's readings under a sharing agreement.
//!
//! ```text
//! subscribe {grantor, purpose} ─► Governor::grant (decide + audit, in the API) ─► Grant
//!   the grantor's tenant state: a view of its own (never shared), fed only series the
//!   permit's population covers (Grant::covers, checked when series and views are matched)
//!   every value ─► Grant::item: Transforms::admits at `now` (validity, embargo, scope; for
//!                  a pooling permit, the period and the territory the sensor stood in when
//!                  the value was measured), allowed fields only, sensor id pseudonymised
//!                  ─► the view
//! agreements change, or every RECHECK ─► Governor::recheck ─► refused: `ended`, unsubscribed
//! ```
//! An embargoed permit holds every value back for `embargo_s`: its view is not fed by the
//! fan-out but by a delayed feed reading stored values once they pass the embargo (`delayed`),
//! through the same [`Grant::item`].
//!
//! The policy engine decides; this module only applies the permit it returned, with the same
//! per-reading rule ([`beffroi_policy::Transforms::admits`]) and the same row shaping
//! ([`beffroi_policy::shared_row`]) as the REST read path. What a grant released (values and
//! the SHA-256 of their items, in order) is counted for the audit entry written when the view
//! ends; once the view ended ([`Grant::close`]) it releases nothing more.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use beffroi_policy::{
    pseudonym, shared_row, AgreementRef, Field, Grantee, Permit, PseudonymKey, ReadingFacts,
    RowSource, Scope, Shape, Territories, TimeRange, Transforms, ZoneId,
};
use beffroi_protocol::{TenantId, Timestamp};
use beffroi_store::{ReadingCursor, ReadingPage};
use sha2::{Digest as _, Sha256};

use crate::filter::SensorInfo;
use crate::protocol::{ErrorCode, FilterSpec};
use crate::series::{LiveValue, SeriesMeta};

/// How often running grants are decided again even when no agreement changed (an agreement
/// reaching its `not_after`; a change made through another platform node).
pub const RECHECK: Duration = Duration::from_millis(500);

/// What a grantee asks to follow.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantRequest {
    /// Whose readings.
    pub grantor: TenantId,
    /// The purpose stated, as sent (the governor parses it).
    pub purpose: String,
    /// The readings filter, as sent.
    pub filter: FilterSpec,
}

/// Why a grant was refused or ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The error code of the reply.
    pub code: ErrorCode,
    /// A stable code (the policy's deny reason, `aggregate_only`, `agreement_changed`,
    /// `unavailable`, `bad_request`).
    pub reason: String,
    /// What to tell the grantee.
    pub detail: String,
}

impl Refusal {
    /// Not permitted: `reason` and `detail`.
    pub fn denied(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::Forbidden,
            reason: reason.into(),
            detail: detail.into(),
        }
    }

    /// The request itself is wrong.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::BadRequest,
            reason: "bad_request".into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// Decides and records grantee views; implemented by the API with the policy engine, the
/// agreements cache and the audit log.
#[async_trait::async_trait]
pub trait Governor: Send + Sync + fmt::Debug {
    /// Decides `request` (and records the decision): the grant, or why not.
    async fn grant(&self, request: &GrantRequest) -> Result<Grant, Refusal>;

    /// Decides a running grant again with the current agreements and time: `Some` ends it.
    async fn recheck(&self, request: &GrantRequest, grant: &Grant) -> Option<Refusal>;

    /// Records that a grant's view ended and why (does not wait: the API writes the audit
    /// entry in the background).
    fn ended(&self, request: GrantRequest, grant: Arc<Grant>, why: String);

    /// A receiver whose value moves when agreements change.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;

    /// A page of the grantor's stored readings that `grant`'s permit covers, measured in
    /// `range`, after `after` in `(time, id)` order, at most `limit`: what the delayed feed of
    /// an embargoed view releases (each still goes through [`Grant::item`]).
    async fn readings(
        &self,
        request: &GrantRequest,
        grant: &Grant,
        range: TimeRange,
        after: Option<ReadingCursor>,
        limit: u32,
    ) -> beffroi_store::Result<ReadingPage>;
}

/// A permit applied to one live view.
pub struct Grant {
    /// The agreement that permits it.
    pub agreement: AgreementRef,
    grantee: Grantee,
    transforms: Transforms,
    fields: BTreeSet<Field>,
    key: Option<PseudonymKey>,
    territories: Territories,
    clock: Box<dyn Fn() -> Timestamp + Send + Sync>,
    started: Timestamp,
    tally: Mutex<Tally>,
}

/// What a grant released, for the closing audit entry.
#[derive(Default)]
struct Tally {
    /// Values released.
    count: u64,
    /// SHA-256 of their items, in the order released.
    digest: Sha256,
    /// The view ended: nothing more is released.
    closed: bool,
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("agreement", &self.agreement)
            .field("grantee", &self.grantee)
            .field("released", &self.tally().count)
            .finish_non_exhaustive()
    }
}

impl Grant {
    /// The view a raw `permit` allows, pseudonymising with `key` when the permit says so and
    /// placing readings in `territories` (the areas of the zones its scope names, for a
    /// pooling agreement); `clock` gives the `now` each value is admitted at (the API's
    /// clock). Aggregate permits
    /// have no live view (their cells are read under `/api/v1/shared/…/aggregates`); an
    /// embargoed permit gives a delayed one.
    pub fn new(
        permit: Permit,
        key: Option<PseudonymKey>,
        territories: Territories,
        clock: Box<dyn Fn() -> Timestamp + Send + Sync>,
    ) -> Result<Self, Refusal> {
        let Shape::Raw { fields } = permit.transforms.shape.clone() else {
            return Err(Refusal::denied(
                "aggregate_only",
                format!(
                    "agreement {} grants aggregates, which live views do not carry; read its \
                     closed buckets under /api/v1/shared/{{grantor}}/aggregates",
                    permit.agreement.id
                ),
            ));
        };
        if permit.transforms.pseudonymise && key.is_none() {
            return Err(Refusal::denied(
                "no_key",
                format!(
                    "agreement {} pseudonymises but has no key",
                    permit.agreement.id
                ),
            ));
        }
        let started = clock();
        Ok(Self {
            agreement: permit.agreement,
            grantee: permit.grantee,
            transforms: permit.transforms,
            fields,
            key,
            territories,
            clock,
            started,
            tally: Mutex::new(Tally::default()),
        })
    }

    fn tally(&self) -> MutexGuard<'_, Tally> {
        // Nothing panics while holding this lock; a poisoned tally is still consistent.
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the grant was made.
    pub fn started(&self) -> Timestamp {
        self.started
    }

    /// The rotation epoch of the pseudonym key it uses, if it pseudonymises.
    pub fn key_epoch(&self) -> Option<u32> {
        self.key.as_ref().map(PseudonymKey::epoch)
    }

    /// How long the permit holds values back (its embargo), if it does: the view is then
    /// fed by stored values once they pass it, never by the fan-out.
    pub fn embargo(&self) -> Option<Duration> {
        let seconds = self.transforms.window.embargo_s;
        (seconds > 0).then(|| Duration::from_secs(seconds))
    }

    /// The measurement times the permit serves now: its range at the grant, up to the
    /// embargo; `None` once the agreement expired.
    pub fn served(&self) -> Option<TimeRange> {
        self.transforms.served_range((self.clock)())
    }

    /// The readings the permit covers (time aside): what the store is asked for.
    pub fn population(&self) -> &Scope {
        self.transforms.population()
    }

    /// Values released so far and the SHA-256 of their items, in the order released.
    pub fn released(&self) -> (u64, [u8; 32]) {
        let tally = self.tally();
        (tally.count, tally.digest.clone().finalize().into())
    }

    /// The view ended: from now on nothing is released (a delayed feed still reading a page
    /// cannot add to what the closing audit entry counts).
    pub(crate) fn close(&self) {
        self.tally().closed = true;
    }

    /// Whether the permit's population covers a series (time aside): only such series are
    /// matched to the view, so a grantee never learns of others, not even their count.
    pub(crate) fn covers(&self, meta: &SeriesMeta, info: &SensorInfo) -> bool {
        let inside = self.territories.containing(info.position);
        self.transforms.population().admits(&facts(
            meta,
            info,
            &inside,
            Timestamp::from_unix_micros(0),
        ))
    }

    /// The item a grantee gets for `value`, if the permit admits it now.
    pub(crate) fn item(
        &self,
        meta: &SeriesMeta,
        info: &SensorInfo,
        value: &LiveValue,
    ) -> Option<Arc<str>> {
        let inside = self.territories.containing(info.position_at(value.time));
        if !self
            .transforms
            .admits(&facts(meta, info, &inside, value.time), (self.clock)())
        {
            return None;
        }
        let sensor = match &self.key {
            Some(key) => pseudonym(key, &self.grantee, &meta.sensor),
            None => meta.sensor.to_string(),
        };
        let source = RowSource {
            time: value.time,
            value: &value.value,
            unit: &meta.unit,
            metric: &meta.metric,
            sensor: &sensor,
            zone: info.zone.as_ref(),
            gateway: &value.gateway,
            seq: None,
        };
        let item = serde_json::Value::Object(shared_row(&source, &self.fields)).to_string();
        let mut tally = self.tally();
        if tally.closed {
            return None;
        }
        tally.count += 1;
        tally.digest.update(item.as_bytes());
        Some(item.into())
    }
}

fn facts<'a>(
    meta: &'a SeriesMeta,
    info: &'a SensorInfo,
    territories: &'a [ZoneId],
    time: Timestamp,
) -> ReadingFacts<'a> {
    ReadingFacts {
        metric: &meta.metric,
        sensor: &meta.sensor,
        zone: info.zone.as_ref(),
        tags: &info.tags,
        territories,
        time,
    }
}
