//! Live-view limits and timings.

use std::time::Duration;

/// How the hub and its connections behave. Every field has a default fit for one node.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveConfig {
    /// Subscriptions one connection may hold.
    pub max_subscriptions: usize,
    /// Highest frame rate a client may ask for (and the default).
    pub max_fps: u32,
    /// Events (alarms, security events, gateway states) waiting for one client before it is
    /// closed as too slow.
    pub event_capacity: usize,
    /// Longest a frame may take to be written before the client is closed as too slow.
    pub send_timeout: Duration,
    /// Longest a browser may take to send its `auth` message.
    pub auth_timeout: Duration,
    /// Largest client message, in bytes.
    pub max_message_bytes: usize,
    /// Malformed messages in a row before the connection is closed.
    pub max_malformed: u32,
    /// How often the server pings a connection (browsers answer by themselves).
    pub ping_interval: Duration,
    /// A connection from which nothing (not even a pong) came for this long is closed: its
    /// peer is gone or stuck, and it would otherwise hold its queue forever.
    pub idle_timeout: Duration,
    /// How long after its end a bucket closes (readings committed later revise it).
    pub bucket_grace: Duration,
    /// How far back the latest stored values are loaded when a tenant's first client
    /// connects.
    pub seed_window: Duration,
    /// How often a tenant's sensor registry is reloaded (changes made through another node).
    pub registry_refresh: Duration,
    /// The maintenance period: closing buckets, reloading registries, gateway states.
    pub tick: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            max_subscriptions: 32,
            max_fps: 50,
            event_capacity: 1024,
            send_timeout: Duration::from_secs(10),
            auth_timeout: Duration::from_secs(10),
            max_message_bytes: 64 * 1024,
            max_malformed: 10,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            bucket_grace: Duration::from_secs(5),
            seed_window: Duration::from_secs(24 * 3600),
            registry_refresh: Duration::from_secs(60),
            tick: Duration::from_secs(1),
        }
    }
}
