//! A grantor's sharing agreements, under `/api/v1/agreements` (viewer reads, admin writes):
//! list, create (native JSON, or imported from ODRL 2.2), read, replace (optimistic
//! concurrency on `version`), change state, export as ODRL, rotate the pseudonym key, and
//! preview exactly what the grantee gets for a query.
//!
//! Every change is recorded in the grantor's audit log (`agreement_change`: who, which
//! agreement, the version before and after, the states, the SHA-256 of the new document)
//! before it is applied; if the entry cannot be written nothing changes (503), and a change
//! that fails after being recorded gets a second entry saying so (see [`crate::audit`]).
//! Pseudonym keys are generated here from the OS random source and never leave the server.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use beffroi_audit::{AuditActor, AuditKind, Digest};
use beffroi_policy::{from_odrl, to_odrl, Agreement, AgreementId, Grantee, State as Lifecycle};
use beffroi_protocol::Timestamp;
use beffroi_store::{AgreementRecord, Role};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::{audited, change_by};
use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::governed::Requester;
use crate::json::ApiJson;
use crate::path::IdPath;
use crate::query::QueryParams;
use crate::routes::shared::{aggregates_request, readings_request, serve_read};
use crate::routes::Items;
use crate::ApiState;

/// The body of `POST /api/v1/agreements/{id}/state`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateBody {
    /// The next state: `active`, `suspended` or `revoked`.
    pub state: Lifecycle,
    /// The version the change is based on (optional: the current one).
    #[serde(default)]
    pub version: Option<u32>,
}

/// The answer of a key rotation (the key itself never leaves the server).
#[derive(Debug, Clone, Serialize)]
pub struct Rotated {
    /// The agreement.
    pub agreement: AgreementId,
    /// The new key's epoch: pseudonyms change from now on.
    pub epoch: u32,
}

/// The caller's agreements.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<ApiJson<Items<AgreementRecord>>> {
    let items = state.store.list_agreements(&caller.tenant).await?;
    Ok(ApiJson(Items { items }))
}

/// One of the caller's agreements.
pub async fn one(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<AgreementId>,
) -> Result<ApiJson<AgreementRecord>> {
    Ok(ApiJson(stored(&state, &caller, &id).await?))
}

/// Creates an agreement (admin) from its native JSON; `grantor` defaults to the caller's
/// tenant, `version` is 1, `state` defaults to `draft`.
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, ApiJson<AgreementRecord>)> {
    caller.require(Role::Admin)?;
    let defaults = [
        ("version", Value::from(1)),
        ("state", Value::from(Lifecycle::Draft.as_str())),
    ];
    let agreement = from_body(body, &caller, None, &defaults)?;
    created(&state, &caller, agreement, "create").await
}

/// Imports an agreement (admin) from an ODRL 2.2 document as exported by `…/odrl`, as a
/// draft at version 1.
pub async fn import(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, ApiJson<AgreementRecord>)> {
    caller.require(Role::Admin)?;
    let mut agreement =
        from_odrl(&body).map_err(|e| ApiError::bad_request(format!("not importable: {e}")))?;
    if agreement.grantor != caller.tenant {
        return Err(ApiError::bad_request(format!(
            "the document's assigner is {}, not your tenant",
            agreement.grantor
        )));
    }
    agreement.state = Lifecycle::Draft;
    agreement.version = 1;
    created(&state, &caller, agreement, "import").await
}

/// Replaces an agreement's terms (admin). The version it is based on is the `If-Match`
/// header (`"3"` or `3`) or else the body's `version` (one is required); 409 if the
/// agreement moved on since. The state does not change here (see `…/state`).
pub async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<AgreementId>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<ApiJson<AgreementRecord>> {
    caller.require(Role::Admin)?;
    let expected = match headers.get(header::IF_MATCH) {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().trim_matches('"').parse::<u32>().ok())
                .ok_or_else(|| ApiError::bad_request("If-Match: expected a version number"))?,
        ),
        None => None,
    };
    let current = stored(&state, &caller, &id).await?.agreement;
    let mut defaults = vec![("state", Value::from(current.state.as_str()))];
    if let Some(version) = expected {
        defaults.push(("version", Value::from(version)));
    }
    let agreement = from_body(body, &caller, Some(&id), &defaults)?;
    let expected = expected.unwrap_or(agreement.version);
    if current.state == Lifecycle::Revoked {
        return Err(ApiError::Conflict(format!("agreement {id} is revoked")));
    }
    if agreement.state != current.state {
        return Err(ApiError::bad_request(format!(
            "state: the agreement is {}; change it with POST /api/v1/agreements/{id}/state",
            current.state
        )));
    }
    changed(&state, &caller, &current, agreement, expected, "update").await
}

/// Moves an agreement along its lifecycle (admin): draft → active ⇄ suspended → revoked.
pub async fn set_state(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<AgreementId>,
    ApiJson(body): ApiJson<StateBody>,
) -> Result<ApiJson<AgreementRecord>> {
    caller.require(Role::Admin)?;
    let current = stored(&state, &caller, &id).await?.agreement;
    let expected = body.version.unwrap_or(current.version);
    let mut next = current.clone();
    next.set_state(body.state)
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
    changed(&state, &caller, &current, next, expected, "state").await
}

/// The agreement as an ODRL 2.2 policy (JSON-LD).
pub async fn odrl(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<AgreementId>,
) -> Result<Response> {
    let record = stored(&state, &caller, &id).await?;
    let mut response = ApiJson(to_odrl(&record.agreement)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ld+json"),
    );
    Ok(response)
}

/// Gives a pseudonymising agreement a new key (admin): every pseudonym changes, so that its
/// grantee can no longer link new data to old.
pub async fn rotate_key(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<AgreementId>,
) -> Result<ApiJson<Rotated>> {
    caller.require(Role::Admin)?;
    let current = stored(&state, &caller, &id).await?.agreement;
    if !current.pseudonymise {
        return Err(ApiError::Conflict(format!(
            "agreement {id} does not pseudonymise: it has no key"
        )));
    }
    let key = random_key()?;
    let change = change_by(
        &caller,
        AuditKind::AgreementChange,
        "rotate_key",
        "agreement",
        id.as_str(),
    )
    .with_request(&serde_json::json!({ "id": id, "version": current.version }));
    let epoch = audited(state.store.as_ref(), &[change], async {
        Ok::<_, ApiError>(
            state
                .store
                .rotate_pseudonym_key(&caller.tenant, &id, &key, Timestamp::now())
                .await?,
        )
    })
    .await?;
    Ok(ApiJson(Rotated {
        agreement: id,
        epoch,
    }))
}

/// What the agreement's grantee would get for this `readings` query: the same governed
/// read, audited as a preview.
pub async fn preview_readings(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<AgreementId>,
    query: QueryParams,
) -> Result<Response> {
    let requester = previewer(&state, &caller, &id).await?;
    let mut read = readings_request(&state, &query, requester, caller.tenant, true)?;
    read.request.agreement = Some(id);
    serve_read(&state, read).await
}

/// What the agreement's grantee would get for this `aggregates` query.
pub async fn preview_aggregates(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(id): IdPath<AgreementId>,
    query: QueryParams,
) -> Result<Response> {
    let requester = previewer(&state, &caller, &id).await?;
    let mut read = aggregates_request(&state, &query, requester, caller.tenant, true)?;
    read.request.agreement = Some(id);
    serve_read(&state, read).await
}

/// The agreement's grantee as requester, the caller's token as actor.
async fn previewer(state: &ApiState, caller: &Caller, id: &AgreementId) -> Result<Requester> {
    let record = stored(state, caller, id).await?;
    Ok(Requester {
        grantee: record.agreement.grantee,
        actor: AuditActor::Token(caller.token_id.clone()),
    })
}

/// One of the caller's agreements, or 404.
async fn stored(state: &ApiState, caller: &Caller, id: &AgreementId) -> Result<AgreementRecord> {
    state
        .store
        .agreement(&caller.tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("agreement {id} not found")))
}

/// An agreement from a JSON body: `grantor` defaults to the caller's tenant (any other is
/// refused), absent members to `defaults`; `id`, when the path names one, must match it.
fn from_body(
    body: Value,
    caller: &Caller,
    path_id: Option<&AgreementId>,
    defaults: &[(&str, Value)],
) -> Result<Agreement> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let tenant = Value::from(caller.tenant.as_str());
    match map.get("grantor") {
        None => {
            map.insert("grantor".into(), tenant);
        }
        Some(grantor) if *grantor == tenant => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "grantor: an agreement can only share the caller's own tenant's data",
            ))
        }
    }
    if let Some(id) = path_id {
        match map.get("id") {
            None => {
                map.insert("id".into(), id.as_str().into());
            }
            Some(given) if given.as_str() == Some(id.as_str()) => {}
            Some(_) => return Err(ApiError::bad_request("id: must be the id of the path")),
        }
    }
    for (key, value) in defaults {
        map.entry(*key).or_insert_with(|| value.clone());
    }
    let agreement: Agreement = serde_json::from_value(Value::Object(map))
        .map_err(|e| ApiError::bad_request(format!("not an agreement: {e}")))?;
    agreement
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(agreement)
}

/// Refuses a grantee that does not exist or is the grantor itself.
async fn check_grantee(state: &ApiState, agreement: &Agreement) -> Result<()> {
    let exists = match &agreement.grantee {
        Grantee::Public => true,
        Grantee::Tenant(tenant) if *tenant == agreement.grantor => {
            return Err(ApiError::bad_request(
                "grantee: a tenant reads its own data without an agreement",
            ))
        }
        Grantee::Tenant(tenant) => state.store.tenant(tenant).await?.is_some(),
        Grantee::Partner(partner) => state.store.partner(partner).await?.is_some(),
    };
    if !exists {
        return Err(ApiError::bad_request(format!(
            "grantee: {} does not exist",
            agreement.grantee
        )));
    }
    Ok(())
}

/// Creates `agreement` (with a key if it pseudonymises), audited as `action`.
async fn created(
    state: &ApiState,
    caller: &Caller,
    mut agreement: Agreement,
    action: &'static str,
) -> Result<(StatusCode, ApiJson<AgreementRecord>)> {
    if !matches!(agreement.state, Lifecycle::Draft | Lifecycle::Active) {
        return Err(ApiError::bad_request(
            "state: a new agreement is a draft or active",
        ));
    }
    check_grantee(state, &agreement).await?;
    agreement.version = 1;
    let key = agreement.pseudonymise.then(random_key).transpose()?;
    let change = change_by(
        caller,
        AuditKind::AgreementChange,
        action,
        "agreement",
        agreement.id.as_str(),
    )
    .with_request(&change_detail(None, &agreement));
    let record = audited(state.store.as_ref(), &[change], async {
        Ok::<_, ApiError>(
            state
                .store
                .create_agreement(&agreement, key.as_ref(), Timestamp::now())
                .await?,
        )
    })
    .await?;
    state.agreements.invalidate().await;
    Ok((StatusCode::CREATED, ApiJson(record)))
}

/// Replaces `current` by `next` if it is still at `expected`, audited as `action`. A key is
/// added if `next` starts to pseudonymise.
async fn changed(
    state: &ApiState,
    caller: &Caller,
    current: &Agreement,
    mut next: Agreement,
    expected: u32,
    action: &'static str,
) -> Result<ApiJson<AgreementRecord>> {
    if next.state != Lifecycle::Revoked {
        check_grantee(state, &next).await?;
    }
    next.version = expected.saturating_add(1);
    let needs_key = next.pseudonymise
        && state
            .store
            .pseudonym_key(&caller.tenant, &next.id)
            .await?
            .is_none();
    let key = needs_key.then(random_key).transpose()?;
    let change = change_by(
        caller,
        AuditKind::AgreementChange,
        action,
        "agreement",
        next.id.as_str(),
    )
    .with_request(&change_detail(Some(current), &next));
    let record = audited(state.store.as_ref(), &[change], async {
        let now = Timestamp::now();
        let record = state.store.update_agreement(&next, expected, now).await?;
        if let Some(key) = &key {
            state
                .store
                .rotate_pseudonym_key(&caller.tenant, &next.id, key, now)
                .await?;
        }
        Ok::<_, ApiError>(record)
    })
    .await?;
    state.agreements.invalidate().await;
    Ok(ApiJson(record))
}

/// What an `agreement_change` entry records: versions, states, the new document's hash.
fn change_detail(current: Option<&Agreement>, next: &Agreement) -> BTreeMap<&'static str, Value> {
    let document = serde_json::to_vec(next).unwrap_or_default();
    let mut detail = BTreeMap::new();
    detail.insert("id", Value::from(next.id.as_str()));
    detail.insert("grantee", Value::from(next.grantee.to_string()));
    detail.insert("version", Value::from(next.version));
    detail.insert("new_state", Value::from(next.state.as_str()));
    detail.insert(
        "document_sha256",
        Value::from(Digest::of(&document).to_string()),
    );
    if let Some(current) = current {
        detail.insert("previous_version", Value::from(current.version));
        detail.insert("old_state", Value::from(current.state.as_str()));
    }
    detail
}

/// 32 bytes from the OS random source.
fn random_key() -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).map_err(|e| ApiError::Random(e.to_string()))?;
    Ok(key)
}
