//! `/api/v1/audit…`: the caller's tamper-evident audit log (see `beffroi_audit`).
//!
//! - `GET /api/v1/audit?after_seq&limit&kind&from&to` (admin): entries by seq, a page at a
//!   time (`next_after_seq` continues it);
//! - `GET /api/v1/audit/verify?since_seq` (admin): the log verified on the server, from the
//!   start or from the last valid checkpoint at or below `since_seq`;
//! - `GET /api/v1/audit/checkpoints?after_seq&limit` (viewer): the signed checkpoints;
//! - `GET /api/v1/audit/public-key` (viewer): the platform's audit public keys, to verify
//!   checkpoints offline.
//!
//! Reading the log and its verification report needs the admin role: they say who accessed
//! what, under which agreement, and who changed what — the data officer's view, like the
//! configuration itself. Both are reads of the tenant's data and are themselves recorded,
//! before the answer leaves, as an `access_permit` of the tenant's own data (query
//! `{"resource": "audit_log" | "audit_verify", …}`, rows returned, SHA-256 of the body); if
//! that record cannot be written the answer is 503 and nothing leaves. Checkpoints and public
//! keys carry only hashes, signatures and keys: any role reads them, unrecorded.

use axum::extract::State;
use beffroi_audit::{AuditEntry, AuditHead, AuditKind, Checkpoint};
use beffroi_protocol::{key_id_for, KeyId, VerifyingKey};
use beffroi_store::{AuditFilter, Role};
use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey as _};
use serde::Serialize;
use serde_json::json;

use crate::audit::{anchor_at_or_below, check_log, record_access, LogCheck};
use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::json::ApiJson;
use crate::query::{parse_limit, QueryParams, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
use crate::routes::readings::parse_time;
use crate::ApiState;

/// One page of the audit log.
#[derive(Debug, Serialize)]
pub struct AuditPage {
    /// The entries, by seq.
    pub items: Vec<AuditEntry>,
    /// The `after_seq` of the next page; `null` on the last page.
    pub next_after_seq: Option<u64>,
}

/// One page of checkpoints.
#[derive(Debug, Serialize)]
pub struct CheckpointPage {
    /// The checkpoints, by seq.
    pub items: Vec<Checkpoint>,
    /// The `after_seq` of the next page; `null` on the last page.
    pub next_after_seq: Option<u64>,
}

/// A platform audit public key.
#[derive(Debug, Serialize)]
pub struct PublicKey {
    /// Its id, as checkpoints name it.
    pub key_id: KeyId,
    /// The key as SubjectPublicKeyInfo PEM.
    pub pem: String,
    /// The 32 bytes of the key, hex.
    pub hex: String,
}

/// The platform's audit public keys.
#[derive(Debug, Serialize)]
pub struct PublicKeys {
    /// The key new checkpoints are signed with.
    pub current: PublicKey,
    /// Keys that signed earlier checkpoints (still trusted).
    pub retired: Vec<PublicKey>,
}

fn seq_param(value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .map_err(|_| format!("must be a non-negative integer, got {value:?}"))
}

/// `after_seq` and `limit`.
fn page_params(query: &QueryParams) -> Result<(u64, u32)> {
    let after = query.parsed("after_seq", seq_param)?.unwrap_or(0);
    let limit = query
        .parsed("limit", |v| parse_limit(v, MAX_PAGE_LIMIT))?
        .unwrap_or(DEFAULT_PAGE_LIMIT);
    Ok((after, limit))
}

/// A page of the caller's audit log (admin); the read is recorded before it is answered.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: QueryParams,
) -> Result<ApiJson<AuditPage>> {
    caller.require(Role::Admin)?;
    query.allow_only(&["after_seq", "limit", "kind", "from", "to"])?;
    let (after, limit) = page_params(&query)?;
    let kinds = query
        .all("kind")
        .map(|k| {
            k.parse::<AuditKind>()
                .map_err(|e| ApiError::bad_request(format!("kind: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let filter = AuditFilter {
        kinds,
        from: query.parsed("from", parse_time)?,
        to: query.parsed("to", parse_time)?,
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if to <= from {
            return Err(ApiError::bad_request("to: must be after from"));
        }
    }
    let items = state
        .store
        .audit_entries(&caller.tenant, &filter, after, limit)
        .await?;
    let next_after_seq = (items.len() == limit as usize)
        .then(|| items.last().map(|e| e.seq))
        .flatten();
    let page = AuditPage {
        items,
        next_after_seq,
    };
    let body = serde_json::to_vec(&page).map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
    let read = json!({
        "resource": "audit_log",
        "after_seq": after,
        "limit": limit,
        "kinds": filter.kinds,
        "from": filter.from,
        "to": filter.to,
    });
    record_access(&state, &caller, read, page.items.len() as u64, &body).await?;
    Ok(ApiJson(page))
}

/// The caller's log verified on the server (admin); recorded before it is answered.
pub async fn verify(
    State(state): State<ApiState>,
    caller: Caller,
    query: QueryParams,
) -> Result<ApiJson<LogCheck>> {
    caller.require(Role::Admin)?;
    query.allow_only(&["since_seq"])?;
    let since = query.parsed("since_seq", seq_param)?;
    let keys = state.audit_keys.all();
    let checkpoints = state.store.audit_checkpoints(&caller.tenant).await?;
    let anchor = since.map_or(AuditHead::GENESIS, |since| {
        anchor_at_or_below(&checkpoints, since, &keys)
    });
    let check = check_log(
        state.store.as_ref(),
        &caller.tenant,
        anchor,
        &checkpoints,
        &keys,
    )
    .await?;
    let body = serde_json::to_vec(&check).map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
    let read = json!({ "resource": "audit_verify", "since_seq": since, "from_seq": anchor.seq });
    record_access(&state, &caller, read, check.report.entries, &body).await?;
    Ok(ApiJson(check))
}

/// The caller's checkpoints, by seq (any role).
pub async fn checkpoints(
    State(state): State<ApiState>,
    caller: Caller,
    query: QueryParams,
) -> Result<ApiJson<CheckpointPage>> {
    query.allow_only(&["after_seq", "limit"])?;
    let (after, limit) = page_params(&query)?;
    let all = state.store.audit_checkpoints(&caller.tenant).await?;
    let items: Vec<Checkpoint> = all
        .into_iter()
        .filter(|cp| cp.seq > after)
        .take(limit as usize + 1)
        .collect();
    let (items, next_after_seq) = if items.len() > limit as usize {
        let kept: Vec<Checkpoint> = items.into_iter().take(limit as usize).collect();
        let next = kept.last().map(|cp| cp.seq);
        (kept, next)
    } else {
        (items, None)
    };
    Ok(ApiJson(CheckpointPage {
        items,
        next_after_seq,
    }))
}

/// The platform's audit public keys (any role).
pub async fn public_key(
    State(state): State<ApiState>,
    _caller: Caller,
) -> Result<ApiJson<PublicKeys>> {
    let keys = &state.audit_keys;
    Ok(ApiJson(PublicKeys {
        current: public(keys.current())?,
        retired: keys.retired().iter().map(public).collect::<Result<_>>()?,
    }))
}

fn public(key: &VerifyingKey) -> Result<PublicKey> {
    let pem = key
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| ApiError::NotReady(format!("cannot encode the audit public key: {e}")))?;
    Ok(PublicKey {
        key_id: key_id_for(key),
        pem,
        hex: hex::encode(key.as_bytes()),
    })
}
