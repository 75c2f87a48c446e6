//! The gate's rustls server configuration: TLS 1.2+, ring provider, client certificate
//! required and verified against the platform CA; and the enrollment endpoint's, where the
//! client certificate is optional.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

use crate::error::{Error, Result};

/// Builds the gate's TLS configuration from PEM inputs: the platform CA that issues gateway
/// certificates (`ca_pem`, one or more certificates), the gate's own certificate chain (leaf
/// first) and its private key (PKCS#8, PKCS#1 or SEC1).
///
/// Uses the ring provider explicitly (the workspace installs no process-wide default),
/// TLS 1.2 and 1.3, and requires a client certificate chaining to the CA. Session resumption
/// is disabled, so every connection verifies the full certificate (expiry included) and the
/// gate keeps no session cache.
pub fn server_tls_config(
    ca_pem: &[u8],
    cert_chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>> {
    tls_config(ca_pem, cert_chain_pem, key_pem, ClientCertificate::Required)
}

/// The enrollment endpoint's TLS configuration: as [`server_tls_config`] (same certificate,
/// same CA, so the enrollment pin is the gate certificate's fingerprint), except that a
/// client certificate is optional: enrollment has none, renewal presents the gateway's. A
/// certificate that is presented must chain to the CA and be within its validity.
pub fn enrollment_tls_config(
    ca_pem: &[u8],
    cert_chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>> {
    tls_config(ca_pem, cert_chain_pem, key_pem, ClientCertificate::Optional)
}

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientCertificate {
    Required,
    Optional,
}

fn tls_config(
    ca_pem: &[u8],
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client: ClientCertificate,
) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let mut roots = RootCertStore::empty();
    for cert in read_certificates("CA", ca_pem)? {
        roots.add(cert)?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let verifier = match client {
        ClientCertificate::Required => builder.build()?,
        ClientCertificate::Optional => builder.allow_unauthenticated().build()?,
    };

    let chain = read_certificates("certificate chain", cert_chain_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| Error::Pem {
        what: "private key",
        source,
    })?;

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Every certificate in a PEM input; at least one.
pub fn read_certificates(what: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem { what, source })?;
    if certs.is_empty() {
        return Err(Error::NoCertificate { what });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_empty_inputs() {
        let error = server_tls_config(b"", b"", b"").unwrap_err();
        assert!(
            matches!(error, Error::NoCertificate { what: "CA" }),
            "{error}"
        );
    }
}
