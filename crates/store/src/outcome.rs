//! What a statement's outcome means for the caller, shared by both backends: a row that had
//! to exist, a referenced tenant, a duplicate key, an alarm in the wrong state (with the
//! state and columns an alarm change sets, the same on both backends).

use beffroi_protocol::{GatewayId, TenantId};

use crate::decode::{is_foreign_key_violation, is_unique_violation};
use crate::{AlarmRule, AlarmState, Error, Result, RuleId, TokenRecord, TokenScope};

/// Fails with [`Error::NotFound`] unless an update touched the gateway's row.
pub(crate) fn gateway_found(rows_affected: u64, gateway: &GatewayId) -> Result<()> {
    if rows_affected == 0 {
        return Err(Error::NotFound {
            what: "gateway",
            id: gateway.to_string(),
        });
    }
    Ok(())
}

/// Fails with [`Error::AlreadyExists`] unless an insert that does nothing on a conflict
/// created the tenant's row.
pub(crate) fn tenant_created(rows_affected: u64, tenant: &TenantId) -> Result<()> {
    if rows_affected == 0 {
        return Err(Error::AlreadyExists {
            what: "tenant",
            id: tenant.to_string(),
        });
    }
    Ok(())
}

/// Fails with [`Error::NotFound`] unless the tenant lookup found a row.
pub(crate) fn tenant_found<T>(row: Option<T>, tenant: &TenantId) -> Result<()> {
    match row {
        Some(_) => Ok(()),
        None => Err(Error::NotFound {
            what: "tenant",
            id: tenant.to_string(),
        }),
    }
}

/// The outcome of inserting `token`: a taken id is [`Error::AlreadyExists`], an unknown
/// tenant or partner [`Error::NotFound`].
pub(crate) fn token_inserted<T>(done: Result<T, sqlx::Error>, token: &TokenRecord) -> Result<()> {
    match done {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(Error::AlreadyExists {
            what: "token",
            id: token.id.clone(),
        }),
        Err(e) => match &token.scope {
            TokenScope::Tenant { tenant, .. } => tenant_referenced(Err(e), tenant),
            TokenScope::Partner { partner } if is_foreign_key_violation(&e) => {
                Err(Error::NotFound {
                    what: "partner",
                    id: partner.to_string(),
                })
            }
            TokenScope::Platform | TokenScope::Partner { .. } => Err(e.into()),
        },
    }
}

/// The outcome of a statement that references `tenant`: a foreign-key violation means the
/// tenant does not exist ([`Error::NotFound`]).
pub(crate) fn tenant_referenced<T>(done: Result<T, sqlx::Error>, tenant: &TenantId) -> Result<T> {
    done.map_err(|e| {
        if is_foreign_key_violation(&e) {
            Error::NotFound {
                what: "tenant",
                id: tenant.to_string(),
            }
        } else {
            e.into()
        }
    })
}

/// The outcome of inserting `rule`: a taken id is [`Error::AlreadyExists`], an unknown tenant
/// [`Error::NotFound`].
pub(crate) fn rule_inserted<T>(done: Result<T, sqlx::Error>, rule: &AlarmRule) -> Result<()> {
    match done {
        Err(e) if is_unique_violation(&e) => Err(Error::AlreadyExists {
            what: "alarm rule",
            id: rule.id.to_string(),
        }),
        done => tenant_referenced(done, &rule.tenant).map(drop),
    }
}

/// Fails with [`Error::NotFound`] unless a statement touched the rule's row.
pub(crate) fn rule_found(rows_affected: u64, rule: &RuleId) -> Result<()> {
    if rows_affected == 0 {
        return Err(Error::NotFound {
            what: "alarm rule",
            id: rule.to_string(),
        });
    }
    Ok(())
}

/// A change made by hand to an alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlarmChange {
    /// Open → acknowledged.
    Acknowledge,
    /// Open or acknowledged → cleared.
    Clear,
}

impl AlarmChange {
    /// The state the change leads to.
    pub(crate) fn state(self) -> &'static str {
        match self {
            AlarmChange::Acknowledge => AlarmState::Acknowledged.as_str(),
            AlarmChange::Clear => AlarmState::Cleared.as_str(),
        }
    }

    /// The prefix of the `alarms` columns that record it (`{prefix}_at`, `{prefix}_by_token`,
    /// `{prefix}_by_name`, `{prefix}_comment`).
    pub(crate) fn columns(self) -> &'static str {
        match self {
            AlarmChange::Acknowledge => "acknowledged",
            AlarmChange::Clear => "cleared",
        }
    }

    /// SQL condition on `state` for the rows the change applies to.
    pub(crate) fn applies_to(self) -> &'static str {
        match self {
            AlarmChange::Acknowledge => "state = 'open'",
            AlarmChange::Clear => "state <> 'cleared'",
        }
    }
}

/// Why `change` did not apply to alarm `id`, found in `current` state afterwards (`None`: the
/// tenant has no such alarm, [`Error::NotFound`]; otherwise [`Error::Conflict`]). States only
/// move forward, so a state read after the refused update explains the refusal.
pub(crate) fn alarm_unchanged(id: i64, current: Option<AlarmState>, change: AlarmChange) -> Error {
    match current {
        None => Error::NotFound {
            what: "alarm",
            id: id.to_string(),
        },
        Some(state) => Error::Conflict {
            what: "alarm",
            id: id.to_string(),
            reason: match change {
                AlarmChange::Acknowledge => {
                    format!(
                        "only an open alarm can be acknowledged; it is {}",
                        state.as_str()
                    )
                }
                AlarmChange::Clear => "it is already cleared".to_owned(),
            },
        },
    }
}
