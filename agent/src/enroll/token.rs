//! The one-time enrollment token: `bfe1.<secret>.<pin>`.
//!
//! The secret (32 random bytes, base64url without padding) is what the platform redeems; the
//! pin (SHA-256 of the enrollment endpoint's certificate, hex) is how the agent authenticates
//! the platform before it sends the secret. The secret is never logged: `Debug` hides it.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;

const PREFIX: &str = "bfe1";
const SECRET_LEN: usize = 43;
const PIN_LEN: usize = 64;

/// A parsed enrollment token.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    secret: String,
    pin: [u8; 32],
}

/// Why a token was refused; never includes the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid enrollment token: {0} (expected bfe1.<43 base64url characters>.<64 hex digits>, as printed by `beffroi gateway create`)")]
pub struct TokenError(&'static str);

impl EnrollmentToken {
    /// The secret sent as the bearer credential.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The SHA-256 the endpoint's certificate must have.
    pub fn pin(&self) -> &[u8; 32] {
        &self.pin
    }
}

impl FromStr for EnrollmentToken {
    type Err = TokenError;

    fn from_str(text: &str) -> Result<Self, TokenError> {
        let mut parts = text.trim().split('.');
        let (Some(prefix), Some(secret), Some(pin), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError("it must have three parts separated by '.'"));
        };
        if prefix != PREFIX {
            return Err(TokenError("unknown version prefix"));
        }
        if secret.len() != SECRET_LEN {
            return Err(TokenError("the secret must be 43 characters (32 bytes)"));
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(secret)
            .map_err(|_| TokenError("the secret is not base64url without padding"))?;
        if pin.len() != PIN_LEN {
            return Err(TokenError("the pin must be 64 hex digits"));
        }
        let mut pin_bytes = [0u8; 32];
        hex::decode_to_slice(pin, &mut pin_bytes)
            .map_err(|_| TokenError("the pin must be 64 hex digits"))?;
        Ok(Self {
            secret: secret.to_owned(),
            pin: pin_bytes,
        })
    }
}

impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentToken")
            .field("pin", &hex::encode(self.pin))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const PIN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn parses_a_token_and_hides_its_secret() {
        let token: EnrollmentToken = format!(" bfe1.{SECRET}.{PIN}\n").parse().unwrap();
        assert_eq!(token.secret(), SECRET);
        assert_eq!(hex::encode(token.pin()), PIN);
        assert!(!format!("{token:?}").contains(SECRET));
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let cases = [
            (format!("bfe1.{SECRET}"), "three parts"),
            (format!("bfe1.{SECRET}.{PIN}.x"), "three parts"),
            (format!("bfe2.{SECRET}.{PIN}"), "prefix"),
            (format!("bfe1.{}.{PIN}", &SECRET[1..]), "43 characters"),
            (format!("bfe1.{SECRET}A.{PIN}"), "43 characters"),
            (format!("bfe1.{}+.{PIN}", &SECRET[1..]), "base64url"),
            (format!("bfe1.{SECRET}.{}", &PIN[1..]), "64 hex"),
            (format!("bfe1.{SECRET}.{}g", &PIN[1..]), "64 hex"),
        ];
        for (text, reason) in cases {
            let error = text.parse::<EnrollmentToken>().unwrap_err().to_string();
            assert!(error.contains(reason), "{text}: {error}");
            assert!(!error.contains(SECRET), "{error}");
        }
    }
}
