//! The platform CA: it signs the gate's server certificate and each gateway's client
//! certificate, whose URI SAN `urn:beffroi:gateway:{tenant}:{gateway}` is the gateway's
//! identity at the gate.
//!
//! Files in the PKI directory (`pki.dir`, default `<data_dir>/pki/`; what a node loads from
//! it is in [`crate::node_pki`]): the root `ca.crt`, `ca.key` (mode 0600; may be kept offline
//! once the issuing CA exists), the issuing CA `issuing.crt`, `issuing.key` (0600), `gate.crt`
//! (chain), `gate.key` (0600). Leaves are issued by the issuing CA and sent with it (leaf
//! first); agents and the gate trust the root. The CA keys never leave the platform host;
//! gateways send only public keys (SubjectPublicKeyInfo PEM, as written by `beffroi-agent
//! keygen`), so their private keys never leave the gateway.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
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
    /// A PKI file's content is unusable.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was read.
        what: &'static str,
        /// Why it is unusable.
        reason: String,
    },
}

fn cert_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Certificate { what, source }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
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

/// A gate certificate closer than this to its expiry is replaced at start.
pub const GATE_RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// An issued gateway certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate chain, PEM, leaf first (then the issuing CA).
    pub cert_pem: String,
    /// SHA-256 of the leaf certificate's DER, lowercase hex (what revocation lists name).
    pub fingerprint: String,
    /// When the certificate becomes valid (whole seconds, as the certificate states it).
    pub not_before: Timestamp,
    /// When the certificate expires (whole seconds, as the certificate states it).
    pub not_after: Timestamp,
}

impl Issued {
    /// When the gateway should renew it: two thirds of its validity.
    pub fn renew_after(&self) -> Timestamp {
        let (from, to) = (self.not_before.unix_micros(), self.not_after.unix_micros());
        Timestamp::from_unix_micros(from + (to - from) / 3 * 2)
    }
}

/// How far back a certificate's validity starts, to tolerate clocks behind ours: 5 minutes,
/// or a tenth of a short lifetime (a 10 s certificate must not be due for renewal at once).
fn backdating(lifetime: Duration) -> Duration {
    Duration::from_secs(300).min(lifetime / 10)
}

/// Whole seconds of an X.509 time, as a [`Timestamp`] (the sub-second part is not encoded).
fn whole_seconds(time: time::OffsetDateTime) -> Timestamp {
    Timestamp::from_unix_micros(time.unix_timestamp().saturating_mul(1_000_000))
}

/// The platform certificate authority: the root (`ca.crt`, the trust anchor) and the
/// issuing CA that signs gate and gateway certificates (`issuing.crt`, signed by the root).
pub struct Ca {
    anchors_pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// The issuing CA's certificate, PEM.
    issuer_pem: String,
    /// What follows a leaf in the chains it sends: the issuing CA's certificate, or nothing
    /// when the root issues directly (a root made before intermediates, path length 0).
    chain_tail: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// What [`Ca::inspect_gate`] reads from a gate certificate.
struct GateLeaf {
    /// Signed by this issuing CA.
    signed: bool,
    /// Its expiry.
    not_after: time::OffsetDateTime,
    /// Its DNS names and IP addresses, sorted.
    names: Vec<String>,
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - backdating(lifetime);
    params.not_after = now + lifetime;
}

/// Lifetime of the root CA.
const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Lifetime of an issuing CA (within its root's).
const ISSUING_LIFETIME: Duration = Duration::from_secs(5 * 365 * 86_400);

fn ca_params(name: &str, path_len: u8, lifetime: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Beffroi");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, lifetime);
    params
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(io_error(path))
}

/// The permission bits of `path` when others than its owner may read or write it.
pub fn exposed_mode(path: &Path) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)?.permissions().mode();
    Ok((mode & 0o077 != 0).then_some(mode & 0o777))
}

/// Reads a CA private key, refusing a file others may read (as the audit key does).
fn read_private(path: &Path) -> Result<String, PkiError> {
    if let Some(mode) = exposed_mode(path).map_err(io_error(path))? {
        return Err(PkiError::Invalid {
            what: "CA private key",
            reason: format!(
                "{} may be read by others than its owner (mode {mode:o}): chmod 600 it",
                path.display()
            ),
        });
    }
    read(path)
}

/// The path length constraint of a CA certificate (`None`: unconstrained or unreadable).
fn path_len(cert_pem: &str) -> Option<u32> {
    use rustls::pki_types::pem::PemObject as _;
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    cert.basic_constraints().ok()??.value.path_len_constraint
}

impl Ca {
    /// Loads the CA from `dir`, or creates it (and the directory) on first start.
    ///
    /// - `ca.crt` (+ `ca.key`, 0600): the root, created if absent;
    /// - `issuing.crt` (+ `issuing.key`, 0600): the issuing CA, created with the root key if
    ///   absent. With both issuing files present the root key may be kept offline (`ca.key`
    ///   removed): the platform runs and issues without it.
    /// - A root made before issuing CAs existed (path length 0) keeps issuing directly.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Self, PkiError> {
        // Created for its owner only (an existing directory is left as it is).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;
        let (root_path, root_key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        let (issuing_path, issuing_key_path) = (dir.join("issuing.crt"), dir.join("issuing.key"));
        let root_pem = if root_path.exists() {
            read(&root_path)?
        } else {
            let key = KeyPair::generate().map_err(cert_error("CA key generation"))?;
            let cert = ca_params(name, 1, ROOT_LIFETIME)
                .self_signed(&key)
                .map_err(cert_error("CA certificate"))?;
            write_private(&root_key_path, &key.serialize_pem())?;
            std::fs::write(&root_path, cert.pem()).map_err(io_error(&root_path))?;
            cert.pem()
        };
        // During a trust-anchor rollover, more than the root is published.
        let anchors_path = dir.join(crate::rollover::ANCHORS_FILE);
        let anchors_pem = if anchors_path.exists() {
            read(&anchors_path)?
        } else {
            root_pem.clone()
        };
        if issuing_path.exists() && issuing_key_path.exists() {
            let issuer_pem = read(&issuing_path)?;
            let key = KeyPair::from_pem(&read_private(&issuing_key_path)?)
                .map_err(cert_error("issuing CA key"))?;
            let issuer = Issuer::from_ca_cert_pem(&issuer_pem, key)
                .map_err(cert_error("issuing CA certificate"))?;
            return Ok(Self {
                anchors_pem,
                issuer,
                chain_tail: issuer_pem.clone(),
                issuer_pem,
            });
        }
        if !root_key_path.exists() {
            return Err(PkiError::Invalid {
                what: "issuing CA",
                reason: format!(
                    "{} and {} are missing and the root key {} is offline: bring the root key \
                     back once to create them",
                    issuing_path.display(),
                    issuing_key_path.display(),
                    root_key_path.display()
                ),
            });
        }
        let root_key =
            KeyPair::from_pem(&read_private(&root_key_path)?).map_err(cert_error("CA key"))?;
        let root =
            Issuer::from_ca_cert_pem(&root_pem, root_key).map_err(cert_error("CA certificate"))?;
        if path_len(&root_pem) == Some(0) {
            return Ok(Self {
                anchors_pem,
                issuer: root,
                issuer_pem: root_pem,
                chain_tail: String::new(),
            });
        }
        let key = KeyPair::generate().map_err(cert_error("issuing CA key generation"))?;
        let params = ca_params(&format!("{name} issuing CA"), 0, ISSUING_LIFETIME);
        let cert = params
            .signed_by(&key, &root)
            .map_err(cert_error("issuing CA certificate"))?;
        write_private(&issuing_key_path, &key.serialize_pem())?;
        std::fs::write(&issuing_path, cert.pem()).map_err(io_error(&issuing_path))?;
        Ok(Self {
            anchors_pem,
            issuer: Issuer::new(params, key),
            issuer_pem: cert.pem(),
            chain_tail: cert.pem(),
        })
    }

    /// The trust anchors, PEM: the root CA certificate, or during a rollover every published
    /// root (`anchors.pem`, see [`crate::rollover`]), that agents and the gate trust.
    pub fn cert_pem(&self) -> &str {
        &self.anchors_pem
    }

    /// A leaf followed by the rest of its chain (the issuing CA, if it is not the root).
    fn chain(&self, leaf_pem: &str) -> String {
        format!("{leaf_pem}{}", self.chain_tail)
    }

    /// The gate's server certificate and key (PEM) in `dir`: the existing `gate.crt`/
    /// `gate.key` while they are signed by this CA, name exactly `names` and stay valid for
    /// more than [`GATE_RENEW_BEFORE`]; otherwise a new pair from [`Ca::issue_server`].
    ///
    /// Kept across restarts because enrollment tokens pin this certificate: a new one
    /// invalidates every token not yet redeemed.
    pub fn gate_certificate(
        &self,
        dir: &Path,
        names: &[String],
    ) -> Result<(String, String), PkiError> {
        let (cert_path, key_path) = (dir.join("gate.crt"), dir.join("gate.key"));
        if cert_path.exists() && key_path.exists() {
            let cert = std::fs::read_to_string(&cert_path).map_err(io_error(&cert_path))?;
            let key = std::fs::read_to_string(&key_path).map_err(io_error(&key_path))?;
            if self.still_serves(&cert, names) {
                return Ok((cert, key));
            }
            tracing::info!("the gate certificate is expiring, names other hosts or comes from another CA: issuing a new one");
        }
        self.issue_server(dir, names)
    }

    /// Whether `cert_pem` (a chain, leaf first) is signed by this issuing CA, names exactly
    /// `names` and is valid for more than [`GATE_RENEW_BEFORE`].
    fn still_serves(&self, cert_pem: &str, names: &[String]) -> bool {
        let Some(gate) = self.inspect_gate(cert_pem) else {
            return false;
        };
        let renew_at = time::OffsetDateTime::now_utc() + GATE_RENEW_BEFORE;
        let mut wanted = names.to_vec();
        wanted.sort();
        gate.signed && gate.not_after > renew_at && gate.names == wanted
    }

    /// The shared gate certificate and key of a provisioned PKI directory (`gate.crt`,
    /// `gate.key` in `dir`), read and never replaced: every node behind one load balancer
    /// serves it, since enrollment tokens pin it. Refused when it is not signed by this
    /// issuing CA or has expired; a warning when it expires within [`GATE_RENEW_BEFORE`] or
    /// does not name every one of `names` (this node's `gate.names`).
    pub fn shared_gate_certificate(
        &self,
        dir: &Path,
        names: &[String],
    ) -> Result<(String, String), PkiError> {
        let (cert_path, key_path) = (dir.join("gate.crt"), dir.join("gate.key"));
        let (cert, key) = (read(&cert_path)?, read(&key_path)?);
        let renew = format!(
            "re-issue it with `beffroi pki init --dir {}` and the gate's names",
            dir.display()
        );
        let gate = self.inspect_gate(&cert).ok_or_else(|| PkiError::Invalid {
            what: "gate certificate",
            reason: format!("{} is not a certificate chain", cert_path.display()),
        })?;
        if !gate.signed {
            return Err(PkiError::Invalid {
                what: "gate certificate",
                reason: format!(
                    "{} is not signed by {}: {renew}",
                    cert_path.display(),
                    dir.join("issuing.crt").display()
                ),
            });
        }
        let now = time::OffsetDateTime::now_utc();
        if gate.not_after <= now {
            return Err(PkiError::Invalid {
                what: "gate certificate",
                reason: format!(
                    "{} expired at {}: {renew}",
                    cert_path.display(),
                    gate.not_after
                ),
            });
        }
        if gate.not_after <= now + GATE_RENEW_BEFORE {
            tracing::warn!(
                path = %cert_path.display(),
                not_after = %gate.not_after,
                "the shared gate certificate expires soon: {renew}, update the secret and restart every node"
            );
        }
        let missing: Vec<&String> = names.iter().filter(|n| !gate.names.contains(n)).collect();
        if !missing.is_empty() {
            tracing::warn!(
                path = %cert_path.display(),
                missing = ?missing,
                named = ?gate.names,
                "the shared gate certificate does not name every gate.names of this node: \
                 serving it as it is (gateways must connect by a name it holds)"
            );
        }
        Ok((cert, key))
    }

    /// What a gate certificate chain's leaf says: whether this issuing CA signed it, its
    /// expiry and its DNS names and IP addresses (sorted); `None` when it does not parse.
    fn inspect_gate(&self, cert_pem: &str) -> Option<GateLeaf> {
        use rustls::pki_types::pem::PemObject as _;
        use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
        let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
        let ca_der =
            rustls::pki_types::CertificateDer::from_pem_slice(self.issuer_pem.as_bytes()).ok()?;
        let (_, cert) = X509Certificate::from_der(&der).ok()?;
        let (_, ca) = X509Certificate::from_der(&ca_der).ok()?;
        let not_after =
            time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
                .ok()?;
        let signed = cert.verify_signature(Some(ca.public_key())).is_ok();
        let mut names: Vec<String> = cert
            .subject_alternative_name()
            .ok()??
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => <[u8; 4]>::try_from(*ip)
                        .ok()
                        .map(|b| std::net::IpAddr::from(b).to_string()),
                    16 => <[u8; 16]>::try_from(*ip)
                        .ok()
                        .map(|b| std::net::IpAddr::from(b).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        names.sort();
        Some(GateLeaf {
            signed,
            not_after,
            names,
        })
    }

    /// Issues a server certificate for the gate's names (DNS names or IP addresses) and
    /// writes `gate.crt` (the chain, leaf first) and `gate.key` in `dir`; returns (chain PEM,
    /// key PEM).
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
        let chain = self.chain(&cert.pem());
        write_private(&key_path, &key.serialize_pem())?;
        std::fs::write(&cert_path, &chain).map_err(io_error(&cert_path))?;
        Ok((chain, key.serialize_pem()))
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
        self.issue_gateway_for(tenant, gateway, &public_key, lifetime)
    }

    /// Issues a gateway's client certificate for a TLS public key taken from a verified CSR
    /// (its SubjectPublicKeyInfo, DER).
    pub fn issue_gateway_for_spki(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        spki_der: &[u8],
        lifetime: Duration,
    ) -> Result<Issued, PkiError> {
        let public_key = SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(cert_error("gateway TLS public key"))?;
        self.issue_gateway_for(tenant, gateway, &public_key, lifetime)
    }

    /// The certificate that names `tenant`/`gateway` (CN, O and the identity URI the gate
    /// reads), EKU clientAuth only, valid for `lifetime` from now.
    fn issue_gateway_for(
        &self,
        tenant: &TenantId,
        gateway: &GatewayId,
        public_key: &SubjectPublicKeyInfo,
        lifetime: Duration,
    ) -> Result<Issued, PkiError> {
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
        let (not_before, not_after) = (
            whole_seconds(params.not_before),
            whole_seconds(params.not_after),
        );
        let cert = params
            .signed_by(public_key, &self.issuer)
            .map_err(cert_error("gateway certificate"))?;
        Ok(Issued {
            fingerprint: hex::encode(Sha256::digest(cert.der())),
            cert_pem: self.chain(&cert.pem()),
            not_before,
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
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("pki");
        let ca = Ca::load_or_create(&dir, "test CA").unwrap();
        let again = Ca::load_or_create(&dir, "test CA").unwrap();
        assert_eq!(ca.cert_pem(), again.cert_pem());
        let mode = |path: &Path| {
            let permissions = std::fs::metadata(path).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::mode(&permissions) & 0o777
        };
        assert_eq!(mode(&dir), 0o700, "the directory it created");
        for key in ["ca.key", "issuing.key"] {
            assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
        }

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
        let lifetime = issued.not_after.unix_micros() - issued.not_before.unix_micros();
        assert!(
            (3599..=3961).contains(&(lifetime / 1_000_000)),
            "{lifetime}"
        );
        assert!(issued.renew_after() > Timestamp::now());
        let short = again
            .issue_gateway(&tenant, &gateway, &spki, Duration::from_secs(10))
            .unwrap();
        assert!(short.renew_after() > Timestamp::now(), "{short:?}");
        assert!(issued.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(again
            .issue_gateway(&tenant, &gateway, "not a key", Duration::from_secs(1))
            .is_err());
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let (cert, _) = ca.gate_certificate(&dir, &names).unwrap();
        assert!(cert.contains("CERTIFICATE"));
        // Kept across restarts (enrollment tokens pin it), replaced when the names change.
        assert_eq!(ca.gate_certificate(&dir, &names).unwrap().0, cert);
        let other = ca
            .gate_certificate(&dir, &["gate.example".to_owned()])
            .unwrap()
            .0;
        assert_ne!(other, cert);
        // Another CA's certificate is replaced too.
        let elsewhere = tempfile::tempdir().unwrap();
        let foreign = Ca::load_or_create(elsewhere.path(), "another CA").unwrap();
        assert_ne!(
            foreign
                .gate_certificate(&dir, &["gate.example".to_owned()])
                .unwrap()
                .0,
            other
        );
    }

    #[test]
    fn refuses_a_ca_key_others_may_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        Ca::load_or_create(dir.path(), "test CA").unwrap();
        let key = dir.path().join("issuing.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let Err(error) = Ca::load_or_create(dir.path(), "test CA") else {
            panic!("a group-readable issuing key was accepted");
        };
        let error = error.to_string();
        assert!(
            error.contains("issuing.key")
                && error.contains("mode 640")
                && error.contains("chmod 600"),
            "{error}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        Ca::load_or_create(dir.path(), "test CA").unwrap();
    }

    #[test]
    fn a_shared_gate_certificate_is_served_as_it_is_or_refused_when_foreign() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path(), "test CA").unwrap();
        let names = vec!["gate.example".to_owned()];
        let (cert, key) = ca.gate_certificate(dir.path(), &names).unwrap();
        // Other names on this node: served unchanged (with a warning), never re-issued.
        let other = vec!["node-2.example".to_owned()];
        assert_eq!(
            ca.shared_gate_certificate(dir.path(), &other).unwrap(),
            (cert.clone(), key)
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("gate.crt")).unwrap(),
            cert
        );
        // Signed by another CA: refused, with the command that re-issues it.
        let elsewhere = tempfile::tempdir().unwrap();
        let foreign = Ca::load_or_create(elsewhere.path(), "another CA").unwrap();
        let error = foreign
            .shared_gate_certificate(dir.path(), &names)
            .unwrap_err()
            .to_string();
        assert!(error.contains("beffroi pki init"), "{error}");
        std::fs::remove_file(dir.path().join("gate.key")).unwrap();
        let error = ca
            .shared_gate_certificate(dir.path(), &names)
            .unwrap_err()
            .to_string();
        assert!(error.contains("gate.key"), "{error}");
    }

    /// The certificates of a PEM chain, parsed.
    fn chain_of(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        use rustls::pki_types::pem::PemObject as _;
        rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    /// Whether `der` is signed by the key of `issuer_der`.
    fn signed_by(der: &[u8], issuer_der: &[u8]) -> bool {
        use x509_parser::prelude::{FromDer as _, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der).unwrap();
        let (_, issuer) = X509Certificate::from_der(issuer_der).unwrap();
        cert.verify_signature(Some(issuer.public_key())).is_ok()
    }

    #[test]
    fn leaves_chain_through_the_issuing_ca_which_runs_with_the_root_key_offline() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path(), "test CA").unwrap();
        let key = KeyPair::generate().unwrap();
        let (tenant, gateway) = (
            TenantId::new("lyon").unwrap(),
            GatewayId::new("gw-1").unwrap(),
        );
        let issued = ca
            .issue_gateway(
                &tenant,
                &gateway,
                &key.public_key_pem(),
                Duration::from_secs(60),
            )
            .unwrap();
        let chain = chain_of(&issued.cert_pem);
        let root = chain_of(ca.cert_pem());
        assert_eq!((chain.len(), root.len()), (2, 1));
        assert!(signed_by(&chain[0], &chain[1]) && signed_by(&chain[1], &root[0]));
        assert!(!signed_by(&chain[0], &root[0]));
        assert_eq!(path_len(ca.cert_pem()), Some(1));
        let (gate, _) = ca
            .gate_certificate(dir.path(), &["localhost".to_owned()])
            .unwrap();
        assert_eq!(chain_of(&gate)[1], chain[1]);
        let mode = std::fs::metadata(dir.path().join("issuing.key"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );

        // The root key taken offline: the platform still runs and issues.
        let offline = dir.path().join("ca.key.offline");
        std::fs::rename(dir.path().join("ca.key"), &offline).unwrap();
        let running = Ca::load_or_create(dir.path(), "test CA").unwrap();
        let again = running
            .issue_gateway(
                &tenant,
                &gateway,
                &key.public_key_pem(),
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(chain_of(&again.cert_pem)[1], chain[1]);
        // Without the issuing CA either, it refuses to start, and says why.
        std::fs::remove_file(dir.path().join("issuing.key")).unwrap();
        let error = Ca::load_or_create(dir.path(), "test CA")
            .unwrap_err()
            .to_string();
        assert!(error.contains("offline"), "{error}");
        // With the root key back, a new issuing CA is made.
        std::fs::rename(&offline, dir.path().join("ca.key")).unwrap();
        let renewed = Ca::load_or_create(dir.path(), "test CA").unwrap();
        assert_eq!(renewed.cert_pem(), ca.cert_pem());
        assert_ne!(renewed.issuer_pem, ca.issuer_pem);
    }

    #[test]
    fn a_root_of_path_length_zero_keeps_issuing_directly() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let root = ca_params("old CA", 0, ROOT_LIFETIME)
            .self_signed(&key)
            .unwrap();
        write_private(&dir.path().join("ca.key"), &key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.crt"), root.pem()).unwrap();
        let ca = Ca::load_or_create(dir.path(), "old CA").unwrap();
        assert!(!dir.path().join("issuing.crt").exists());
        let leaf = KeyPair::generate().unwrap();
        let issued = ca
            .issue_gateway(
                &TenantId::new("lyon").unwrap(),
                &GatewayId::new("gw-1").unwrap(),
                &leaf.public_key_pem(),
                Duration::from_secs(60),
            )
            .unwrap();
        let chain = chain_of(&issued.cert_pem);
        assert_eq!(chain.len(), 1);
        assert!(signed_by(&chain[0], root.der()));
    }
}
