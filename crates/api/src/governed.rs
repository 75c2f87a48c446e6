//! The one governed read path: every read of a tenant's data by someone else — another
//! tenant, a partner, the public, or the grantor previewing what its grantee gets — goes
//! through [`serve`]. A tenant reading its own data does not come here.
//!
//! ```text
//! request ─► AccessRequest ─► decide(request, agreements, clock.now())
//!   Deny   ─► audit access_deny (grantor's log) ─► 403 problem, `reason` = the deny code
//!   Permit ─► build the body: query the store with the permit's population and served
//!             range, keep what Transforms::admits, shape it (raw fields and pseudonyms, or
//!             cells at the fine grid ─► suppress ─► units inside the scope)
//!          ─► audit access_permit with the row count and SHA-256 of the body ─► send it
//! ```
//!
//! Fail closed: if the audit entry cannot be written, the answer is 503
//! (`urn:beffroi:problem:audit-unavailable`) and nothing of the data is sent. The body is
//! computed before the entry is written so that the entry can hash exactly the bytes that
//! leave; the entry is committed before the first byte is sent.
//!
//! A preview ([`GovernedRead::preview`]) is the same read, with the agreement's grantee as
//! the requester and the grantor's token as the actor: the same function computes the same
//! body, and the audit entry's `query.preview` is `true`.
//!
//! An export ([`export`]) is decided the same way (channel `export`) but streams: its entry is
//! written before the first byte, and a second entry closes it with what left — the way a
//! grantee live view ([`live`]) opens and closes ([`record_closing`]).
//!
//! Agreements come from the [`AgreementCache`] (at most one second old); `now` from the
//! [`crate::clock::Clock`] of the state.

mod alarms;
mod cache;
mod cells;
mod export;
mod live;
#[cfg(test)]
mod pooling_property;
mod population;
mod requester;
mod rows;

pub use alarms::PoolAlarms;
pub use cache::{AgreementCache, REFRESH_INTERVAL};
pub use export::{ExportFormat, MAX_EXPORT_RANGE};
pub use live::LiveGovernor;
pub use requester::Requester;

pub(crate) use cells::publish_cells;
pub(crate) use export::{compact_time, serve_export};
pub(crate) use population::Registry;
pub(crate) use rows::raw_rows;

use std::future::Future;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use beffroi_audit::{AccessDetail, AuditActor, AuditKind, Channel, Digest, NewAuditEntry};
use beffroi_policy::{decide, AccessRequest, AgreementRef, Decision, Permit, PseudonymKey};
use beffroi_protocol::Timestamp;
use beffroi_store::{ReadingCursor, Store};
use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::ApiState;

/// One governed read, ready to be decided.
#[derive(Debug, Clone)]
pub struct GovernedRead {
    /// What is asked, by whom (`request.requester`), of whom (`request.grantor`).
    pub request: AccessRequest,
    /// Who the audit log records as asking.
    pub actor: AuditActor,
    /// A grantor's preview of what its grantee would get.
    pub preview: bool,
    /// Raw rows: the page wanted.
    pub page: RawPage,
}

/// A page of raw rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPage {
    /// Rows per page.
    pub limit: u32,
    /// Where the page starts.
    pub after: Option<ReadingCursor>,
}

/// A built response body and the rows it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// The bytes to send.
    pub bytes: Vec<u8>,
    /// Rows (readings, cells, registry entries) in it, for the audit log.
    pub rows: u64,
    /// Their media type.
    pub content_type: &'static str,
}

impl Body {
    /// `value` as JSON, holding `rows` rows.
    pub fn json<T: Serialize>(value: &T, rows: usize) -> Result<Self> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| ApiError::bad_request(format!("cannot encode the answer: {e}")))?;
        Ok(Self {
            bytes,
            rows: u64::try_from(rows).unwrap_or(u64::MAX),
            content_type: "application/json",
        })
    }
}

/// Decides `read`, audits, and answers: the body `build` makes for a permit, or a 403 problem
/// for a denial. `build` gets the permit and the decision instant.
pub async fn serve<F, Fut>(state: &ApiState, read: &GovernedRead, build: F) -> Result<Response>
where
    F: FnOnce(Permit, Timestamp) -> Fut,
    Fut: Future<Output = Result<Body>>,
{
    let (permit, now) = permitted(state, read).await?;
    let agreement = permit.agreement.clone();
    let body = build(permit, now).await?;
    let hash = Digest::of(&body.bytes);
    tracing::debug!(
        grantor = %read.request.grantor,
        requester = %read.request.requester,
        agreement = %agreement.id,
        rows = body.rows,
        preview = read.preview,
        "governed read permitted"
    );
    let outcome = Outcome::Permit(&agreement, body.rows, Some(hash));
    record(state, read, query_of(read, now)?, outcome).await?;
    let mut response = body.bytes.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(body.content_type),
    );
    Ok(response)
}

/// Decides `read`: its permit and the decision instant, or — the denial written to the
/// grantor's log first — the 403.
pub(crate) async fn permitted(
    state: &ApiState,
    read: &GovernedRead,
) -> Result<(Permit, Timestamp)> {
    let agreements = state.agreements.current().await?;
    let now = state.clock.now();
    match decide(&read.request, &agreements, now) {
        Decision::Deny(deny) => {
            tracing::debug!(
                grantor = %read.request.grantor,
                requester = %read.request.requester,
                reason = %deny.reason,
                "governed read denied"
            );
            let reason = format!("{}: {}", deny.reason, deny.message);
            let outcome = Outcome::Deny(deny.agreement.as_ref(), reason);
            record(state, read, query_of(read, now)?, outcome).await?;
            Err(ApiError::Denied {
                reason: deny.reason.as_str(),
                message: deny.message,
            })
        }
        Decision::Permit(permit) => Ok((permit, now)),
    }
}

/// The pseudonym key a permit needs, if it pseudonymises. An agreement that pseudonymises
/// without a key serves nothing (409: its grantor must rotate its key).
pub(crate) async fn permit_key(
    store: &dyn Store,
    read: &GovernedRead,
    permit: &Permit,
) -> Result<Option<PseudonymKey>> {
    if !permit.transforms.pseudonymise {
        return Ok(None);
    }
    let id = &permit.agreement.id;
    match store.pseudonym_key(&read.request.grantor, id).await? {
        Some(key) => Ok(Some(key)),
        None => Err(ApiError::Conflict(format!(
            "agreement {id} pseudonymises sensor ids but has no key; its grantor must rotate \
             its key"
        ))),
    }
}

/// How a decision ended, for its audit entry: a denial and why, or a permit with the rows
/// served and the hash of what left (none yet when a live view opens).
pub(crate) enum Outcome<'a> {
    Deny(Option<&'a AgreementRef>, String),
    Permit(&'a AgreementRef, u64, Option<Digest>),
}

/// What an access entry records as the query: the request, decided at `now`.
pub(crate) fn query_of(read: &GovernedRead, now: Timestamp) -> Result<Value> {
    let mut query = serde_json::to_value(&read.request)
        .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
    if let Value::Object(map) = &mut query {
        map.insert("preview".into(), read.preview.into());
        map.insert("decided_at".into(), now.to_string().into());
        let paged = read.request.channel == beffroi_policy::Channel::Rest;
        if paged && matches!(read.request.read, beffroi_policy::Read::Raw { .. }) {
            map.insert("limit".into(), read.page.limit.into());
            if let Some(after) = read.page.after {
                map.insert(
                    "after".into(),
                    crate::routes::readings::encode_cursor(after).into(),
                );
            }
        }
    }
    Ok(query)
}

/// [`query_of`] with the facts of a streamed read under `key` (`live`, `export`).
pub(crate) fn query_with(
    read: &GovernedRead,
    now: Timestamp,
    key: &str,
    facts: Value,
) -> Result<Value> {
    let mut query = query_of(read, now)?;
    if let Value::Object(map) = &mut query {
        map.insert(key.into(), facts);
    }
    Ok(query)
}

/// Writes the entry that closes a streamed read (a live view, an export): the rows released
/// and the SHA-256 of what left. It is written after the fact, so it cannot fail closed: a
/// failure is logged and counted (`audit_write_failures`).
pub(crate) async fn record_closing(
    state: &ApiState,
    read: &GovernedRead,
    query: Result<Value>,
    agreement: &AgreementRef,
    rows: u64,
    digest: Digest,
) {
    let result = match query {
        Ok(query) => {
            record(
                state,
                read,
                query,
                Outcome::Permit(agreement, rows, Some(digest)),
            )
            .await
        }
        Err(error) => Err(error),
    };
    if let Err(error) = result {
        state.metrics.audit_write_failures.incr();
        tracing::error!(
            %error,
            grantor = %read.request.grantor,
            channel = ?read.request.channel,
            "cannot record the end of a streamed grantee read"
        );
    }
}

/// Appends the access entry of `read` to the grantor's log; 503 if it cannot be written.
pub(crate) async fn record(
    state: &ApiState,
    read: &GovernedRead,
    query: Value,
    outcome: Outcome<'_>,
) -> Result<()> {
    record_in(state.store.as_ref(), read, query, outcome).await
}

/// [`record`] in `store`.
pub(crate) async fn record_in(
    store: &dyn Store,
    read: &GovernedRead,
    query: Value,
    outcome: Outcome<'_>,
) -> Result<()> {
    let unavailable = |e: &dyn std::fmt::Display| ApiError::AuditUnavailable(e.to_string());
    let audit_ref = |a: &AgreementRef| beffroi_audit::AgreementRef {
        id: a.id.to_string(),
        version: u64::from(a.version),
    };
    let (kind, agreement, rows, result_hash, reason) = match outcome {
        Outcome::Deny(agreement, reason) => (
            AuditKind::AccessDeny,
            agreement.map(audit_ref),
            0,
            None,
            Some(reason),
        ),
        Outcome::Permit(agreement, rows, hash) => (
            AuditKind::AccessPermit,
            Some(audit_ref(agreement)),
            rows,
            hash,
            None,
        ),
    };
    let detail = AccessDetail {
        grantee: read.request.requester.to_string(),
        agreement,
        purpose: Some(read.request.purpose.to_string()),
        channel: match read.request.channel {
            beffroi_policy::Channel::Rest => Channel::Rest,
            beffroi_policy::Channel::Live => Channel::Live,
            beffroi_policy::Channel::Export => Channel::Export,
            beffroi_policy::Channel::Alarm => Channel::Alarm,
        },
        query,
        rows,
        result_hash,
        reason,
    };
    let entry = NewAuditEntry::new(
        read.request.grantor.clone(),
        Timestamp::now(),
        read.actor.clone(),
        kind,
        &detail,
    )
    .map_err(|e| unavailable(&e))?;
    store
        .append_audit(std::slice::from_ref(&entry))
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(())
}
