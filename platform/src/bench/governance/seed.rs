//! The governance benchmark's data: a grantor city with zones, sensors and one reading a
//! minute per sensor and metric over whole hours, a partner with a token, and the two
//! agreements the governed queries are decided against (created through the API, as a
//! grantor's data officer would).
//!
//! ```text
//! readings : minute-major over [from, to) (to = the last whole hour), sensor, metric;
//!            committed with Store::commit, CHUNK_BATCHES batches of BATCH_READINGS each per
//!            transaction (the ingest's group-commit path)
//! tokens   : grantor viewer (direct queries), grantor admin (agreements), partner (governed)
//! ```

use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::{
    GatewayId, KeyId, MetricName, Reading, SensorId, TenantId, Timestamp, Unit, Value,
};
use beffroi_store::{CommitBatch, Role, Store};
use serde_json::json;

use super::super::http::Client;
use super::GovernanceBenchArgs;
use crate::admin;
use crate::bench::city::City;
use crate::server::Running;

/// The metrics a sensor can carry, with their units (`--metrics` takes the first M).
pub(crate) const METRICS: [(&str, &str); 8] = [
    ("air.no2", "ug/m3"),
    ("air.pm25", "ug/m3"),
    ("noise.laeq", "dB"),
    ("traffic.count", "count"),
    ("air.pm10", "ug/m3"),
    ("air.o3", "ug/m3"),
    ("noise.lamax", "dB"),
    ("traffic.trucks", "count"),
];
/// Readings per committed batch.
const BATCH_READINGS: usize = 1000;
/// Batches per commit (one transaction).
const CHUNK_BATCHES: usize = 50;
const MINUTE_US: i64 = 60_000_000;
const HOUR_US: i64 = 3_600_000_000;

/// The grantor tenant.
pub(crate) const GRANTOR: &str = "bench-grantor";
/// The partner the agreements grant to.
const PARTNER: &str = "bench-partner";
/// The tenant whose own log takes the timed audit appends.
pub(crate) const AUDIT_TENANT: &str = "bench-audit";
/// The aggregate agreement.
pub(crate) const AGGREGATE_AGREEMENT: &str = "bench-hourly";
/// The raw agreement.
const RAW_AGREEMENT: &str = "bench-raw";
/// Minimum distinct sensors per published cell.
pub(crate) const K: u32 = 3;
/// Rows per raw page.
pub(crate) const RAW_PAGE: u32 = 1000;

/// One query of the benchmark: a path and the token it is sent with.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    /// Path and query string.
    pub path: String,
    /// Bearer token.
    pub token: String,
}

/// What was seeded, and the queries over it.
#[derive(Debug, Clone)]
pub(crate) struct Seeded {
    /// Sensors of the grantor.
    pub sensors: usize,
    /// Metrics per sensor.
    pub metrics: usize,
    /// Hours of data.
    pub hours: u32,
    /// Zones.
    pub zones: usize,
    /// Readings committed.
    pub readings: u64,
    /// Time spent seeding the readings.
    pub elapsed: Duration,
    /// Start of the data and of every query (an hour boundary).
    pub from: Timestamp,
    /// End of the data and of every query (exclusive).
    pub to: Timestamp,
    /// The metric queried.
    pub metric: MetricName,
    /// Whether the raw agreement pseudonymises.
    pub pseudonymise: bool,
    viewer_token: String,
    partner_token: String,
}

impl Seeded {
    /// `metric=…&from=…&to=…`.
    fn common(&self) -> String {
        format!("metric={}&from={}&to={}", self.metric, self.from, self.to)
    }

    /// The grantor's own hourly aggregates, per sensor.
    pub(crate) fn direct_aggregate(&self) -> Query {
        Query {
            path: format!("/api/v1/readings/buckets?{}&bucket=1h", self.common()),
            token: self.viewer_token.clone(),
        }
    }

    /// The partner's hourly zone cells under the aggregate agreement.
    pub(crate) fn governed_aggregate(&self) -> Query {
        Query {
            path: format!(
                "/api/v1/shared/{GRANTOR}/aggregates?purpose=research&agreement=\
                 {AGGREGATE_AGREEMENT}&{}&bucket=1h&functions=avg,min,max,count&level=zone",
                self.common()
            ),
            token: self.partner_token.clone(),
        }
    }

    /// The grantor's own first page of raw readings.
    pub(crate) fn direct_raw(&self) -> Query {
        Query {
            path: format!("/api/v1/readings?{}&limit={RAW_PAGE}", self.common()),
            token: self.viewer_token.clone(),
        }
    }

    /// The partner's first page of raw rows under the raw agreement.
    pub(crate) fn governed_raw(&self) -> Query {
        Query {
            path: format!(
                "/api/v1/shared/{GRANTOR}/readings?purpose=research&agreement={RAW_AGREEMENT}\
                 &{}&limit={RAW_PAGE}",
                self.common()
            ),
            token: self.partner_token.clone(),
        }
    }

    /// The grantor's id.
    pub(crate) fn grantor() -> anyhow::Result<TenantId> {
        Ok(TenantId::new(GRANTOR)?)
    }

    /// The partner's id.
    pub(crate) fn partner() -> anyhow::Result<beffroi_policy::PartnerId> {
        Ok(beffroi_policy::PartnerId::new(PARTNER)?)
    }
}

/// Seeds the run: tenants, zones, sensors, readings, partner, tokens and agreements.
pub(crate) async fn seed(args: &GovernanceBenchArgs, running: &Running) -> anyhow::Result<Seeded> {
    let store = &running.store;
    let grantor = Seeded::grantor()?;
    admin::create_tenant(store.as_ref(), &grantor, "Benchmark city").await?;
    admin::create_tenant(
        store.as_ref(),
        &TenantId::new(AUDIT_TENANT)?,
        "Audit appends",
    )
    .await?;
    let city = City::create(store.as_ref(), &grantor, args.zones).await?;
    let sensors: Vec<SensorId> = (0..args.sensors)
        .map(|n| SensorId::new(format!("s-{n:05}")))
        .collect::<Result<_, _>>()?;
    for (n, sensor) in sensors.iter().enumerate() {
        city.register(store.as_ref(), &grantor, sensor, "air", n)
            .await?;
    }
    let metrics: Vec<(MetricName, Unit)> = METRICS[..args.metrics]
        .iter()
        .map(|(m, u)| Ok((MetricName::new(*m)?, Unit::new(*u)?)))
        .collect::<anyhow::Result<_>>()?;
    let to_us = Timestamp::now().unix_micros().div_euclid(HOUR_US) * HOUR_US;
    let from = Timestamp::from_unix_micros(to_us - i64::from(args.hours) * HOUR_US);
    let started = Instant::now();
    let readings = commit_readings(
        store.as_ref(),
        &grantor,
        &sensors,
        &metrics,
        from,
        args.hours,
    )
    .await
    .context("seeding readings")?;
    let elapsed = started.elapsed();

    let partner = Seeded::partner()?;
    admin::create_partner(store.as_ref(), &partner, "Benchmark partner").await?;
    let partner_token = admin::create_partner_token(store.as_ref(), &partner, "bench").await?;
    let viewer_token = admin::create_token(store, &grantor, Role::Viewer, "bench viewer").await?;
    let admin_token = admin::create_token(store, &grantor, Role::Admin, "bench admin").await?;
    let mut client = Client::connect(running.api_addr).await?;
    for agreement in agreements(args.pseudonymise, &metrics[0].0) {
        let reply = client
            .post_json("/api/v1/agreements", &admin_token, &agreement)
            .await?;
        if reply.status != 201 {
            anyhow::bail!(
                "creating agreement {}: {} {}",
                agreement["id"],
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
        }
    }
    Ok(Seeded {
        sensors: args.sensors,
        metrics: args.metrics,
        hours: args.hours,
        zones: args.zones,
        readings,
        elapsed,
        from,
        to: Timestamp::from_unix_micros(to_us),
        metric: metrics[0].0.clone(),
        pseudonymise: args.pseudonymise,
        viewer_token,
        partner_token,
    })
}

/// Commits one reading a minute per sensor and metric over `hours` from `from`; returns the
/// readings committed.
async fn commit_readings(
    store: &dyn Store,
    tenant: &TenantId,
    sensors: &[SensorId],
    metrics: &[(MetricName, Unit)],
    from: Timestamp,
    hours: u32,
) -> anyhow::Result<u64> {
    let gateway = GatewayId::new("bench-seed")?;
    let key_id = KeyId::new("bench-seed")?;
    let per_minute = sensors.len() * metrics.len();
    let total = per_minute * hours as usize * 60;
    let reading = |i: usize| {
        let (minute, rest) = (i / per_minute, i % per_minute);
        let (sensor, metric) = (rest / metrics.len(), rest % metrics.len());
        Reading {
            sensor: sensors[sensor].clone(),
            metric: metrics[metric].0.clone(),
            unit: metrics[metric].1.clone(),
            time: Timestamp::from_unix_micros(from.unix_micros() + minute as i64 * MINUTE_US),
            value: Value::Number(20.0 + (sensor % 17) as f64 + (minute % 60) as f64 / 10.0),
        }
    };
    let mut seq = 0u64;
    let mut next = 0usize;
    let mut committed = 0u64;
    while next < total {
        let mut batches = Vec::with_capacity(CHUNK_BATCHES);
        while batches.len() < CHUNK_BATCHES && next < total {
            let end = (next + BATCH_READINGS).min(total);
            seq += 1;
            batches.push(CommitBatch {
                tenant: tenant.clone(),
                gateway: gateway.clone(),
                seq,
                key_id: key_id.clone(),
                signature: [0; 64],
                received_at: Timestamp::now(),
                readings: (next..end).map(&reading).collect(),
            });
            next = end;
        }
        store.commit(&batches).await?;
        committed += batches.iter().map(|b| b.readings.len() as u64).sum::<u64>();
    }
    Ok(committed)
}

/// The aggregate and raw agreements granted to the partner, on `metric`.
fn agreements(pseudonymise: bool, metric: &MetricName) -> [serde_json::Value; 2] {
    let day = 86_400_000_000;
    let now = Timestamp::now().unix_micros();
    let not_before = Timestamp::from_unix_micros(now - 30 * day).to_string();
    let not_after = Timestamp::from_unix_micros(now + 30 * day).to_string();
    let grantee = format!("partner:{PARTNER}");
    [
        json!({
            "id": AGGREGATE_AGREEMENT, "grantee": grantee, "state": "active",
            "not_before": not_before, "not_after": not_after,
            "purposes": ["research"], "action": "read_aggregate",
            "target": { "metrics": [metric.as_str()] }, "min_bucket_s": 3600,
            "functions": ["avg", "min", "max", "count"], "k": K, "spatial_level": "zone",
            "pseudonymise": false, "embargo_s": 0
        }),
        json!({
            "id": RAW_AGREEMENT, "grantee": grantee, "state": "active",
            "not_before": not_before, "not_after": not_after,
            "purposes": ["research"], "action": "read_raw",
            "target": { "metrics": [metric.as_str()] },
            "functions": ["avg"], "k": 1, "spatial_level": "sensor",
            "pseudonymise": pseudonymise,
            "fields": ["time", "value", "unit", "metric", "sensor"], "embargo_s": 0
        }),
    ]
}
