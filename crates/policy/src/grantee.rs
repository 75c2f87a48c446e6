//! Who an agreement grants to, and who is asking: a tenant of this platform, a named partner,
//! or the public. Written `tenant:<id>`, `partner:<id>` or `public`.

use std::fmt;

use beffroi_protocol::TenantId;

use crate::error::{excerpt, Error, Result};
use crate::ids::PartnerId;

/// A grantee of an agreement, or the identity of a requester.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grantee {
    /// Anyone, authenticated or not.
    Public,
    /// A tenant of this platform.
    Tenant(TenantId),
    /// A partner known to the grantor.
    Partner(PartnerId),
}

impl Grantee {
    /// Whether an agreement granted to `self` applies to `requester`: `public` applies to
    /// everyone, a tenant or partner grant only to that tenant or partner.
    pub fn covers(&self, requester: &Grantee) -> bool {
        matches!(self, Grantee::Public) || self == requester
    }
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::Public => f.write_str("public"),
            Grantee::Tenant(id) => write!(f, "tenant:{id}"),
            Grantee::Partner(id) => write!(f, "partner:{id}"),
        }
    }
}

impl std::str::FromStr for Grantee {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        let invalid = || Error::InvalidGrantee(excerpt(text));
        if text == "public" {
            return Ok(Grantee::Public);
        }
        match text.split_once(':') {
            Some(("tenant", id)) => TenantId::new(id)
                .map(Grantee::Tenant)
                .map_err(|_| invalid()),
            Some(("partner", id)) => PartnerId::new(id)
                .map(Grantee::Partner)
                .map_err(|_| invalid()),
            _ => Err(invalid()),
        }
    }
}

impl serde::Serialize for Grantee {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Grantee {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_public_covers_everyone() {
        for text in ["public", "tenant:lyon", "partner:acme-lab"] {
            let grantee: Grantee = text.parse().unwrap();
            assert_eq!(grantee.to_string(), text);
            assert!(Grantee::Public.covers(&grantee));
        }
        for bad in ["", "tenant:", "partner:Acme", "city:lyon", "tenant:a:b"] {
            assert!(bad.parse::<Grantee>().is_err(), "{bad:?}");
        }
        let lyon: Grantee = "tenant:lyon".parse().unwrap();
        assert!(!lyon.covers(&Grantee::Public));
    }
}
