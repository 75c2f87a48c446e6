//! The identity benchmark's clients: enrollments and renewals with the agent's own HTTPS
//! client and wire types (`beffroi_agent::enroll`), TLS handshakes with tokio-rustls, and the
//! bare rustls server the gate's handshakes are compared with.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_agent::enroll::https::{pinned_client_config, Connection};
use beffroi_agent::enroll::wire::{self, CertificateAnswer, CertificateRequest};
use beffroi_agent::enroll::{csr, Endpoint, EnrollmentToken};
use beffroi_agent::keys;
use beffroi_protocol::{GatewayId, TenantId};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::ClientConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer as _;

use crate::bench::histogram::{Histogram, Summary};
use crate::pki::Ca;

/// Time allowed for one connection and one request.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One gateway to enroll: its token and its request, made before the clock starts.
pub(crate) struct Plan {
    gateway: GatewayId,
    secret: String,
    body: Vec<u8>,
    csr_der: Vec<u8>,
    key_pem: String,
}

impl Plan {
    /// Generates the gateway's keys and request for `token`.
    pub(crate) fn new(gateway: GatewayId, token: String) -> anyhow::Result<Self> {
        let token: EnrollmentToken = token.parse()?;
        let request = csr::tls_request(gateway.as_str())?;
        let signing_key = keys::random_signing_key()?;
        let body = CertificateRequest {
            csr: request.csr_pem.clone(),
            signing_key: Some(keys::public_key_pem(&signing_key)?),
            proof: Some(wire::proof(&signing_key, &request.csr_der)),
            tenant: None,
            gateway: Some(gateway.to_string()),
            agent_version: env!("CARGO_PKG_VERSION"),
        };
        Ok(Self {
            gateway,
            secret: token.secret().to_owned(),
            body: serde_json::to_vec(&body)?,
            csr_der: request.csr_der,
            key_pem: request.key.serialize_pem(),
        })
    }
}

/// Where the clients go and how they trust the platform.
pub(crate) struct Target {
    endpoint: Endpoint,
    pinned: Arc<ClientConfig>,
    roots: Arc<rustls::RootCertStore>,
    /// The gate.
    pub gate: SocketAddr,
}

impl Target {
    /// The enrollment endpoint at `enroll`, pinned to the gate certificate in `pki`.
    pub(crate) fn new(enroll: SocketAddr, gate: SocketAddr, pki: &Path) -> anyhow::Result<Self> {
        let endpoint = Endpoint::parse(&format!("https://localhost:{}", enroll.port()))?;
        let gate_cert = CertificateDer::pem_file_iter(pki.join("gate.crt"))?
            .next()
            .context("gate.crt holds no certificate")??;
        let pin: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
            <sha2::Sha256 as sha2::Digest>::new(),
            gate_cert.as_ref(),
        ))
        .into();
        let (pinned, _) = pinned_client_config(pin)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(pki.join("ca.crt"))? {
            roots.add(cert?)?;
        }
        Ok(Self {
            endpoint,
            pinned,
            roots: Arc::new(roots),
            gate,
        })
    }

    /// A client configuration presenting `identity`'s certificate.
    pub(crate) fn mutual(&self, identity: &Identity) -> anyhow::Result<Arc<ClientConfig>> {
        let chain = CertificateDer::pem_slice_iter(identity.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(self.roots.clone())
                .with_client_auth_cert(chain, key)?,
        ))
    }
}

/// A gateway's certificate and TLS key.
#[derive(Clone)]
pub(crate) struct Identity {
    chain_pem: String,
    key_pem: String,
}

impl Identity {
    /// A certificate chain and its TLS key, both PEM.
    pub(crate) fn new(chain_pem: String, key_pem: String) -> Self {
        Self { chain_pem, key_pem }
    }
}

/// Requests of one phase: how many succeeded, the first refusal, time and latencies.
#[derive(Debug, Clone)]
pub(crate) struct Phase {
    /// Requests answered 200.
    pub ok: usize,
    /// Requests refused or failed.
    pub failed: usize,
    /// The first failure.
    pub first_failure: Option<String>,
    /// Wall time of the phase.
    pub elapsed: Duration,
    /// Per request: TCP + TLS + request + answer.
    pub latency: Summary,
}

impl Phase {
    /// Successful requests per second.
    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A phase's result and the identities it produced.
pub(crate) struct Done {
    /// The figures.
    pub phase: Phase,
    /// Every certificate obtained, with its key.
    pub identities: Vec<Identity>,
}

/// The in-memory issuance rate: the same certificates signed by the CA with nothing else.
pub(crate) fn issue_in_memory(
    ca: &Ca,
    tenant: &TenantId,
    plans: &[Plan],
    lifetime: Duration,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    for plan in plans {
        let (_, request) = X509CertificationRequest::from_der(&plan.csr_der)
            .map_err(|e| anyhow::anyhow!("CSR: {e}"))?;
        let spki = request.certification_request_info.subject_pki.raw;
        ca.issue_gateway_for_spki(tenant, &plan.gateway, spki, lifetime)?;
    }
    Ok(plans.len() as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// Runs `work` over `items` with `concurrency` tasks; each item's latency is recorded.
async fn phase<T, F, Fut>(items: Vec<T>, concurrency: usize, work: F) -> anyhow::Result<Done>
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Identity>> + Send,
{
    let queue = Arc::new(Mutex::new(items.into_iter().collect::<Vec<T>>()));
    let work = Arc::new(work);
    let histogram = Arc::new(Histogram::default());
    let identities = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (queue, work, histogram) = (queue.clone(), work.clone(), histogram.clone());
        let (identities, failures) = (identities.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(item) = queue.lock().unwrap_or_else(PoisonError::into_inner).pop() else {
                    return;
                };
                let one = Instant::now();
                match work(item).await {
                    Ok(identity) => {
                        histogram.record(one.elapsed().as_micros() as u64);
                        identities
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(identity);
                    }
                    Err(error) => failures
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(format!("{error:#}")),
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();
    let identities =
        std::mem::take(&mut *identities.lock().unwrap_or_else(PoisonError::into_inner));
    let failures = std::mem::take(&mut *failures.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(Done {
        phase: Phase {
            ok: identities.len(),
            failed: failures.len(),
            first_failure: failures.into_iter().next(),
            elapsed,
            latency: histogram.summary(),
        },
        identities,
    })
}

/// Sends one request and returns the certificate it obtained.
async fn exchange(
    connection: Connection,
    route: &str,
    bearer: Option<&str>,
    body: Vec<u8>,
    key_pem: String,
) -> anyhow::Result<Identity> {
    let answer = connection.post_json(route, bearer, body, TIMEOUT).await?;
    anyhow::ensure!(
        answer.status.is_success(),
        "{route}: HTTP {}: {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    let answer: CertificateAnswer = serde_json::from_slice(&answer.body)?;
    Ok(Identity {
        chain_pem: answer.certificate_chain,
        key_pem,
    })
}

/// Enrolls every planned gateway, each on a new pinned connection.
pub(crate) async fn enroll_all(
    target: Arc<Target>,
    plans: Vec<Plan>,
    concurrency: usize,
) -> anyhow::Result<Done> {
    phase(plans, concurrency, move |plan: Plan| {
        let target = target.clone();
        async move {
            let connection =
                Connection::open(&target.endpoint, target.pinned.clone(), TIMEOUT).await?;
            exchange(
                connection,
                wire::ENROLL_ROUTE,
                Some(&plan.secret),
                plan.body,
                plan.key_pem,
            )
            .await
        }
    })
    .await
}

/// Renews every identity over mutual TLS with a fresh key (made before the clock starts).
pub(crate) async fn renew_all(
    target: Arc<Target>,
    identities: Vec<Identity>,
    concurrency: usize,
) -> anyhow::Result<Done> {
    let mut requests = Vec::with_capacity(identities.len());
    for identity in identities {
        let request = csr::tls_request("renewal")?;
        let body = serde_json::to_vec(&CertificateRequest {
            csr: request.csr_pem,
            signing_key: None,
            proof: None,
            tenant: None,
            gateway: None,
            agent_version: env!("CARGO_PKG_VERSION"),
        })?;
        let tls = target.mutual(&identity)?;
        requests.push((tls, body, request.key.serialize_pem()));
    }
    phase(requests, concurrency, move |(tls, body, key_pem)| {
        let target = target.clone();
        async move {
            let connection = Connection::open(&target.endpoint, tls, TIMEOUT).await?;
            exchange(connection, wire::RENEW_ROUTE, None, body, key_pem).await
        }
    })
    .await
}

/// Handshakes of one measurement.
#[derive(Debug, Clone)]
pub(crate) struct Handshakes {
    /// Completed.
    pub ok: u64,
    /// Failed (refused, reset, timed out).
    pub failed: u64,
    /// The first failure.
    pub first_failure: Option<String>,
    /// Wall time.
    pub elapsed: Duration,
    /// TCP connect + TLS handshake.
    pub latency: Summary,
}

impl Handshakes {
    /// Completed handshakes per second.
    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Attempts that failed: how many, and the first one's cause.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    count: AtomicU64,
    first: Mutex<Option<String>>,
}

impl Failures {
    /// Counts a failed attempt: `error`, or a timeout when `None`.
    pub(crate) fn record(&self, error: Option<&anyhow::Error>) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let text = error.map_or_else(|| "timed out".to_owned(), |e| format!("{e:#}"));
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(text);
    }

    /// How many failed, and the first one's cause.
    pub(crate) fn take(&self) -> (u64, Option<String>) {
        let first = self
            .first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        (self.count.load(Ordering::Relaxed), first)
    }
}

/// `concurrency` clients doing TCP + TLS handshakes to `addr` for `seconds`, presenting the
/// identities in turn.
pub(crate) async fn handshakes(
    target: Arc<Target>,
    addr: SocketAddr,
    identities: Vec<Identity>,
    concurrency: usize,
    seconds: Duration,
) -> anyhow::Result<Handshakes> {
    anyhow::ensure!(!identities.is_empty(), "no identity to connect with");
    let configs = Arc::new(
        identities
            .iter()
            .map(|i| target.mutual(i))
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, next) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicUsize::new(0)));
    let histogram = Arc::new(Histogram::default());
    let failures = Arc::new(Failures::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (configs, stop, ok, next) = (configs.clone(), stop.clone(), ok.clone(), next.clone());
        let (histogram, failures) = (histogram.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let config = configs[next.fetch_add(1, Ordering::Relaxed) % configs.len()].clone();
                let one = Instant::now();
                match tokio::time::timeout(TIMEOUT, handshake(addr, config)).await {
                    Ok(Ok(())) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        histogram.record(one.elapsed().as_micros() as u64);
                    }
                    Ok(Err(error)) => failures.record(Some(&error)),
                    Err(_) => failures.record(None),
                }
            }
        }));
    }
    tokio::time::sleep(seconds).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    let (failed, first_failure) = failures.take();
    Ok(Handshakes {
        ok: ok.load(Ordering::Relaxed),
        failed,
        first_failure,
        elapsed: started.elapsed(),
        latency: histogram.summary(),
    })
}

/// One TCP connection and TLS handshake with a client certificate, then closed.
async fn handshake(addr: SocketAddr, config: Arc<ClientConfig>) -> anyhow::Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    let mut tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    tokio::io::AsyncWriteExt::shutdown(&mut tls).await?;
    Ok(())
}

/// A tokio-rustls acceptor with the gate's own rustls configuration, doing nothing but the
/// handshake: what the gate's handshakes are compared with.
pub(crate) struct BareServer {
    /// Where it listens.
    pub addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl BareServer {
    /// Listens on a free loopback port with `pki`'s CA and gate certificate.
    pub(crate) async fn start(pki: &Path) -> anyhow::Result<Self> {
        let read =
            |name: &str| std::fs::read(pki.join(name)).with_context(|| format!("reading {name}"));
        let config = beffroi_gate::server_tls_config(
            &read("ca.crt")?,
            &read("gate.crt")?,
            &read("gate.key")?,
        )?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, counter) = (acceptor.clone(), counter.clone());
                tokio::spawn(async move {
                    if acceptor.accept(tcp).await.is_ok() {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        Ok(Self {
            addr,
            accepted,
            task,
        })
    }

    /// Stops listening; returns the handshakes it completed.
    pub(crate) async fn stop(self) -> u64 {
        self.task.abort();
        let _ = self.task.await;
        self.accepted.load(Ordering::Relaxed)
    }
}
