//! Validated identifier newtypes.
//!
//! Tenant, gateway, sensor and key ids follow `[a-z0-9][a-z0-9-]{0,62}`: they are safe in
//! MQTT topics, file names, URLs and SQL identifiers without escaping. Metric names are dotted
//! lowercase (`air.pm25`, `traffic.count`). Units are SenML/UCUM unit strings.

use crate::error::{excerpt, Error, Result};

/// Checks the `[a-z0-9][a-z0-9-]{0,62}` grammar shared by tenant, gateway, sensor and key ids.
fn check_slug(kind: &'static str, value: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidId {
        kind,
        value: excerpt(value, 80),
        reason,
    };
    let bytes = value.as_bytes();
    match bytes.first() {
        None => return Err(invalid("must not be empty")),
        Some(first) if !(first.is_ascii_lowercase() || first.is_ascii_digit()) => {
            return Err(invalid("must start with a lowercase letter or digit"))
        }
        Some(_) => {}
    }
    if bytes.len() > 63 {
        return Err(invalid("must be at most 63 characters"));
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err(invalid("may contain only a-z, 0-9 and '-'"));
    }
    Ok(())
}

/// Checks a dotted lowercase metric name: segments of `[a-z0-9_]`, each starting with a
/// letter, separated by single dots, 2..=64 characters in all.
fn check_metric(value: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidId {
        kind: "metric",
        value: excerpt(value, 80),
        reason,
    };
    if value.is_empty() || value.len() > 64 {
        return Err(invalid("must be 1 to 64 characters"));
    }
    for segment in value.split('.') {
        let mut chars = segment.bytes();
        match chars.next() {
            Some(c) if c.is_ascii_lowercase() => {}
            Some(_) => return Err(invalid("each dotted segment must start with a-z")),
            None => return Err(invalid("empty segment between dots")),
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_') {
            return Err(invalid("segments may contain only a-z, 0-9 and '_'"));
        }
    }
    Ok(())
}

/// Checks a SenML/UCUM unit string: 0..=32 printable ASCII characters without spaces.
fn check_unit(value: &str) -> Result<()> {
    if value.len() > 32 {
        return Err(Error::InvalidId {
            kind: "unit",
            value: excerpt(value, 80),
            reason: "must be at most 32 characters",
        });
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidId {
            kind: "unit",
            value: excerpt(value, 80),
            reason: "may contain only printable ASCII without spaces",
        });
    }
    Ok(())
}

/// Declares a validated identifier newtype: `new` (checked by `$check`), `as_str`, `Display`,
/// `FromStr`, `AsRef<str>` and serde as a string. Other crates declare their own ids with it
/// (`beffroi_protocol::id_type!`); the expansion uses the calling module's `Result<T>` and
/// `Error` (so each crate reports id errors with its own error type) and `$check` returns
/// that `Result<()>`.
#[doc(hidden)]
#[macro_export]
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            pub fn new(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                $check(&value)?;
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as ::serde::Deserialize>::deserialize(d)?;
                Self::new(text).map_err(::serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A tenant: one collectivity (commune, metropole, region) or partner.
    TenantId,
    |v| check_slug("tenant id", v)
);
id_type!(
    /// A gateway running the agent, unique within its tenant.
    GatewayId,
    |v| check_slug("gateway id", v)
);
id_type!(
    /// A sensor, unique within its tenant.
    SensorId,
    |v| check_slug("sensor id", v)
);
id_type!(
    /// A signing key id, carried as `kid` in the COSE protected header.
    KeyId,
    |v| check_slug("key id", v)
);
id_type!(
    /// A dotted lowercase metric name such as `air.pm25` or `parking.occupied`.
    MetricName,
    check_metric
);
id_type!(
    /// A SenML (RFC 8428) / UCUM unit such as `ug/m3`, `dB`, `count` or `%`; may be empty.
    Unit,
    check_unit
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_accept_and_reject() {
        assert!(TenantId::new("lyon").is_ok());
        assert!(GatewayId::new("gw-01").is_ok());
        assert!(SensorId::new("0abc").is_ok());
        assert!(SensorId::new(&*"a".repeat(63)).is_ok());
        for bad in ["", "-a", "A", "a b", "a/b", "a+", "é", &"a".repeat(64)] {
            assert!(TenantId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn metrics_accept_and_reject() {
        for good in [
            "air.pm25",
            "traffic.count",
            "noise.laeq",
            "a",
            "parking.occupied_ratio",
        ] {
            assert!(MetricName::new(good).is_ok(), "{good} rejected");
        }
        for bad in ["", ".a", "a.", "a..b", "Air.pm", "1a", "a.b-c", "a b"] {
            assert!(MetricName::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn units_accept_and_reject() {
        for good in ["", "ug/m3", "dB", "%", "count", "Cel"] {
            assert!(Unit::new(good).is_ok(), "{good} rejected");
        }
        assert!(Unit::new("a b").is_err());
        assert!(Unit::new("x".repeat(33)).is_err());
    }

    #[test]
    fn error_names_kind_and_reason() {
        let err = GatewayId::new("Bad").unwrap_err().to_string();
        assert!(
            err.contains("gateway id") && err.contains("lowercase"),
            "{err}"
        );
    }
}
