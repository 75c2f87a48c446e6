//! What [`decide()`](crate::decide()) answers: a [`Permit`] naming the one agreement that
//! justifies it, with the transforms to apply, or a [`Deny`] with a stable reason code and a
//! human message. Both go to the audit log as they are (they serialize).

use serde::Serialize;

use crate::agreement::{Agreement, AgreementRef};
use crate::grantee::Grantee;
use crate::transforms::Transforms;
use crate::vocabulary::vocabulary;

vocabulary!(
    /// Why a read was denied: a stable machine-readable code for the audit log and the API.
    /// Declared in rule order: when several candidates fail, the latest reason is reported.
    DenyReason, "deny reason" {
        /// No agreement of this grantor covers this requester (or not the named one).
        NoAgreement => "no_agreement",
        /// The agreement is a draft.
        Draft => "draft",
        /// The agreement is suspended.
        Suspended => "suspended",
        /// The agreement is revoked.
        Revoked => "revoked",
        /// The agreement breaks a rule of [`Agreement::validate`].
        InvalidAgreement => "invalid_agreement",
        /// `now` is outside `not_before <= now < not_after`.
        OutsideValidity => "outside_validity",
        /// The stated purpose is not allowed.
        WrongPurpose => "wrong_purpose",
        /// Raw rows asked under an aggregate-only agreement.
        ActionNotAllowed => "action_not_allowed",
        /// Nothing requested is in the agreement's target, or a filter is not allowed.
        Scope => "scope",
        /// The spatial level asked is finer than allowed.
        SpatialLevelNotAllowed => "spatial_level_not_allowed",
        /// The bucket grid is not a whole multiple of, or not aligned on, the minimum bucket.
        BucketNotAllowed => "bucket_not_allowed",
        /// An aggregate function outside the allow-list.
        FunctionNotAllowed => "function_not_allowed",
        /// A raw column outside the allow-list.
        FieldNotAllowed => "field_not_allowed",
        /// Nothing in the range is older than the embargo (or, for aggregates, no whole bucket).
        Embargo => "embargo",
        /// A prohibition matches.
        Prohibited => "prohibited",
        /// A concerning agreement carries a term this build does not understand.
        UnknownTerm => "unknown_term",
        /// The request itself is malformed.
        InvalidRequest => "invalid_request",
    }
);

/// The answer to an access request.
// One decision per query, matched at once: its size does not matter, an allocation would.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Serve, applying the transforms.
    Permit(Permit),
    /// Refuse.
    Deny(Deny),
}

/// A permitted read, justified by one agreement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Permit {
    /// The agreement (id and version) whose terms all hold.
    pub agreement: AgreementRef,
    /// Its grantee: the identity pseudonyms are keyed for (all `public` readers share one).
    pub grantee: Grantee,
    /// What the query layer must apply.
    pub transforms: Transforms,
}

/// A refused read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deny {
    /// Machine-readable reason.
    pub reason: DenyReason,
    /// Human explanation for the audit log and the client.
    pub message: String,
    /// The agreement the reason is about, if one.
    pub agreement: Option<AgreementRef>,
}

impl Decision {
    /// The permit, if permitted.
    pub fn permit(&self) -> Option<&Permit> {
        match self {
            Decision::Permit(permit) => Some(permit),
            Decision::Deny(_) => None,
        }
    }

    /// The denial reason, if denied.
    pub fn deny_reason(&self) -> Option<DenyReason> {
        match self {
            Decision::Permit(_) => None,
            Decision::Deny(deny) => Some(deny.reason),
        }
    }
}

pub(crate) fn deny(reason: DenyReason, message: String, agreement: Option<&Agreement>) -> Deny {
    Deny {
        reason,
        message,
        agreement: agreement.map(Agreement::reference),
    }
}
