//! Registry cases: tenants, gateways, keys, revocation, sensors and their moves, zones.

use std::sync::Arc;

use beffroi_store::{
    Error, NewGateway, Placement, QuarantineReason, QuarantineRecord, RevokedGateway, Sensor,
    Store, Zone,
};
use serde_json::json;

use crate::fixtures::*;

pub async fn round_trips(store: Arc<dyn Store>) {
    let lyon = store
        .create_tenant(&tenant("lyon"), "Métropole de Lyon")
        .await
        .expect("create");
    assert_eq!(lyon.name, "Métropole de Lyon");
    store
        .create_tenant(&tenant("brest"), "Brest")
        .await
        .expect("create");
    let all = store.list_tenants().await.expect("list");
    assert_eq!(
        all.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["brest", "lyon"]
    );
    assert_eq!(
        store.tenant(&tenant("lyon")).await.expect("get"),
        Some(lyon.clone())
    );
    assert_eq!(store.tenant(&tenant("nantes")).await.expect("get"), None);

    let new = NewGateway {
        tenant: tenant("lyon"),
        id: gw("gw-1"),
        key_id: key("k1"),
        public_key: [9; 32],
        cert_fingerprint: None,
        cert_not_after: None,
    };
    store.register_gateway(&new).await.expect("register");
    let record = store
        .gateway(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("gateway")
        .expect("present");
    assert_eq!(record.key_id, key("k1"));
    assert_eq!(record.public_key_hex, "09".repeat(32));
    assert!(!record.revoked);
    assert_eq!(record.cert_fingerprint, None);
    assert_eq!(record.cert_not_after, None);
    assert_eq!(record.rejected_batches, 0);
    assert_eq!(record.state.last_committed_seq, None);
    assert!(record.created_at.unix_micros() > T0 - 365 * 86_400 * SEC);

    let k = store
        .gateway_key(&key("k1"))
        .await
        .expect("key")
        .expect("present");
    assert_eq!((k.tenant.as_str(), k.gateway.as_str()), ("lyon", "gw-1"));
    assert_eq!(k.public_key, [9; 32]);
    assert_eq!((k.revoked_at, k.retired_at), (None, None));
    assert_eq!(store.gateway_key(&key("nope")).await.expect("key"), None);

    // Certificates expire on whole seconds; the store keeps microseconds anyway.
    let not_after = at(T0 + 90 * 86_400 * SEC + 123_456);
    store
        .set_gateway_certificate(&tenant("lyon"), &gw("gw-1"), "ab12", not_after)
        .await
        .expect("cert");
    let record = store
        .gateway(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("gateway")
        .expect("present");
    assert_eq!(record.cert_fingerprint.as_deref(), Some("ab12"));
    assert_eq!(record.cert_not_after, Some(not_after));
    assert!(store.revoked_gateways().await.expect("revoked").is_empty());
    store
        .revoke_gateway(&tenant("lyon"), &gw("gw-1"), at(T0 + 7))
        .await
        .expect("revoke");
    assert_eq!(
        store.revoked_gateways().await.expect("revoked"),
        [RevokedGateway {
            tenant: tenant("lyon"),
            gateway: gw("gw-1"),
            cert_fingerprint: Some("ab12".into()),
            revoked_at: at(T0 + 7),
        }]
    );
    let k = store
        .gateway_key(&key("k1"))
        .await
        .expect("key")
        .expect("present");
    assert_eq!(k.revoked_at, Some(at(T0 + 7)));
    let listed = store.list_gateways(&tenant("lyon")).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked);
    assert_eq!(listed[0].revoked_at, Some(at(T0 + 7)));
    assert_eq!(listed[0].keys.len(), 1);
    assert_eq!(listed[0].keys[0].key_id, key("k1"));
    assert_eq!(listed[0].keys[0].public_key_hex, "09".repeat(32));
    assert_eq!(listed[0].keys[0].retired_at, None);
    assert_eq!(listed[0].cert_fingerprint.as_deref(), Some("ab12"));
    assert_eq!(listed[0].cert_not_after, Some(not_after));
    assert!(store
        .list_gateways(&tenant("brest"))
        .await
        .expect("list")
        .is_empty());

    let mut s = Sensor {
        tenant: tenant("lyon"),
        id: sensor("pm-1"),
        kind: "air".into(),
        unit: Some(unit("ug/m3")),
        lat: Some(45.764_043),
        lon: Some(4.835_659),
        zone: Some(sensor("part-dieu")),
        tags: Vec::new(),
        placed_at: Some(at(1_000)),
    };
    store.upsert_sensor(&s).await.expect("sensor");
    store
        .upsert_sensor(&Sensor {
            id: sensor("noise-1"),
            kind: "noise".into(),
            unit: None,
            lat: None,
            lon: None,
            zone: None,
            ..s.clone()
        })
        .await
        .expect("sensor");
    s.kind = "air-quality".into();
    s.lat = Some(45.5);
    s.placed_at = Some(at(2_000));
    store.upsert_sensor(&s).await.expect("replace");
    let sensors = store.list_sensors(&tenant("lyon")).await.expect("sensors");
    assert_eq!(sensors.len(), 2);
    assert_eq!(sensors[0].id.as_str(), "noise-1");
    assert_eq!(sensors[0].unit, None);
    assert_eq!(sensors[1], s);

    // A registry import: many sensors of several tenants in one call, replacing as it goes.
    let imported: Vec<Sensor> = (0..500)
        .map(|i| Sensor {
            tenant: tenant(if i % 2 == 0 { "lyon" } else { "brest" }),
            id: sensor(&format!("bulk-{i:03}")),
            lat: Some(45.0 + f64::from(i) / 1000.0),
            ..s.clone()
        })
        .collect();
    store.upsert_sensors(&imported).await.expect("import");
    store.upsert_sensors(&imported[..10]).await.expect("again");
    assert_eq!(
        store
            .list_sensors(&tenant("lyon"))
            .await
            .expect("lyon")
            .len(),
        252
    );
    let brest = store.list_sensors(&tenant("brest")).await.expect("brest");
    assert_eq!(brest.len(), 250);
    assert_eq!(brest[0], imported[1]);

    let geometry = json!({
        "type": "Polygon",
        "coordinates": [[[4.85, 45.76], [4.86, 45.76], [4.86, 45.77], [4.85, 45.76]]]
    });
    let zone = Zone {
        tenant: tenant("lyon"),
        id: sensor("part-dieu"),
        name: "Part-Dieu".into(),
        geometry: geometry.clone(),
    };
    store.upsert_zone(&zone).await.expect("zone");
    let renamed = Zone {
        name: "La Part-Dieu".into(),
        ..zone.clone()
    };
    store.upsert_zone(&renamed).await.expect("zone");
    assert_eq!(
        store.list_zones(&tenant("lyon")).await.expect("zones"),
        [renamed]
    );
    assert!(store
        .list_zones(&tenant("brest"))
        .await
        .expect("zones")
        .is_empty());
}

pub async fn errors(store: Arc<dyn Store>) {
    store
        .create_tenant(&tenant("lyon"), "Lyon")
        .await
        .expect("create");
    assert!(matches!(
        store.create_tenant(&tenant("lyon"), "again").await,
        Err(Error::AlreadyExists { what: "tenant", .. })
    ));
    let new = NewGateway {
        tenant: tenant("nowhere"),
        id: gw("gw-1"),
        key_id: key("k1"),
        public_key: [1; 32],
        cert_fingerprint: None,
        cert_not_after: None,
    };
    assert!(matches!(
        store.register_gateway(&new).await,
        Err(Error::NotFound { what: "tenant", .. })
    ));
    let new = NewGateway {
        tenant: tenant("lyon"),
        ..new
    };
    store.register_gateway(&new).await.expect("register");
    assert!(matches!(
        store.register_gateway(&new).await,
        Err(Error::AlreadyExists {
            what: "gateway",
            ..
        })
    ));
    let other = NewGateway {
        id: gw("gw-2"),
        ..new.clone()
    };
    assert!(matches!(
        store.register_gateway(&other).await,
        Err(Error::AlreadyExists { what: "key id", .. })
    ));
    assert!(matches!(
        store
            .set_gateway_certificate(&tenant("lyon"), &gw("gw-9"), "x", at(T0))
            .await,
        Err(Error::NotFound {
            what: "gateway",
            ..
        })
    ));
    assert!(matches!(
        store
            .revoke_gateway(&tenant("brest"), &gw("gw-1"), at(T0))
            .await,
        Err(Error::NotFound {
            what: "gateway",
            ..
        })
    ));
    let orphan = Sensor {
        tenant: tenant("nowhere"),
        id: sensor("s"),
        kind: "air".into(),
        unit: None,
        lat: None,
        lon: None,
        zone: None,
        tags: Vec::new(),
        placed_at: None,
    };
    assert!(matches!(
        store.upsert_sensor(&orphan).await,
        Err(Error::NotFound { what: "tenant", .. })
    ));
    // An import naming an unknown tenant writes nothing.
    let mut mixed = orphan.clone();
    mixed.tenant = tenant("lyon");
    mixed.id = sensor("would-be");
    assert!(matches!(
        store.upsert_sensors(&[mixed, orphan.clone()]).await,
        Err(Error::NotFound { what: "tenant", .. })
    ));
    assert!(!store
        .list_sensors(&tenant("lyon"))
        .await
        .expect("sensors")
        .iter()
        .any(|s| s.id.as_str() == "would-be"));
    assert!(matches!(
        store
            .record_health(&health("lyon", "gw-9", &[]), at(T0))
            .await,
        Err(Error::NotFound {
            what: "gateway",
            ..
        })
    ));
}

/// A certificate expiry given at registration is kept; `rejected_batches` counts the
/// gateway's quarantine rows, in its own tenant only.
pub async fn gateway_certificate_and_rejections(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    tenant_with_gateway(&store, "lyon", "gw-2").await;
    tenant_with_gateway(&store, "brest", "gw-1").await;
    let record = store
        .gateway(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("gateway")
        .expect("present");
    assert_eq!(record.cert_not_after, Some(at(T0 + 365 * 86_400 * SEC)));
    let rejected = |t: &str, g: Option<&str>, i: u64| QuarantineRecord {
        tenant: Some(tenant(t)),
        gateway: g.map(gw),
        topic: format!("beffroi/v1/{t}/x/batch"),
        seq: Some(i),
        reason: QuarantineReason::BadSignature,
        detail: format!("rejected {i}"),
        received_at: at(T0 + i as i64 * SEC),
        payload: vec![],
        settles_seq: false,
    };
    for i in 0..3 {
        store
            .quarantine(&rejected("lyon", Some("gw-1"), i))
            .await
            .expect("quarantine");
    }
    for record in [
        rejected("lyon", Some("gw-2"), 10),
        rejected("lyon", None, 11),
        rejected("brest", Some("gw-1"), 12),
    ] {
        store.quarantine(&record).await.expect("quarantine");
    }
    let counts = |gateways: Vec<beffroi_store::GatewayRecord>| {
        gateways
            .into_iter()
            .map(|g| (g.id.to_string(), g.rejected_batches))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(store.list_gateways(&tenant("lyon")).await.expect("list")),
        [("gw-1".to_owned(), 3), ("gw-2".to_owned(), 1)]
    );
    assert_eq!(
        counts(store.list_gateways(&tenant("brest")).await.expect("list")),
        [("gw-1".to_owned(), 1)]
    );
    let one = store
        .gateway(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("gateway")
        .expect("present");
    assert_eq!(one.rejected_batches, 3);
}

/// Every move of a sensor is kept, in order; a write that does not move it appends nothing,
/// one without `placed_at` moves it at the write's instant, and one that would rewrite the
/// past is refused.
pub async fn sensor_moves(store: Arc<dyn Store>) {
    let metro = tenant("metro");
    store
        .create_tenant(&metro, "Métropole")
        .await
        .expect("tenant");
    let mut s = Sensor {
        tenant: metro.clone(),
        id: sensor("no2-1"),
        kind: "air".into(),
        unit: None,
        lat: None,
        lon: None,
        zone: None,
        tags: Vec::new(),
        placed_at: Some(at(10)),
    };
    store.upsert_sensor(&s).await.expect("unplaced");
    assert_eq!(store.sensor_placements(&metro).await.expect("none"), []);
    let listed = store.list_sensors(&metro).await.expect("sensors");
    assert_eq!(listed[0].placed_at, None);

    (s.lat, s.lon, s.placed_at) = (Some(45.77), Some(4.86), Some(at(100)));
    store.upsert_sensor(&s).await.expect("placed");
    s.kind = "air-quality".into();
    s.placed_at = Some(at(150));
    store.upsert_sensor(&s).await.expect("same position");
    (s.lat, s.placed_at) = (Some(45.78), Some(at(200)));
    store.upsert_sensor(&s).await.expect("moved");
    (s.lat, s.lon, s.placed_at) = (None, None, Some(at(300)));
    store.upsert_sensor(&s).await.expect("position removed");
    let place = |since, lat, lon| Placement {
        tenant: metro.clone(),
        sensor: sensor("no2-1"),
        since: at(since),
        lat,
        lon,
    };
    assert_eq!(
        store.sensor_placements(&metro).await.expect("placements"),
        [
            place(100, Some(45.77), Some(4.86)),
            place(200, Some(45.78), Some(4.86)),
            place(300, None, None),
        ]
    );
    let listed = store.list_sensors(&metro).await.expect("sensors");
    assert_eq!(
        (listed[0].kind.as_str(), listed[0].placed_at),
        ("air-quality", Some(at(300)))
    );

    (s.lat, s.lon, s.placed_at) = (Some(45.0), Some(4.0), Some(at(300)));
    let err = store
        .upsert_sensor(&s)
        .await
        .expect_err("not after the last move");
    assert!(
        matches!(
            err,
            Error::Invalid {
                what: "placed_at",
                ..
            }
        ),
        "{err}"
    );
    s.placed_at = None;
    store.upsert_sensor(&s).await.expect("moved now");
    let last = store.sensor_placements(&metro).await.expect("placements");
    assert_eq!(last.len(), 4);
    assert!(last[3].since > at(300) && last[3].position() == Some((4.0, 45.0)));
    assert_eq!(
        store
            .sensor_placements(&tenant("other"))
            .await
            .expect("other"),
        []
    );
}
