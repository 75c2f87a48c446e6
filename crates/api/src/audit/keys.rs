//! The platform's audit public keys: the one that signs new checkpoints and the retired ones
//! that signed older checkpoints, which stay trusted so that a key rotation keeps the whole
//! log verifiable.

use beffroi_protocol::{key_id_for, KeyId, VerifyingKey};

/// The public keys a verification of the audit log trusts. Only public halves: whoever
/// holds an `AuditKeys` can verify checkpoints, not sign them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditKeys {
    current: VerifyingKey,
    retired: Vec<VerifyingKey>,
}

impl AuditKeys {
    /// The current key and the retired ones (a retired key equal to the current one, or
    /// given twice, is kept once).
    pub fn new(current: VerifyingKey, retired: impl IntoIterator<Item = VerifyingKey>) -> Self {
        let mut kept: Vec<VerifyingKey> = Vec::new();
        for key in retired {
            if key != current && !kept.contains(&key) {
                kept.push(key);
            }
        }
        Self {
            current,
            retired: kept,
        }
    }

    /// The key new checkpoints are signed with.
    pub fn current(&self) -> &VerifyingKey {
        &self.current
    }

    /// The current key's id (`beffroi_protocol::key_id_for`).
    pub fn current_id(&self) -> KeyId {
        key_id_for(&self.current)
    }

    /// Keys that signed earlier checkpoints, most recently retired first.
    pub fn retired(&self) -> &[VerifyingKey] {
        &self.retired
    }

    /// Every trusted key, the current one first.
    pub fn all(&self) -> Vec<VerifyingKey> {
        std::iter::once(self.current)
            .chain(self.retired.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beffroi_protocol::SigningKey;

    #[test]
    fn current_first_and_no_duplicates() {
        let a = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let b = SigningKey::from_bytes(&[2; 32]).verifying_key();
        let keys = AuditKeys::new(a, [b, a, b]);
        assert_eq!(keys.all(), vec![a, b]);
        assert_eq!(keys.current_id(), key_id_for(&a));
    }
}
