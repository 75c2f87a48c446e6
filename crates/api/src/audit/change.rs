//! Changes of configuration (alarm rules, tokens, gateways, certificates, sensors, zones)
//! recorded in the audit log before they are applied.
//!
//! [`audited`] writes one entry per [`Change`], then applies the change:
//! - if the entries cannot be written, the change is not applied ([`Audited::Unavailable`];
//!   the API answers 503);
//! - if the change then fails, a second entry per change records the failure, pointing at the
//!   first (best effort: if it cannot be written either, that is logged).
//!
//! So the log holds every change that may have been applied; a change without its `failed`
//! twin was applied. The detail of a change entry:
//!
//! ```text
//! {"action":"create","id":"rule-1a2b","object":"alarm_rule","outcome":"requested",
//!  "request":{…what was asked, never a secret…}}
//! {"action":"create","error":"alarm rule rule-1a2b already exists","id":"rule-1a2b",
//!  "object":"alarm_rule","outcome":"failed","requested_seq":41}
//! ```
//!
//! `error` says why for a refusal the caller could see anyway (not found, already exists,
//! conflict, invalid); for a server fault only `internal error`, the cause being in the log.

use std::future::Future;

use beffroi_audit::{AuditActor, AuditKind, Detail, NewAuditEntry};
use beffroi_protocol::{TenantId, Timestamp};
use beffroi_store::Store;
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;

/// One change to record: who does what to which object of which tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    tenant: TenantId,
    actor: AuditActor,
    kind: AuditKind,
    action: &'static str,
    object: &'static str,
    id: String,
    request: Option<Value>,
}

impl Change {
    /// `actor` does `action` (`create`, `update`, `delete`, `upsert`, `register`, `revoke`,
    /// `issue`…) to the `object` (`alarm_rule`, `token`, `gateway`, `certificate`, `sensor`,
    /// `zone`…) with this `id`, in `tenant`.
    pub fn new(
        tenant: TenantId,
        actor: AuditActor,
        kind: AuditKind,
        action: &'static str,
        object: &'static str,
        id: impl Into<String>,
    ) -> Self {
        Self {
            tenant,
            actor,
            kind,
            action,
            object,
            id: id.into(),
            request: None,
        }
    }

    /// Adds what was asked (the new state of the object). Never pass a secret.
    pub fn with_request<T: Serialize + ?Sized>(mut self, request: &T) -> Self {
        self.request = Some(
            serde_json::to_value(request)
                .unwrap_or_else(|e| Value::String(format!("(request not serializable: {e})"))),
        );
        self
    }

    /// The entry recording the request.
    fn requested(&self, time: Timestamp) -> NewAuditEntry {
        let mut detail = self.common("requested");
        if let Some(request) = &self.request {
            detail.insert("request".into(), request.clone());
        }
        self.entry(time, detail)
    }

    /// The entry recording that the request written at `requested_seq` failed.
    fn failed(&self, time: Timestamp, requested_seq: u64, error: &str) -> NewAuditEntry {
        let mut detail = self.common("failed");
        detail.insert("requested_seq".into(), requested_seq.into());
        detail.insert("error".into(), error.into());
        self.entry(time, detail)
    }

    fn common(&self, outcome: &str) -> Detail {
        let mut detail = Detail::new();
        detail.insert("action".into(), self.action.into());
        detail.insert("object".into(), self.object.into());
        detail.insert("id".into(), self.id.clone().into());
        detail.insert("outcome".into(), outcome.into());
        detail
    }

    fn entry(&self, time: Timestamp, detail: Detail) -> NewAuditEntry {
        NewAuditEntry {
            tenant: self.tenant.clone(),
            time,
            actor: self.actor.clone(),
            kind: self.kind,
            detail,
        }
    }
}

/// Why an audited change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Audited<E> {
    /// The audit entries could not be written: the change was not applied.
    #[error("audit log unavailable, the change was not applied: {0}")]
    Unavailable(beffroi_store::Error),
    /// The change was recorded, then failed (the failure is recorded too).
    #[error(transparent)]
    Failed(E),
}

/// What a failed change's audit entry says about the failure: the reason when the caller
/// could see it anyway (not found, already exists, conflict, invalid), else `internal error`
/// (the log has the cause; the audit log is readable by the tenant's admins).
pub trait ChangeFailure {
    /// The reason to record.
    fn summary(&self) -> String;
}

/// What every failure that is not the caller's says.
const INTERNAL: &str = "internal error";

impl ChangeFailure for beffroi_store::Error {
    fn summary(&self) -> String {
        use beffroi_store::Error;
        match self {
            Error::NotFound { .. }
            | Error::AlreadyExists { .. }
            | Error::Conflict { .. }
            | Error::Invalid { .. } => self.to_string(),
            _ => INTERNAL.to_owned(),
        }
    }
}

impl ChangeFailure for ApiError {
    fn summary(&self) -> String {
        match self {
            ApiError::Store(error) => error.summary(),
            _ if self.status().is_client_error() => self.to_string(),
            _ => INTERNAL.to_owned(),
        }
    }
}

impl From<Audited<ApiError>> for ApiError {
    fn from(error: Audited<ApiError>) -> Self {
        match error {
            Audited::Unavailable(cause) => ApiError::AuditUnavailable(cause.to_string()),
            Audited::Failed(error) => error,
        }
    }
}

/// Records `changes` (in one transaction), then runs `apply` (not polled before), then, if it
/// failed, records the failure of each change. See the module docs.
pub async fn audited<T, E, F>(
    store: &dyn Store,
    changes: &[Change],
    apply: F,
) -> Result<T, Audited<E>>
where
    F: Future<Output = Result<T, E>>,
    E: ChangeFailure,
{
    let now = Timestamp::now();
    let requested: Vec<NewAuditEntry> = changes.iter().map(|c| c.requested(now)).collect();
    let written = store
        .append_audit(&requested)
        .await
        .map_err(Audited::Unavailable)?;
    let error = match apply.await {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let summary = error.summary();
    let now = Timestamp::now();
    let failed: Vec<NewAuditEntry> = changes
        .iter()
        .zip(&written)
        .map(|(change, entry)| change.failed(now, entry.seq, &summary))
        .collect();
    if let Err(cause) = store.append_audit(&failed).await {
        tracing::error!(error = %cause, "cannot record the failure of an audited change");
    }
    Err(Audited::Failed(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_say_what_and_how_it_ended() {
        let tenant = TenantId::new("lyon").expect("valid id");
        let change = Change::new(
            tenant,
            AuditActor::Token("t-1".into()),
            AuditKind::RuleChange,
            "create",
            "alarm_rule",
            "r-1",
        )
        .with_request(&serde_json::json!({"name": "PM2.5"}));
        let requested = change.requested(Timestamp::from_unix_micros(1));
        assert_eq!(
            beffroi_audit::canonical_detail(&requested.detail),
            r#"{"action":"create","id":"r-1","object":"alarm_rule","outcome":"requested","request":{"name":"PM2.5"}}"#
        );
        let failed = change.failed(Timestamp::from_unix_micros(2), 7, "boom");
        assert_eq!(
            beffroi_audit::canonical_detail(&failed.detail),
            r#"{"action":"create","error":"boom","id":"r-1","object":"alarm_rule","outcome":"failed","requested_seq":7}"#
        );
    }

    #[test]
    fn server_faults_are_not_detailed() {
        let hidden = beffroi_store::Error::Unsupported("secret".into());
        assert_eq!(hidden.summary(), INTERNAL);
        let shown = beffroi_store::Error::NotFound {
            what: "alarm rule",
            id: "r-1".into(),
        };
        assert_eq!(ApiError::Store(shown).summary(), "alarm rule r-1 not found");
        assert_eq!(
            ApiError::bad_request("name: empty").summary(),
            "name: empty"
        );
        assert_eq!(ApiError::Random("x".into()).summary(), INTERNAL);
    }
}
