//! Record cases: quarantine, security events, API tokens.

use std::sync::Arc;

use beffroi_store::{
    Error, EventScope, QuarantineReason, QuarantineRecord, Role, SecurityEvent, SecurityEventKind,
    Store, TokenRecord, TokenScope,
};

use crate::fixtures::*;

pub async fn quarantine_newest_first(store: Arc<dyn Store>) {
    let reasons = [
        QuarantineReason::BadSignature,
        QuarantineReason::Replay,
        QuarantineReason::Malformed,
    ];
    for i in 0..7i64 {
        store
            .quarantine(&QuarantineRecord {
                tenant: Some(tenant("lyon")),
                gateway: (i % 2 == 0).then(|| gw("gw-1")),
                topic: format!("beffroi/v1/lyon/gw-1/batch#{i}"),
                seq: (i != 3).then_some(i as u64),
                reason: reasons[(i % 3) as usize],
                detail: format!("record {i}"),
                // Two records share a time: insertion order breaks the tie.
                received_at: at(T0 + (i.min(5)) * SEC),
                payload: vec![i as u8; 10],
                settles_seq: false,
            })
            .await
            .expect("quarantine");
    }
    // Without a tenant (topic did not parse): kept, listed for no tenant.
    store
        .quarantine(&QuarantineRecord {
            tenant: None,
            gateway: None,
            topic: "garbage".into(),
            seq: None,
            reason: QuarantineReason::Malformed,
            detail: "bad topic".into(),
            received_at: at(T0 + 100 * SEC),
            payload: vec![0; 70 * 1024],
            settles_seq: false,
        })
        .await
        .expect("quarantine");
    let first = store
        .list_quarantine(&tenant("lyon"), 3, 0)
        .await
        .expect("list");
    let details: Vec<_> = first.items.iter().map(|r| r.detail.as_str()).collect();
    assert_eq!(details, ["record 6", "record 5", "record 4"]);
    assert_eq!(first.next_offset, Some(3));
    assert_eq!(first.items[0].reason, QuarantineReason::BadSignature);
    assert_eq!(first.items[0].payload, vec![6u8; 10]);
    assert_eq!(first.items[0].gateway, Some(gw("gw-1")));
    assert_eq!(first.items[1].gateway, None);
    let second = store
        .list_quarantine(&tenant("lyon"), 3, 3)
        .await
        .expect("list");
    assert_eq!(second.items[0].detail, "record 3");
    assert_eq!(second.items[0].seq, None);
    let last = store
        .list_quarantine(&tenant("lyon"), 3, 6)
        .await
        .expect("list");
    assert_eq!(last.items.len(), 1);
    assert_eq!(last.next_offset, None);
}

pub async fn security_events_newest_first(store: Arc<dyn Store>) {
    let kinds = [
        SecurityEventKind::TlsRejected,
        SecurityEventKind::ClientIdMismatch,
        SecurityEventKind::RevokedCertificate,
        SecurityEventKind::Quarantined,
    ];
    for (i, kind) in kinds.into_iter().enumerate() {
        store
            .security_event(&SecurityEvent {
                time: at(T0 + i as i64 * SEC),
                tenant: Some(tenant("lyon")),
                gateway: Some(gw("gw-1")),
                address: (i > 0).then(|| "[2001:db8::1]:4242".to_owned()),
                kind,
                detail: format!("event {i}"),
            })
            .await
            .expect("event");
    }
    for (i, kind) in [
        SecurityEventKind::ConnectionLimit,
        SecurityEventKind::TlsRejected,
    ]
    .into_iter()
    .enumerate()
    {
        store
            .security_event(&SecurityEvent {
                time: at(T0 + (50 + i as i64) * SEC),
                tenant: None,
                gateway: None,
                address: Some("198.51.100.7:1234".into()),
                kind,
                detail: format!("unknown client {i}"),
            })
            .await
            .expect("event");
    }
    // Another tenant's event: neither Lyon's nor the platform's.
    store
        .security_event(&SecurityEvent {
            time: at(T0 + 60 * SEC),
            tenant: Some(tenant("brest")),
            gateway: None,
            address: None,
            kind: SecurityEventKind::AclViolation,
            detail: "brest".into(),
        })
        .await
        .expect("event");
    let lyon = EventScope::Tenant(tenant("lyon"));
    let page = store
        .list_security_events(&lyon, 10, 0)
        .await
        .expect("list");
    assert_eq!(page.next_offset, None);
    let got: Vec<_> = page.items.iter().map(|e| e.kind).collect();
    assert_eq!(
        got,
        [
            SecurityEventKind::Quarantined,
            SecurityEventKind::RevokedCertificate,
            SecurityEventKind::ClientIdMismatch,
            SecurityEventKind::TlsRejected
        ]
    );
    assert_eq!(page.items[3].address, None);
    assert_eq!(page.items[0].time, at(T0 + 3 * SEC));
    let page = store.list_security_events(&lyon, 2, 2).await.expect("list");
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[0].detail, "event 1");
    assert_eq!(page.next_offset, None);

    // The platform's events: only those of no tenant, newest first, paged the same way.
    let page = store
        .list_security_events(&EventScope::Platform, 1, 0)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].detail, "unknown client 1");
    assert_eq!(page.items[0].tenant, None);
    assert_eq!(page.next_offset, Some(1));
    let page = store
        .list_security_events(&EventScope::Platform, 10, 1)
        .await
        .expect("list");
    let details: Vec<_> = page.items.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["unknown client 0"]);
    assert_eq!(page.next_offset, None);
}

pub async fn tokens_by_hash(store: Arc<dyn Store>) {
    store
        .create_tenant(&tenant("lyon"), "Lyon")
        .await
        .expect("tenant");
    let token = TokenRecord {
        id: "tok-1".into(),
        scope: TokenScope::Tenant {
            tenant: tenant("lyon"),
            role: Role::Operator,
        },
        name: "wall screen".into(),
        secret_sha256: [3; 32],
        created_at: at(T0),
    };
    store.create_token(&token).await.expect("token");
    assert_eq!(
        store.token_by_hash(&[3; 32]).await.expect("lookup"),
        Some(token.clone())
    );
    assert_eq!(store.token_by_hash(&[4; 32]).await.expect("lookup"), None);
    assert!(matches!(
        store.create_token(&token).await,
        Err(Error::AlreadyExists { .. })
    ));
    let orphan = TokenRecord {
        id: "tok-2".into(),
        scope: TokenScope::Tenant {
            tenant: tenant("nowhere"),
            role: Role::Admin,
        },
        secret_sha256: [5; 32],
        ..token
    };
    assert!(matches!(
        store.create_token(&orphan).await,
        Err(Error::NotFound { what: "tenant", id }) if id == "nowhere"
    ));
    assert_eq!(store.token_by_hash(&[5; 32]).await.expect("lookup"), None);
}

/// Platform tokens belong to no tenant (none need exist) and come back by hash like tenant
/// tokens; their ids and hashes share one namespace with tenant tokens.
pub async fn platform_tokens(store: Arc<dyn Store>) {
    let platform = TokenRecord {
        id: "tok-p".into(),
        scope: TokenScope::Platform,
        name: "operations".into(),
        secret_sha256: [8; 32],
        created_at: at(T0 + 7),
    };
    store.create_token(&platform).await.expect("platform token");
    assert_eq!(
        store.token_by_hash(&[8; 32]).await.expect("lookup"),
        Some(platform.clone())
    );
    store
        .create_tenant(&tenant("lyon"), "Lyon")
        .await
        .expect("tenant");
    let viewer = TokenRecord {
        id: "tok-v".into(),
        scope: TokenScope::Tenant {
            tenant: tenant("lyon"),
            role: Role::Viewer,
        },
        name: "screen".into(),
        secret_sha256: [9; 32],
        created_at: at(T0),
    };
    store.create_token(&viewer).await.expect("tenant token");
    assert_eq!(
        store.token_by_hash(&[9; 32]).await.expect("lookup"),
        Some(viewer.clone())
    );
    assert_eq!(
        store.token_by_hash(&[8; 32]).await.expect("lookup"),
        Some(platform.clone())
    );
    for taken in [
        TokenRecord {
            secret_sha256: [10; 32],
            ..platform.clone()
        },
        TokenRecord {
            id: "tok-v".into(),
            secret_sha256: [11; 32],
            ..platform.clone()
        },
        TokenRecord {
            id: "tok-other".into(),
            ..platform
        },
    ] {
        assert!(matches!(
            store.create_token(&taken).await,
            Err(Error::AlreadyExists { what: "token", .. })
        ));
    }
}
