//! The audit crate's error type.

use beffroi_protocol::{KeyId, TenantId};

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why building, chaining or checking an audit record failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An entry's detail is not a JSON object.
    #[error("an audit detail must be a JSON object, not {found}")]
    DetailNotObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// An entry's detail could not be serialized to JSON.
    #[error("audit detail: {0}")]
    Detail(#[from] serde_json::Error),
    /// An entry was appended to the chain of another tenant.
    #[error("an entry of tenant {entry} cannot join the audit chain of tenant {chain}")]
    ForeignTenant {
        /// The chain's tenant.
        chain: TenantId,
        /// The entry's tenant.
        entry: TenantId,
    },
    /// The chain has reached the largest seq.
    #[error("the audit chain of tenant {0} has no seq left")]
    SeqExhausted(TenantId),
    /// Text that is not an audit actor (`token:…`, `user:…`, `system:…`, `gateway:…`).
    #[error("invalid audit actor {0:?}")]
    InvalidActor(String),
    /// Text that names no audit kind.
    #[error("unknown audit kind {0:?}")]
    UnknownKind(String),
    /// Text that is not 32 bytes in hex.
    #[error("invalid SHA-256 digest {0:?}: expected 64 hex digits")]
    InvalidDigest(String),
    /// A checkpoint was signed by another key than the one it is checked with.
    #[error("checkpoint signed by key {found}, not by {expected}")]
    CheckpointKey {
        /// The id of the key it is checked with.
        expected: KeyId,
        /// The key id the checkpoint names.
        found: KeyId,
    },
    /// A checkpoint's signature does not verify.
    #[error("the signature of the checkpoint at seq {seq} does not verify")]
    CheckpointSignature {
        /// The checkpoint's seq.
        seq: u64,
    },
}
