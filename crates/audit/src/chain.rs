//! Extending a tenant's chain: the head, and sealing new entries onto it.

use beffroi_protocol::TenantId;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::canonical::{self, EntryContent};
use crate::{AuditEntry, Digest, Error, NewAuditEntry, Result};

/// Domain separation of entry hashes (followed by a zero byte).
const ENTRY_TAG: &[u8] = b"beffroi/audit/entry/v1\0";

/// The end of a chain: the seq and hash of its last entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuditHead {
    /// Seq of the last entry; 0 for an empty chain.
    pub seq: u64,
    /// Hash of the last entry; [`Digest::ZERO`] for an empty chain.
    pub hash: Digest,
}

impl AuditHead {
    /// The head of an empty chain.
    pub const GENESIS: AuditHead = AuditHead {
        seq: 0,
        hash: Digest::ZERO,
    };
}

/// A tenant's chain being extended: seals entries one after the other onto its head.
#[derive(Debug, Clone)]
pub struct Chain {
    tenant: TenantId,
    head: AuditHead,
}

impl Chain {
    /// Continues `tenant`'s chain from `head` (the stored head; [`AuditHead::GENESIS`] when it
    /// has no entry yet).
    pub fn resume(tenant: TenantId, head: AuditHead) -> Self {
        Self { tenant, head }
    }

    /// The current head.
    pub fn head(&self) -> AuditHead {
        self.head
    }

    /// Gives `entry` the next seq, links it to the head and moves the head onto it.
    /// Fails if the entry belongs to another tenant, or if no seq is left.
    pub fn append(&mut self, entry: &NewAuditEntry) -> Result<AuditEntry> {
        if entry.tenant != self.tenant {
            return Err(Error::ForeignTenant {
                chain: self.tenant.clone(),
                entry: entry.tenant.clone(),
            });
        }
        let seq = self
            .head
            .seq
            .checked_add(1)
            .ok_or_else(|| Error::SeqExhausted(self.tenant.clone()))?;
        let prev_hash = self.head.hash;
        let hash = entry_hash(&prev_hash, &entry.content(seq));
        self.head = AuditHead { seq, hash };
        Ok(AuditEntry {
            tenant: entry.tenant.clone(),
            seq,
            time: entry.time,
            actor: entry.actor.clone(),
            kind: entry.kind,
            detail: entry.detail.clone(),
            prev_hash,
            hash,
        })
    }
}

/// `SHA-256(ENTRY_TAG ‖ prev ‖ canonical(content))`.
pub(crate) fn entry_hash(prev: &Digest, content: &EntryContent<'_>) -> Digest {
    let mut sha = Sha256::new();
    sha.update(ENTRY_TAG);
    sha.update(prev.as_bytes());
    canonical::entry(&mut sha, content);
    Digest::new(sha.finalize().into())
}
