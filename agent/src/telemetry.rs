//! The agent's counters, named in one place.
//!
//! Every drop, rejection and retry has a counter; the health report carries them all, so an
//! operator sees every loss from the platform.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($variant:ident => $name:literal: $doc:literal,)*) => {
        /// A named agent counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Counter {
            $(#[doc = $doc] $variant,)*
        }

        impl Counter {
            /// Every counter, in declaration order.
            pub const ALL: &'static [Counter] = &[$(Counter::$variant,)*];

            /// The counter's name in health reports and logs.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => $name,)*
                }
            }
        }
    };
}

counters! {
    ReadingsCollected => "source.readings": "Readings accepted from sources.",
    InputMalformed => "source.malformed": "Source lines or messages dropped as malformed.",
    SourceErrors => "source.errors": "Source failures (lost subscription, unreadable file).",
    BatchesSealed => "batch.sealed": "Batches signed and written to the spool.",
    ReadingsSealed => "batch.readings": "Readings in those batches.",
    SealErrors => "batch.seal_errors": "Batches that could not be signed or spooled.",
    BatchesSent => "uplink.sent": "Batch publishes handed to MQTT (first sends).",
    BatchesResent => "uplink.resent": "Batch publishes repeated after a reconnect or ack timeout.",
    AcksReceived => "uplink.acks": "Commit acks received.",
    AcksRejected => "uplink.acks_rejected": "Messages on the ack topic that were not valid acks.",
    BatchesAcked => "uplink.acked": "Batches removed from the spool by a commit ack.",
    Connects => "uplink.connects": "Successful connections to the platform.",
    ConnectFailures => "uplink.connect_failures": "Connection attempts that failed.",
    Disconnects => "uplink.disconnects": "Established connections that were lost.",
    CredentialReconnects => "uplink.credential_reconnects": "Connections replaced to use a renewed certificate.",
    HealthSent => "health.sent": "Health reports published.",
    HealthErrors => "health.errors": "Health reports that could not be built or published.",
    SpoolSyncErrors => "spool.sync_errors": "Failed spool fsyncs.",
    Renewals => "enroll.renewals": "Certificates renewed.",
    RenewalFailures => "enroll.renewal_failures": "Renewal attempts that failed (each is retried).",
    KeyRotations => "enroll.key_rotations": "Signing keys rotated.",
    StatusWriteErrors => "status.write_errors": "Failed writes of the status file (`beffroi-agent status`).",
}

/// The agent's counters; cheap to update from any task.
#[derive(Debug)]
pub struct Telemetry {
    values: Vec<AtomicU64>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            values: Counter::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Telemetry {
    /// Adds one.
    pub fn incr(&self, counter: Counter) {
        self.add(counter, 1);
    }

    /// Adds `n`.
    pub fn add(&self, counter: Counter, n: u64) {
        self.values[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter as usize].load(Ordering::Relaxed)
    }

    /// Every counter by name.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        Counter::ALL
            .iter()
            .map(|&c| (c.name().to_owned(), self.get(c)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_name() {
        let t = Telemetry::default();
        t.incr(Counter::InputMalformed);
        t.add(Counter::InputMalformed, 2);
        assert_eq!(t.get(Counter::InputMalformed), 3);
        let snapshot = t.snapshot();
        assert_eq!(snapshot["source.malformed"], 3);
        assert_eq!(snapshot.len(), Counter::ALL.len());
    }
}
