//! The agent's signed health report, published on `.../health`.
//!
//! CBOR form (CDDL):
//! ```text
//! health = [version: 1, tenant: tstr, gateway: tstr, time: int, uptime_s: uint,
//!           agent_version: tstr, spool_batches: uint, spool_bytes: uint,
//!           oldest_unacked_age_s: uint / null, batches_dropped: uint, readings_dropped: uint,
//!           rss_bytes: uint, next_seq: uint, gaps: [* gap], counters: {* tstr => uint}]
//! gap = [first_seq: uint, last_seq: uint, batches: uint, readings: uint, reason: tstr]
//! ```
//! Counter keys are sorted as deterministic CBOR requires (shorter first, then bytewise).

use std::collections::BTreeMap;

use crate::cbor::{Reader, Writer};
use crate::envelope::check_payload_size;
use crate::error::{DecodeError, Error, Result};
use crate::ids::{GatewayId, TenantId};
use crate::time::Timestamp;
use crate::WIRE_VERSION;

/// Most gaps one health report carries.
pub const MAX_GAPS: usize = 64;
/// Most named counters one health report carries.
pub const MAX_COUNTERS: usize = 64;
const MAX_TEXT: usize = 64;

/// Why a range of sequence numbers will never reach the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapReason {
    /// The spool was full: the oldest unacknowledged batches were dropped.
    SpoolFull,
    /// The agent stopped without a clean shutdown; sequence numbers it had reserved but not
    /// used are skipped (no batch carried them, nothing was lost).
    CrashRestart,
}

impl GapReason {
    /// The wire label.
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::SpoolFull => "spool-full",
            GapReason::CrashRestart => "crash-restart",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "spool-full" => Some(GapReason::SpoolFull),
            "crash-restart" => Some(GapReason::CrashRestart),
            _ => None,
        }
    }
}

/// A range of sequence numbers that will never be delivered, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Gap {
    /// First sequence number of the range.
    pub first_seq: u64,
    /// Last sequence number of the range (inclusive).
    pub last_seq: u64,
    /// Batches lost in the range (0 for skipped, never-used numbers).
    pub batches: u64,
    /// Readings lost in the range.
    pub readings: u64,
    /// Why.
    pub reason: GapReason,
}

/// A gateway's health report.
///
/// The serde form (JSON test vectors, tooling) names the fields as below; times are RFC 3339.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// The gateway's tenant.
    pub tenant: TenantId,
    /// The reporting gateway.
    pub gateway: GatewayId,
    /// When the report was made.
    pub time: Timestamp,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// The agent's version string (at most 64 bytes).
    pub agent_version: String,
    /// Batches in the spool, not yet acknowledged.
    pub spool_batches: u64,
    /// Bytes on disk in the spool.
    pub spool_bytes: u64,
    /// Age of the oldest unacknowledged batch, if any.
    pub oldest_unacked_age_s: Option<u64>,
    /// Batches dropped since installation because the spool was full.
    pub batches_dropped: u64,
    /// Readings in those batches.
    pub readings_dropped: u64,
    /// Resident memory of the agent process.
    pub rss_bytes: u64,
    /// The next sequence number the agent will use.
    pub next_seq: u64,
    /// Gaps the platform has not acknowledged past yet (at most [`MAX_GAPS`]).
    pub gaps: Vec<Gap>,
    /// Named counters (drops, rejections, retries), at most [`MAX_COUNTERS`], names ≤ 64 bytes.
    pub counters: BTreeMap<String, u64>,
}

impl Health {
    fn validate(&self) -> Result<()> {
        let too_large = |what, len, max| Error::TooLarge { what, len, max };
        if self.agent_version.len() > MAX_TEXT {
            return Err(too_large(
                "agent version",
                self.agent_version.len(),
                MAX_TEXT,
            ));
        }
        if self.gaps.len() > MAX_GAPS {
            return Err(too_large("gap list", self.gaps.len(), MAX_GAPS));
        }
        if self.counters.len() > MAX_COUNTERS {
            return Err(too_large("counter list", self.counters.len(), MAX_COUNTERS));
        }
        if let Some(name) = self.counters.keys().find(|k| k.len() > MAX_TEXT) {
            return Err(too_large("counter name", name.len(), MAX_TEXT));
        }
        Ok(())
    }

    /// Deterministic CBOR encoding; fails when a list or text exceeds its limit.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let mut w = Writer::with_capacity(256);
        w.array(15);
        w.uint(WIRE_VERSION);
        w.text(self.tenant.as_str());
        w.text(self.gateway.as_str());
        w.int(self.time.unix_micros());
        w.uint(self.uptime_s);
        w.text(&self.agent_version);
        w.uint(self.spool_batches);
        w.uint(self.spool_bytes);
        match self.oldest_unacked_age_s {
            Some(age) => w.uint(age),
            None => w.null(),
        }
        w.uint(self.batches_dropped);
        w.uint(self.readings_dropped);
        w.uint(self.rss_bytes);
        w.uint(self.next_seq);
        w.array(self.gaps.len());
        for gap in &self.gaps {
            w.array(5);
            w.uint(gap.first_seq);
            w.uint(gap.last_seq);
            w.uint(gap.batches);
            w.uint(gap.readings);
            w.text(gap.reason.as_str());
        }
        w.map(self.counters.len());
        let mut names: Vec<&String> = self.counters.keys().collect();
        names.sort_by(|a, b| deterministic_key_order(a, b));
        for name in names {
            w.text(name);
            w.uint(self.counters[name]);
        }
        Ok(w.into_bytes())
    }

    /// Decodes a health report; only the deterministic encoding is accepted.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        check_payload_size(bytes)?;
        let fail = |e| Error::decode("health", e);
        let mut r = Reader::new(bytes);
        r.array_of(15).map_err(fail)?;
        let version = r.uint().map_err(fail)?;
        if version != WIRE_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let health = Self::decode_fields(&mut r).map_err(fail)?;
        r.finish().map_err(fail)?;
        health.validate()?;
        Ok(health)
    }

    fn decode_fields(r: &mut Reader<'_>) -> std::result::Result<Self, DecodeError> {
        let tenant = r.parsed(TenantId::new)?;
        let gateway = r.parsed(GatewayId::new)?;
        let time = Timestamp::from_unix_micros(r.int()?);
        let uptime_s = r.uint()?;
        let agent_version = r.text()?.to_owned();
        let spool_batches = r.uint()?;
        let spool_bytes = r.uint()?;
        let oldest_unacked_age_s = r.optional_uint()?;
        let batches_dropped = r.uint()?;
        let readings_dropped = r.uint()?;
        let rss_bytes = r.uint()?;
        let next_seq = r.uint()?;
        let gap_count = r.array()?;
        if gap_count > MAX_GAPS {
            return Err(r.error(format!("{gap_count} gaps, at most {MAX_GAPS}")));
        }
        let mut gaps = Vec::with_capacity(gap_count);
        for _ in 0..gap_count {
            r.array_of(5)?;
            let (first_seq, last_seq, batches, readings) =
                (r.uint()?, r.uint()?, r.uint()?, r.uint()?);
            let reason = r.parsed(|t| {
                GapReason::parse(t).ok_or(Error::Invalid {
                    what: "gap reason",
                    reason: format!("unknown reason {t:?}"),
                })
            })?;
            gaps.push(Gap {
                first_seq,
                last_seq,
                batches,
                readings,
                reason,
            });
        }
        let counter_count = r.map()?;
        if counter_count > MAX_COUNTERS {
            return Err(r.error(format!("{counter_count} counters, at most {MAX_COUNTERS}")));
        }
        let mut counters = BTreeMap::new();
        let mut previous: Option<&str> = None;
        for _ in 0..counter_count {
            let name = r.text()?;
            if previous.is_some_and(|p| deterministic_key_order(p, name).is_ge()) {
                return Err(r.error("counter names not in deterministic order"));
            }
            previous = Some(name);
            counters.insert(name.to_owned(), r.uint()?);
        }
        Ok(Self {
            tenant,
            gateway,
            time,
            uptime_s,
            agent_version,
            spool_batches,
            spool_bytes,
            oldest_unacked_age_s,
            batches_dropped,
            readings_dropped,
            rss_bytes,
            next_seq,
            gaps,
            counters,
        })
    }
}

/// RFC 8949 §4.2.1 order of text keys: by encoded bytes, i.e. shorter first, then bytewise.
fn deterministic_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}
