//! The endpoint's HTTPS listener: rustls over each accepted socket (handshake under
//! [`HANDSHAKE_TIMEOUT`]), then HTTP/1.1 (hyper) into the router, each request carrying the
//! [`Peer`] it came from: its address and the client certificate it presented, if any (the
//! TLS layer verified it: chain to the CA, validity).
//!
//! At most [`MAX_CONNECTIONS`] connections are served at once. On shutdown it stops
//! accepting, lets every connection finish its request in flight, and returns.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::response::IntoResponse as _;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::error::Refusal;
use super::{HANDSHAKE_TIMEOUT, MAX_CONNECTIONS, REQUEST_TIMEOUT};

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Who sent a request.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub address: SocketAddr,
    /// The verified client certificate (leaf), when one was presented.
    pub certificate: Option<CertificateDer<'static>>,
}

/// Serves `router` over TLS on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "enrollment endpoint listening");
    }
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
        };
        let (socket, address) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "enrollment endpoint accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        connections.spawn(connection(
            acceptor.clone(),
            router.clone(),
            socket,
            address,
            shutdown.clone(),
            slot,
        ));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// One client: TLS, then HTTP/1.1 until it closes, idles past the header timeout, or the
/// endpoint stops.
async fn connection(
    acceptor: TlsAcceptor,
    router: Router,
    socket: TcpStream,
    address: SocketAddr,
    shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            return tracing::debug!(%address, %error, "enrollment TLS handshake failed");
        }
        Err(_) => return tracing::debug!(%address, "enrollment TLS handshake timed out"),
    };
    let certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| leaf.clone().into_owned());
    let peer = Peer {
        address,
        certificate,
    };
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(peer.clone());
        let router = router.clone();
        async move {
            let response =
                match tokio::time::timeout(REQUEST_TIMEOUT, router.oneshot(request.map(Body::new)))
                    .await
                {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => Refusal::unavailable(&"the request timed out").into_response(),
                };
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT);
    let served = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(served);
    let result = tokio::select! {
        result = served.as_mut() => result,
        () = shutdown.cancelled() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%address, %error, "enrollment connection ended with an error");
    }
}
