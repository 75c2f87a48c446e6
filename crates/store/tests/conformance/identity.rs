//! Gateway identity cases (docs/gateway-identity.md): enrollment tokens (redeemed once, even
//! by racing callers; used, expired, unknown), enrollment and re-enrollment, signing-key
//! rotation (retired keys kept and still found), revocation with its first time kept and
//! refusing tokens, enrollments and rotations, and the migration of existing gateways.

use std::sync::Arc;
use std::time::Duration;

use beffroi_protocol::{KeyId, Timestamp};
use beffroi_store::{EnrollmentToken, Error, GatewayKeyRecord, NewGateway, Redeemed, Store};

use crate::fixtures::*;
use crate::harness::Database;

fn token(hash: &str, t: &str, g: &str, expires_at: Timestamp) -> EnrollmentToken {
    EnrollmentToken {
        token_hash: hash.repeat(64 / hash.len()),
        tenant: tenant(t),
        gateway: gw(g),
        created_at: at(T0),
        expires_at,
        created_by: "alice".into(),
        used_at: None,
    }
}

fn enrollment(t: &str, g: &str, kid: &str, byte: u8) -> NewGateway {
    NewGateway {
        tenant: tenant(t),
        id: gw(g),
        key_id: key(kid),
        public_key: [byte; 32],
        cert_fingerprint: Some(format!("fp-{kid}")),
        cert_not_after: Some(at(T0 + 30 * 86_400 * SEC)),
    }
}

fn current(kid: &str, byte: u8, created_at: Timestamp) -> GatewayKeyRecord {
    GatewayKeyRecord {
        key_id: key(kid),
        public_key_hex: hex::encode([byte; 32]),
        created_at,
        retired_at: None,
    }
}

fn retired(kid: &str, byte: u8, created_at: Timestamp, at: Timestamp) -> GatewayKeyRecord {
    GatewayKeyRecord {
        retired_at: Some(at),
        ..current(kid, byte, created_at)
    }
}

async fn keys_of(store: &Arc<dyn Store>, t: &str, g: &str) -> Vec<GatewayKeyRecord> {
    store
        .gateway(&tenant(t), &gw(g))
        .await
        .expect("gateway")
        .expect("present")
        .keys
}

pub async fn tokens_redeem_once(store: Arc<dyn Store>) {
    store
        .create_tenant(&tenant("lyon"), "Lyon")
        .await
        .expect("tenant");
    let valid = token("a1", "lyon", "gw-1", at(T0 + 3600 * SEC));
    store.create_enrollment_token(&valid).await.expect("create");
    let again = store.create_enrollment_token(&valid).await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );
    let unknown = store
        .create_enrollment_token(&token("b2", "nowhere", "gw-1", at(T0 + SEC)))
        .await;
    assert!(
        matches!(unknown, Err(Error::NotFound { what: "tenant", .. })),
        "{unknown:?}"
    );
    let expiring = token("c3", "lyon", "gw-2", at(T0 + 60 * SEC));
    store
        .create_enrollment_token(&expiring)
        .await
        .expect("create");

    // Pending at a time: unused and not yet expired.
    let pending = store
        .pending_enrollments(&tenant("lyon"), at(T0 + 30 * SEC))
        .await
        .expect("pending");
    assert_eq!(pending, [valid.clone(), expiring.clone()]);
    let pending = store
        .pending_enrollments(&tenant("lyon"), at(T0 + 60 * SEC))
        .await
        .expect("pending");
    assert_eq!(
        pending,
        std::slice::from_ref(&valid),
        "expired at its expiry"
    );
    assert!(store
        .pending_enrollments(&tenant("brest"), at(T0))
        .await
        .expect("pending")
        .is_empty());
    // A token for a gateway that has no row yet does not list the gateway.
    assert!(store
        .list_gateways(&tenant("lyon"))
        .await
        .expect("list")
        .is_empty());

    let now = at(T0 + 10 * SEC);
    assert_eq!(
        store
            .redeem_enrollment_token(&valid.token_hash, now)
            .await
            .expect("redeem"),
        Redeemed::Bound {
            tenant: tenant("lyon"),
            gateway: gw("gw-1")
        }
    );
    assert_eq!(
        store
            .redeem_enrollment_token(&valid.token_hash, at(T0 + 11 * SEC))
            .await
            .expect("redeem again"),
        Redeemed::Used { used_at: now }
    );
    assert_eq!(
        store
            .redeem_enrollment_token(&expiring.token_hash, at(T0 + 60 * SEC))
            .await
            .expect("redeem expired"),
        Redeemed::Expired {
            expires_at: at(T0 + 60 * SEC)
        }
    );
    assert_eq!(
        store
            .redeem_enrollment_token(&"d4".repeat(32), now)
            .await
            .expect("redeem unknown"),
        Redeemed::Unknown
    );
    // An expired token was not spent by the attempt: it stays expired, not used.
    assert_eq!(
        store
            .redeem_enrollment_token(&expiring.token_hash, at(T0 + 61 * SEC))
            .await
            .expect("redeem expired again"),
        Redeemed::Expired {
            expires_at: at(T0 + 60 * SEC)
        }
    );
    assert!(store
        .pending_enrollments(&tenant("lyon"), at(T0 + 30 * SEC))
        .await
        .expect("pending")
        .iter()
        .all(|t| t.token_hash != valid.token_hash));
}

pub async fn racing_redeems_bind_once(store: Arc<dyn Store>) {
    store
        .create_tenant(&tenant("lyon"), "Lyon")
        .await
        .expect("tenant");
    let raced = token("e5", "lyon", "gw-1", at(T0 + 3600 * SEC));
    store.create_enrollment_token(&raced).await.expect("create");
    let redeems: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let hash = raced.token_hash.clone();
            tokio::spawn(async move {
                store
                    .redeem_enrollment_token(&hash, at(T0 + i * SEC))
                    .await
                    .expect("redeem")
            })
        })
        .collect();
    let mut bound = 0;
    for redeem in redeems {
        match redeem.await.expect("task") {
            Redeemed::Bound { tenant: t, gateway } => {
                assert_eq!((t, gateway), (tenant("lyon"), gw("gw-1")));
                bound += 1;
            }
            Redeemed::Used { .. } => {}
            other => panic!("a racing redeem found {other:?}"),
        }
    }
    assert_eq!(bound, 1, "exactly one racing redeem wins");
}

pub async fn enrollment_and_reenrollment(store: Arc<dyn Store>) {
    store
        .create_tenant(&tenant("lyon"), "Lyon")
        .await
        .expect("tenant");
    assert!(matches!(
        store
            .enroll_gateway(&enrollment("nowhere", "gw-1", "k-0", 1), at(T0))
            .await,
        Err(Error::NotFound { what: "tenant", .. })
    ));

    // First enrollment: the gateway is created with its key.
    let t1 = at(T0 + SEC);
    store
        .enroll_gateway(&enrollment("lyon", "gw-1", "k-1", 1), t1)
        .await
        .expect("enroll");
    let record = store
        .gateway(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("gateway")
        .expect("created");
    assert_eq!((record.key_id.clone(), record.created_at), (key("k-1"), t1));
    assert_eq!(record.public_key_hex, hex::encode([1; 32]));
    assert_eq!(record.cert_fingerprint.as_deref(), Some("fp-k-1"));
    assert_eq!((record.revoked, record.revoked_at), (false, None));
    assert_eq!(record.keys, [current("k-1", 1, t1)]);

    // Re-enrollment after a token was prepared: the previous key is retired at that time,
    // the pending token shows on the gateway until it is redeemed.
    let expires = Timestamp::now().saturating_add(Duration::from_secs(86_400));
    store
        .create_enrollment_token(&token("f6", "lyon", "gw-1", expires))
        .await
        .expect("token for a re-enrollment");
    let pending = store
        .gateway(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("gateway")
        .expect("present")
        .pending_enrollment;
    assert_eq!(pending, Some(expires));
    let t2 = at(T0 + 100 * SEC);
    store
        .redeem_enrollment_token(&"f6".repeat(32), Timestamp::now())
        .await
        .expect("redeem");
    store
        .enroll_gateway(&enrollment("lyon", "gw-1", "k-2", 2), t2)
        .await
        .expect("re-enroll");
    let record = store
        .gateway(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("gateway")
        .expect("present");
    assert_eq!(record.pending_enrollment, None, "the token was used");
    assert_eq!(record.key_id, key("k-2"));
    assert_eq!(record.public_key_hex, hex::encode([2; 32]));
    assert_eq!(record.cert_fingerprint.as_deref(), Some("fp-k-2"));
    assert_eq!(record.created_at, t1, "the gateway keeps its creation");
    assert_eq!(
        record.keys,
        [current("k-2", 2, t2), retired("k-1", 1, t1, t2)],
        "newest first"
    );
    let old = store
        .gateway_key(&key("k-1"))
        .await
        .expect("key")
        .expect("a retired key is still found");
    assert_eq!((old.public_key, old.retired_at), ([1; 32], Some(t2)));
    assert_eq!(old.gateway, gw("gw-1"));

    // A key id registered anywhere, retired or current, is refused; nothing changes.
    store
        .enroll_gateway(&enrollment("lyon", "gw-2", "k-3", 3), t2)
        .await
        .expect("another gateway");
    for taken in ["k-1", "k-3"] {
        assert!(
            matches!(
                store
                    .enroll_gateway(&enrollment("lyon", "gw-1", taken, 9), at(T0 + 200 * SEC))
                    .await,
                Err(Error::AlreadyExists { what: "key id", .. })
            ),
            "{taken}"
        );
        assert!(matches!(
            store
                .enroll_gateway(&enrollment("lyon", "gw-new", taken, 9), at(T0 + 200 * SEC))
                .await,
            Err(Error::AlreadyExists { what: "key id", .. })
        ));
    }
    assert_eq!(
        keys_of(&store, "lyon", "gw-1").await,
        [current("k-2", 2, t2), retired("k-1", 1, t1, t2)]
    );
    assert!(store
        .gateway(&tenant("lyon"), &gw("gw-new"))
        .await
        .expect("gateway")
        .is_none());
    // A manually registered key id is taken as well.
    tenant_with_gateway(&store, "lyon", "gw-manual").await;
    assert_eq!(
        keys_of(&store, "lyon", "gw-manual").await.len(),
        1,
        "a registration fills gateway_keys"
    );
    assert!(matches!(
        store
            .enroll_gateway(
                &enrollment("lyon", "gw-1", "gw-manual-lyon-key", 9),
                at(T0 + 200 * SEC)
            )
            .await,
        Err(Error::AlreadyExists { what: "key id", .. })
    ));
}

pub async fn key_rotation(store: Arc<dyn Store>) {
    store
        .create_tenant(&tenant("lyon"), "Lyon")
        .await
        .expect("tenant");
    let t1 = at(T0);
    store
        .enroll_gateway(&enrollment("lyon", "gw-1", "k-1", 1), t1)
        .await
        .expect("enroll");
    let t2 = at(T0 + 60 * SEC);
    let t3 = at(T0 + 120 * SEC);
    store
        .rotate_gateway_key(&tenant("lyon"), &gw("gw-1"), &key("k-2"), &[2; 32], t2)
        .await
        .expect("rotate");
    store
        .rotate_gateway_key(&tenant("lyon"), &gw("gw-1"), &key("k-3"), &[3; 32], t3)
        .await
        .expect("rotate again");
    let record = store
        .gateway(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("gateway")
        .expect("present");
    assert_eq!(record.key_id, key("k-3"));
    assert_eq!(record.public_key_hex, hex::encode([3; 32]));
    assert_eq!(record.cert_fingerprint.as_deref(), Some("fp-k-1"), "kept");
    assert_eq!(
        record.keys,
        [
            current("k-3", 3, t3),
            retired("k-2", 2, t2, t3),
            retired("k-1", 1, t1, t2)
        ]
    );
    let listed = store.list_gateways(&tenant("lyon")).await.expect("list");
    assert_eq!(listed, std::slice::from_ref(&record));
    let middle = store
        .gateway_key(&key("k-2"))
        .await
        .expect("key")
        .expect("present");
    assert_eq!((middle.retired_at, middle.revoked_at), (Some(t3), None));
    let now_current = store
        .gateway_key(&key("k-3"))
        .await
        .expect("key")
        .expect("present");
    assert_eq!(now_current.retired_at, None);

    for taken in [key("k-1"), key("k-3")] {
        assert!(matches!(
            store
                .rotate_gateway_key(&tenant("lyon"), &gw("gw-1"), &taken, &[9; 32], t3)
                .await,
            Err(Error::AlreadyExists { what: "key id", .. })
        ));
    }
    assert!(matches!(
        store
            .rotate_gateway_key(&tenant("lyon"), &gw("gw-9"), &key("k-9"), &[9; 32], t3)
            .await,
        Err(Error::NotFound {
            what: "gateway",
            ..
        })
    ));
    assert!(matches!(
        store
            .rotate_gateway_key(&tenant("brest"), &gw("gw-1"), &key("k-9"), &[9; 32], t3)
            .await,
        Err(Error::NotFound {
            what: "gateway",
            ..
        })
    ));
    assert_eq!(
        keys_of(&store, "lyon", "gw-1").await,
        record.keys,
        "unchanged"
    );
}

pub async fn revocation_is_final(store: Arc<dyn Store>) {
    store
        .create_tenant(&tenant("lyon"), "Lyon")
        .await
        .expect("tenant");
    store
        .enroll_gateway(&enrollment("lyon", "gw-1", "k-1", 1), at(T0))
        .await
        .expect("enroll");
    let expires = Timestamp::now().saturating_add(Duration::from_secs(3600));
    store
        .create_enrollment_token(&token("a7", "lyon", "gw-1", expires))
        .await
        .expect("token before the revocation");
    let revoked_at = at(T0 + 10 * SEC);
    store
        .revoke_gateway(&tenant("lyon"), &gw("gw-1"), revoked_at)
        .await
        .expect("revoke");
    store
        .revoke_gateway(&tenant("lyon"), &gw("gw-1"), at(T0 + 20 * SEC))
        .await
        .expect("revoke again");
    let record = store
        .gateway(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("gateway")
        .expect("present");
    assert_eq!(
        (record.revoked, record.revoked_at),
        (true, Some(revoked_at))
    );
    assert_eq!(
        store.revoked_gateways().await.expect("revoked")[0].revoked_at,
        revoked_at,
        "the first revocation time is kept"
    );
    let k = store
        .gateway_key(&key("k-1"))
        .await
        .expect("key")
        .expect("present");
    assert_eq!((k.revoked_at, k.retired_at), (Some(revoked_at), None));

    let later = at(T0 + 30 * SEC);
    assert!(matches!(
        store
            .create_enrollment_token(&token("b8", "lyon", "gw-1", expires))
            .await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        store
            .enroll_gateway(&enrollment("lyon", "gw-1", "k-2", 2), later)
            .await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        store
            .rotate_gateway_key(&tenant("lyon"), &gw("gw-1"), &key("k-2"), &[2; 32], later)
            .await,
        Err(Error::Conflict { .. })
    ));
    let record_after = store
        .gateway(&tenant("lyon"), &gw("gw-1"))
        .await
        .expect("gateway")
        .expect("present");
    assert_eq!(record_after.keys, record.keys, "no key was registered");
    assert_eq!(
        store
            .gateway_key(&KeyId::new("k-2").expect("kid"))
            .await
            .expect("key"),
        None
    );
    // The token made before the revocation still redeems (the store does not decide that
    // it is useless: enrolling with it is refused above).
    assert!(matches!(
        store
            .redeem_enrollment_token(&"a7".repeat(32), Timestamp::now())
            .await
            .expect("redeem"),
        Redeemed::Bound { .. }
    ));
}

/// The migration registers every gateway's key as its current key and gives gateways that
/// were revoked before it a revocation time.
pub async fn migration_keeps_existing_gateways(db: Database) {
    db.migrate_before("0008").await;
    let (time, key_one, key_two, yes) = match db {
        Database::Sqlite { .. } => (
            "0",
            "x'0101010101010101010101010101010101010101010101010101010101010101'",
            "x'0202020202020202020202020202020202020202020202020202020202020202'",
            "1",
        ),
        Database::Postgres { .. } => (
            "to_timestamp(0)",
            "'\\x0101010101010101010101010101010101010101010101010101010101010101'::bytea",
            "'\\x0202020202020202020202020202020202020202020202020202020202020202'::bytea",
            "TRUE",
        ),
    };
    db.execute(&format!(
        "INSERT INTO tenants (id, name, created_at) VALUES ('lyon', 'Lyon', {time}); \
         INSERT INTO gateways (tenant, id, key_id, public_key, revoked, created_at) \
         VALUES ('lyon', 'gw-1', 'k-1', {key_one}, {yes}, {time}); \
         INSERT INTO gateways (tenant, id, key_id, public_key, created_at) \
         VALUES ('lyon', 'gw-2', 'k-2', {key_two}, {time})"
    ))
    .await;
    let before = Timestamp::now();
    let store = db.open_another().await;
    let gateways = store.list_gateways(&tenant("lyon")).await.expect("list");
    assert_eq!(gateways.len(), 2);
    assert_eq!(gateways[0].keys, [current("k-1", 1, at(0))]);
    assert_eq!(gateways[1].keys, [current("k-2", 2, at(0))]);
    let revoked_at = gateways[0].revoked_at.expect("a revocation time");
    // Whole seconds on SQLite.
    assert!(
        revoked_at >= before.saturating_sub(Duration::from_secs(1)),
        "{revoked_at}"
    );
    assert_eq!(gateways[1].revoked_at, None);
    let k = store
        .gateway_key(&key("k-1"))
        .await
        .expect("key")
        .expect("migrated");
    assert_eq!((k.public_key, k.revoked_at), ([1; 32], Some(revoked_at)));
    store.close().await;
}
