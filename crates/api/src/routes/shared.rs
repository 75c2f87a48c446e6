//! What other tenants, partners and the public read of a grantor's data, under its sharing
//! agreements: `GET /api/v1/shared` (the agreements granted to the requester) and, under
//! `/api/v1/shared/{grantor}/`, `sensors` (the registry within an agreement's scope),
//! `readings` (raw rows), `aggregates` (suppressed cells and totals) and `export` (either, as
//! one download).
//!
//! A token is optional: without one the requester is the public (and reads only what
//! agreements grant to `public`); a tenant's token of any role and a partner's token read as
//! that tenant or partner; a platform token is refused. Every read goes through
//! [`crate::governed::serve`]: decided, audited in the grantor's log, then sent. `purpose` is
//! mandatory. A tenant's own data is read under `/api/v1/readings`, not here.
//!
//! Parameters: `purpose` (required), `agreement` (only this one may permit), `metric`
//! (repeatable patterns `air.pm25`, `air.*`, `*`; default `*`), `zone` (repeatable), `from`,
//! `to` (RFC 3339, `[from, to)`; default the last 24 h). Readings: `fields` (repeatable or
//! comma-separated; default every allowed field), `limit`, `cursor`. Aggregates: `bucket`
//! (`3600`, `15m`, `1h`, `1d`; default `1h`), `functions` (default `avg`), `level` (`zone` or
//! `sensor`; default `zone`). Export: `format` (`csv`, the default, or `senml`), `fields`, and
//! for aggregates `bucket`, `functions` and `level` (one of them makes the export an aggregate
//! one, CSV only); `to - from` up to 366 days.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use beffroi_policy::{
    AccessRequest, Action, AgreementId, BucketSpec, Channel, Field, Function, Grantee,
    MetricPattern, Permit, Purpose, Read, Shape, SpatialLevel, State as AgreementState, TimeRange,
    ZoneId,
};
use beffroi_protocol::{TenantId, Timestamp};
use beffroi_store::AgreementRecord;
use serde::Serialize;

use crate::error::{ApiError, Result};
use crate::governed::{
    self, Body, ExportFormat, GovernedRead, RawPage, Registry, Requester, MAX_EXPORT_RANGE,
};
use crate::json::ApiJson;
use crate::path::IdPath;
use crate::query::{parse_limit, QueryParams};
use crate::routes::readings::{
    decode_cursor, ids, time_range, DEFAULT_LIMIT, MAX_BUCKETS, MAX_BUCKET_RANGE, MAX_LIMIT,
    MAX_RAW_RANGE,
};
use crate::routes::Items;
use crate::ApiState;

/// Default aggregate bucket, in seconds.
pub const DEFAULT_BUCKET_S: u32 = 3600;

/// Parameters every shared read takes.
const COMMON: [&str; 6] = ["purpose", "agreement", "metric", "zone", "from", "to"];

/// Parameters of aggregate reads.
const AGGREGATE: [&str; 3] = ["bucket", "functions", "level"];

/// The agreements granted to the requester (its own and the public ones of other tenants),
/// drafts excepted, with their terms; never a pseudonym key.
pub async fn list(
    State(state): State<ApiState>,
    requester: Requester,
) -> Result<ApiJson<Items<AgreementRecord>>> {
    let items = state
        .store
        .agreements_for(&requester.grantee)
        .await?
        .into_iter()
        .filter(|r| r.agreement.state != AgreementState::Draft)
        .filter(|r| requester.grantee != Grantee::Tenant(r.agreement.grantor.clone()))
        .collect();
    Ok(ApiJson(Items { items }))
}

/// Raw rows of `grantor`, as an agreement permits.
pub async fn readings(
    State(state): State<ApiState>,
    requester: Requester,
    IdPath(grantor): IdPath<TenantId>,
    query: QueryParams,
) -> Result<Response> {
    check_grantor(&state, &requester, &grantor).await?;
    let read = readings_request(&state, &query, requester, grantor, false)?;
    serve_read(&state, read).await
}

/// Aggregates of `grantor`, as an agreement permits, after small-cell suppression.
pub async fn aggregates(
    State(state): State<ApiState>,
    requester: Requester,
    IdPath(grantor): IdPath<TenantId>,
    query: QueryParams,
) -> Result<Response> {
    check_grantor(&state, &requester, &grantor).await?;
    let read = aggregates_request(&state, &query, requester, grantor, false)?;
    serve_read(&state, read).await
}

/// What an agreement grants of `grantor`, as one download: raw rows (CSV or SenML, streamed
/// page by page) or, with `bucket`, `functions` or `level`, aggregate cells (CSV). Decided on
/// the `export` channel.
pub async fn export(
    State(state): State<ApiState>,
    requester: Requester,
    IdPath(grantor): IdPath<TenantId>,
    query: QueryParams,
) -> Result<Response> {
    check_grantor(&state, &requester, &grantor).await?;
    let mut allowed = COMMON.to_vec();
    allowed.extend(["format", "fields"]);
    allowed.extend(AGGREGATE);
    query.allow_only(&allowed)?;
    let format = query
        .parsed("format", ExportFormat::from_str)?
        .unwrap_or(ExportFormat::Csv);
    let aggregate = AGGREGATE.iter().any(|k| query.all(k).next().is_some());
    let mut read = if aggregate {
        if format != ExportFormat::Csv || query.all("fields").next().is_some() {
            return Err(ApiError::bad_request(
                "an aggregate export (bucket, functions or level) is CSV and takes no fields",
            ));
        }
        aggregate_read(&state, &query, requester, grantor, false)?
    } else {
        raw_read(&state, &query, requester, grantor, false, MAX_EXPORT_RANGE)?
    };
    read.request.channel = Channel::Export;
    governed::serve_export(&state, read, format).await
}

/// Decides and answers a readings or aggregates request.
pub(crate) async fn serve_read(state: &ApiState, read: GovernedRead) -> Result<Response> {
    let read = &read;
    governed::serve(state, read, |permit, now| async move {
        match permit.transforms.shape.clone() {
            Shape::Raw { fields } => governed::raw_rows(state, read, permit, &fields, now).await,
            Shape::Aggregate(aggregation) => {
                governed::publish_cells(state, read, permit, &aggregation, now).await
            }
        }
    })
    .await
}

/// A raw read from `query` (`readings` parameters).
pub(crate) fn readings_request(
    state: &ApiState,
    query: &QueryParams,
    requester: Requester,
    grantor: TenantId,
    preview: bool,
) -> Result<GovernedRead> {
    let mut allowed = COMMON.to_vec();
    allowed.extend(["fields", "limit", "cursor"]);
    query.allow_only(&allowed)?;
    raw_read(state, query, requester, grantor, preview, MAX_RAW_RANGE)
}

/// A raw read of at most `max_range` from `query` (its parameters already checked).
fn raw_read(
    state: &ApiState,
    query: &QueryParams,
    requester: Requester,
    grantor: TenantId,
    preview: bool,
    max_range: Duration,
) -> Result<GovernedRead> {
    let fields = words::<Field>(query, "fields")?;
    let limit = query
        .parsed("limit", |v| parse_limit(v, MAX_LIMIT))?
        .unwrap_or(DEFAULT_LIMIT);
    let after = query.parsed("cursor", decode_cursor)?;
    let now = state.clock.now();
    let (from, to) = time_range(query, now, max_range)?;
    let request = request(query, requester.grantee, grantor, TimeRange::new(from, to))?;
    Ok(GovernedRead {
        request: AccessRequest {
            read: Read::Raw { fields },
            ..request
        },
        actor: requester.actor,
        preview,
        page: RawPage { limit, after },
    })
}

/// An aggregate read from `query` (`aggregates` parameters).
pub(crate) fn aggregates_request(
    state: &ApiState,
    query: &QueryParams,
    requester: Requester,
    grantor: TenantId,
    preview: bool,
) -> Result<GovernedRead> {
    let mut allowed = COMMON.to_vec();
    allowed.extend(AGGREGATE);
    query.allow_only(&allowed)?;
    aggregate_read(state, query, requester, grantor, preview)
}

/// An aggregate read from `query` (its parameters already checked).
fn aggregate_read(
    state: &ApiState,
    query: &QueryParams,
    requester: Requester,
    grantor: TenantId,
    preview: bool,
) -> Result<GovernedRead> {
    let width_s = query
        .parsed("bucket", parse_bucket)?
        .unwrap_or(DEFAULT_BUCKET_S);
    let mut functions = words::<Function>(query, "functions")?;
    if functions.is_empty() {
        functions.insert(Function::Avg);
    }
    let spatial_level = query
        .parsed("level", SpatialLevel::from_str)?
        .unwrap_or(SpatialLevel::Zone);
    let now = state.clock.now();
    let (from, to) = time_range(query, now, MAX_BUCKET_RANGE)?;
    let width_us = i64::from(width_s) * 1_000_000;
    let buckets = (to.micros_since(from) + width_us - 1) / width_us;
    if buckets > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "the range at bucket={width_s}s gives {buckets} buckets, at most {MAX_BUCKETS}: \
             use a wider bucket or a shorter range"
        )));
    }
    let request = request(query, requester.grantee, grantor, TimeRange::new(from, to))?;
    Ok(GovernedRead {
        request: AccessRequest {
            read: Read::Aggregate {
                bucket: BucketSpec::epoch_aligned(width_s),
                functions,
                spatial_level,
            },
            ..request
        },
        actor: requester.actor,
        preview,
        page: RawPage {
            limit: DEFAULT_LIMIT,
            after: None,
        },
    })
}

/// The request of the common parameters (its `read` is a placeholder the caller replaces).
fn request(
    query: &QueryParams,
    requester: Grantee,
    grantor: TenantId,
    range: TimeRange,
) -> Result<AccessRequest> {
    let purpose = query.parsed("purpose", Purpose::from_str)?.ok_or_else(|| {
        ApiError::bad_request(
            "purpose: required, the reason for reading (public_service, mobility_planning, \
             environmental_monitoring, research, statistics, open_data, billing)",
        )
    })?;
    let agreement = query.parsed("agreement", AgreementId::from_str)?;
    let mut metrics: BTreeSet<MetricPattern> =
        ids(query, "metric", |v| v.parse())?.into_iter().collect();
    if metrics.is_empty() {
        metrics.insert(MetricPattern::Any);
    }
    let zones: BTreeSet<ZoneId> = ids(query, "zone", ZoneId::new)?.into_iter().collect();
    Ok(AccessRequest {
        requester,
        grantor,
        channel: Channel::Rest,
        purpose,
        agreement,
        metrics,
        zones,
        sensors: BTreeSet::new(),
        tags: BTreeSet::new(),
        range,
        read: Read::Raw {
            fields: BTreeSet::new(),
        },
    })
}

/// The words of a repeatable, comma-separated parameter.
fn words<T: FromStr + Ord>(query: &QueryParams, key: &str) -> Result<BTreeSet<T>>
where
    T::Err: std::fmt::Display,
{
    query
        .all(key)
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.parse()
                .map_err(|e| ApiError::bad_request(format!("{key}: {e}")))
        })
        .collect()
}

/// A bucket width: seconds (`3600`) or with a unit (`90s`, `30m`, `1h`, `1d`).
fn parse_bucket(text: &str) -> std::result::Result<u32, String> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    digits
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|s| *s >= 1)
        .ok_or_else(|| format!("{text:?} is not a bucket width such as 3600, 15m, 1h or 1d"))
}

/// 400 for a tenant reading its own data here, 404 for a grantor that does not exist.
pub(crate) async fn check_grantor(
    state: &ApiState,
    requester: &Requester,
    grantor: &TenantId,
) -> Result<()> {
    if requester.grantee == Grantee::Tenant(grantor.clone()) {
        return Err(ApiError::bad_request(
            "this is your own tenant's data: read it under /api/v1/readings",
        ));
    }
    if state.store.tenant(grantor).await?.is_none() {
        return Err(ApiError::NotFound(format!("tenant {grantor} not found")));
    }
    Ok(())
}

/// A registry entry as a grantee sees it.
#[derive(Debug, Serialize)]
#[serde(tag = "level", rename_all = "snake_case")]
pub enum SharedUnit {
    /// A sensor (its id pseudonymised when the agreement says so; then without position).
    Sensor {
        /// Its id or pseudonym.
        sensor: String,
        /// What it is.
        kind: String,
        /// Its usual unit.
        #[serde(skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
        /// Its zone.
        #[serde(skip_serializing_if = "Option::is_none")]
        zone: Option<ZoneId>,
        /// Latitude (not with pseudonyms: a position names a sensor).
        #[serde(skip_serializing_if = "Option::is_none")]
        lat: Option<f64>,
        /// Longitude (not with pseudonyms).
        #[serde(skip_serializing_if = "Option::is_none")]
        lon: Option<f64>,
    },
    /// A zone (zone-level agreements expose zones, not sensors).
    Zone {
        /// The zone.
        zone: ZoneId,
        /// Its name.
        name: String,
        /// Its GeoJSON geometry.
        geometry: serde_json::Value,
    },
}

/// The registry within an agreement's scope.
#[derive(Debug, Serialize)]
pub struct SharedRegistry {
    /// Whose.
    pub grantor: TenantId,
    /// The agreement that permits it.
    pub agreement: beffroi_policy::AgreementRef,
    /// The units.
    pub items: Vec<SharedUnit>,
}

/// The sensors (or zones) of `grantor` that an agreement covers. Decided like a read of the
/// agreement's own kind (raw rows, or aggregates at its finest terms) over its validity
/// window, and audited; `agreement` is required when several agreements concern the
/// requester.
pub async fn sensors(
    State(state): State<ApiState>,
    requester: Requester,
    IdPath(grantor): IdPath<TenantId>,
    query: QueryParams,
) -> Result<Response> {
    check_grantor(&state, &requester, &grantor).await?;
    query.allow_only(&["purpose", "agreement"])?;
    let now = state.clock.now();
    let agreements = state.agreements.current().await?;
    let named = query.parsed("agreement", AgreementId::from_str)?;
    let concerning: Vec<_> = agreements
        .iter()
        .filter(|a| a.grantor == grantor && a.grantee.covers(&requester.grantee))
        .filter(|a| named.as_ref().is_none_or(|n| *n == a.id))
        .collect();
    if named.is_none() && concerning.len() > 1 {
        return Err(ApiError::bad_request(
            "several agreements of this grantor concern you: name one with agreement=",
        ));
    }
    // The read the agreement itself allows, over all time up to now.
    let read = match concerning.first() {
        Some(a) if a.action == Action::ReadAggregate => Read::Aggregate {
            bucket: BucketSpec::epoch_aligned(a.min_bucket_s.unwrap_or(DEFAULT_BUCKET_S)),
            functions: a.functions.known().iter().take(1).copied().collect(),
            spatial_level: a.spatial_level,
        },
        _ => Read::Raw {
            fields: BTreeSet::new(),
        },
    };
    let range = TimeRange::new(Timestamp::from_unix_micros(0), now);
    let mut request = request(&query, requester.grantee, grantor, range)?;
    request.agreement = named.or_else(|| concerning.first().map(|a| a.id.clone()));
    request.read = read;
    let read = GovernedRead {
        request,
        actor: requester.actor,
        preview: false,
        page: RawPage {
            limit: DEFAULT_LIMIT,
            after: None,
        },
    };
    governed::serve(&state, &read, |permit, _now| {
        registry(&state, &read, permit)
    })
    .await
}

/// The registry body of a permit.
async fn registry(state: &ApiState, read: &GovernedRead, permit: Permit) -> Result<Body> {
    let grantor = &read.request.grantor;
    let transforms = &permit.transforms;
    let key = governed::permit_key(state.store.as_ref(), read, &permit).await?;
    let registry = Registry::load(
        state.store.as_ref(),
        grantor,
        &read.request.requester,
        &transforms.scope,
    )
    .await?;
    let population = registry
        .population(state.store.as_ref(), grantor, &transforms.scope)
        .await?;
    let sensors: Vec<_> = registry
        .sensors_in(&transforms.scope, &population.metrics)
        .collect();
    let zone_level = matches!(
        &transforms.shape,
        Shape::Aggregate(a) if a.spatial_level == SpatialLevel::Zone
    );
    let items: Vec<SharedUnit> = if zone_level {
        let wanted: BTreeSet<&ZoneId> = sensors.iter().filter_map(|s| s.zone.as_ref()).collect();
        state
            .store
            .list_zones(grantor)
            .await?
            .into_iter()
            .filter(|z| wanted.contains(&z.id))
            .map(|z| SharedUnit::Zone {
                zone: z.id,
                name: z.name,
                geometry: z.geometry,
            })
            .collect()
    } else {
        sensors
            .into_iter()
            .map(|s| {
                let (id, lat, lon) = match &key {
                    Some(key) => (
                        beffroi_policy::pseudonym(key, &permit.grantee, &s.id),
                        None,
                        None,
                    ),
                    None => (s.id.to_string(), s.lat, s.lon),
                };
                SharedUnit::Sensor {
                    sensor: id,
                    kind: s.kind.clone(),
                    unit: s.unit.as_ref().map(ToString::to_string),
                    zone: s.zone.clone(),
                    lat,
                    lon,
                }
            })
            .collect()
    };
    let rows = items.len();
    Body::json(
        &SharedRegistry {
            grantor: grantor.clone(),
            agreement: permit.agreement,
            items,
        },
        rows,
    )
}
