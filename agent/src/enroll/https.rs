//! A minimal HTTPS client for the enrollment API: one TLS connection, one HTTP/1.1 request.
//!
//! Enrollment trusts the platform by a pin only ([`pinned_client_config`]): the server's
//! end-entity certificate must hash (SHA-256 of its DER) to the token's pin, and its handshake
//! signatures are still verified, so the server proves it holds that certificate's key. The
//! request (and the token secret in it) is written only after the handshake succeeded.
//! Renewal uses an ordinary WebPKI configuration with the platform CA and the client
//! certificate. Connect and whole-exchange timeouts bound every call; answers are capped at
//! [`MAX_ANSWER_BYTES`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::{header, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::endpoint::Endpoint;
use crate::abort_on_drop::AbortOnDrop;

/// Largest answer body read from the platform.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A transport failure talking to the enrollment endpoint.
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    /// TCP connect failed.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// Where.
        endpoint: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (wrong pin, unknown CA, refused client certificate…).
    #[error("TLS handshake with {endpoint} failed: {source}")]
    Handshake {
        /// Where.
        endpoint: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Connecting or the exchange took too long.
    #[error("{0} timed out after {1:?}")]
    Timeout(&'static str, Duration),
    /// HTTP framing failed or the connection broke mid-exchange.
    #[error("HTTP exchange failed: {0}")]
    Http(String),
    /// The answer is larger than [`MAX_ANSWER_BYTES`].
    #[error("the answer exceeds {MAX_ANSWER_BYTES} bytes")]
    AnswerTooLarge,
}

/// What the pinned verifier saw: the SHA-256 of the server's leaf certificate.
#[derive(Debug, Default, Clone)]
pub struct PinObserver(Arc<Mutex<Option<[u8; 32]>>>);

impl PinObserver {
    /// The fingerprint the server presented, once a handshake got that far.
    pub fn seen(&self) -> Option<[u8; 32]> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Accepts exactly one server certificate, by its SHA-256, and checks the handshake
/// signatures with the ring provider's algorithms.
#[derive(Debug)]
struct PinnedLeaf {
    pin: [u8; 32],
    observer: PinObserver,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        *self
            .observer
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(seen);
        if seen == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A client configuration that trusts only the server certificate hashing to `pin`, and the
/// observer that tells, after a failed handshake, what the server presented instead.
pub fn pinned_client_config(
    pin: [u8; 32],
) -> Result<(Arc<ClientConfig>, PinObserver), rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let observer = PinObserver::default();
    let verifier = Arc::new(PinnedLeaf {
        pin,
        observer: observer.clone(),
        algorithms: provider.signature_verification_algorithms,
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((Arc::new(config), observer))
}

/// An established TLS connection to the endpoint, before any request was sent.
pub struct Connection {
    stream: TlsStream<TcpStream>,
    endpoint: Endpoint,
}

/// Status and body of an answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The body (at most [`MAX_ANSWER_BYTES`]).
    pub body: Bytes,
}

impl Connection {
    /// Connects and completes the TLS handshake within `timeout`.
    pub async fn open(
        endpoint: &Endpoint,
        tls: Arc<ClientConfig>,
        timeout: Duration,
    ) -> Result<Self, HttpsError> {
        let connect = async {
            let tcp = TcpStream::connect((endpoint.host(), endpoint.port()))
                .await
                .map_err(|source| HttpsError::Connect {
                    endpoint: endpoint.to_string(),
                    source,
                })?;
            let _ = tcp.set_nodelay(true);
            TlsConnector::from(tls)
                .connect(endpoint.server_name(), tcp)
                .await
                .map_err(|source| HttpsError::Handshake {
                    endpoint: endpoint.to_string(),
                    source,
                })
        };
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| HttpsError::Timeout("connecting", timeout))??;
        Ok(Self {
            stream,
            endpoint: endpoint.clone(),
        })
    }

    /// Sends one JSON `POST` to `route` (with a bearer credential if given) and reads the
    /// answer, all within `timeout`; the connection is closed afterwards.
    pub async fn post_json(
        self,
        route: &str,
        bearer: Option<&str>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Answer, HttpsError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.path(route))
            .header(header::HOST, self.endpoint.authority())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header(header::CONNECTION, "close");
        if let Some(secret) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {secret}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HttpsError::Http(e.to_string()))?;
        let exchange = async {
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(self.stream))
                    .await
                    .map_err(|e| HttpsError::Http(e.to_string()))?;
            let driver = AbortOnDrop(tokio::spawn(async move {
                let _ = connection.await;
            }));
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| HttpsError::Http(e.to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpsError::AnswerTooLarge
                    } else {
                        HttpsError::Http(e.to_string())
                    }
                })?
                .to_bytes();
            drop(driver);
            Ok(Answer { status, body })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| HttpsError::Timeout("the request", timeout))?
    }
}
