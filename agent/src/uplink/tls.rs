//! The uplink's rustls client configuration: platform CA as the only trust anchor, the
//! gateway's certificate and key for mutual TLS, TLS 1.2+ with the workspace's ring provider.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::UplinkConfig;
use crate::keys;

/// A TLS setup problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| file_error(path, e))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = keys::read_private(path).map_err(|e| file_error(path, e))?;
    rustls_pemfile::private_key(&mut BufReader::new(pem.as_bytes()))
        .map_err(|e| file_error(path, e))?
        .ok_or_else(|| file_error(path, "no PEM private key found"))
}

/// Builds the client configuration from the uplink's CA, certificate and key files.
pub fn client_config(config: &UplinkConfig) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(&config.ca)? {
        roots
            .add(cert)
            .map_err(|e| file_error(&config.ca, format!("unusable CA certificate: {e}")))?;
    }
    let chain = read_certs(&config.certificate)?;
    let key = read_key(&config.private_key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(tls))
}
