//! The gate's configuration: limits and timeouts, validated without IO.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::error::{Error, Result};

/// How the gate accepts and forwards gateway connections.
///
/// Built by the platform from its own configuration file; [`GateConfig::validate`] names the
/// field and the reason of a bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateConfig {
    /// The broker the gate forwards to, normally on loopback (embedded rumqttd or an external
    /// broker such as Mosquitto).
    pub upstream: SocketAddr,
    /// Where MQTT 3.1.1 clients are forwarded when the broker serves them on another port
    /// than MQTT 5 (rumqttd has one listener per protocol version); `None`: `upstream`.
    pub upstream_v311: Option<SocketAddr>,
    /// The longest a client may take to complete the TLS handshake; a silent socket is closed
    /// after it.
    pub handshake_timeout: Duration,
    /// The longest a client may take, once TLS is up, to send its CONNECT packet.
    pub connect_timeout: Duration,
    /// The longest a connection may stay without a packet from the client. A client that sets
    /// an MQTT keep-alive is also closed after 1.5 × its keep-alive without a packet,
    /// whichever is shorter.
    pub idle_timeout: Duration,
    /// Open connections (including handshakes in progress) allowed from one source IP
    /// address. Behind a load balancer that does not preserve source addresses, raise it.
    pub max_connections_per_address: usize,
    /// Established connections allowed for one tenant.
    pub max_connections_per_tenant: usize,
    /// The largest MQTT packet a client may send, counted as its remaining length. A batch
    /// envelope is at most 257 KiB.
    pub max_packet_bytes: usize,
}

impl GateConfig {
    /// Default [`GateConfig::handshake_timeout`].
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`GateConfig::connect_timeout`].
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`GateConfig::idle_timeout`].
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    /// Default [`GateConfig::max_connections_per_address`].
    pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
    /// Default [`GateConfig::max_connections_per_tenant`].
    pub const DEFAULT_MAX_CONNECTIONS_PER_TENANT: usize = 20_000;
    /// Default [`GateConfig::max_packet_bytes`]: 512 KiB.
    pub const DEFAULT_MAX_PACKET_BYTES: usize = 512 * 1024;
    /// The MQTT limit on a remaining length (a four-byte variable byte integer).
    pub const MQTT_MAX_REMAINING_LENGTH: usize = 268_435_455;

    /// The broker address for a client speaking `version`.
    pub fn upstream_for(&self, version: crate::codec::ProtocolVersion) -> SocketAddr {
        match version {
            crate::codec::ProtocolVersion::V311 => self.upstream_v311.unwrap_or(self.upstream),
            crate::codec::ProtocolVersion::V5 => self.upstream,
        }
    }

    /// The defaults, forwarding to `upstream`.
    pub const fn new(upstream: SocketAddr) -> Self {
        Self {
            upstream,
            upstream_v311: None,
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections_per_address: Self::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            max_connections_per_tenant: Self::DEFAULT_MAX_CONNECTIONS_PER_TENANT,
            max_packet_bytes: Self::DEFAULT_MAX_PACKET_BYTES,
        }
    }

    /// Checks every field; pure, no IO.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: &str| {
            Err(Error::Config {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.upstream.port() == 0 || self.upstream_v311.is_some_and(|a| a.port() == 0) {
            return bad("upstream", "port must not be 0");
        }
        for (field, value) in [
            ("handshake_timeout", self.handshake_timeout),
            ("connect_timeout", self.connect_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                return bad(field, "must be greater than zero");
            }
            if value > Duration::from_secs(24 * 3600) {
                return bad(field, "must be at most 24 hours");
            }
        }
        if self.max_connections_per_address == 0 {
            return bad("max_connections_per_address", "must be at least 1");
        }
        if self.max_connections_per_tenant == 0 {
            return bad("max_connections_per_tenant", "must be at least 1");
        }
        if self.max_packet_bytes < 1024 {
            return bad("max_packet_bytes", "must be at least 1024");
        }
        if self.max_packet_bytes > Self::MQTT_MAX_REMAINING_LENGTH {
            return bad(
                "max_packet_bytes",
                "must be at most 268435455 (the MQTT limit)",
            );
        }
        Ok(())
    }
}

impl Default for GateConfig {
    /// The defaults, forwarding to `127.0.0.1:1883`.
    fn default() -> Self {
        Self::new(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 1883))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        GateConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_field() {
        let mut config = GateConfig {
            max_packet_bytes: 10,
            ..GateConfig::default()
        };
        let text = config.validate().unwrap_err().to_string();
        assert!(text.contains("max_packet_bytes"), "{text}");
        config.max_packet_bytes = GateConfig::DEFAULT_MAX_PACKET_BYTES;
        config.handshake_timeout = Duration::ZERO;
        let text = config.validate().unwrap_err().to_string();
        assert!(text.contains("handshake_timeout"), "{text}");
        config.handshake_timeout = Duration::from_secs(1);
        config.max_connections_per_tenant = 0;
        assert!(config.validate().is_err());
    }
}
