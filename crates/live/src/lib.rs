//! Live views: what operators' dashboards and `beffroi watch` see as it happens.
//!
//! This crate owns the live-view protocol (`docs/live.md`), the subscriptions and the
//! fan-out after commit: committed readings (raw, coalesced to the latest value per series, or
//! closed buckets), alarm changes, security events and gateway states, each to the clients
//! whose views they belong to, through one bounded queue per client. It must not speak HTTP
//! or hold a socket (the API's websocket route does, through [`Client`]), nor write anything:
//! it reads the registry and stored values through the [`beffroi_store::Store`] trait.
//!
//! ```text
//! ingest (after commit) ─┐
//! alerts (alarm changes) ├─► Hub ──► tenant state ──► ClientQueue (per client, bounded,
//! security events ───────┘         (series, subs)     coalescing) ──► connection task ──► ws
//! ```
//! Raw readings go through shared views (`view`): clients with the same filter read one
//! table of latest values, each at its own pace, so a value costs one insert per distinct view
//! however many operators watch it.
//! Tenancy: a client's token names its tenant, and every view is matched inside that tenant's
//! state only; a platform-operator token follows the security events of no tenant. A view of
//! another tenant's readings exists only under a sharing agreement: the API's [`Governor`]
//! decides it with the policy engine, and its [`Grant`] filters and shapes every value
//! (`grant`); under an embargo, values come from the store once they pass it (`delayed`).
//! A slow client never slows ingest or other clients: pushing into its queue never waits,
//! values coalesce, and a client whose events overflow or whose socket stays blocked is closed
//! with code 4408.

mod client;
mod config;
mod delayed;
mod error;
mod filter;
mod frames;
mod grant;
mod hub;
mod notice;
mod pacer;
mod protocol;
mod queue;
mod series;
mod tenant;
mod view;

pub use client::Client;
pub use config::LiveConfig;
pub use error::{LiveError, Result};
pub use filter::{Filter, SensorInfo};
pub use frames::MAX_ITEMS_PER_FRAME;
pub use grant::{Governor, Grant, GrantRequest, Refusal, RECHECK};
pub use hub::Hub;
pub use notice::{Notice, NOTICES};
pub use pacer::Pacer;
pub use protocol::{
    close, ClientMessage, ErrorCode, FilterSpec, Granularity, Reply, StreamKind, SubscribeRequest,
    PROTOCOL_VERSION,
};
pub use queue::Close;
pub use series::{bucket_start, BucketTrack, BucketValue};
