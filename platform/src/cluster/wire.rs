//! What one node tells the others, as JSON on `beffroi/cluster/v1/{node}/events`: committed
//! batches, recorded health reports and security events, and the hub's notices (alarm,
//! gateway, registry and rule changes).

use beffroi_live::Notice;
use beffroi_protocol::{GatewayId, Health, KeyId, Reading, TenantId, Timestamp};
use beffroi_store::{CommitBatch, SecurityEvent};
use serde::{Deserialize, Serialize};

/// The topic prefix of the relay; gateways can never publish there (the gate allows each
/// gateway its own topics only).
pub const TOPIC_PREFIX: &str = "beffroi/cluster/v1";

/// The topic a node publishes on.
pub fn topic(node: &str) -> String {
    format!("{TOPIC_PREFIX}/{node}/events")
}

/// The filter every node subscribes to (its own messages excluded with MQTT 5 No Local).
pub fn filter() -> String {
    format!("{TOPIC_PREFIX}/+/events")
}

/// One relayed event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "relayed", rename_all = "snake_case")]
pub enum Relayed {
    /// A batch the sending node committed.
    Committed {
        /// The batch.
        batch: Box<RelayedBatch>,
    },
    /// A health report the sending node recorded.
    Health {
        /// The report.
        health: Box<Health>,
    },
    /// A security event the sending node recorded.
    Security {
        /// The event.
        event: Box<SecurityEvent>,
    },
    /// A change made through the sending node's API or alert engine.
    Notice {
        /// The change.
        notice: Notice,
    },
}

/// A committed batch as relayed: [`CommitBatch`] with its signature in hex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayedBatch {
    tenant: TenantId,
    gateway: GatewayId,
    seq: u64,
    key_id: KeyId,
    signature: String,
    received_at: Timestamp,
    readings: Vec<Reading>,
}

impl From<&CommitBatch> for RelayedBatch {
    fn from(batch: &CommitBatch) -> Self {
        Self {
            tenant: batch.tenant.clone(),
            gateway: batch.gateway.clone(),
            seq: batch.seq,
            key_id: batch.key_id.clone(),
            signature: hex::encode(batch.signature),
            received_at: batch.received_at,
            readings: batch.readings.clone(),
        }
    }
}

impl TryFrom<RelayedBatch> for CommitBatch {
    type Error = String;

    fn try_from(batch: RelayedBatch) -> Result<Self, String> {
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&batch.signature, &mut signature)
            .map_err(|e| format!("batch signature: {e}"))?;
        Ok(Self {
            tenant: batch.tenant,
            gateway: batch.gateway,
            seq: batch.seq,
            key_id: batch.key_id,
            signature,
            received_at: batch.received_at,
            readings: batch.readings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beffroi_protocol::{MetricName, SensorId, Unit, Value};

    #[test]
    fn a_batch_round_trips_with_its_signature() {
        let batch = CommitBatch {
            tenant: TenantId::new("lyon").unwrap(),
            gateway: GatewayId::new("gw-1").unwrap(),
            seq: 42,
            key_id: KeyId::new("k1").unwrap(),
            signature: [7; 64],
            received_at: Timestamp::from_unix_micros(1_700_000_000_000_000),
            readings: vec![Reading {
                sensor: SensorId::new("s-1").unwrap(),
                metric: MetricName::new("air.pm25").unwrap(),
                unit: Unit::new("ug/m3").unwrap(),
                time: Timestamp::from_unix_micros(1_700_000_000_000_000),
                value: Value::Number(12.5),
            }],
        };
        let relayed = Relayed::Committed {
            batch: Box::new(RelayedBatch::from(&batch)),
        };
        let text = serde_json::to_string(&relayed).unwrap();
        let Relayed::Committed { batch: back } = serde_json::from_str(&text).unwrap() else {
            panic!("not a batch: {text}");
        };
        assert_eq!(CommitBatch::try_from(*back).unwrap(), batch);
    }

    #[test]
    fn a_bad_signature_is_an_error() {
        let text = r#"{"tenant":"lyon","gateway":"gw-1","seq":1,"key_id":"k1",
            "signature":"zz","received_at":"2026-01-01T00:00:00Z","readings":[]}"#;
        let batch: RelayedBatch = serde_json::from_str(text).unwrap();
        assert!(CommitBatch::try_from(batch)
            .unwrap_err()
            .contains("signature"));
    }
}
