//! The gate: the platform's only network-facing MQTT port.
//!
//! It terminates mutual TLS (rustls, TLS 1.2+, client certificate required and verified against
//! the platform CA), takes the gateway's identity from the certificate's URI SAN
//! `urn:beffroi:gateway:{tenant}:{gateway}`, refuses revoked certificates and cuts their live
//! connections, limits connections per source address and per tenant, and enforces the topic
//! ACL ([`acl`]) on every client→broker MQTT packet (3.1.1 and 5.0) before forwarding its exact
//! bytes to the broker on loopback. Broker→client bytes pass through unchanged. One byte
//! sequence is rewritten: the CONNECT client id (the gateway id, unique only within its
//! tenant) reaches the broker as `{tenant}:{gateway}`, so that two tenants' `gw-1` never take
//! over each other's session.
//!
//! It exists because rumqttd's own TLS blocks its accept loop on a silent socket, pins an old
//! rustls with advisories and has no per-topic ACL. It must not interpret messages (ingest
//! verifies signatures) nor hold more than a few KiB per idle connection.
//!
//! Refused and cut connections are counted in `gate_refused` by reason: `tls_rejected`,
//! `handshake_failed`, `handshake_timeout`, `no_identity`, `revoked`, `connection_limit`,
//! `client_id_mismatch`, `acl_violation`, `protocol_violation`, `connect_timeout`,
//! `idle_timeout`, `upstream_unavailable`, `certificate_expired` (the connection outlived its
//! client certificate). Every refusal that is a security matter is also
//! recorded as a [`beffroi_store::SecurityEvent`].

pub mod acl;
pub mod codec;
mod config;
mod connection;
mod error;
mod identity;
mod limits;
mod revocation;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use beffroi_store::SecurityEventKind;
use beffroi_telemetry::{Metrics, SecurityEvents};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use acl::{AclDecision, Denial};
pub use config::GateConfig;
pub use error::{Error, Result};
pub use identity::{Fingerprint, Identity};
pub use revocation::Revocations;
pub use tls::{enrollment_tls_config, read_certificates, server_tls_config};

use crate::connection::Shared;
use crate::limits::{AddressCounts, TenantCounts};

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Runs the gate on `listener` until `shutdown` is cancelled.
///
/// The accept loop never awaits a handshake: every socket gets its own task, whose TLS
/// handshake runs under [`GateConfig::handshake_timeout`]. On shutdown it stops accepting,
/// closes every client connection (the broker sees them disconnect) and returns once all
/// connection tasks have ended. `config` should have passed [`GateConfig::validate`].
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    config: GateConfig,
    revocations: Revocations,
    events: SecurityEvents,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        addresses: AddressCounts::new(config.max_connections_per_address),
        tenants: TenantCounts::new(config.max_connections_per_tenant),
        config,
        acceptor: TlsAcceptor::from(tls),
        revocations,
        events,
        metrics,
    });
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, upstream = %shared.config.upstream, "gate listening");
    }
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(ended) = connections.join_next() => {
                if let Err(error) = ended {
                    tracing::error!(%error, "a gate connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let Some(slot) = shared.addresses.acquire(&peer.ip()) else {
                        shared.refused("connection_limit");
                        let detail = format!(
                            "more than {} connections from {}",
                            shared.addresses.max(),
                            peer.ip()
                        );
                        shared.event(None, peer, SecurityEventKind::ConnectionLimit, detail);
                        continue;
                    };
                    connections.spawn(connection::run(
                        Arc::clone(&shared),
                        socket,
                        peer,
                        slot,
                        shutdown.clone(),
                    ));
                }
                Err(error) => {
                    tracing::warn!(%error, "gate accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
    drop(listener);
    tracing::info!(
        open = connections.len(),
        "gate stopping: closing connections"
    );
    // Every connection watches `shutdown` (or a child of it) and closes itself.
    while let Some(ended) = connections.join_next().await {
        if let Err(error) = ended {
            tracing::error!(%error, "a gate connection task failed");
        }
    }
}
