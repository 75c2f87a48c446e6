//! The audit log from the API's side: changes recorded before they are applied
//! ([`change`]), reads of the log recorded as accesses ([`record_access`]), the platform's
//! trusted public keys ([`AuditKeys`]) and the verification of a tenant's log page by page
//! from the store ([`check_log`]).
//!
//! Fail closed: a change whose audit entry cannot be written is not applied, and data whose
//! access entry cannot be written does not leave; both answer 503
//! (`urn:beffroi:problem:audit-unavailable`). The admin CLI (`beffroi` crate) records its
//! changes through the same [`change::audited`], so that the API and the CLI write the same
//! entries.
//!
//! This module does no SQL and no HTTP of its own: it goes through the [`beffroi_store::Store`]
//! trait and the pure `beffroi_audit` crate.

pub mod change;
mod check;
mod keys;

pub use change::{audited, Audited, Change, ChangeFailure};
pub use check::{anchor_at_or_below, check_log, LogCheck, UnreadableEntry, PAGE_ENTRIES};
pub use keys::AuditKeys;

use beffroi_audit::{AccessDetail, AuditActor, AuditKind, Channel, Digest, NewAuditEntry};
use beffroi_protocol::Timestamp;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::ApiState;

/// The audit actor of an API caller: its token, by (public) id.
pub fn actor_of(caller: &Caller) -> AuditActor {
    AuditActor::Token(caller.token_id.clone())
}

/// A change `caller` asks for in its tenant (see [`Change::new`]).
pub fn change_by(
    caller: &Caller,
    kind: AuditKind,
    action: &'static str,
    object: &'static str,
    id: impl Into<String>,
) -> Change {
    Change::new(
        caller.tenant.clone(),
        actor_of(caller),
        kind,
        action,
        object,
        id,
    )
}

/// Records that `caller` read its own tenant's data through the REST API (`query` says what,
/// `rows` how many, `result` is what is about to be sent), before it is sent: an
/// `access_permit` entry with no agreement. 503 when the entry cannot be written.
pub async fn record_access(
    state: &ApiState,
    caller: &Caller,
    query: Value,
    rows: u64,
    result: &[u8],
) -> Result<()> {
    let detail = AccessDetail {
        grantee: caller.tenant.to_string(),
        agreement: None,
        purpose: None,
        channel: Channel::Rest,
        query,
        rows,
        result_hash: Some(Digest::of(result)),
        reason: None,
    };
    let entry = NewAuditEntry::new(
        caller.tenant.clone(),
        Timestamp::now(),
        actor_of(caller),
        AuditKind::AccessPermit,
        &detail,
    )
    .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
    state
        .store
        .append_audit(std::slice::from_ref(&entry))
        .await
        .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
    Ok(())
}
