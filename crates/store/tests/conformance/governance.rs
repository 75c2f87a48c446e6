//! Governance: agreements (create, optimistic updates, listings by grantor and grantee,
//! isolation), pseudonym keys, partners and partner tokens, sensor tags, and the governed
//! cell query checked against a brute-force computation from the raw readings.

use std::collections::BTreeMap;
use std::sync::Arc;

use beffroi_policy::{Agreement, AgreementId, Grantee, PartnerId, SensorTag, State};
use beffroi_protocol::{MetricName, SensorId, Value};
use beffroi_store::{
    CellQuery, CellUnit, Error, Partner, Sensor, Store, TokenRecord, TokenScope, Zone,
};
use serde_json::json;

use crate::fixtures::{
    all_of, at, batch, metric, num, read_all, reading, sensor, tenant, tenant_with_gateway, SEC, T0,
};

pub fn agreement(id: &str, grantor: &str, grantee: &str) -> Agreement {
    serde_json::from_value(json!({
        "id": id, "version": 7, "grantor": grantor, "grantee": grantee, "state": "draft",
        "not_before": "2026-01-01T00:00:00Z", "not_after": "2027-01-01T00:00:00Z",
        "purposes": ["research"], "action": "read_aggregate",
        "target": { "metrics": ["air.*"] }, "min_bucket_s": 3600,
        "functions": ["avg", "count"], "k": 3, "spatial_level": "zone",
        "pseudonymise": true, "embargo_s": 0
    }))
    .expect("agreement")
}

fn agreement_id(id: &str) -> AgreementId {
    AgreementId::new(id).expect("agreement id")
}

fn partner_id(id: &str) -> PartnerId {
    PartnerId::new(id).expect("partner id")
}

async fn partner(store: &Arc<dyn Store>, id: &str) {
    store
        .create_partner(&Partner {
            id: partner_id(id),
            name: format!("Partner {id}"),
            created_at: at(T0),
        })
        .await
        .expect("create partner");
}

pub async fn agreements_crud(store: Arc<dyn Store>) {
    for t in ["lyon", "paris"] {
        store.create_tenant(&tenant(t), t).await.expect("tenant");
    }
    partner(&store, "acme").await;
    let a = agreement("air-lab", "lyon", "partner:acme");
    let created = store
        .create_agreement(&a, None, at(T0))
        .await
        .expect("create");
    assert_eq!(
        created.agreement.version, 1,
        "a new agreement is at version 1"
    );
    assert_eq!(created.created_at, at(T0));
    let got = store
        .agreement(&tenant("lyon"), &a.id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(got, created);
    assert!(matches!(
        store.create_agreement(&a, None, at(T0)).await,
        Err(Error::AlreadyExists { .. })
    ));
    let mut invalid = agreement("bad", "lyon", "public");
    invalid.k = 0;
    assert!(matches!(
        store.create_agreement(&invalid, None, at(T0)).await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        store
            .create_agreement(&agreement("x", "nowhere", "public"), None, at(T0))
            .await,
        Err(Error::NotFound { .. })
    ));

    // Optimistic concurrency: based on version 1, then a stale write based on 1 again.
    let mut next = got.agreement.clone();
    next.set_state(State::Active).expect("draft → active");
    let updated = store
        .update_agreement(&next, 1, at(T0 + SEC))
        .await
        .expect("update");
    assert_eq!(updated.agreement.version, 2);
    assert_eq!(updated.agreement.state, State::Active);
    assert_eq!(updated.created_at, at(T0));
    assert_eq!(updated.updated_at, at(T0 + SEC));
    let stale = store.update_agreement(&next, 1, at(T0 + 2 * SEC)).await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    let mut missing = next.clone();
    missing.id = agreement_id("missing");
    assert!(matches!(
        store.update_agreement(&missing, 1, at(T0)).await,
        Err(Error::NotFound { .. })
    ));
    // Revoking never needs a valid agreement.
    let mut revoked = updated.agreement.clone();
    revoked.k = 0;
    revoked.state = State::Revoked;
    let revoked = store
        .update_agreement(&revoked, 2, at(T0 + 3 * SEC))
        .await
        .expect("revoke");
    assert_eq!(revoked.agreement.version, 3);

    // Listings: by grantor (isolated), by grantee (own and public), all.
    store
        .create_agreement(&agreement("open", "paris", "public"), None, at(T0))
        .await
        .expect("public agreement");
    store
        .create_agreement(&agreement("to-lyon", "paris", "tenant:lyon"), None, at(T0))
        .await
        .expect("tenant agreement");
    let ids = |records: Vec<beffroi_store::AgreementRecord>| -> Vec<String> {
        records
            .into_iter()
            .map(|r| format!("{}/{}", r.agreement.grantor, r.agreement.id))
            .collect()
    };
    assert_eq!(
        ids(store.list_agreements(&tenant("lyon")).await.expect("list")),
        ["lyon/air-lab"]
    );
    assert_eq!(
        ids(store.list_agreements(&tenant("paris")).await.expect("list")),
        ["paris/open", "paris/to-lyon"]
    );
    let acme = Grantee::Partner(partner_id("acme"));
    assert_eq!(
        ids(store.agreements_for(&acme).await.expect("for acme")),
        ["lyon/air-lab", "paris/open"]
    );
    assert_eq!(
        ids(store
            .agreements_for(&Grantee::Tenant(tenant("lyon")))
            .await
            .expect("for lyon")),
        ["paris/open", "paris/to-lyon"]
    );
    assert_eq!(
        ids(store
            .agreements_for(&Grantee::Public)
            .await
            .expect("public")),
        ["paris/open"]
    );
    assert_eq!(store.all_agreements().await.expect("all").len(), 3);
}

pub async fn pseudonym_keys_rotate(store: Arc<dyn Store>) {
    store
        .create_tenant(&tenant("lyon"), "Lyon")
        .await
        .expect("tenant");
    let a = agreement("keyed", "lyon", "public");
    store
        .create_agreement(&a, Some(&[1; 32]), at(T0))
        .await
        .expect("create with key");
    let key = store
        .pseudonym_key(&tenant("lyon"), &a.id)
        .await
        .expect("key")
        .expect("a key");
    assert_eq!((key.epoch(), *key.expose_secret()), (1, [1; 32]));
    let epoch = store
        .rotate_pseudonym_key(&tenant("lyon"), &a.id, &[2; 32], at(T0 + SEC))
        .await
        .expect("rotate");
    assert_eq!(epoch, 2);
    let key = store
        .pseudonym_key(&tenant("lyon"), &a.id)
        .await
        .expect("key")
        .expect("a key");
    assert_eq!((key.epoch(), *key.expose_secret()), (2, [2; 32]));
    assert!(
        !format!("{key:?} {key}").contains("2, 2"),
        "keys print redacted"
    );

    let plain = agreement("plain", "lyon", "public");
    store
        .create_agreement(&plain, None, at(T0))
        .await
        .expect("create without key");
    assert!(store
        .pseudonym_key(&tenant("lyon"), &plain.id)
        .await
        .expect("no key")
        .is_none());
    assert_eq!(
        store
            .rotate_pseudonym_key(&tenant("lyon"), &plain.id, &[3; 32], at(T0))
            .await
            .expect("first key"),
        1
    );
    assert!(matches!(
        store
            .rotate_pseudonym_key(&tenant("lyon"), &agreement_id("missing"), &[3; 32], at(T0))
            .await,
        Err(Error::NotFound { .. })
    ));
    // Another tenant's agreement of the same id is another agreement.
    assert!(store
        .pseudonym_key(&tenant("paris"), &a.id)
        .await
        .expect("other tenant")
        .is_none());
}

pub async fn partners_and_partner_tokens(store: Arc<dyn Store>) {
    partner(&store, "acme").await;
    partner(&store, "air-lab").await;
    let duplicate = store
        .create_partner(&Partner {
            id: partner_id("acme"),
            name: "again".into(),
            created_at: at(T0),
        })
        .await;
    assert!(matches!(duplicate, Err(Error::AlreadyExists { .. })));
    let listed: Vec<String> = store
        .list_partners()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.id.to_string())
        .collect();
    assert_eq!(listed, ["acme", "air-lab"]);
    assert_eq!(
        store
            .partner(&partner_id("acme"))
            .await
            .expect("get")
            .map(|p| p.name),
        Some("Partner acme".to_owned())
    );

    let token = TokenRecord {
        id: "p1".into(),
        scope: TokenScope::Partner {
            partner: partner_id("acme"),
        },
        name: "acme lab".into(),
        secret_sha256: [9; 32],
        created_at: at(T0),
    };
    store.create_token(&token).await.expect("partner token");
    assert_eq!(
        store.token_by_hash(&[9; 32]).await.expect("lookup"),
        Some(token)
    );
    let orphan = TokenRecord {
        id: "p2".into(),
        scope: TokenScope::Partner {
            partner: partner_id("nobody"),
        },
        name: "x".into(),
        secret_sha256: [8; 32],
        created_at: at(T0),
    };
    assert!(matches!(
        store.create_token(&orphan).await,
        Err(Error::NotFound {
            what: "partner",
            ..
        })
    ));
}

pub async fn sensor_tags_round_trip(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw").await;
    let tags = vec![
        SensorTag::new("air-quality").expect("tag"),
        SensorTag::new("school-street").expect("tag"),
    ];
    store
        .upsert_sensor(&Sensor {
            tenant: tenant("lyon"),
            id: sensor("s1"),
            kind: "air".into(),
            unit: None,
            lat: None,
            lon: None,
            zone: None,
            tags: tags.clone(),
            placed_at: None,
        })
        .await
        .expect("upsert");
    // Auto-registered by ingest: no tags.
    store
        .commit(&[batch("lyon", "gw", 1, vec![num("s2", "air.pm25", T0, 1.0)])])
        .await
        .expect("commit");
    let sensors = store.list_sensors(&tenant("lyon")).await.expect("list");
    let by_id: BTreeMap<String, Vec<SensorTag>> = sensors
        .into_iter()
        .map(|s| (s.id.to_string(), s.tags))
        .collect();
    assert_eq!(by_id["s1"], tags);
    assert_eq!(by_id["s2"], Vec::<SensorTag>::new());
}

/// The statistics of one cell: distinct sensors, count, sum, min, max.
type Stats = (u32, u64, f64, f64, f64);

pub async fn cells_match_brute_force(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw").await;
    tenant_with_gateway(&store, "paris", "gw").await;
    for z in ["z1", "z2"] {
        store
            .upsert_zone(&Zone {
                tenant: tenant("lyon"),
                id: sensor(z),
                name: z.into(),
                geometry: json!({ "type": "Polygon", "coordinates": [[[4.0, 45.0], [4.1, 45.0],
                    [4.1, 45.1], [4.0, 45.0]]] }),
            })
            .await
            .expect("zone");
    }
    let zone_of = [
        ("s1", Some("z1")),
        ("s2", Some("z1")),
        ("s3", Some("z2")),
        ("s4", None),
    ];
    for (id, zone) in zone_of {
        store
            .upsert_sensor(&Sensor {
                tenant: tenant("lyon"),
                id: sensor(id),
                kind: "air".into(),
                unit: None,
                lat: None,
                lon: None,
                zone: zone.map(sensor),
                tags: Vec::new(),
                placed_at: None,
            })
            .await
            .expect("sensor");
    }
    // Three hours of readings every 7 minutes, two metrics, plus values the cells ignore.
    let mut readings = Vec::new();
    for step in 0..26i64 {
        for (i, (id, _)) in zone_of.iter().enumerate() {
            let time = T0 - 600 * SEC + step * 420 * SEC + i as i64 * SEC;
            let value = (step * 7 + i as i64 * 13) as f64 / 4.0 - 3.0;
            readings.push(num(id, "air.pm25", time, value));
            if step % 3 == i as i64 % 3 {
                readings.push(num(id, "air.no2", time, value * 2.0));
            }
        }
    }
    readings.push(reading("s1", "air.pm25", T0, Value::Text("n/a".into())));
    readings.push(num("s1", "noise.db", T0, 50.0));
    store
        .commit(&[batch("lyon", "gw", 1, readings)])
        .await
        .expect("commit");
    store
        .commit(&[batch(
            "paris",
            "gw",
            1,
            vec![num("s1", "air.pm25", T0, 1e6)],
        )])
        .await
        .expect("commit paris");
    assert_eq!(
        store
            .series_metrics(&tenant("lyon"))
            .await
            .expect("metrics")
            .iter()
            .map(MetricName::as_str)
            .collect::<Vec<_>>(),
        ["air.no2", "air.pm25", "noise.db"]
    );

    let (from, to) = (T0 - 30 * 60 * SEC, T0 + 150 * 60 * SEC);
    let raw = read_all(&store, &all_of("lyon", from, to), 1000).await;
    let metrics = vec![metric("air.pm25"), metric("air.no2")];
    for (width_s, offset_s) in [(1800, 0), (3600, 600), (600, 0)] {
        for unit in [CellUnit::Sensor, CellUnit::Zone] {
            for sensors in [None, Some(vec![sensor("s1"), sensor("s3"), sensor("s4")])] {
                let query = CellQuery {
                    tenant: tenant("lyon"),
                    metrics: metrics.clone(),
                    sensors: sensors.clone(),
                    from: at(from),
                    to: at(to),
                    bucket_us: width_s * SEC,
                    offset_us: offset_s * SEC,
                    unit,
                };
                let cells = store.governed_cells(&query).await.expect("cells");
                let got: BTreeMap<(i64, String, String), Stats> = cells
                    .into_iter()
                    .map(|c| {
                        (
                            (
                                c.bucket.unix_micros(),
                                c.metric.to_string(),
                                c.unit.to_string(),
                            ),
                            (c.sensors, c.count, c.sum, c.min, c.max),
                        )
                    })
                    .collect();
                let mut expected: BTreeMap<(i64, String, String), Vec<(SensorId, f64)>> =
                    BTreeMap::new();
                for r in &raw {
                    let Value::Number(v) = r.value else { continue };
                    if !metrics.contains(&r.metric)
                        || sensors.as_ref().is_some_and(|s| !s.contains(&r.sensor))
                    {
                        continue;
                    }
                    let zone = zone_of
                        .iter()
                        .find(|(id, _)| *id == r.sensor.as_str())
                        .and_then(|(_, z)| *z);
                    let label = match (unit, zone) {
                        (CellUnit::Sensor, _) => r.sensor.to_string(),
                        (CellUnit::Zone, Some(z)) => z.to_owned(),
                        (CellUnit::Zone, None) => continue,
                    };
                    let (w, o) = (width_s * SEC, offset_s * SEC);
                    let t = r.time.unix_micros();
                    let bucket = t - (t - o).rem_euclid(w);
                    expected
                        .entry((bucket, r.metric.to_string(), label))
                        .or_default()
                        .push((r.sensor.clone(), v));
                }
                assert_eq!(
                    got.keys().collect::<Vec<_>>(),
                    expected.keys().collect::<Vec<_>>(),
                    "cells of {width_s}s+{offset_s}s {unit:?} {sensors:?}"
                );
                for (key, values) in &expected {
                    let mut distinct: Vec<&SensorId> = values.iter().map(|(s, _)| s).collect();
                    distinct.sort();
                    distinct.dedup();
                    let (n, count, sum, min, max) = got[key];
                    assert_eq!(n as usize, distinct.len(), "{key:?}");
                    assert_eq!(count as usize, values.len(), "{key:?}");
                    let want: f64 = values.iter().map(|(_, v)| v).sum();
                    assert!((sum - want).abs() < 1e-9, "{key:?}: {sum} vs {want}");
                    let lo = values.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
                    let hi = values
                        .iter()
                        .map(|(_, v)| *v)
                        .fold(f64::NEG_INFINITY, f64::max);
                    assert_eq!((min, max), (lo, hi), "{key:?}");
                }
            }
        }
    }

    // Empty selections read nothing; a bad grid is refused.
    let mut query = CellQuery {
        tenant: tenant("lyon"),
        metrics: metrics.clone(),
        sensors: Some(Vec::new()),
        from: at(from),
        to: at(to),
        bucket_us: 3600 * SEC,
        offset_us: 0,
        unit: CellUnit::Sensor,
    };
    assert!(store
        .governed_cells(&query)
        .await
        .expect("empty")
        .is_empty());
    query.sensors = None;
    query.metrics = Vec::new();
    assert!(store
        .governed_cells(&query)
        .await
        .expect("empty")
        .is_empty());
    query.metrics = metrics;
    query.offset_us = 3600 * SEC;
    assert!(matches!(
        store.governed_cells(&query).await,
        Err(Error::Invalid { .. })
    ));
}
