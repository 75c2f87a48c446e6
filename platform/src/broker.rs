//! The embedded MQTT broker: rumqttd on loopback only, built without its own TLS.
//!
//! The gate is the only network-facing port; it forwards MQTT v5 gateways to the v5 listener
//! and MQTT 3.1.1 gateways to the v4 listener. The ingest subscribes on the v5 listener with a
//! shared subscription. Router segments are bounded (`max_segment_size × max_segment_count`
//! per subscribed filter), so the broker's memory stays bounded under load: when a filter's
//! log is full, rumqttd drops its oldest segment, and the agents' spools resend whatever was
//! not committed.
//!
//! That bound is per filter, and each gateway subscribes to a filter of its own: its ack
//! topic. rumqttd keeps a filter's log whether or not its subscribers have read it, and
//! counts only topic and payload bytes against the bound, not the ~300 bytes each stored
//! publish really takes; with the general bound an ack log would hold 600,000 acks (about
//! 200 MiB) before its first segment is dropped, per gateway: the platform grew by
//! 180 MiB/h at 10k readings/s from 100 gateways. Acks are cumulative (the latest says all
//! there is), so ack filters get rumqttd's smallest log ([`ACK_LOG`]).
//!
//! rumqttd's `Broker::start` blocks and has no stop: it runs on its own OS thread for the life
//! of the process.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use beffroi_protocol::TOPIC_PREFIX;
use rumqttd::{
    Broker, Config, ConnectionSettings, RouterConfig, SegmentConfig, ServerSettings, Strategy,
};

/// The log kept per ack filter: rumqttd's smallest segment (1 KiB of topic and payload bytes,
/// some twenty acks), two of them (the active one and the one before; about 14 KiB of memory
/// per gateway at most). A gateway that reads its acks late skips to the oldest kept, which
/// covers everything the dropped ones covered.
const ACK_LOG: SegmentConfig = SegmentConfig {
    max_segment_size: 1024,
    max_segment_count: 2,
};

/// Where and how the embedded broker listens.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// MQTT 3.1.1 listener (loopback).
    pub listen_v4: SocketAddr,
    /// MQTT 5 listener (loopback).
    pub listen_v5: SocketAddr,
    /// Connections the router accepts.
    pub max_connections: usize,
    /// Bytes of one commit-log segment per filter.
    pub max_segment_size: usize,
    /// Segments kept per filter.
    pub max_segment_count: usize,
    /// Largest PUBLISH payload.
    pub max_payload_size: usize,
}

/// The broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A listener is not on a loopback address.
    #[error("the embedded broker must listen on loopback only, not {0}")]
    NotLoopback(SocketAddr),
    /// The broker did not accept connections in time.
    #[error("the embedded broker did not start listening on {0} within 5 s")]
    NotListening(SocketAddr),
    /// The broker thread could not be spawned.
    #[error("cannot start the broker thread: {0}")]
    Thread(std::io::Error),
}

fn server(name: &str, listen: SocketAddr, settings: &BrokerSettings) -> ServerSettings {
    ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: settings.max_payload_size,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

/// Starts the broker on its own thread and waits until both listeners accept connections.
pub fn start(settings: &BrokerSettings) -> Result<(), BrokerError> {
    for addr in [settings.listen_v4, settings.listen_v5] {
        if !addr.ip().is_loopback() {
            return Err(BrokerError::NotLoopback(addr));
        }
    }
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: settings.max_connections,
            max_outgoing_packet_count: 1000,
            max_segment_size: settings.max_segment_size,
            max_segment_count: settings.max_segment_count,
            custom_segment: Some(HashMap::from([(
                format!("{TOPIC_PREFIX}/+/+/ack"),
                ACK_LOG,
            )])),
            // The only member of the ingest's groups is this node's ingest (the broker listens
            // on loopback only). Round robin, the default, reads one message per pass and
            // wakes the ingest's connection for each; sticky reads what its window allows.
            shared_subscriptions_strategy: Strategy::Sticky,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([(
            "gate-v4".to_owned(),
            server("gate-v4", settings.listen_v4, settings),
        )])),
        v5: Some(HashMap::from([(
            "gate-v5".to_owned(),
            server("gate-v5", settings.listen_v5, settings),
        )])),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name("beffroi-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(error) = broker.start() {
                tracing::error!(%error, "embedded broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    for addr in [settings.listen_v4, settings.listen_v5] {
        wait_listening(addr)?;
    }
    Ok(())
}

fn wait_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotListening(addr))
}
