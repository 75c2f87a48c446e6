//! Record cases: quarantine, security events, API tokens.

use std::sync::Arc;

use beffroi_store::{
    Error, QuarantineReason, QuarantineRecord, Role, SecurityEvent, SecurityEventKind, Store,
    TokenRecord,
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
    store
        .security_event(&SecurityEvent {
            time: at(T0 + 50 * SEC),
            tenant: None,
            gateway: None,
            address: Some("198.51.100.7:1234".into()),
            kind: SecurityEventKind::ConnectionLimit,
            detail: "unknown client".into(),
        })
        .await
        .expect("event");
    let page = store
        .list_security_events(&tenant("lyon"), 10, 0)
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
    let page = store
        .list_security_events(&tenant("lyon"), 2, 2)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[0].detail, "event 1");
    assert_eq!(page.next_offset, None);
}

pub async fn tokens_by_hash(store: Arc<dyn Store>) {
    store
        .create_tenant(&tenant("lyon"), "Lyon")
        .await
        .expect("tenant");
    let token = TokenRecord {
        id: "tok-1".into(),
        tenant: tenant("lyon"),
        role: Role::Operator,
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
        tenant: tenant("nowhere"),
        secret_sha256: [5; 32],
        ..token
    };
    assert!(matches!(
        store.create_token(&orphan).await,
        Err(Error::NotFound { what: "tenant", .. })
    ));
}
