//! The platform's commit acknowledgement, published on `.../ack` once batches are durably
//! stored.
//!
//! CBOR form (CDDL):
//! `ack = [version: 1, tenant: tstr, gateway: tstr, contiguous: uint, above: [* uint]]`.
//! `contiguous` is the highest seq such that every seq at or below it is committed or
//! accounted for by a gap the agent reported; `above` lists committed seqs beyond a hole, in
//! strictly increasing order. The agent deletes a batch from its spool only when an ack covers
//! it — never on MQTT PUBACK.

use crate::cbor::{Reader, Writer};
use crate::envelope::check_payload_size;
use crate::error::{Error, Result};
use crate::ids::{GatewayId, TenantId};
use crate::WIRE_VERSION;

/// Most seqs an ack lists above the contiguous mark.
pub const MAX_ACK_ABOVE: usize = 4096;

/// Which of a gateway's batches are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitAck {
    /// The gateway's tenant.
    pub tenant: TenantId,
    /// The gateway acknowledged.
    pub gateway: GatewayId,
    /// Every seq ≤ this is committed or in a reported gap (0: none yet).
    pub contiguous: u64,
    /// Committed seqs above a hole, strictly increasing, all > `contiguous`.
    pub above: Vec<u64>,
}

impl CommitAck {
    /// Whether this ack covers `seq`.
    pub fn covers(&self, seq: u64) -> bool {
        seq <= self.contiguous || self.above.binary_search(&seq).is_ok()
    }

    fn validate(&self) -> Result<()> {
        if self.above.len() > MAX_ACK_ABOVE {
            return Err(Error::TooLarge {
                what: "ack list",
                len: self.above.len(),
                max: MAX_ACK_ABOVE,
            });
        }
        let mut previous = self.contiguous;
        for &seq in &self.above {
            if seq <= previous {
                return Err(Error::Invalid {
                    what: "ack list",
                    reason: format!("not strictly increasing above {}", self.contiguous),
                });
            }
            previous = seq;
        }
        Ok(())
    }

    /// Deterministic CBOR encoding.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let mut w = Writer::with_capacity(64 + 9 * self.above.len());
        w.array(5);
        w.uint(WIRE_VERSION);
        w.text(self.tenant.as_str());
        w.text(self.gateway.as_str());
        w.uint(self.contiguous);
        w.array(self.above.len());
        for &seq in &self.above {
            w.uint(seq);
        }
        Ok(w.into_bytes())
    }

    /// Decodes an ack; only the deterministic encoding is accepted.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        check_payload_size(bytes)?;
        let fail = |e| Error::decode("ack", e);
        let mut r = Reader::new(bytes);
        r.array_of(5).map_err(fail)?;
        let version = r.uint().map_err(fail)?;
        if version != WIRE_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let tenant = r.parsed(TenantId::new).map_err(fail)?;
        let gateway = r.parsed(GatewayId::new).map_err(fail)?;
        let contiguous = r.uint().map_err(fail)?;
        let count = r.array().map_err(fail)?;
        if count > MAX_ACK_ABOVE {
            return Err(Error::TooLarge {
                what: "ack list",
                len: count,
                max: MAX_ACK_ABOVE,
            });
        }
        let mut above = Vec::with_capacity(count);
        for _ in 0..count {
            above.push(r.uint().map_err(fail)?);
        }
        r.finish().map_err(fail)?;
        let ack = Self {
            tenant,
            gateway,
            contiguous,
            above,
        };
        ack.validate()?;
        Ok(ack)
    }
}
