//! Identifiers owned by the policy engine: agreements, partners and sensor tags. They follow
//! the slug grammar of every Beffroi id (`[a-z0-9][a-z0-9-]{0,62}`, checked by
//! [`beffroi_protocol`] so the grammar has one definition). Zones reuse the sensor id type,
//! as in the store.

use std::fmt;

use beffroi_protocol::SensorId;

use crate::error::{excerpt, Error, Result};

/// A zone of a tenant; the same type as the store's zone id.
pub type ZoneId = SensorId;

/// Checks the slug grammar, reporting errors under this crate's `kind`.
fn check_slug(kind: &'static str, value: &str) -> Result<()> {
    SensorId::new(value)
        .map(drop)
        .map_err(|err| Error::InvalidId {
            kind,
            value: excerpt(value),
            reason: protocol_reason(&err),
        })
}

/// The reason part of an identifier error raised by [`beffroi_protocol`].
pub(crate) fn protocol_reason(err: &beffroi_protocol::Error) -> &'static str {
    match err {
        beffroi_protocol::Error::InvalidId { reason, .. } => reason,
        _ => "does not follow the identifier grammar",
    }
}

macro_rules! slug_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            pub fn new(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                check_slug($kind, &value)?;
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::new(text).map_err(serde::de::Error::custom)
            }
        }
    };
}

slug_type!(
    /// A sharing agreement, unique within its grantor.
    AgreementId,
    "agreement id"
);
slug_type!(
    /// A partner (company, lab, association) that is not a tenant of this platform.
    PartnerId,
    "partner id"
);
slug_type!(
    /// A tag set on sensors by their tenant (`air-quality`, `school-street`).
    SensorTag,
    "sensor tag"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_protocol_grammar_and_name_their_kind() {
        assert!(AgreementId::new("air-open-data").is_ok());
        let err = PartnerId::new("Acme").unwrap_err().to_string();
        assert!(
            err.contains("partner id") && err.contains("lowercase"),
            "{err}"
        );
        for bad in ["", "-a", "a_b", "é"] {
            assert!(SensorTag::new(bad).is_err(), "{bad:?}");
        }
    }
}
