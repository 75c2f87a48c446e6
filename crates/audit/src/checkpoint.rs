//! Checkpoints: a tenant's head at a seq, signed with the platform's Ed25519 key.

use beffroi_protocol::{key_id_for, KeyId, TenantId, Timestamp};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::canonical;
use crate::digest::hex_bytes;
use crate::{AuditHead, Digest, Error, Result};

/// Domain separation of checkpoint signatures (followed by a zero byte).
const CHECKPOINT_TAG: &str = "beffroi/audit/checkpoint/v1\0";

/// A signed statement that `tenant`'s chain had `head` as the hash of its entry `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The tenant.
    pub tenant: TenantId,
    /// The seq of the head entry.
    pub seq: u64,
    /// The hash of that entry.
    pub head: Digest,
    /// When it was signed.
    pub time: Timestamp,
    /// The id of the signing key ([`key_id_for`] its public key); not itself signed, it only
    /// says which trusted key to check the signature with.
    pub key_id: KeyId,
    /// Ed25519 signature of the checkpoint message (see the crate docs).
    #[serde(with = "hex_bytes")]
    pub signature: [u8; 64],
}

/// Signs `tenant`'s `head` at `time` with the platform key.
pub fn sign_checkpoint(
    key: &SigningKey,
    tenant: &TenantId,
    head: AuditHead,
    time: Timestamp,
) -> Checkpoint {
    let message = message(tenant, head.seq, &head.hash, time);
    Checkpoint {
        tenant: tenant.clone(),
        seq: head.seq,
        head: head.hash,
        time,
        key_id: key_id_for(&key.verifying_key()),
        signature: key.sign(message.as_bytes()).to_bytes(),
    }
}

/// Checks that `checkpoint` names `key` and carries its valid signature (strict Ed25519).
pub fn verify_checkpoint(checkpoint: &Checkpoint, key: &VerifyingKey) -> Result<()> {
    let expected = key_id_for(key);
    if checkpoint.key_id != expected {
        return Err(Error::CheckpointKey {
            expected,
            found: checkpoint.key_id.clone(),
        });
    }
    let message = message(
        &checkpoint.tenant,
        checkpoint.seq,
        &checkpoint.head,
        checkpoint.time,
    );
    key.verify_strict(
        message.as_bytes(),
        &Signature::from_bytes(&checkpoint.signature),
    )
    .map_err(|_| Error::CheckpointSignature {
        seq: checkpoint.seq,
    })
}

/// The signed message: the tag, then the canonical `{"head","seq","tenant","time"}`.
fn message(tenant: &TenantId, seq: u64, head: &Digest, time: Timestamp) -> String {
    let mut out = String::from(CHECKPOINT_TAG);
    canonical::checkpoint(&mut out, tenant, seq, head, time);
    out
}
