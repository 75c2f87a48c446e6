//! Ingest settings: what broker to read from, the accepted time window, the group-commit
//! cadence and the caches. [`IngestConfig::validate`] is pure (no IO); [`crate::run`] calls it.

use std::time::Duration;

use crate::error::IngestError;

const fn default_port() -> u16 {
    1884
}
const fn default_max_future_skew() -> Duration {
    Duration::from_secs(5 * 60)
}
const fn default_max_age() -> Duration {
    Duration::from_secs(7 * 86_400)
}
const fn default_commit_interval() -> Duration {
    Duration::ZERO
}
const fn default_commit_max_readings() -> usize {
    20_000
}
const fn default_commit_lanes() -> usize {
    2
}
const fn default_key_cache_ttl() -> Duration {
    Duration::from_secs(30)
}
const fn default_inbound_capacity() -> usize {
    4096
}
const fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}
const fn default_reconnect_max() -> Duration {
    Duration::from_secs(5)
}
const fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Most commit lanes (each holds a database connection).
const MAX_COMMIT_LANES: usize = 16;

/// Default shared-subscription group: every platform node in the group gets each message once.
pub const DEFAULT_SHARE_GROUP: &str = "beffroi-ingest";

/// How ingest runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// Broker host (the embedded broker on loopback, or an external cluster).
    pub broker_host: String,
    /// Broker port (plain MQTT).
    pub broker_port: u16,
    /// MQTT client id; must differ between platform nodes sharing a broker.
    pub client_id: String,
    /// Shared-subscription group (`$share/{group}/…`); nodes in one group share the load.
    pub share_group: String,
    /// Readings stamped later than now + this are rejected as `future`.
    pub max_future_skew: Duration,
    /// Readings stamped earlier than now − this are rejected as `stale`.
    pub max_age: Duration,
    /// Longest time a verified batch waits for others before its group commit starts. Zero:
    /// a round takes what is queued when its lane is free, so batches gather only while a
    /// commit is in flight (lowest latency; under load, rounds grow by themselves).
    pub commit_interval: Duration,
    /// A group commit starts as soon as this many readings are waiting.
    pub commit_max_readings: usize,
    /// Group commits in flight at once, each on its own connection, for disjoint sets of
    /// gateways (see the `committer` module).
    pub commit_lanes: usize,
    /// How long a looked-up key (or its absence) is trusted; a revocation takes effect on
    /// ingest within this time (the gate cuts the connection at once).
    pub key_cache_ttl: Duration,
    /// Messages buffered between the MQTT event loop and the pipeline; when full the event
    /// loop waits, which pushes back on the broker (nothing is dropped).
    pub inbound_capacity: usize,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Longest wait between two reconnection attempts (backoff starts at 50 ms and doubles).
    pub reconnect_max: Duration,
    /// Longest time shutdown may take to commit what is pending and publish its acks.
    pub shutdown_timeout: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            broker_host: "127.0.0.1".into(),
            broker_port: default_port(),
            client_id: "beffroi-ingest".into(),
            share_group: DEFAULT_SHARE_GROUP.into(),
            max_future_skew: default_max_future_skew(),
            max_age: default_max_age(),
            commit_interval: default_commit_interval(),
            commit_max_readings: default_commit_max_readings(),
            commit_lanes: default_commit_lanes(),
            key_cache_ttl: default_key_cache_ttl(),
            inbound_capacity: default_inbound_capacity(),
            keep_alive: default_keep_alive(),
            reconnect_max: default_reconnect_max(),
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

impl IngestConfig {
    /// Checks every field; the error names the field and the reason.
    pub fn validate(&self) -> Result<(), IngestError> {
        let bad = |field: &'static str, reason: &str| {
            Err(IngestError::Config {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.broker_host.is_empty() {
            return bad("broker_host", "must not be empty");
        }
        if self.broker_port == 0 {
            return bad("broker_port", "must not be 0");
        }
        if self.client_id.is_empty() || self.client_id.len() > 64 {
            return bad("client_id", "must be 1..=64 bytes");
        }
        let group_ok = !self.share_group.is_empty()
            && self.share_group.len() <= 64
            && self
                .share_group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !group_ok {
            return bad("share_group", "must be 1..=64 of [A-Za-z0-9_-]");
        }
        if self.max_age.is_zero() {
            return bad("max_age", "must be positive");
        }
        if self.commit_interval > Duration::from_secs(10) {
            return bad("commit_interval", "must be at most 10 s");
        }
        if self.commit_max_readings == 0 {
            return bad("commit_max_readings", "must be at least 1");
        }
        if !(1..=MAX_COMMIT_LANES).contains(&self.commit_lanes) {
            return bad("commit_lanes", "must be 1..=16");
        }
        if self.key_cache_ttl > Duration::from_secs(3600) {
            return bad("key_cache_ttl", "must be at most 1 h (revocation delay)");
        }
        if self.inbound_capacity == 0 {
            return bad("inbound_capacity", "must be at least 1");
        }
        if self.keep_alive < Duration::from_secs(1) {
            return bad("keep_alive", "must be at least 1 s");
        }
        if self.reconnect_max.is_zero() {
            return bad("reconnect_max", "must be positive");
        }
        if self.shutdown_timeout.is_zero() {
            return bad("shutdown_timeout", "must be positive");
        }
        Ok(())
    }

    /// The two shared-subscription filters: batches and health reports of every gateway, each
    /// in a group of its own (`{group}-batch`, `{group}-health`). The embedded broker
    /// (rumqttd 0.20) keeps one read position per group name, not per filter: two filters in
    /// one group read each other's log positions, and a batch arriving just after a health
    /// report was never delivered (until later traffic moved the position on).
    pub fn subscriptions(&self) -> [String; 2] {
        let (group, prefix) = (&self.share_group, beffroi_protocol::TOPIC_PREFIX);
        [
            format!("$share/{group}-batch/{prefix}/+/+/batch"),
            format!("$share/{group}-health/{prefix}/+/+/health"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_fields_are_named() {
        assert!(IngestConfig::default().validate().is_ok());
        let cases: [(&str, IngestConfig); 5] = [
            (
                "share_group",
                IngestConfig {
                    share_group: "a/b".into(),
                    ..IngestConfig::default()
                },
            ),
            (
                "commit_interval",
                IngestConfig {
                    commit_interval: Duration::from_secs(11),
                    ..IngestConfig::default()
                },
            ),
            (
                "broker_port",
                IngestConfig {
                    broker_port: 0,
                    ..IngestConfig::default()
                },
            ),
            (
                "commit_max_readings",
                IngestConfig {
                    commit_max_readings: 0,
                    ..IngestConfig::default()
                },
            ),
            (
                "commit_lanes",
                IngestConfig {
                    commit_lanes: 0,
                    ..IngestConfig::default()
                },
            ),
        ];
        for (field, config) in cases {
            match config.validate() {
                Err(IngestError::Config { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn subscribes_to_shared_batch_and_health_in_a_group_each() {
        let [batch, health] = IngestConfig::default().subscriptions();
        assert_eq!(batch, "$share/beffroi-ingest-batch/beffroi/v1/+/+/batch");
        assert_eq!(health, "$share/beffroi-ingest-health/beffroi/v1/+/+/health");
    }
}
