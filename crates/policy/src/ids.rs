//! Identifiers owned by the policy engine: agreements, partners and sensor tags. They follow
//! the slug grammar of every Beffroi id (`[a-z0-9][a-z0-9-]{0,62}`, checked by
//! [`beffroi_protocol`] so the grammar has one definition). Zones reuse the sensor id type,
//! as in the store.

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

beffroi_protocol::id_type!(
    /// A sharing agreement, unique within its grantor.
    AgreementId,
    |v| check_slug("agreement id", v)
);
beffroi_protocol::id_type!(
    /// A partner (company, lab, association) that is not a tenant of this platform.
    PartnerId,
    |v| check_slug("partner id", v)
);
beffroi_protocol::id_type!(
    /// A tag set on sensors by their tenant (`air-quality`, `school-street`).
    SensorTag,
    |v| check_slug("sensor tag", v)
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
