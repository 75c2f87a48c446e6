//! A throwaway PKI: a platform CA, the gate's server certificate, gateway certificates.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A client certificate and its key.
#[derive(Clone)]
pub struct ClientCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pem: String,
}

impl ClientCert {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap()
    }

    pub fn fingerprint(&self) -> beffroi_gate::Fingerprint {
        beffroi_gate::Fingerprint::of_der(&self.chain[0])
    }
}

pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    other_ca: CertifiedIssuer<'static, KeyPair>,
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    pub fn new() -> Self {
        let ca = new_ca("Beffroi test CA");
        let other_ca = new_ca("Someone else's CA");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let server = params.signed_by(&key, &ca).unwrap();
        Self {
            ca_pem: ca.pem(),
            server_cert_pem: server.pem(),
            server_key_pem: key.serialize_pem(),
            ca,
            other_ca,
        }
    }

    fn issue(issuer: &CertifiedIssuer<'static, KeyPair>, uri: Option<String>) -> ClientCert {
        Self::issue_with(issuer, uri, |_| {})
    }

    fn issue_with(
        issuer: &CertifiedIssuer<'static, KeyPair>,
        uri: Option<String>,
        tune: impl FnOnce(&mut CertificateParams),
    ) -> ClientCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        tune(&mut params);
        params
            .distinguished_name
            .push(DnType::CommonName, "a gateway");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if let Some(uri) = uri {
            params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        ClientCert {
            chain: vec![cert.der().clone()],
            key_pem: key.serialize_pem(),
        }
    }

    /// A gateway certificate from the platform CA.
    pub fn gateway(&self, tenant: &str, gateway: &str) -> ClientCert {
        Self::issue(
            &self.ca,
            Some(format!("urn:beffroi:gateway:{tenant}:{gateway}")),
        )
    }

    /// A gateway certificate from the platform CA that expires in `lifetime`.
    pub fn short_lived_gateway(
        &self,
        tenant: &str,
        gateway: &str,
        lifetime: std::time::Duration,
    ) -> ClientCert {
        Self::issue_with(
            &self.ca,
            Some(format!("urn:beffroi:gateway:{tenant}:{gateway}")),
            |params| {
                let now = time::OffsetDateTime::now_utc();
                params.not_before = now - time::Duration::minutes(1);
                params.not_after = now + lifetime;
            },
        )
    }

    /// A well-formed gateway certificate from another CA.
    pub fn foreign_gateway(&self, tenant: &str, gateway: &str) -> ClientCert {
        Self::issue(
            &self.other_ca,
            Some(format!("urn:beffroi:gateway:{tenant}:{gateway}")),
        )
    }

    /// A certificate from the platform CA without an identity URI.
    pub fn anonymous(&self) -> ClientCert {
        Self::issue(&self.ca, None)
    }

    /// The CA certificate, for clients to trust the gate.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }
}
