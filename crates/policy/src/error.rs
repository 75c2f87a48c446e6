//! The crate's error type: one variant per way a value, an agreement, an ODRL document or a
//! cell table can be refused. Access decisions are not errors: a refused read is a
//! [`Deny`](crate::Deny), which the caller audits like a permit.

use beffroi_protocol::Timestamp;

use crate::state::State;
use crate::validate::TermError;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can be refused outside an access decision.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An identifier or a metric pattern does not follow its grammar.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidId {
        /// What it should have been (`agreement id`, `partner id`, `metric pattern`, …).
        kind: &'static str,
        /// The rejected text, truncated to 80 bytes.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A grantee is not `public`, `tenant:<id>` or `partner:<id>`.
    #[error("invalid grantee {0:?}: expected public, tenant:<id> or partner:<id>")]
    InvalidGrantee(String),
    /// A word is not in its controlled vocabulary (purpose, function, field, …).
    #[error("unknown {kind} {value:?}")]
    UnknownValue {
        /// Which vocabulary.
        kind: &'static str,
        /// The rejected word, truncated to 80 bytes.
        value: String,
    },
    /// An agreement breaks one or more rules; every problem is listed with its path.
    #[error("invalid agreement: {}", list(.0))]
    InvalidAgreement(Vec<TermError>),
    /// A state change the agreement lifecycle does not allow.
    #[error("an agreement cannot go from {from} to {to}")]
    Transition {
        /// The current state.
        from: State,
        /// The refused next state.
        to: State,
    },
    /// An ODRL document cannot be imported.
    #[error("ODRL {path}: {reason}")]
    Odrl {
        /// Where in the document (`permission[0].constraint[3].leftOperand`).
        path: String,
        /// What is wrong there.
        reason: String,
    },
    /// A cell table handed to the suppression does not follow its contract.
    #[error("cell table, bucket {bucket}: {reason}")]
    CellTable {
        /// The fine bucket of the offending cell.
        bucket: Timestamp,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Error {
    /// The problems of an [`Error::InvalidAgreement`]; empty for every other variant.
    pub fn term_errors(&self) -> &[TermError] {
        match self {
            Error::InvalidAgreement(errors) => errors,
            _ => &[],
        }
    }
}

fn list(errors: &[TermError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Untrusted text cut to its first 80 characters, for error messages.
pub(crate) fn excerpt(text: &str) -> String {
    text.chars().take(80).collect()
}
