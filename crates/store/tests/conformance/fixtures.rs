//! Builders for ids, readings and batches used by the cases.

use std::collections::BTreeMap;
use std::sync::Arc;

use beffroi_protocol::{
    Gap, GapReason, GatewayId, Health, KeyId, MetricName, Reading, SensorId, TenantId, Timestamp,
    Unit, Value,
};
use beffroi_store::{CommitBatch, NewGateway, ReadingFilter, Store, StoredReading};

/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000_000;
/// One second, in microseconds.
pub const SEC: i64 = 1_000_000;

pub fn tenant(s: &str) -> TenantId {
    TenantId::new(s).expect("tenant id")
}
pub fn gw(s: &str) -> GatewayId {
    GatewayId::new(s).expect("gateway id")
}
pub fn sensor(s: &str) -> SensorId {
    SensorId::new(s).expect("sensor id")
}
pub fn metric(s: &str) -> MetricName {
    MetricName::new(s).expect("metric")
}
pub fn key(s: &str) -> KeyId {
    KeyId::new(s).expect("key id")
}
pub fn unit(s: &str) -> Unit {
    Unit::new(s).expect("unit")
}
pub fn at(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(micros)
}

/// A numeric reading.
pub fn num(sensor_id: &str, metric_name: &str, time_us: i64, value: f64) -> Reading {
    Reading {
        sensor: sensor(sensor_id),
        metric: metric(metric_name),
        unit: unit("ug/m3"),
        time: at(time_us),
        value: Value::Number(value),
    }
}

/// A reading with any value.
pub fn reading(sensor_id: &str, metric_name: &str, time_us: i64, value: Value) -> Reading {
    Reading {
        sensor: sensor(sensor_id),
        metric: metric(metric_name),
        unit: unit(""),
        time: at(time_us),
        value,
    }
}

/// A batch with a signature derived from its seq.
pub fn batch(t: &str, g: &str, seq: u64, readings: Vec<Reading>) -> CommitBatch {
    let mut signature = [0u8; 64];
    signature[..8].copy_from_slice(&seq.to_be_bytes());
    signature[63] = 0xa5;
    CommitBatch {
        tenant: tenant(t),
        gateway: gw(g),
        seq,
        key_id: key(&format!("{g}-{t}-key")),
        signature,
        received_at: at(T0 + 3600 * SEC),
        readings,
    }
}

/// A one-reading batch.
pub fn small_batch(t: &str, g: &str, seq: u64) -> CommitBatch {
    let time = T0 + i64::try_from(seq).expect("small seq") * SEC;
    batch(t, g, seq, vec![num("s1", "air.pm25", time, 1.0)])
}

/// Creates a tenant (if missing) and registers a gateway in it.
pub async fn tenant_with_gateway(store: &Arc<dyn Store>, t: &str, g: &str) {
    if store.tenant(&tenant(t)).await.expect("tenant").is_none() {
        store
            .create_tenant(&tenant(t), &format!("Tenant {t}"))
            .await
            .expect("create tenant");
    }
    store
        .register_gateway(&NewGateway {
            tenant: tenant(t),
            id: gw(g),
            key_id: key(&format!("{g}-{t}-key")),
            public_key: [7; 32],
            cert_fingerprint: Some(format!("fp-{t}-{g}")),
            cert_not_after: Some(at(T0 + 365 * 86_400 * SEC)),
        })
        .await
        .expect("register gateway");
}

/// A health report with `gaps`.
pub fn health(t: &str, g: &str, gaps: &[(u64, u64)]) -> Health {
    Health {
        tenant: tenant(t),
        gateway: gw(g),
        time: at(T0),
        uptime_s: 60,
        agent_version: "0.1.0".into(),
        spool_batches: 3,
        spool_bytes: 4096,
        oldest_unacked_age_s: Some(12),
        batches_dropped: gaps.iter().map(|g| g.1 - g.0 + 1).sum(),
        readings_dropped: 10,
        rss_bytes: 5_000_000,
        next_seq: 100,
        gaps: gaps
            .iter()
            .map(|&(first_seq, last_seq)| Gap {
                first_seq,
                last_seq,
                batches: last_seq - first_seq + 1,
                readings: 5,
                reason: GapReason::SpoolFull,
            })
            .collect(),
        counters: BTreeMap::new(),
    }
}

/// Everything of a tenant in `[from, to)`.
pub fn all_of(t: &str, from: i64, to: i64) -> ReadingFilter {
    ReadingFilter {
        tenant: tenant(t),
        sensors: vec![],
        metrics: vec![],
        zone: None,
        from: at(from),
        to: at(to),
    }
}

/// Every reading of `filter`, following pages of `page` rows.
pub async fn read_all(
    store: &Arc<dyn Store>,
    filter: &ReadingFilter,
    page: u32,
) -> Vec<StoredReading> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let got = store
            .readings(filter, page, after)
            .await
            .expect("readings page");
        assert!(got.readings.len() <= page as usize);
        out.extend(got.readings);
        match got.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}
