//! What an audit entry records.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// What an audit entry records. Its text form (`access_permit`…) is what is hashed and
/// stored; it never changes for an existing kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A read was permitted (detail: [`crate::AccessDetail`]).
    AccessPermit,
    /// A read was denied (detail: [`crate::AccessDetail`] with a reason).
    AccessDeny,
    /// A sharing agreement was created, changed, suspended or revoked.
    AgreementChange,
    /// An alarm rule was created, changed or deleted.
    RuleChange,
    /// An API token was created or revoked.
    TokenChange,
    /// A gateway was enrolled, changed or revoked.
    GatewayChange,
    /// A certificate was issued, renewed or revoked.
    CertificateChange,
    /// Sensors or zones were changed (registry import, edits).
    RegistryChange,
    /// A retention setting was changed.
    RetentionChange,
    /// Data was purged (detail: [`crate::PurgeDetail`]), by retention or by hand.
    Purge,
    /// A tenant's state was exported.
    Export,
    /// A tenant's state was imported.
    Import,
}

impl AuditKind {
    /// Every kind, in declaration order.
    pub const ALL: [AuditKind; 12] = [
        AuditKind::AccessPermit,
        AuditKind::AccessDeny,
        AuditKind::AgreementChange,
        AuditKind::RuleChange,
        AuditKind::TokenChange,
        AuditKind::GatewayChange,
        AuditKind::CertificateChange,
        AuditKind::RegistryChange,
        AuditKind::RetentionChange,
        AuditKind::Purge,
        AuditKind::Export,
        AuditKind::Import,
    ];

    /// The stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::AccessPermit => "access_permit",
            AuditKind::AccessDeny => "access_deny",
            AuditKind::AgreementChange => "agreement_change",
            AuditKind::RuleChange => "rule_change",
            AuditKind::TokenChange => "token_change",
            AuditKind::GatewayChange => "gateway_change",
            AuditKind::CertificateChange => "certificate_change",
            AuditKind::RegistryChange => "registry_change",
            AuditKind::RetentionChange => "retention_change",
            AuditKind::Purge => "purge",
            AuditKind::Export => "export",
            AuditKind::Import => "import",
        }
    }

    /// Whether the entry records a data access decision.
    pub fn is_access(self) -> bool {
        matches!(self, AuditKind::AccessPermit | AuditKind::AccessDeny)
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        AuditKind::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| Error::UnknownKind(text.chars().take(80).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_agree() {
        for kind in AuditKind::ALL {
            let json = serde_json::to_value(kind).ok();
            assert_eq!(json, Some(serde_json::Value::from(kind.as_str())));
            assert_eq!(kind.as_str().parse::<AuditKind>().ok(), Some(kind));
        }
        assert!("access".parse::<AuditKind>().is_err());
    }
}
