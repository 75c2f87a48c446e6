//! Alerts: each tenant's alarm rules, evaluated on what happens after commit, and the alarms
//! they raise and clear.
//!
//! This crate owns rule evaluation ([`Engine`], pure: it is given inputs and `now`, it answers
//! [`Action`]s) and the task that applies those actions ([`AlertTask`]): alarms are written
//! through the [`beffroi_store::Store`] trait (which keeps at most one active alarm per rule and
//! subject, so raising is idempotent across nodes) and pushed to live views through the
//! [`beffroi_live::Hub`]. It must not speak HTTP, hold SQL, or slow ingest: inputs are handed
//! over without waiting ([`Alerts`]).
//!
//! Rules: thresholds on a metric with zone/sensor scope and a duration (on the tenant's own
//! sensors and, for a `pooled` rule, on those other tenants pool with it: see [`PoolGovernor`]), gateway offline, spool
//! gaps, security events (see [`beffroi_store::RuleCondition`]). The alarm lifecycle (open →
//! acknowledged → cleared) is documented with [`beffroi_store::Alarm`]; acknowledging and
//! clearing by hand go through the API, clearing when a condition ends comes from here.

mod engine;
mod pooled;
mod runner;
mod threshold;

pub use engine::{Action, Engine};
pub use pooled::{PoolGovernor, PoolWatch, Seen, Verdict};
pub use runner::{AlertTask, Alerts, Clock, LEASE, LEASE_NAME, MAX_RETRIES, QUEUE, RELOAD, TICK};
