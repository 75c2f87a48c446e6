//! Who caused an audit entry.

use std::fmt;
use std::str::FromStr;

use beffroi_protocol::GatewayId;

use crate::Error;

/// Who caused an audit entry. Its text (and JSON) form is a prefix and an id:
/// `token:t-42`, `user:alice`, `system:retention`, `gateway:gw-1`; or `public` alone for an
/// anonymous reader of public data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditActor {
    /// An API token, by id (public, never its secret).
    Token(String),
    /// A person, by login name (admin commands).
    User(String),
    /// The platform itself, by component (`retention`, `checkpointer`, `import`).
    System(String),
    /// A gateway (enrollment, certificate renewal).
    Gateway(GatewayId),
    /// An anonymous reader (no token) of data shared with the public.
    Public,
}

impl AuditActor {
    /// The prefix of the text form, without its colon (`public` has no id after it).
    pub fn prefix(&self) -> &'static str {
        match self {
            AuditActor::Public => "public",
            AuditActor::Token(_) => "token",
            AuditActor::User(_) => "user",
            AuditActor::System(_) => "system",
            AuditActor::Gateway(_) => "gateway",
        }
    }

    /// The id after the prefix (empty for `public`).
    pub fn id(&self) -> &str {
        match self {
            AuditActor::Public => "",
            AuditActor::Token(id) | AuditActor::User(id) | AuditActor::System(id) => id,
            AuditActor::Gateway(id) => id.as_str(),
        }
    }
}

impl fmt::Display for AuditActor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditActor::Public => f.write_str(self.prefix()),
            _ => write!(f, "{}:{}", self.prefix(), self.id()),
        }
    }
}

impl FromStr for AuditActor {
    type Err = Error;

    /// Parses the text form. Any id is accepted after `token:`, `user:` and `system:` (so
    /// that every actor reads back as written); a gateway id follows its grammar.
    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidActor(text.chars().take(80).collect());
        if text == "public" {
            return Ok(AuditActor::Public);
        }
        let (prefix, id) = text.split_once(':').ok_or_else(invalid)?;
        Ok(match prefix {
            "token" => AuditActor::Token(id.to_owned()),
            "user" => AuditActor::User(id.to_owned()),
            "system" => AuditActor::System(id.to_owned()),
            "gateway" => AuditActor::Gateway(GatewayId::new(id).map_err(|_| invalid())?),
            _ => return Err(invalid()),
        })
    }
}

impl serde::Serialize for AuditActor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for AuditActor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let gateway = GatewayId::new("gw-1").map(AuditActor::Gateway);
        for actor in [
            AuditActor::Token("t-42".into()),
            AuditActor::User("alice:admin".into()),
            AuditActor::System(String::new()),
            AuditActor::Public,
        ]
        .into_iter()
        .chain(gateway.ok())
        {
            assert_eq!(actor.to_string().parse::<AuditActor>().ok(), Some(actor));
        }
        for bad in ["", "token", "robot:x", "gateway:Not Valid"] {
            assert!(bad.parse::<AuditActor>().is_err(), "{bad}");
        }
    }
}
