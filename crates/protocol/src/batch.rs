//! A signed unit of upload: readings from one gateway under one sequence number.
//!
//! CBOR form (CDDL):
//! ```text
//! batch = [version: 1, tenant: tstr, gateway: tstr, seq: uint, readings: [+ reading]]
//! ```
//! `seq` is strictly increasing per gateway and never reused; the platform stores each
//! `(gateway, seq)` once.

use crate::cbor::{head_len, text_len, Reader, Writer};
use crate::envelope::MAX_PAYLOAD_BYTES;
use crate::error::{Error, Result};
use crate::ids::{GatewayId, TenantId};
use crate::reading::Reading;
use crate::WIRE_VERSION;

/// Most readings one batch may carry.
pub const MAX_READINGS_PER_BATCH: usize = 5000;

/// Readings from one gateway under one sequence number.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "BatchFields", into = "BatchFields")]
pub struct Batch {
    tenant: TenantId,
    gateway: GatewayId,
    seq: u64,
    readings: Vec<Reading>,
}

/// The serde shape of a batch (JSON test vectors, tooling); validated into [`Batch`].
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchFields {
    tenant: TenantId,
    gateway: GatewayId,
    seq: u64,
    readings: Vec<Reading>,
}

impl TryFrom<BatchFields> for Batch {
    type Error = Error;
    fn try_from(f: BatchFields) -> Result<Self> {
        Batch::new(f.tenant, f.gateway, f.seq, f.readings)
    }
}

impl From<Batch> for BatchFields {
    fn from(b: Batch) -> Self {
        Self {
            tenant: b.tenant,
            gateway: b.gateway,
            seq: b.seq,
            readings: b.readings,
        }
    }
}

impl Batch {
    /// A batch of 1..=[`MAX_READINGS_PER_BATCH`] valid readings whose encoding fits in
    /// [`MAX_PAYLOAD_BYTES`].
    pub fn new(
        tenant: TenantId,
        gateway: GatewayId,
        seq: u64,
        readings: Vec<Reading>,
    ) -> Result<Self> {
        if readings.is_empty() || readings.len() > MAX_READINGS_PER_BATCH {
            return Err(Error::ReadingCount {
                count: readings.len(),
                max: MAX_READINGS_PER_BATCH,
            });
        }
        for reading in &readings {
            reading.value.validate()?;
        }
        let batch = Self {
            tenant,
            gateway,
            seq,
            readings,
        };
        let len = batch.encoded_len();
        if len > MAX_PAYLOAD_BYTES {
            return Err(Error::TooLarge {
                what: "payload",
                len,
                max: MAX_PAYLOAD_BYTES,
            });
        }
        Ok(batch)
    }

    /// The tenant the gateway belongs to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The gateway that produced the batch.
    pub fn gateway(&self) -> &GatewayId {
        &self.gateway
    }

    /// The gateway's sequence number for this batch.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The readings, in the order the gateway collected them.
    pub fn readings(&self) -> &[Reading] {
        &self.readings
    }

    /// Takes the readings out.
    pub fn into_readings(self) -> Vec<Reading> {
        self.readings
    }

    /// Size of the encoding of a batch header for these ids and seq, before the readings.
    pub fn header_len(tenant: &TenantId, gateway: &GatewayId, seq: u64, readings: usize) -> usize {
        1 + head_len(WIRE_VERSION)
            + text_len(tenant.as_str())
            + text_len(gateway.as_str())
            + head_len(seq)
            + head_len(readings as u64)
    }

    /// Exact size of [`Batch::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        Self::header_len(&self.tenant, &self.gateway, self.seq, self.readings.len())
            + self
                .readings
                .iter()
                .map(Reading::encoded_len)
                .sum::<usize>()
    }

    /// Deterministic CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len());
        w.array(5);
        w.uint(WIRE_VERSION);
        w.text(self.tenant.as_str());
        w.text(self.gateway.as_str());
        w.uint(self.seq);
        w.array(self.readings.len());
        for reading in &self.readings {
            reading.encode(&mut w);
        }
        w.into_bytes()
    }

    /// Decodes and validates a batch; only the deterministic encoding is accepted.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::TooLarge {
                what: "payload",
                len: bytes.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        let fail = |e| Error::decode("batch", e);
        let mut r = Reader::new(bytes);
        r.array_of(5).map_err(fail)?;
        let version = r.uint().map_err(fail)?;
        if version != WIRE_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let tenant = r.parsed(TenantId::new).map_err(fail)?;
        let gateway = r.parsed(GatewayId::new).map_err(fail)?;
        let seq = r.uint().map_err(fail)?;
        let count = r.array().map_err(fail)?;
        if count == 0 || count > MAX_READINGS_PER_BATCH {
            return Err(Error::ReadingCount {
                count,
                max: MAX_READINGS_PER_BATCH,
            });
        }
        let mut readings = Vec::with_capacity(count);
        for _ in 0..count {
            readings.push(Reading::decode(&mut r).map_err(fail)?);
        }
        r.finish().map_err(fail)?;
        Ok(Self {
            tenant,
            gateway,
            seq,
            readings,
        })
    }
}
