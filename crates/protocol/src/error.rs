//! The crate's error type: one variant per way a value can be invalid or a message can fail
//! to decode or verify.

use crate::ids::KeyId;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong building, encoding, decoding or verifying wire values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An identifier does not follow its grammar.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidId {
        /// Which kind of identifier (tenant, gateway, sensor, metric, key id, unit).
        kind: &'static str,
        /// The rejected text, truncated to 80 bytes.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A numeric reading value is NaN or infinite.
    #[error("reading value must be finite")]
    NonFiniteValue,
    /// A string reading value is longer than allowed.
    #[error("string value is {len} bytes, at most {max} allowed")]
    StringValueTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A batch has no reading or more than allowed.
    #[error("batch has {count} readings, 1..={max} allowed")]
    ReadingCount {
        /// Readings found.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An encoded payload or envelope exceeds the size limit; checked before decoding.
    #[error("{what} is {len} bytes, at most {max} allowed")]
    TooLarge {
        /// `payload` or `envelope`.
        what: &'static str,
        /// Its size in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A CBOR structure could not be decoded.
    #[error("malformed {what}: {source}")]
    Decode {
        /// Which message was being decoded.
        what: &'static str,
        /// Where and why.
        #[source]
        source: DecodeError,
    },
    /// A decoded field breaks a rule of the message (ordering, enumeration).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The message declares a wire version this build does not understand.
    #[error("unsupported wire version {0}")]
    UnsupportedVersion(u64),
    /// The COSE structure is malformed.
    #[error("malformed COSE_Sign1: {0}")]
    Cose(String),
    /// The protected header does not name EdDSA.
    #[error("unsupported or missing algorithm in protected header (EdDSA required)")]
    UnsupportedAlgorithm,
    /// The protected header carries no usable key id.
    #[error("missing or invalid key id in protected header")]
    MissingKeyId,
    /// The envelope carries no payload (detached payloads are not used).
    #[error("COSE_Sign1 has no payload")]
    MissingPayload,
    /// No verifying key is known for the key id.
    #[error("unknown key id {0}")]
    UnknownKey(KeyId),
    /// The signature does not verify over the payload, protected header and topic.
    #[error("signature verification failed")]
    BadSignature,
    /// The message's tenant or gateway differs from its topic's.
    #[error("message names {message} but was published on {topic}")]
    TopicMismatch {
        /// `tenant/gateway` inside the message.
        message: String,
        /// `tenant/gateway` of the topic.
        topic: String,
    },
    /// A topic does not follow `beffroi/v1/{tenant}/{gateway}/{kind}`.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The rejected topic, truncated to 200 bytes.
        topic: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// Why and where CBOR decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at byte {offset}")]
pub struct DecodeError {
    /// Byte offset into the input.
    pub offset: usize,
    /// What was wrong there.
    pub reason: String,
}

impl Error {
    pub(crate) fn decode(what: &'static str, source: DecodeError) -> Self {
        Error::Decode { what, source }
    }

    /// A short stable label for metrics and quarantine records.
    pub fn label(&self) -> &'static str {
        match self {
            Error::InvalidId { .. }
            | Error::NonFiniteValue
            | Error::StringValueTooLong { .. }
            | Error::ReadingCount { .. }
            | Error::Decode { .. }
            | Error::Invalid { .. }
            | Error::UnsupportedVersion(_)
            | Error::Cose(_)
            | Error::MissingPayload => "malformed",
            Error::TooLarge { .. } => "too_large",
            Error::UnsupportedAlgorithm | Error::MissingKeyId => "bad_header",
            Error::UnknownKey(_) => "unknown_key",
            Error::BadSignature => "bad_signature",
            Error::TopicMismatch { .. } => "topic_mismatch",
            Error::InvalidTopic { .. } => "bad_topic",
        }
    }
}

/// Truncate untrusted text for inclusion in an error message.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
