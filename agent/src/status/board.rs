//! What the uplink knows and `beffroi-agent status` reports: the connection state and the
//! last commit ack. The uplink updates it; the status writer reads it, and is woken at once
//! when the connection state changes.
//!
//! ```text
//!   start ──► connecting ──connected──► connected ──lost──► disconnected ──connected──┐
//!                 │  ▲                      │                 ▲   │ (failed attempts  │
//!                 │  └──renewed certificate─┘                 │   │  keep `since`)    │
//!                 └──────────────attempt failed───────────────┘   └───────────────────┘
//! ```

use std::sync::{Mutex, PoisonError};

use beffroi_protocol::{CommitAck, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Whether the agent is connected to the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    /// Not connected yet: first attempt since the start or since a certificate renewal.
    Connecting,
    /// Connected to the platform's gate.
    Connected,
    /// The connection was lost or attempts failed; retrying with backoff.
    Disconnected,
}

impl ConnectionState {
    /// The state's name, as in the status file.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::Disconnected => "disconnected",
        }
    }
}

/// The connection state and since when it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// The state.
    pub state: ConnectionState,
    /// When the agent entered it.
    pub since: Timestamp,
    /// Why the last connection or attempt failed (while disconnected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The last commit ack received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastAck {
    /// When it arrived.
    pub at: Timestamp,
    /// Every seq up to this one is committed (or in a reported gap).
    pub contiguous: u64,
    /// The highest seq it covers.
    pub highest_seq: u64,
}

#[derive(Debug)]
struct Live {
    connection: Connection,
    last_ack: Option<LastAck>,
}

/// The shared connection and ack state of one running agent.
#[derive(Debug)]
pub struct StatusBoard {
    live: Mutex<Live>,
    changed: Notify,
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self {
            live: Mutex::new(Live {
                connection: Connection {
                    state: ConnectionState::Connecting,
                    since: Timestamp::now(),
                    last_error: None,
                },
                last_ack: None,
            }),
            changed: Notify::new(),
        }
    }
}

impl StatusBoard {
    fn update(&self, change: impl FnOnce(&mut Live) -> bool) {
        let changed = change(&mut self.live.lock().unwrap_or_else(PoisonError::into_inner));
        if changed {
            self.changed.notify_one();
        }
    }

    fn enter(&self, state: ConnectionState, error: Option<String>) {
        self.update(|live| {
            let same = live.connection.state == state;
            if !same {
                live.connection.since = Timestamp::now();
            }
            live.connection.state = state;
            live.connection.last_error = error;
            !same
        });
    }

    /// A connection is established.
    pub fn connected(&self) {
        self.enter(ConnectionState::Connected, None);
    }

    /// The connection is being replaced to use a renewed certificate.
    pub fn reconnecting(&self) {
        self.enter(ConnectionState::Connecting, None);
    }

    /// The connection was lost, or an attempt failed, because of `error`.
    pub fn disconnected(&self, error: &dyn std::fmt::Display) {
        self.enter(ConnectionState::Disconnected, Some(error.to_string()));
    }

    /// A commit ack for this gateway arrived.
    pub fn acked(&self, ack: &CommitAck) {
        let highest_seq = ack.above.last().copied().unwrap_or(0).max(ack.contiguous);
        self.update(|live| {
            live.last_ack = Some(LastAck {
                at: Timestamp::now(),
                contiguous: ack.contiguous,
                highest_seq,
            });
            false
        });
    }

    /// The current connection state and last ack.
    pub fn snapshot(&self) -> (Connection, Option<LastAck>) {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        (live.connection.clone(), live.last_ack.clone())
    }

    /// Resolves when the connection state changed since the last call returned.
    pub async fn state_changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beffroi_protocol::{GatewayId, TenantId};

    #[test]
    fn failed_attempts_keep_the_time_the_connection_was_lost() {
        let board = StatusBoard::default();
        assert_eq!(board.snapshot().0.state, ConnectionState::Connecting);
        board.connected();
        board.disconnected(&"connection reset");
        let lost = board.snapshot().0;
        assert_eq!(lost.state, ConnectionState::Disconnected);
        assert_eq!(lost.last_error.as_deref(), Some("connection reset"));
        std::thread::sleep(std::time::Duration::from_millis(2));
        board.disconnected(&"connection refused");
        let still = board.snapshot().0;
        assert_eq!(still.since, lost.since);
        assert_eq!(still.last_error.as_deref(), Some("connection refused"));
        board.connected();
        assert_eq!(board.snapshot().0.last_error, None);
    }

    #[test]
    fn an_ack_records_the_highest_seq_it_covers() {
        let board = StatusBoard::default();
        assert_eq!(board.snapshot().1, None);
        board.acked(&CommitAck {
            tenant: TenantId::new("acme").unwrap(),
            gateway: GatewayId::new("gw-1").unwrap(),
            contiguous: 7,
            above: vec![9, 12],
        });
        let ack = board.snapshot().1.unwrap();
        assert_eq!((ack.contiguous, ack.highest_seq), (7, 12));
    }
}
