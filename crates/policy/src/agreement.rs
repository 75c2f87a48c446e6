//! The native sharing agreement: one grantor, one grantee, one permission with all its terms,
//! and the prohibitions that win over any permission. Stored as JSON (this serde shape) and
//! exportable as ODRL 2.2 ([`crate::to_odrl`]).
//!
//! # Unknown terms
//! JSON keys this build does not know, at any level (agreement, target, prohibition), are not
//! an error when reading: they are kept in `unknown_terms` (and unknown words of a term list
//! in [`TermSet::unrecognised`]), so an agreement written by a newer version is carried
//! intact. It is never valid ([`Agreement::validate`]) and never used ([`crate::decide()`]):
//! fail closed. Single-word terms (action, state, spatial level) and malformed values do not
//! parse at all, which is also closed: there is no agreement to use.
//!
//! The pseudonym key is not part of the agreement: see [`crate::PseudonymKey`].

use std::collections::BTreeMap;

use beffroi_protocol::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::grantee::Grantee;
use crate::ids::AgreementId;
use crate::purpose::Purpose;
use crate::state::State;
use crate::target::Target;
use crate::terms::{Action, Field, Function, SpatialLevel};
use crate::vocabulary::TermSet;

/// JSON keys a reader did not recognise, kept verbatim: their presence makes the agreement
/// invalid and unusable.
pub type UnknownTerms = BTreeMap<String, serde_json::Value>;

/// A sharing agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Its id, unique within the grantor.
    pub id: AgreementId,
    /// Bumped on every change (terms or state); a permit names the version it relied on.
    pub version: u32,
    /// The tenant whose data is shared.
    pub grantor: TenantId,
    /// Who may read.
    pub grantee: Grantee,
    /// Lifecycle state.
    pub state: State,
    /// Permits from this instant (inclusive, UTC).
    pub not_before: Timestamp,
    /// Permits until this instant (exclusive, UTC).
    pub not_after: Timestamp,
    /// The purposes a request may state.
    pub purposes: TermSet<Purpose>,
    /// What may be done.
    pub action: Action,
    /// Which readings.
    pub target: Target,
    /// The finest aggregate bucket, in seconds: requested buckets are whole multiples of it,
    /// aligned on it from the Unix epoch. Required for `read_aggregate`; optional for
    /// `read_raw` (then any whole-second bucket may be aggregated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_bucket_s: Option<u32>,
    /// Aggregate functions allowed.
    pub functions: TermSet<Function>,
    /// Minimum number of distinct sensors behind a published cell (≥ 1; 1 for raw).
    pub k: u32,
    /// The finest spatial unit served (`sensor` for raw).
    pub spatial_level: SpatialLevel,
    /// Whether sensor ids are replaced by per-agreement pseudonyms.
    pub pseudonymise: bool,
    /// Columns of raw rows allowed (`read_raw` only).
    #[serde(default, skip_serializing_if = "TermSet::is_empty")]
    pub fields: TermSet<Field>,
    /// Data newer than `now − embargo_s` is never served.
    pub embargo_s: u64,
    /// What stays forbidden whatever any agreement permits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prohibitions: Vec<Prohibition>,
    /// A pooling agreement: the grantor operates a sensor network and the grantee (a tenant,
    /// the beneficiary) uses the sensors its target selects as if they were its own. Only
    /// readings measured inside the validity window are served (the share is per period),
    /// and the target may select sensors by the beneficiary's own zones
    /// ([`Target::territories`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pooling: bool,
    /// Keys this build does not know.
    #[serde(flatten)]
    pub unknown_terms: UnknownTerms,
}

/// A forbidden action on a slice of the grantor's data: while its agreement is `active` or
/// `suspended`, no request of the same grantee that may touch the slice with an action that
/// includes `action` is permitted, by any agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prohibition {
    /// The forbidden action (`read_aggregate` forbids raw rows too).
    pub action: Action,
    /// The forbidden slice, by metric, zone or sensor (tags are refused: see
    /// [`Agreement::validate`]).
    pub target: Target,
    /// Keys this build does not know.
    #[serde(flatten)]
    pub unknown_terms: UnknownTerms,
}

/// An agreement at one version, as named by decisions and audit records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AgreementRef {
    /// The agreement.
    pub id: AgreementId,
    /// Its version.
    pub version: u32,
}

impl Agreement {
    /// The id and version.
    pub fn reference(&self) -> AgreementRef {
        AgreementRef {
            id: self.id.clone(),
            version: self.version,
        }
    }

    /// Whether `now` is inside the validity window: `not_before <= now < not_after`.
    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        self.not_before <= now && now < self.not_after
    }

    /// Moves to `next` if the lifecycle allows it, bumping the version.
    pub fn set_state(&mut self, next: State) -> Result<()> {
        if !self.state.can_become(next) {
            return Err(Error::Transition {
                from: self.state,
                to: next,
            });
        }
        self.state = next;
        self.version = self.version.saturating_add(1);
        Ok(())
    }

    /// Whether anything in it was not understood by this build (cheap; see
    /// [`Agreement::validate`] for the list).
    pub fn has_unknown_terms(&self) -> bool {
        !self.unknown_terms.is_empty()
            || !self.target.unknown_terms.is_empty()
            || !self.purposes.unrecognised().is_empty()
            || !self.functions.unrecognised().is_empty()
            || !self.fields.unrecognised().is_empty()
            || self
                .prohibitions
                .iter()
                .any(|p| !p.unknown_terms.is_empty() || !p.target.unknown_terms.is_empty())
    }
}
