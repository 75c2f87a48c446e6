//! Beffroi tamper-evident audit log: a per-tenant, append-only hash chain with checkpoints
//! signed by the platform key, and the verifier that checks it offline.
//!
//! Every data access decision (permit or deny) and every change of configuration, enrollment
//! or revocation becomes an [`AuditEntry`] in its tenant's chain. This crate is pure: it
//! computes hashes, signs and verifies; the store persists entries and checkpoints, the
//! platform writes entries before data leaves (and fails the read closed when it cannot).
//! No IO, no async runtime, no SQL.
//!
//! # The chain
//!
//! Each tenant has its own chain; seqs start at 1 and have no gaps. Entry `i` links to the
//! entry before it:
//!
//! ```text
//! hash_i = SHA-256( "beffroi/audit/entry/v1" 0x00 ‖ hash_{i-1} ‖ canonical(entry_i) )
//! hash_0 = 32 zero bytes (genesis; the tenant is inside every entry, so chains of two
//!          tenants cannot be spliced together)
//! ```
//!
//! `canonical(entry)` is the JSON object below in the canonical form of RFC 8785 (JCS):
//! members sorted by their names' UTF-16 code units, no whitespace, strings escaped only where
//! JSON requires it (`\"`, `\\`, `\b \f \n \r \t`, other control characters as lowercase
//! `\u00xx`), integers in decimal. Beffroi writes integers only; a float in a detail is
//! written in its shortest round-trip form (as `serde_json` does), which is where this
//! encoding may differ from JCS.
//!
//! ```text
//! {"actor":"token:t-42","detail":{…},"kind":"access_permit","seq":7,"tenant":"lyon",
//!  "time":1767225600000000}
//! ```
//!
//! `actor` is the text form of [`AuditActor`] (`token:`, `user:`, `system:`, `gateway:` and
//! an id, or `public` for an anonymous reader), `kind` an [`AuditKind`], `time` integer microseconds since the Unix epoch (UTC),
//! `detail` a JSON object ([`AccessDetail`] for accesses, [`PurgeDetail`] for purges, any
//! object for configuration changes).
//!
//! # Checkpoints
//!
//! The platform periodically signs each tenant's head with its Ed25519 key (RFC 8032, pure
//! Ed25519, verified strictly):
//!
//! ```text
//! signed message = "beffroi/audit/checkpoint/v1" 0x00 ‖ canonical(
//!     {"head":"<64 lowercase hex>","seq":n,"tenant":"lyon","time":<µs>})
//! ```
//!
//! A chain alone is only self-consistent: whoever can write the database can rewrite an entry
//! and every hash after it. A signed checkpoint pins the head at its seq, so that rewriting,
//! removing, reordering or cutting anything at or below it is detected by [`verify`]; entries
//! after the last checkpoint are reported as not yet checkpointed.

mod access;
mod actor;
mod canonical;
mod chain;
mod checkpoint;
mod digest;
mod entry;
mod error;
mod kind;
mod report;
mod verify;

pub use access::{
    AccessDetail, AccessGroup, AccessStats, AccessSummary, AgreementRef, Channel, PurgeDetail,
};
pub use actor::AuditActor;
pub use chain::{AuditHead, Chain};
pub use checkpoint::{sign_checkpoint, verify_checkpoint, Checkpoint};
pub use digest::Digest;
pub use entry::{canonical_detail, canonical_json, detail_of, AuditEntry, Detail, NewAuditEntry};
pub use error::{Error, Result};
pub use kind::AuditKind;
pub use report::{Problem, SeqRange, VerifyReport, MAX_PROBLEMS};
pub use verify::{verify, Verifier};
