//! The platform CA: it signs the gate's server certificate and each gateway's client
//! certificate, whose URI SAN `urn:beffroi:gateway:{tenant}:{gateway}` is the gateway's
//! identity at the gate.
//!
//! Files under `<data_dir>/pki/`: `ca.crt`, `ca.key` (mode 0600), `gate.crt`, `gate.key`
//! (0600). The CA key never leaves the platform host; gateways send only public keys
//! (SubjectPublicKeyInfo PEM, as written by `beffroi-agent keygen`), so their private keys never
//! leave the gateway.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use beffroi_protocol::{identity_uri, GatewayId, TenantId, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SubjectPublicKeyInfo,
};
use sha2::{Digest as _, Sha256};

/// A PKI failure, naming the file or the step.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A PKI file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("{what}: {source}")]
    Certificate {
        /// What was being done.
        what: &'static str,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
}

fn cert_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Certificate { what, source }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(contents.as_bytes())
        .map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// A certificate and, when generated here, its private key.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// SHA-256 of the certificate DER, lowercase hex (what revocation lists name).
    pub fingerprint: String,
    /// When the certificate expires (whole seconds, as the certificate states it).
    pub not_after: Timestamp,
}

/// The platform certificate authority.
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + lifetime;
}

impl Ca {
    /// Loads the CA from `dir`, or creates it (and the directory) on first start.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Self, PkiError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        if cert_path.exists() {
            let cert_pem = std::fs::read_to_string(&cert_path).map_err(io_error(&cert_path))?;
            let key_pem = std::fs::read_to_string(&key_path).map_err(io_error(&key_path))?;
            let key = KeyPair::from_pem(&key_pem).map_err(cert_error("CA key"))?;
            let issuer =
                Issuer::from_ca_cert_pem(&cert_pem, key).map_err(cert_error("CA certificate"))?;
            return Ok(Self { cert_pem, issuer });
        }
        let key = KeyPair::generate().map_err(cert_error("CA key generation"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Beffroi");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, Duration::from_secs(10 * 365 * 86_400));
        let cert = params
            .self_signed(&key)
            .map_err(cert_error("CA certificate"))?;
        write_private(&key_path, &key.serialize_pem())?;
        std::fs::write(&cert_path, cert.pem()).map_err(io_error(&cert_path))?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM: the trust anchor agents and the gate use.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a server certificate for the gate's names (DNS names or IP addresses) and
    /// writes `gate.crt`/`gate.key` in `dir`; returns (cert PEM, key PEM).
    pub fn issue_server(&self, dir: &Path, names: &[String]) -> Result<(String, String), PkiError> {
        let key = KeyPair::generate().map_err(cert_error("gate key generation"))?;
        let mut params =
            CertificateParams::new(names.to_vec()).map_err(cert_error("gate names"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "beffroi gate");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut params, Duration::from_secs(365 * 86_400));
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(cert_error("gate certificate"))?;
        let (cert_path, key_path) = (dir.join("gate.crt"), dir.join("gate.key"));
        write_private(&key_path, &key.serialize_pem())?;
        std::fs::write(&cert_path, cert.pem()).map_err(io_error(&cert_path))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Issues a gateway's client certificate for its TLS public key (SubjectPublicKeyInfo PEM).
    pub fn issue_gateway(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        tls_public_key_pem: &str,
        lifetime: Duration,
    ) -> Result<Issued, PkiError> {
        let public_key = SubjectPublicKeyInfo::from_pem(tls_public_key_pem)
            .map_err(cert_error("gateway TLS public key"))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, gateway.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationName, tenant.as_str());
        let uri = identity_uri(tenant, gateway)
            .try_into()
            .map_err(cert_error("identity URI"))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params, lifetime);
        // X.509 validity times have whole seconds: the sub-second part is not encoded.
        let not_after = Timestamp::from_unix_micros(
            params.not_after.unix_timestamp().saturating_mul(1_000_000),
        );
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(cert_error("gateway certificate"))?;
        Ok(Issued {
            fingerprint: hex::encode(Sha256::digest(cert.der())),
            cert_pem: cert.pem(),
            not_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey as _};

    #[test]
    fn creates_reloads_and_issues() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path(), "test CA").unwrap();
        let again = Ca::load_or_create(dir.path(), "test CA").unwrap();
        assert_eq!(ca.cert_pem(), again.cert_pem());
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );

        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let spki = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let tenant = TenantId::new("lyon").unwrap();
        let gateway = GatewayId::new("gw-1").unwrap();
        let issued = again
            .issue_gateway(&tenant, &gateway, &spki, Duration::from_secs(3600))
            .unwrap();
        assert_eq!(issued.fingerprint.len(), 64);
        assert!(issued.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(again
            .issue_gateway(&tenant, &gateway, "not a key", Duration::from_secs(1))
            .is_err());
        let (cert, _) = ca.issue_server(dir.path(), &["localhost".into()]).unwrap();
        assert!(cert.contains("CERTIFICATE"));
    }
}
