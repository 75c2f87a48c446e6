//! One module per resource; each holds its handlers and the request/response shapes they own.
//!
//! Lists answer `{"items": [...]}`; offset-paginated lists add `next_offset`, raw readings add
//! `next_cursor`.

pub mod agreements;
pub mod alarm_rules;
pub mod alarms;
pub mod audit;
pub mod dashboard;
pub mod gateways;
pub mod health;
pub mod live;
pub mod me;
pub mod metrics;
pub mod openapi;
pub mod partners;
pub mod platform;
pub mod pooling;
pub mod quarantine;
pub mod readings;
pub mod retention;
pub mod security_events;
pub mod sensors;
pub mod shared;
pub mod tenants;
pub mod zones;

use serde::Serialize;

/// A complete listing.
#[derive(Debug, Serialize)]
pub struct Items<T> {
    /// The items.
    pub items: Vec<T>,
}

/// One page of an offset-paginated listing.
#[derive(Debug, Serialize)]
pub struct OffsetPage<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// The `offset` of the next page; `null` on the last page.
    pub next_offset: Option<u64>,
}
