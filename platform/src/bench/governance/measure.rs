//! The timed parts of the governance benchmark: the direct and the governed query in
//! alternating order (over HTTP, then through the store), and the governed read's own steps
//! alone (decision, audit append, body hash).
//!
//! ```text
//! pair   : first answers checked (200, rows) → warm-up rounds → rounds until the window
//!          closes (at least MIN_ROUNDS); even rounds direct then governed, odd rounds the
//!          other way round; each query timed from request to last body byte
//! parts  : decide × DECIDE_ROUNDS (mean), append_audit × AUDIT_APPENDS (one entry, one
//!          transaction each, on its own tenant's chain), SHA-256 of the body × HASH_ROUNDS
//! ```

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_audit::{AccessDetail, AuditActor, AuditKind, Digest, NewAuditEntry};
use beffroi_policy::{
    decide, AccessRequest, AgreementId, BucketSpec, Channel, Decision, Function, Grantee,
    MetricPattern, Purpose, Read, SpatialLevel, TimeRange,
};
use beffroi_protocol::{TenantId, Timestamp};
use beffroi_store::{CellQuery, CellUnit, ReadingFilter, Store};
use hyper::body::Bytes;
use serde_json::Value;

use super::super::http::{Client, Reply};
use super::seed::{Query, Seeded, AGGREGATE_AGREEMENT, AUDIT_TENANT};
use crate::bench::histogram::{Histogram, Summary};

/// Fewest rounds of a pair, however long they take.
const MIN_ROUNDS: u64 = 10;
/// Decisions timed together.
const DECIDE_ROUNDS: u32 = 20_000;
/// Audit appends timed one by one.
const AUDIT_APPENDS: usize = 300;
/// Hashes of the body timed together.
const HASH_ROUNDS: u32 = 200;
const HOUR_US: i64 = 3_600_000_000;

/// One direct/governed comparison.
#[derive(Debug, Clone)]
pub(crate) struct PairResult {
    /// The direct query's latencies.
    pub direct: Summary,
    /// The governed query's latencies.
    pub governed: Summary,
    /// Size of the direct answer, bytes.
    pub direct_bytes: usize,
    /// Size of the governed answer, bytes.
    pub governed_bytes: usize,
    /// Rows of the direct answer (items).
    pub direct_rows: usize,
    /// Rows of the governed answer (items, or cells and totals).
    pub governed_rows: usize,
    /// The governed answer, for the hash timing.
    pub governed_body: Bytes,
}

/// The direct and the governed read's queries through the store, without HTTP.
#[derive(Debug, Clone)]
pub(crate) struct StoreResult {
    /// `Store::buckets`, the direct route's one query.
    pub direct: Summary,
    /// The governed read's queries together.
    pub governed: Summary,
    /// Of which the lookups: grantor, registry, series.
    pub lookups: Summary,
    /// Of which `Store::governed_cells`.
    pub cells: Summary,
    /// Rows the direct query returned.
    pub direct_rows: usize,
    /// Cells the governed query returned.
    pub governed_rows: usize,
}

/// The governed read's own steps, alone.
#[derive(Debug, Clone)]
pub(crate) struct Parts {
    /// Mean of one `decide`, µs.
    pub decide_us: f64,
    /// Agreements decided against.
    pub agreements: usize,
    /// One audit append (one transaction).
    pub audit: Summary,
    /// Mean SHA-256 of the governed aggregate body, µs.
    pub hash_us: f64,
    /// Its size, bytes.
    pub body_bytes: usize,
}

/// Times `direct` against `governed` over `client`.
pub(crate) async fn http_pair(
    client: &mut Client,
    direct: &Query,
    governed: &Query,
    warmup: u32,
    window: Duration,
) -> anyhow::Result<PairResult> {
    let first_direct = checked(client.get(&direct.path, &direct.token).await?, direct)?;
    let first_governed = checked(client.get(&governed.path, &governed.token).await?, governed)?;
    let (direct_rows, governed_rows) = (rows_of(&first_direct)?, rows_of(&first_governed)?);
    if direct_rows == 0 || governed_rows == 0 {
        anyhow::bail!(
            "empty answers: {direct_rows} direct rows, {governed_rows} governed rows; \
             nothing to compare"
        );
    }
    let (direct_h, governed_h) = (Histogram::default(), Histogram::default());
    let mut round = 0u64;
    let mut opened = Instant::now();
    loop {
        let counting = round >= u64::from(warmup);
        if round == u64::from(warmup) {
            opened = Instant::now();
        }
        if counting && opened.elapsed() >= window && round - u64::from(warmup) >= MIN_ROUNDS {
            break;
        }
        let order = if round.is_multiple_of(2) {
            [(direct, &direct_h), (governed, &governed_h)]
        } else {
            [(governed, &governed_h), (direct, &direct_h)]
        };
        for (query, histogram) in order {
            let started = Instant::now();
            let reply = client.get(&query.path, &query.token).await?;
            let us = started.elapsed().as_micros();
            checked(reply, query)?;
            if counting {
                histogram.record(u64::try_from(us).unwrap_or(u64::MAX));
            }
        }
        round += 1;
    }
    Ok(PairResult {
        direct: direct_h.summary(),
        governed: governed_h.summary(),
        direct_bytes: first_direct.body.len(),
        governed_bytes: first_governed.body.len(),
        direct_rows,
        governed_rows,
        governed_body: first_governed.body,
    })
}

/// The reply if it is a 200, else the error with its body.
fn checked(reply: Reply, query: &Query) -> anyhow::Result<Reply> {
    if reply.status != 200 {
        anyhow::bail!(
            "GET {}: {} {}",
            query.path,
            reply.status,
            String::from_utf8_lossy(&reply.body[..reply.body.len().min(500)])
        );
    }
    Ok(reply)
}

/// Rows of an answer: its `items`, or its `cells` and `totals`.
fn rows_of(reply: &Reply) -> anyhow::Result<usize> {
    let value: Value = serde_json::from_slice(&reply.body).context("answer is not JSON")?;
    Ok(["items", "cells", "totals"]
        .iter()
        .filter_map(|key| value.get(key).and_then(Value::as_array).map(Vec::len))
        .sum())
}

/// Runs `f` and records how long it took in `histogram` (when given).
async fn timed<T, Fut>(histogram: Option<&Histogram>, f: Fut) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<T>>,
{
    let started = Instant::now();
    let value = f.await?;
    if let Some(histogram) = histogram {
        histogram.record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    Ok(value)
}

/// Times `Store::buckets` against the governed read's store queries, alternated.
pub(crate) async fn store_pair(
    store: &dyn Store,
    seeded: &Seeded,
    warmup: u32,
    window: Duration,
) -> anyhow::Result<StoreResult> {
    let grantor = Seeded::grantor()?;
    let filter = ReadingFilter {
        tenant: grantor.clone(),
        sensors: Vec::new(),
        metrics: vec![seeded.metric.clone()],
        zone: None,
        from: seeded.from,
        to: seeded.to,
    };
    let (direct, governed, lookups, cells) = (
        Histogram::default(),
        Histogram::default(),
        Histogram::default(),
        Histogram::default(),
    );
    let mut direct_rows = 0;
    let mut governed_rows = 0;
    for _ in 0..warmup {
        direct_rows = direct_once(store, &filter, None).await?;
        governed_rows = governed_once(store, seeded, None, None).await?;
    }
    let opened = Instant::now();
    let mut round = 0u64;
    while opened.elapsed() < window || round < MIN_ROUNDS {
        if round.is_multiple_of(2) {
            direct_rows = direct_once(store, &filter, Some(&direct)).await?;
            governed_rows =
                governed_once(store, seeded, Some(&governed), Some((&lookups, &cells))).await?;
        } else {
            governed_rows =
                governed_once(store, seeded, Some(&governed), Some((&lookups, &cells))).await?;
            direct_rows = direct_once(store, &filter, Some(&direct)).await?;
        }
        round += 1;
    }
    Ok(StoreResult {
        direct: direct.summary(),
        governed: governed.summary(),
        lookups: lookups.summary(),
        cells: cells.summary(),
        direct_rows,
        governed_rows,
    })
}

/// The direct route's query: per sensor and hour.
async fn direct_once(
    store: &dyn Store,
    filter: &ReadingFilter,
    histogram: Option<&Histogram>,
) -> anyhow::Result<usize> {
    timed(histogram, async {
        Ok(store.buckets(filter, HOUR_US).await?.len())
    })
    .await
}

/// The governed aggregate read's queries: the grantor (404 check), its registry and series
/// (the permit's population), then the cells; `parts` takes the first three and the cells
/// apart.
async fn governed_once(
    store: &dyn Store,
    seeded: &Seeded,
    total: Option<&Histogram>,
    parts: Option<(&Histogram, &Histogram)>,
) -> anyhow::Result<usize> {
    let grantor = Seeded::grantor()?;
    timed(total, async {
        let metrics = timed(parts.map(|p| p.0), async {
            store
                .tenant(&grantor)
                .await?
                .context("the grantor is gone")?;
            store.list_sensors(&grantor).await?;
            let metrics: Vec<_> = store
                .series_metrics(&grantor)
                .await?
                .into_iter()
                .filter(|m| *m == seeded.metric)
                .collect();
            Ok(metrics)
        })
        .await?;
        let query = CellQuery {
            tenant: grantor.clone(),
            metrics,
            sensors: None,
            from: seeded.from,
            to: seeded.to,
            bucket_us: HOUR_US,
            offset_us: 0,
            unit: CellUnit::Zone,
        };
        timed(parts.map(|p| p.1), async {
            Ok(store.governed_cells(&query).await?.len())
        })
        .await
    })
    .await
}

/// The governed aggregate read as the policy engine sees it.
fn aggregate_request(seeded: &Seeded) -> anyhow::Result<AccessRequest> {
    Ok(AccessRequest {
        requester: Grantee::Partner(Seeded::partner()?),
        grantor: Seeded::grantor()?,
        channel: Channel::Rest,
        purpose: Purpose::Research,
        agreement: Some(AgreementId::new(AGGREGATE_AGREEMENT)?),
        metrics: BTreeSet::from([seeded.metric.as_str().parse::<MetricPattern>()?]),
        zones: BTreeSet::new(),
        sensors: BTreeSet::new(),
        tags: BTreeSet::new(),
        range: TimeRange::new(seeded.from, seeded.to),
        read: Read::Aggregate {
            bucket: BucketSpec::epoch_aligned(3600),
            functions: BTreeSet::from([
                Function::Avg,
                Function::Min,
                Function::Max,
                Function::Count,
            ]),
            spatial_level: SpatialLevel::Zone,
        },
    })
}

/// Times the governed read's own steps alone.
pub(crate) async fn parts(
    store: &dyn Store,
    seeded: &Seeded,
    body: &[u8],
) -> anyhow::Result<Parts> {
    let request = aggregate_request(seeded)?;
    let agreements = store.all_agreements().await?;
    let now = Timestamp::now();
    if !matches!(decide(&request, &agreements, now), Decision::Permit(_)) {
        anyhow::bail!("the benchmark's aggregate request is not permitted");
    }
    let started = Instant::now();
    for _ in 0..DECIDE_ROUNDS {
        std::hint::black_box(decide(std::hint::black_box(&request), &agreements, now));
    }
    let decide_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(DECIDE_ROUNDS);

    let started = Instant::now();
    for _ in 0..HASH_ROUNDS {
        std::hint::black_box(Digest::of(std::hint::black_box(body)));
    }
    let hash_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(HASH_ROUNDS);

    // An entry like the governed read's, on a tenant of its own (the grantor's log keeps
    // only real accesses).
    let tenant = TenantId::new(AUDIT_TENANT)?;
    let detail = AccessDetail {
        grantee: request.requester.to_string(),
        agreement: Some(beffroi_audit::AgreementRef {
            id: AGGREGATE_AGREEMENT.to_owned(),
            version: 1,
        }),
        purpose: Some(request.purpose.to_string()),
        channel: beffroi_audit::Channel::Rest,
        query: serde_json::to_value(&request)?,
        rows: 1,
        result_hash: Some(Digest::of(body)),
        reason: None,
    };
    let audit = Histogram::default();
    for _ in 0..AUDIT_APPENDS {
        let entry = NewAuditEntry::new(
            tenant.clone(),
            Timestamp::now(),
            AuditActor::Public,
            AuditKind::AccessPermit,
            &detail,
        )?;
        timed(Some(&audit), async {
            store.append_audit(std::slice::from_ref(&entry)).await?;
            Ok(())
        })
        .await?;
    }
    Ok(Parts {
        decide_us,
        agreements: agreements.len(),
        audit: audit.summary(),
        hash_us,
        body_bytes: body.len(),
    })
}
