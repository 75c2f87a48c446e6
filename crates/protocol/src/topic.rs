//! The MQTT topic grammar: `beffroi/v1/{tenant}/{gateway}/{batch|health|ack|cmd/...}`.
//!
//! Topics are typed values; they are parsed from and formatted to text, never built by
//! string replacement. The topic is also the COSE `external_aad`, binding every signed message
//! to the tenant, gateway and kind it was published for.

use std::fmt;

use crate::error::{excerpt, Error, Result};
use crate::ids::{GatewayId, TenantId};

/// The fixed prefix of every Beffroi topic.
pub const TOPIC_PREFIX: &str = "beffroi/v1";

/// What a topic carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// Signed batches, agent → platform.
    Batch,
    /// Signed health reports, agent → platform.
    Health,
    /// Commit acknowledgements, platform → agent.
    Ack,
    /// Commands, platform → agent: `cmd/{name}` where the name is one or more
    /// `[a-z0-9-]` segments separated by `/`.
    Cmd(String),
}

/// A parsed Beffroi topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    /// The tenant in the topic.
    pub tenant: TenantId,
    /// The gateway in the topic.
    pub gateway: GatewayId,
    /// What it carries.
    pub kind: TopicKind,
}

impl Topic {
    /// The topic of `kind` for a gateway.
    pub fn new(tenant: TenantId, gateway: GatewayId, kind: TopicKind) -> Self {
        Self {
            tenant,
            gateway,
            kind,
        }
    }

    /// The gateway's batch topic.
    pub fn batch(tenant: &TenantId, gateway: &GatewayId) -> Self {
        Self::new(tenant.clone(), gateway.clone(), TopicKind::Batch)
    }

    /// The gateway's health topic.
    pub fn health(tenant: &TenantId, gateway: &GatewayId) -> Self {
        Self::new(tenant.clone(), gateway.clone(), TopicKind::Health)
    }

    /// The gateway's commit-ack topic.
    pub fn ack(tenant: &TenantId, gateway: &GatewayId) -> Self {
        Self::new(tenant.clone(), gateway.clone(), TopicKind::Ack)
    }

    /// Parses a topic.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidTopic {
            topic: excerpt(text, 200),
            reason: reason.to_owned(),
        };
        let rest = text
            .strip_prefix(TOPIC_PREFIX)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| invalid("must start with beffroi/v1/"))?;
        let mut parts = rest.splitn(3, '/');
        let (Some(tenant), Some(gateway), Some(kind)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("expected beffroi/v1/{tenant}/{gateway}/{kind}"));
        };
        let tenant = TenantId::new(tenant).map_err(|e| invalid(&e.to_string()))?;
        let gateway = GatewayId::new(gateway).map_err(|e| invalid(&e.to_string()))?;
        let kind = match kind {
            "batch" => TopicKind::Batch,
            "health" => TopicKind::Health,
            "ack" => TopicKind::Ack,
            other => match other.strip_prefix("cmd/") {
                Some(name) if is_command_name(name) => TopicKind::Cmd(name.to_owned()),
                Some(_) => return Err(invalid("command name must be [a-z0-9-] segments")),
                None => return Err(invalid("kind must be batch, health, ack or cmd/...")),
            },
        };
        Ok(Self::new(tenant, gateway, kind))
    }
}

fn is_command_name(name: &str) -> bool {
    name.len() <= 128
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOPIC_PREFIX}/{}/{}/", self.tenant, self.gateway)?;
        match &self.kind {
            TopicKind::Batch => f.write_str("batch"),
            TopicKind::Health => f.write_str("health"),
            TopicKind::Ack => f.write_str("ack"),
            TopicKind::Cmd(name) => write!(f, "cmd/{name}"),
        }
    }
}

impl std::str::FromStr for Topic {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for text in [
            "beffroi/v1/lyon/gw-1/batch",
            "beffroi/v1/lyon/gw-1/health",
            "beffroi/v1/lyon/gw-1/ack",
            "beffroi/v1/lyon/gw-1/cmd/reboot",
            "beffroi/v1/lyon/gw-1/cmd/config/reload",
        ] {
            assert_eq!(Topic::parse(text).expect(text).to_string(), text);
        }
    }

    #[test]
    fn rejects() {
        for text in [
            "",
            "beffroi/v1/lyon/gw-1",
            "beffroi/v2/lyon/gw-1/batch",
            "beffroi/v1/Lyon/gw-1/batch",
            "beffroi/v1/lyon/+/batch",
            "beffroi/v1/lyon/gw-1/batch/x",
            "beffroi/v1/lyon/gw-1/cmd/",
            "beffroi/v1/lyon/gw-1/cmd/a//b",
            "beffroi/v1/lyon/gw-1/#",
        ] {
            assert!(Topic::parse(text).is_err(), "{text:?} accepted");
        }
    }
}
