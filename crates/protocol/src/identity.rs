//! A gateway's identity as carried in its X.509 client certificate: the URI subject
//! alternative name `urn:beffroi:gateway:{tenant}:{gateway}`.
//!
//! The platform CA writes it when it issues a certificate; the gate reads it after the TLS
//! handshake. The identity always comes from the certificate, never from what a client claims.

use crate::error::{excerpt, Error, Result};
use crate::ids::{GatewayId, TenantId};

const PREFIX: &str = "urn:beffroi:gateway:";

/// The URI SAN for a gateway.
pub fn identity_uri(tenant: &TenantId, gateway: &GatewayId) -> String {
    format!("{PREFIX}{tenant}:{gateway}")
}

/// Parses a URI SAN written by [`identity_uri`].
pub fn parse_identity_uri(uri: &str) -> Result<(TenantId, GatewayId)> {
    let invalid = |reason: &str| Error::Invalid {
        what: "identity URI",
        reason: format!("{reason}: {:?}", excerpt(uri, 120)),
    };
    let rest = uri
        .strip_prefix(PREFIX)
        .ok_or_else(|| invalid("expected urn:beffroi:gateway:{tenant}:{gateway}"))?;
    let (tenant, gateway) = rest
        .split_once(':')
        .ok_or_else(|| invalid("missing ':' between tenant and gateway"))?;
    Ok((
        TenantId::new(tenant).map_err(|e| invalid(&e.to_string()))?,
        GatewayId::new(gateway).map_err(|e| invalid(&e.to_string()))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        let (t, g) = (
            TenantId::new("lyon").unwrap(),
            GatewayId::new("gw-1").unwrap(),
        );
        let uri = identity_uri(&t, &g);
        assert_eq!(uri, "urn:beffroi:gateway:lyon:gw-1");
        assert_eq!(parse_identity_uri(&uri).unwrap(), (t, g));
        for bad in [
            "",
            "urn:beffroi:gateway:lyon",
            "urn:x:lyon:gw",
            "urn:beffroi:gateway:Lyon:gw",
            "urn:beffroi:gateway:lyon:gw:x",
        ] {
            assert!(parse_identity_uri(bad).is_err(), "{bad}");
        }
    }
}
