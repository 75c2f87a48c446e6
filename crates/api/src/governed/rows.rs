//! Raw rows of a permitted read: the store's page over the permit's population and served
//! range, each row checked with `Transforms::admits`, cut to the allowed fields, with the
//! sensor id pseudonymised when the agreement says so.
//!
//! `received_at` is an allowed field name, but the store does not keep it per reading: it is
//! never in a row.

use std::collections::BTreeSet;

use beffroi_policy::{
    pseudonym, shared_row, AgreementRef, Field, Permit, PseudonymKey, Purpose, RowSource,
};
use beffroi_protocol::{TenantId, Timestamp};
use beffroi_store::StoredReading;
use serde::Serialize;
use serde_json::{Map, Value};

use super::population::Registry;
use super::{permit_key, Body, GovernedRead};
use crate::error::Result;
use crate::routes::readings::encode_cursor;
use crate::ApiState;

/// A page of shared raw rows.
#[derive(Debug, Serialize)]
pub struct SharedRows {
    /// Whose data.
    pub grantor: TenantId,
    /// The agreement that permits it.
    pub agreement: AgreementRef,
    /// The purpose stated.
    pub purpose: Purpose,
    /// Start of the range served.
    pub from: Timestamp,
    /// End of the range served (exclusive): the request's end, or the embargo.
    pub to: Timestamp,
    /// The columns each row may have.
    pub fields: BTreeSet<Field>,
    /// The rows, oldest first: only the allowed columns.
    pub items: Vec<Map<String, Value>>,
    /// Pass as `cursor` (with the same query) for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The body of a permitted raw read.
pub(crate) async fn raw_rows(
    state: &ApiState,
    read: &GovernedRead,
    permit: Permit,
    fields: &BTreeSet<Field>,
    now: Timestamp,
) -> Result<Body> {
    let transforms = &permit.transforms;
    let grantor = &read.request.grantor;
    let key = permit_key(state.store.as_ref(), read, &permit).await?;
    let mut page = SharedRows {
        grantor: grantor.clone(),
        agreement: permit.agreement.clone(),
        purpose: read.request.purpose,
        from: transforms.range.from,
        to: transforms.range.to,
        fields: fields.clone(),
        items: Vec::new(),
        next_cursor: None,
    };
    let Some(range) = transforms.served_range(now) else {
        return Body::json(&page, 0);
    };
    (page.from, page.to) = (range.from, range.to);
    let registry = Registry::load(
        state.store.as_ref(),
        grantor,
        &read.request.requester,
        transforms.population(),
    )
    .await?;
    let population = registry
        .population(state.store.as_ref(), grantor, transforms.population())
        .await?;
    if population.is_empty() {
        return Body::json(&page, 0);
    }
    let filter = population.filter(grantor, range);
    let stored = state
        .store
        .readings(&filter, read.page.limit, read.page.after)
        .await?;
    for reading in &stored.readings {
        if let Some(row) = admitted(&registry, &permit, key.as_ref(), now, reading, |source| {
            shared_row(source, fields)
        }) {
            page.items.push(row);
        }
    }
    page.next_cursor = stored.next.map(encode_cursor);
    let rows = page.items.len();
    Body::json(&page, rows)
}

/// Shapes `reading` with `shape` if `permit` admits it at `now` (scope, validity, embargo),
/// its sensor pseudonymised with `key` when the agreement says so: the one per-row rule of
/// REST pages and exports.
pub(crate) fn admitted<T>(
    registry: &Registry,
    permit: &Permit,
    key: Option<&PseudonymKey>,
    now: Timestamp,
    reading: &StoredReading,
    shape: impl FnOnce(&RowSource<'_>) -> T,
) -> Option<T> {
    let facts = registry.facts(&reading.metric, &reading.sensor, reading.time);
    if !permit.transforms.admits(&facts, now) {
        return None;
    }
    let sensor = match key {
        Some(key) => pseudonym(key, &permit.grantee, &reading.sensor),
        None => reading.sensor.to_string(),
    };
    Some(shape(&RowSource {
        time: reading.time,
        value: &reading.value,
        unit: &reading.unit,
        metric: &reading.metric,
        sensor: &sensor,
        zone: facts.zone,
        gateway: &reading.gateway,
        seq: Some(reading.seq),
    }))
}
