//! The gate's setup errors: configuration, TLS material, fingerprints.
//!
//! Per-connection failures (a bad certificate, a malformed packet, an ACL violation) are not
//! errors of the gate: they end one connection, raise a security event and are counted.

/// A setup error of the gate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration field is out of range.
    #[error("invalid gate configuration: {field}: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// A PEM input could not be read.
    #[error("cannot read the {what} PEM: {source}")]
    Pem {
        /// Which input (CA, certificate chain, private key).
        what: &'static str,
        /// The parser's error.
        source: rustls::pki_types::pem::Error,
    },
    /// A PEM input holds no certificate.
    #[error("the {what} PEM holds no certificate")]
    NoCertificate {
        /// Which input.
        what: &'static str,
    },
    /// rustls refused the certificates, the key or the protocol versions.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (e.g. an empty CA set).
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A certificate fingerprint is not 64 hexadecimal digits.
    #[error("invalid certificate fingerprint {value:?}: expected 64 hexadecimal digits")]
    Fingerprint {
        /// The refused text (truncated).
        value: String,
    },
    /// A verified certificate carries no usable gateway identity.
    #[error("certificate identity: {reason}")]
    Identity {
        /// What is missing or wrong.
        reason: String,
    },
}

/// The gate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
