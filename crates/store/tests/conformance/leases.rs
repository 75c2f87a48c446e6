//! Leases: one holder at a time, renewed by its holder, taken over once it runs out or is
//! released, and never taken from a live holder by a racing node.

use std::sync::Arc;

use beffroi_store::Store;

use crate::fixtures::*;

pub async fn one_holder_at_a_time(store: Arc<dyn Store>) {
    let lease = |s: i64| (at(T0 + s * SEC), at(T0 + (s + 10) * SEC));
    let (now, until) = lease(0);
    assert!(store
        .renew_lease("alerts", "node-a", now, until)
        .await
        .expect("lease"));
    // Another node is refused while node-a's lease runs; node-a renews it.
    let (now, until) = lease(5);
    assert!(!store
        .renew_lease("alerts", "node-b", now, until)
        .await
        .expect("lease"));
    assert!(store
        .renew_lease("alerts", "node-a", now, until)
        .await
        .expect("lease"));
    // Another lease name is independent.
    assert!(store
        .renew_lease("other", "node-b", now, until)
        .await
        .expect("lease"));
    // node-a's renewal ran until T0 + 15 s: at 14 s it still holds, at 16 s node-b takes over.
    let (now, until) = lease(14);
    assert!(!store
        .renew_lease("alerts", "node-b", now, until)
        .await
        .expect("lease"));
    let (now, until) = lease(16);
    assert!(store
        .renew_lease("alerts", "node-b", now, until)
        .await
        .expect("lease"));
    assert!(!store
        .renew_lease("alerts", "node-a", now, until)
        .await
        .expect("lease"));
    // Releasing someone else's lease does nothing; releasing one's own frees it at once.
    store
        .release_lease("alerts", "node-a")
        .await
        .expect("release");
    let (now, until) = lease(17);
    assert!(!store
        .renew_lease("alerts", "node-a", now, until)
        .await
        .expect("lease"));
    store
        .release_lease("alerts", "node-b")
        .await
        .expect("release");
    assert!(store
        .renew_lease("alerts", "node-a", now, until)
        .await
        .expect("lease"));
}

pub async fn racing_nodes_get_one_lease(store: Arc<dyn Store>) {
    let (now, until) = (at(T0), at(T0 + 10 * SEC));
    let attempts = (0..8).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .renew_lease("alerts", &format!("node-{n}"), now, until)
                .await
                .expect("lease")
        })
    });
    let mut granted = 0;
    for attempt in attempts {
        granted += usize::from(attempt.await.expect("lease"));
    }
    assert_eq!(granted, 1);
}
