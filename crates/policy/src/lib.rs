//! Beffroi policy engine: the sharing agreements a collectivity grants on its data, and the
//! one decision that every governed read path — REST queries, live websocket views, exports
//! — asks before serving anything.
//!
//! This crate is pure: no IO, no async, no clock (callers pass `now`), no database, no
//! randomness. The store, the API and the live hub call it; it never calls them.
//!
//! # Model
//! An [`Agreement`] links a grantor tenant to a [`Grantee`] (a tenant, a partner, or the
//! public) with one permission — an [`Action`] (`read_aggregate`, or `read_raw` which
//! includes it) on a [`Target`] (metric patterns, zones, sensor tags, sensors) under terms:
//! minimum bucket, allowed [`Function`]s, minimum distinct sensors `k` per published cell,
//! finest [`SpatialLevel`], pseudonymisation, raw [`Field`] allow-list, embargo, allowed
//! [`Purpose`]s (mapped to W3C DPV) and a validity window — plus [`Prohibition`]s that win
//! over any permission.
//!
//! A **pooling** agreement ([`Agreement::pooling`]) is the same agreement between a tenant
//! that operates a sensor network and a tenant that uses it (the beneficiary): it pools only
//! the readings measured inside its validity window, and its target may select the
//! operator's sensors by the beneficiary's own zones ([`Target::territories`]): a reading is
//! pooled when its sensor stood inside one of them when it was measured (the caller places
//! the sensor, with [`Area`], and says so in [`ReadingFacts::territories`]). Its [`State`] follows a lifecycle (draft → active ⇄ suspended →
//! revoked). [`Agreement::validate`] lists every bad term with its path.
//!
//! # Decision
//! [`decide()`] takes an [`AccessRequest`], the agreements and `now`, and answers a
//! [`Decision`]: a [`Permit`] naming the one agreement (id and version) that justifies it
//! with the [`Transforms`] to apply, or a [`Deny`] with a stable [`DenyReason`] code and a
//! message, for the audit log. The rules, in order, are documented in `src/decide.rs`. A
//! tenant reading its own data is not a governed read: it does not go through [`decide()`]
//! (which would deny it, for lack of an agreement with itself).
//!
//! # Guarantees
//! - **Deny by default.** Nothing is permitted without an `active` agreement of the grantor
//!   for this requester, inside its validity window, for the stated purpose.
//! - **One agreement justifies a permit, with every term.** Terms never mix across
//!   agreements: raw rows from one and scope from another is a denial. Among several
//!   agreements that would each permit, the named one, else the lowest id, is chosen.
//! - **Prohibitions win.** A prohibition of any `active` or `suspended` agreement between
//!   the same grantor and requester that may touch the served scope with an included action
//!   denies, whatever permits.
//! - **Fail closed on what is not understood.** An unknown term is refused by
//!   [`Agreement::validate`]; at decision time an agreement carrying one is never used, and
//!   if it is in force it blocks the pair entirely (it may hide a prohibition).
//! - **One rule set per reading.** [`Transforms::admits`] decides whether a reading enters a
//!   permitted read at a given `now`: the store, exports and the live hub all apply it.
//! - **Embargo and whole buckets.** Nothing younger than `now − embargo` is served;
//!   aggregates are served in whole buckets only, on grids aligned on the agreement's
//!   minimum bucket.
//! - **Small cells stay hidden.** [`suppress()`] applies primary and complementary
//!   suppression on a canonical grid, then rolls up from published cells only.
//! - **Pseudonyms are keyed.** [`pseudonym()`] is an HMAC under a per-agreement
//!   [`PseudonymKey`] that never leaves memory through `Debug`, `Display` or serde.
//! - **Portable.** [`to_odrl`] / [`from_odrl`] export and import agreements as ODRL 2.2.
//!
//! # Wiring (what the caller does)
//! ```text
//! request ──decide(req, agreements, now)──► Deny ──► audit, refuse
//!                                        └► Permit ──► audit ──► query population(),
//!                                           served_range(now), filter admits(reading, now)
//!                                           raw: keep transforms fields, pseudonymise sensor
//!                                           aggregate: cells at fine_bucket ──suppress──►
//!                                           publish units inside transforms.scope
//! ```

mod agreement;
mod decide;
mod decision;
mod error;
mod grantee;
mod ids;
mod odrl;
mod pattern;
mod pseudonym;
mod purpose;
mod reading;
mod request;
mod row;
mod scope;
mod state;
mod suppress;
mod target;
mod terms;
mod territory;
mod transforms;
mod validate;
mod vocabulary;
mod window;

pub use agreement::{Agreement, AgreementRef, Prohibition, UnknownTerms};
pub use decide::decide;
pub use decision::{Decision, Deny, DenyReason, Permit};
pub use error::{Error, Result};
pub use grantee::Grantee;
pub use ids::{AgreementId, PartnerId, SensorTag, ZoneId};
pub use odrl::{
    from_odrl, to_odrl, BEFFROI_NS, BEFFROI_PROFILE, LEGACY_BEFFROI_NS, LEGACY_BEFFROI_PROFILE,
    ODRL_CONTEXT,
};
pub use pattern::MetricPattern;
pub use pseudonym::{pseudonym, PseudonymKey};
pub use purpose::{Purpose, DPV_NS};
pub use reading::ReadingFacts;
pub use request::{AccessRequest, Channel, Read};
pub use row::{shared_row, RowSource};
pub use scope::{Scope, Selection};
pub use state::State;
pub use suppress::{suppress, Cell, CellStats, Publication, PublishedCell, PublishedTotal, Values};
pub use target::Target;
pub use terms::{Action, Field, Function, SpatialLevel};
pub use territory::{Area, Position, Territories};
pub use transforms::{Aggregation, Shape, TimeWindow, Transforms};
pub use validate::{Problem, TermError};
pub use vocabulary::{Term, TermSet};
pub use window::{BucketSpec, TimeRange};
