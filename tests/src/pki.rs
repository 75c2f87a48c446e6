//! Certificates for a test: a platform CA, a broker certificate for `localhost`/127.0.0.1,
//! client certificates per gateway, and an unrelated "rogue" CA for negative tests. Everything
//! is written as PEM into a directory; private keys get mode 0600.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate and its private key, in memory (DER) and on disk (PEM).
#[derive(Debug, Clone)]
pub struct Identity {
    /// Certificate PEM file.
    pub cert: PathBuf,
    /// Private key PEM file (PKCS#8, mode 0600).
    pub key: PathBuf,
    /// Certificate, DER.
    pub cert_der: Vec<u8>,
    /// Private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

/// A certificate authority able to issue more certificates.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    /// CA certificate PEM file.
    pub cert: PathBuf,
    /// CA certificate, DER.
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

/// The test's PKI: platform CA, broker certificate, and an unrelated CA.
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
    /// The platform CA every legitimate certificate chains to.
    pub ca: Authority,
    /// The broker's certificate (`localhost`, 127.0.0.1), issued by [`Pki::ca`].
    pub server: Identity,
    /// A CA the broker does not trust.
    pub rogue_ca: Authority,
}

fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))
}

impl Authority {
    fn create(dir: &Path, name: &str) -> anyhow::Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Beffroi tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        let path = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&path, cert.pem()).with_context(|| format!("writing {}", path.display()))?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert: path,
            cert_der: cert.der().to_vec(),
        })
    }

    fn issue(
        &self,
        dir: &Path,
        file_stem: &str,
        mut params: CertificateParams,
    ) -> anyhow::Result<Identity> {
        let key = KeyPair::generate()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        let cert_path = dir.join(format!("{file_stem}.crt"));
        let key_path = dir.join(format!("{file_stem}.key"));
        std::fs::write(&cert_path, cert.pem())
            .with_context(|| format!("writing {}", cert_path.display()))?;
        write_private(&key_path, &key.serialize_pem())?;
        Ok(Identity {
            cert: cert_path,
            key: key_path,
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        })
    }

    /// A client certificate for a gateway: CN = gateway, O = tenant, URI SAN
    /// `urn:beffroi:gateway:{tenant}:{gateway}`; written to `dir/{file_stem}.{crt,key}`.
    pub fn issue_gateway(
        &self,
        dir: &Path,
        file_stem: &str,
        tenant: &str,
        gateway: &str,
    ) -> anyhow::Result<Identity> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, gateway);
        params
            .distinguished_name
            .push(DnType::OrganizationName, tenant);
        params.subject_alt_names = vec![SanType::URI(
            format!("urn:beffroi:gateway:{tenant}:{gateway}").try_into()?,
        )];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(dir, file_stem, params)
    }
}

impl Pki {
    /// Creates the CAs and the broker certificate in `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let ca = Authority::create(dir, "platform")?;
        let rogue_ca = Authority::create(dir, "rogue")?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = ca.issue(dir, "broker", params)?;
        Ok(Self {
            dir: dir.to_owned(),
            ca,
            server,
            rogue_ca,
        })
    }

    /// A gateway's client certificate from the platform CA, in `dir`.
    pub fn gateway(&self, dir: &Path, tenant: &str, gateway: &str) -> anyhow::Result<Identity> {
        self.ca.issue_gateway(dir, "client", tenant, gateway)
    }

    /// A gateway's client certificate from the rogue CA, in `dir`.
    pub fn rogue_gateway(
        &self,
        dir: &Path,
        tenant: &str,
        gateway: &str,
    ) -> anyhow::Result<Identity> {
        self.rogue_ca.issue_gateway(dir, "client", tenant, gateway)
    }

    /// The consumer's (platform stand-in's) client certificate.
    pub fn consumer(&self) -> anyhow::Result<Identity> {
        self.ca
            .issue_gateway(&self.dir, "consumer", "platform", "consumer")
    }
}
