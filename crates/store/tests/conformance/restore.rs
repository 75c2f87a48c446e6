//! Reversibility cases (`beffroi export` / `beffroi import`): a restored tenant reads back
//! exactly as given (creation times, revocation and its time, signing keys current and
//! retired, alarm rules, agreement versions, pseudonym keys), a restore of an existing tenant, with a foreign record or with a record given twice
//! writes nothing; imported audit
//! entries keep their seqs and hashes and must continue the stored chain; batches are listed
//! by gateway then seq, in pages, and readings counted per tenant.

use std::sync::Arc;

use beffroi_audit::{AuditActor, AuditHead, AuditKind, Chain, Digest, NewAuditEntry};
use beffroi_policy::Agreement;
use beffroi_store::{
    AuditFilter, BatchKey, Error, GatewayKeyRecord, RestoredAgreement, RestoredGateway,
    RetentionPolicy, Sensor, Store, Tenant, TenantRestore, Zone,
};
use serde_json::json;

use crate::alarms::pm25_rule;
use crate::fixtures::*;

fn restore(t: &str) -> TenantRestore {
    let agreement: Agreement = serde_json::from_value(json!({
        "id": "air-lab", "version": 4, "grantor": t, "grantee": "public", "state": "active",
        "not_before": "2026-01-01T00:00:00Z", "not_after": "2027-01-01T00:00:00Z",
        "purposes": ["research"], "action": "read_aggregate",
        "target": { "metrics": ["air.*"] }, "min_bucket_s": 3600,
        "functions": ["avg"], "k": 3, "spatial_level": "zone",
        "pseudonymise": true, "embargo_s": 0
    }))
    .expect("agreement");
    TenantRestore {
        tenant: Tenant {
            id: tenant(t),
            name: "Métropole, \"restored\"".into(),
            created_at: at(T0 - 86_400 * SEC),
        },
        gateways: vec![
            // As exported before signing keys and revocation times were kept.
            RestoredGateway {
                id: gw("gw-1"),
                key_id: key(&format!("gw-1-{t}-key")),
                public_key: "07".repeat(32),
                cert_fingerprint: Some("ab".repeat(32)),
                cert_not_after: Some(at(T0 + 86_400 * SEC)),
                revoked: true,
                revoked_at: None,
                created_at: at(T0 - 3600 * SEC),
                keys: Vec::new(),
            },
            RestoredGateway {
                id: gw("gw-2"),
                key_id: key(&format!("gw-2-{t}-new")),
                public_key: "08".repeat(32),
                cert_fingerprint: None,
                cert_not_after: None,
                revoked: true,
                revoked_at: Some(at(T0 - 60 * SEC)),
                created_at: at(T0 - 7200 * SEC),
                keys: vec![
                    GatewayKeyRecord {
                        key_id: key(&format!("gw-2-{t}-new")),
                        public_key_hex: "08".repeat(32),
                        created_at: at(T0 - 600 * SEC),
                        retired_at: None,
                    },
                    GatewayKeyRecord {
                        key_id: key(&format!("gw-2-{t}-old")),
                        public_key_hex: "06".repeat(32),
                        created_at: at(T0 - 7200 * SEC),
                        retired_at: Some(at(T0 - 600 * SEC)),
                    },
                ],
            },
        ],
        sensors: vec![Sensor {
            tenant: tenant(t),
            id: sensor("s1"),
            kind: "air".into(),
            unit: Some(unit("ug/m3")),
            lat: Some(45.76),
            lon: Some(4.84),
            zone: Some(sensor("centre")),
            tags: vec![],
            placed_at: None,
        }],
        zones: vec![Zone {
            tenant: tenant(t),
            id: sensor("centre"),
            name: "Centre".into(),
            geometry: json!({"type": "Polygon", "coordinates": [[[4.8, 45.7], [4.9, 45.7], [4.8, 45.7]]]}),
        }],
        alarm_rules: vec![pm25_rule(t, "pm25-high")],
        agreements: vec![RestoredAgreement {
            agreement,
            created_at: at(T0 - 10 * SEC),
            updated_at: at(T0 - SEC),
            pseudonym_key: Some([9; 32]),
        }],
        retention: vec![RetentionPolicy {
            tenant: tenant(t),
            class: "air.*".parse().expect("class"),
            raw_days: Some(30),
            aggregate_days: None,
            updated_at: at(T0),
        }],
        restored_at: at(T0 + SEC),
        placements: Vec::new(),
    }
}

pub async fn restored_tenant_reads_back(store: Arc<dyn Store>) {
    let given = restore("lyon");
    store.restore_tenant(&given).await.expect("restore");
    let lyon = tenant("lyon");
    assert_eq!(
        store.tenant(&lyon).await.expect("tenant"),
        Some(given.tenant.clone())
    );
    let gateways = store.list_gateways(&lyon).await.expect("gateways");
    assert_eq!(gateways.len(), 2);
    let g = &gateways[0];
    assert_eq!((g.revoked, g.created_at), (true, at(T0 - 3600 * SEC)));
    assert_eq!(g.public_key_hex, "07".repeat(32));
    assert_eq!(g.cert_not_after, Some(at(T0 + 86_400 * SEC)));
    // An older export: revoked at the restore, its one key registered with the gateway.
    assert_eq!(g.revoked_at, Some(given.restored_at));
    assert_eq!(
        g.keys,
        [GatewayKeyRecord {
            key_id: key("gw-1-lyon-key"),
            public_key_hex: "07".repeat(32),
            created_at: at(T0 - 3600 * SEC),
            retired_at: None,
        }]
    );
    let g = &gateways[1];
    assert_eq!(g.revoked_at, Some(at(T0 - 60 * SEC)));
    assert_eq!(g.keys, given.gateways[1].keys, "every key, newest first");
    let retired = store
        .gateway_key(&key("gw-2-lyon-old"))
        .await
        .expect("key")
        .expect("a retired key is kept");
    assert_eq!(
        (retired.public_key, retired.retired_at, retired.revoked_at),
        ([6; 32], Some(at(T0 - 600 * SEC)), Some(at(T0 - 60 * SEC)))
    );
    assert_eq!(
        store.list_sensors(&lyon).await.expect("sensors"),
        given.sensors
    );
    assert_eq!(store.list_zones(&lyon).await.expect("zones"), given.zones);
    assert_eq!(
        store.list_alarm_rules(&lyon).await.expect("rules"),
        given.alarm_rules
    );
    assert_eq!(
        store.retention_policies(&lyon).await.expect("retention"),
        given.retention
    );
    let agreements = store.list_agreements(&lyon).await.expect("agreements");
    assert_eq!(agreements.len(), 1);
    assert_eq!(agreements[0].agreement.version, 4, "kept at its version");
    assert_eq!(
        (agreements[0].created_at, agreements[0].updated_at),
        (at(T0 - 10 * SEC), at(T0 - SEC))
    );
    let id = &agreements[0].agreement.id;
    let key = store
        .pseudonym_key(&lyon, id)
        .await
        .expect("key")
        .expect("a key");
    assert_eq!(key.epoch(), 1);

    assert!(matches!(
        store.restore_tenant(&given).await,
        Err(Error::AlreadyExists { what: "tenant", .. })
    ));
    let mut foreign = restore("paris");
    foreign.sensors[0].tenant = tenant("lyon");
    assert!(matches!(
        store.restore_tenant(&foreign).await,
        Err(Error::Invalid { .. })
    ));
    // A used key id: nothing of the tenant is written.
    let clash = restore("nice");
    let mut clash = TenantRestore {
        gateways: vec![RestoredGateway {
            key_id: key_of(&given),
            ..clash.gateways[0].clone()
        }],
        ..clash
    };
    clash.sensors.clear();
    assert!(matches!(
        store.restore_tenant(&clash).await,
        Err(Error::AlreadyExists {
            what: "gateway key id",
            ..
        })
    ));
    // A retired key id of another tenant's gateway is taken too.
    let mut clash = restore("nice");
    clash.gateways[1].keys[1].key_id = crate::fixtures::key("gw-2-lyon-old");
    assert!(matches!(
        store.restore_tenant(&clash).await,
        Err(Error::AlreadyExists { what: "key id", .. })
    ));
    // Keys without exactly one current key (the gateway's), or a revocation time on a
    // gateway that is not revoked: nothing is written.
    let mut two_current = restore("rennes");
    two_current.gateways[1].keys[1].retired_at = None;
    assert!(matches!(
        store.restore_tenant(&two_current).await,
        Err(Error::Invalid { .. })
    ));
    let mut not_revoked = restore("rennes");
    not_revoked.gateways[1].revoked = false;
    assert!(matches!(
        store.restore_tenant(&not_revoked).await,
        Err(Error::Invalid { .. })
    ));
    // A sensor given twice: a restore inserts, it does not replace, so nothing is written.
    let mut twice = restore("nantes");
    twice.sensors.push(twice.sensors[0].clone());
    assert!(matches!(
        store.restore_tenant(&twice).await,
        Err(Error::Database(_))
    ));
    for absent in ["paris", "nice", "nantes", "rennes"] {
        assert_eq!(store.tenant(&tenant(absent)).await.expect("tenant"), None);
    }
}

fn key_of(restore: &TenantRestore) -> beffroi_protocol::KeyId {
    restore.gateways[0].key_id.clone()
}

pub async fn imported_audit_continues_the_chain(store: Arc<dyn Store>) {
    store
        .create_tenant(&tenant("lyon"), "Lyon")
        .await
        .expect("tenant");
    let lyon = tenant("lyon");
    let mut chain = Chain::resume(lyon.clone(), AuditHead::GENESIS);
    let entries: Vec<_> = (0..5)
        .map(|i| {
            let entry = NewAuditEntry::new(
                lyon.clone(),
                at(T0 + i * SEC),
                AuditActor::User("alice".into()),
                AuditKind::RegistryChange,
                &json!({"n": i}),
            )
            .expect("entry");
            chain.append(&entry).expect("append")
        })
        .collect();
    assert!(
        matches!(
            store.import_audit(&lyon, &entries[1..]).await,
            Err(Error::Conflict { .. })
        ),
        "the first must follow the stored head"
    );
    let mut altered = entries[..2].to_vec();
    altered[1].hash = Digest::new([1; 32]);
    assert!(matches!(
        store.import_audit(&lyon, &altered).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        store
            .audit_head(&lyon)
            .await
            .expect("head")
            .map(|h| h.seq)
            .unwrap_or(0),
        0
    );

    let head = store
        .import_audit(&lyon, &entries[..2])
        .await
        .expect("first page");
    assert_eq!(head.seq, 2);
    let head = store
        .import_audit(&lyon, &entries[2..])
        .await
        .expect("second page");
    assert_eq!(head, chain.head());
    let stored = store
        .audit_entries(&lyon, &AuditFilter::default(), 0, 100)
        .await
        .expect("entries");
    assert_eq!(stored, entries, "kept verbatim");
    // The chain goes on from there.
    let next = NewAuditEntry::new(
        lyon.clone(),
        at(T0 + 9 * SEC),
        AuditActor::User("bob".into()),
        AuditKind::Import,
        &json!({}),
    )
    .expect("entry");
    let appended = store.append_audit(&[next]).await.expect("append");
    assert_eq!((appended[0].seq, appended[0].prev_hash), (6, head.hash));
    assert!(matches!(
        store.import_audit(&tenant("nowhere"), &[]).await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn batch_keys_and_reading_count(store: Arc<dyn Store>) {
    for g in ["gw-b", "gw-a"] {
        tenant_with_gateway(&store, "lyon", g).await;
    }
    tenant_with_gateway(&store, "paris", "gw-a").await;
    for seq in [3, 1, 2] {
        store
            .commit(&[
                small_batch("lyon", "gw-b", seq),
                small_batch("lyon", "gw-a", seq),
            ])
            .await
            .expect("commit");
    }
    store
        .commit(&[small_batch("paris", "gw-a", 9)])
        .await
        .expect("commit");
    let lyon = tenant("lyon");
    let mut keys = Vec::new();
    let mut after: Option<BatchKey> = None;
    loop {
        let page = store
            .batch_keys(&lyon, after.as_ref(), 4)
            .await
            .expect("keys");
        keys.extend(page.iter().map(|k| (k.gateway.to_string(), k.seq)));
        if page.len() < 4 {
            break;
        }
        after = page.last().cloned();
    }
    let expected: Vec<(String, u64)> = ["gw-a", "gw-b"]
        .iter()
        .flat_map(|g| (1..=3).map(move |s| (g.to_string(), s)))
        .collect();
    assert_eq!(keys, expected, "by gateway then seq, the tenant's only");
    assert_eq!(store.reading_count(&lyon).await.expect("count"), 6);
    assert_eq!(
        store.reading_count(&tenant("paris")).await.expect("count"),
        1
    );
    assert_eq!(
        store
            .reading_count(&tenant("nowhere"))
            .await
            .expect("count"),
        0
    );
}
