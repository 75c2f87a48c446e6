//! Retention cases: policy CRUD and the most-specific-class rule; a purge deletes exactly the
//! rows of its tenant and class older than the bound (other tenants, other metrics, more
//! specific classes and newer rows untouched), its receipt counts them, and every batch left
//! a `purge` entry in the tenant's audit chain, which still verifies; large purges run in
//! several batches; aggregate purges delete stored aggregates where there are some.

use std::sync::Arc;

use beffroi_audit::{AuditActor, AuditEntry, AuditKind, PurgeDetail};
use beffroi_policy::MetricPattern;
use beffroi_store::{
    governing_policy, AuditFilter, Backend, Error, PurgeKind, PurgeReceipt, PurgeRequest,
    RetentionPolicy, Store,
};

use crate::fixtures::*;

const DAY: i64 = 86_400 * SEC;

fn class(text: &str) -> MetricPattern {
    text.parse().expect("metric pattern")
}

fn policy(t: &str, c: &str, raw: Option<u32>, aggregate: Option<u32>) -> RetentionPolicy {
    RetentionPolicy {
        tenant: tenant(t),
        class: class(c),
        raw_days: raw,
        aggregate_days: aggregate,
        updated_at: at(T0),
    }
}

fn request(t: &str, c: &str, kind: PurgeKind, older_than: i64) -> PurgeRequest {
    PurgeRequest::new(
        tenant(t),
        class(c),
        kind,
        at(older_than),
        AuditActor::System("retention".into()),
        at(T0 + DAY),
    )
}

/// The number of `t`'s readings of `metric`, old (before `T0`) and new.
async fn counts(store: &Arc<dyn Store>, t: &str, metric: &str) -> (usize, usize) {
    let all = read_all(store, &all_of(t, T0 - 1000 * DAY, T0 + 1000 * DAY), 500).await;
    let of: Vec<_> = all.iter().filter(|r| r.metric.as_str() == metric).collect();
    let old = of.iter().filter(|r| r.time < at(T0)).count();
    (old, of.len() - old)
}

/// `t`'s purge entries, in order.
async fn purge_entries(store: &Arc<dyn Store>, t: &str) -> Vec<(AuditEntry, PurgeDetail)> {
    let filter = AuditFilter {
        kinds: vec![AuditKind::Purge],
        ..AuditFilter::default()
    };
    store
        .audit_entries(&tenant(t), &filter, 0, 1000)
        .await
        .expect("audit entries")
        .into_iter()
        .map(|entry| {
            let detail = serde_json::from_value(serde_json::Value::Object(entry.detail.clone()))
                .expect("purge detail");
            (entry, detail)
        })
        .collect()
}

/// `t`'s whole audit log verifies.
async fn chain_verifies(store: &Arc<dyn Store>, t: &str) {
    let entries = store
        .audit_entries(&tenant(t), &AuditFilter::default(), 0, 10_000)
        .await
        .expect("audit entries");
    let report = beffroi_audit::verify(&tenant(t), entries, &[], &[]);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// `n` readings of `metric` by sensor `s`, one second apart from `start`.
fn series(s: &str, metric: &str, start: i64, n: i64) -> Vec<beffroi_protocol::Reading> {
    (0..n)
        .map(|i| num(s, metric, start + i * SEC, i as f64))
        .collect()
}

pub async fn policies_crud(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    tenant_with_gateway(&store, "brest", "gw-1").await;
    let lyon = tenant("lyon");
    assert!(store
        .retention_policies(&lyon)
        .await
        .expect("list")
        .is_empty());
    for p in [
        policy("lyon", "air.*", Some(30), Some(365)),
        policy("lyon", "*", Some(365), None),
        policy("lyon", "air.pm25", None, Some(3650)),
        policy("brest", "*", Some(1), Some(1)),
    ] {
        store.set_retention_policy(&p).await.expect("set");
    }
    // An upsert replaces the durations.
    let mut replaced = policy("lyon", "air.*", Some(60), None);
    replaced.updated_at = at(T0 + DAY);
    store.set_retention_policy(&replaced).await.expect("upsert");
    let listed = store.retention_policies(&lyon).await.expect("list");
    assert_eq!(
        listed,
        vec![
            policy("lyon", "*", Some(365), None),
            replaced.clone(),
            policy("lyon", "air.pm25", None, Some(3650)),
        ]
    );
    // The most specific class governs.
    assert_eq!(governs(&listed, "air.pm25").as_deref(), Some("air.pm25"));
    assert_eq!(governs(&listed, "air.no2").as_deref(), Some("air.*"));
    assert_eq!(governs(&listed, "noise.laeq").as_deref(), Some("*"));

    store
        .delete_retention_policy(&lyon, &class("air.*"))
        .await
        .expect("delete");
    let listed = store.retention_policies(&lyon).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(governs(&listed, "air.no2").as_deref(), Some("*"));
    assert!(matches!(
        store.delete_retention_policy(&lyon, &class("air.*")).await,
        Err(Error::NotFound { .. })
    ));
    // Other tenants are untouched.
    assert_eq!(
        store
            .retention_policies(&tenant("brest"))
            .await
            .expect("list"),
        vec![policy("brest", "*", Some(1), Some(1))]
    );
    // Bad input is refused, writing nothing.
    assert!(matches!(
        store
            .set_retention_policy(&policy("nowhere", "*", Some(1), None))
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store
            .set_retention_policy(&policy("lyon", "air.*", Some(0), None))
            .await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(
        store.retention_policies(&lyon).await.expect("list").len(),
        2
    );
}

/// The class governing metric `m` among `policies`.
fn governs(policies: &[RetentionPolicy], m: &str) -> Option<String> {
    governing_policy(policies, &metric(m)).map(|p| p.class.to_string())
}

pub async fn purge_deletes_exactly_the_class(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    tenant_with_gateway(&store, "brest", "gw-1").await;
    let mut lyon = Vec::new();
    for m in ["air.no2", "air.pm25", "noise.laeq"] {
        lyon.extend(series("s1", m, T0 - 40 * DAY, 7));
        lyon.extend(series("s2", m, T0 - 10 * SEC, 3));
        lyon.extend(series("s1", m, T0, 5));
    }
    let brest = [
        series("s1", "air.no2", T0 - 40 * DAY, 6),
        series("s1", "air.no2", T0, 2),
    ]
    .concat();
    store
        .commit(&[
            batch("lyon", "gw-1", 1, lyon),
            batch("brest", "gw-1", 1, brest),
        ])
        .await
        .expect("commit");
    // `air.pm25` is governed by its own, more specific class.
    for p in [
        policy("lyon", "air.*", Some(30), None),
        policy("lyon", "air.pm25", Some(3650), None),
    ] {
        store.set_retention_policy(&p).await.expect("set");
    }
    let before_log = store.audit_head(&tenant("lyon")).await.expect("head");
    assert_eq!(counts(&store, "lyon", "air.no2").await, (10, 5));

    let receipt = store
        .purge(&request("lyon", "air.*", PurgeKind::Raw, T0))
        .await
        .expect("purge");
    assert_eq!(receipt.rows, 10);
    assert_eq!(receipt.from, Some(at(T0 - 40 * DAY)));
    assert_eq!(receipt.to, at(T0));
    assert_eq!(receipt.note, None);
    assert_eq!(counts(&store, "lyon", "air.no2").await, (0, 5));
    assert_eq!(counts(&store, "lyon", "air.pm25").await, (10, 5));
    assert_eq!(counts(&store, "lyon", "noise.laeq").await, (10, 5));
    assert_eq!(counts(&store, "brest", "air.no2").await, (6, 2));

    // One batch, one receipt in lyon's log, none in brest's.
    let entries = purge_entries(&store, "lyon").await;
    assert_eq!(entries.len() as u64, receipt.batches);
    let (entry, detail) = &entries[0];
    assert_eq!(entry.actor, AuditActor::System("retention".into()));
    assert_eq!(entry.time, at(T0 + DAY));
    assert_eq!(entry.seq, before_log.map_or(0, |h| h.seq) + 1);
    assert_eq!(
        detail,
        &PurgeDetail {
            what: "raw readings of metric class air.*".into(),
            from: Some(at(T0 - 40 * DAY)),
            to: at(T0),
            rows: 10,
        }
    );
    assert!(purge_entries(&store, "brest").await.is_empty());
    chain_verifies(&store, "lyon").await;

    // Nothing left: no rows, no receipt.
    let again = store
        .purge(&request("lyon", "air.*", PurgeKind::Raw, T0))
        .await
        .expect("purge again");
    assert_eq!((again.rows, again.batches, again.from), (0, 0, None));
    assert_eq!(purge_entries(&store, "lyon").await.len(), 1);

    // `*` by hand: what no stored class is more specific for (noise.laeq), before T0 - 1 day.
    let star = store
        .purge(&request("lyon", "*", PurgeKind::Raw, T0 - DAY))
        .await
        .expect("purge *");
    assert_eq!(star.rows, 7);
    assert_eq!(counts(&store, "lyon", "noise.laeq").await, (3, 5));
    assert_eq!(counts(&store, "lyon", "air.pm25").await, (10, 5));
    chain_verifies(&store, "lyon").await;

    assert!(matches!(
        store
            .purge(&request("nowhere", "*", PurgeKind::Raw, T0))
            .await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn purge_runs_in_batches(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    store
        .commit(&[
            batch("lyon", "gw-1", 1, series("s1", "air.no2", T0 - 5 * DAY, 20)),
            batch("lyon", "gw-1", 2, series("s2", "air.no2", T0 - 4 * DAY, 5)),
            batch("lyon", "gw-1", 3, series("s1", "air.no2", T0, 4)),
        ])
        .await
        .expect("commit");
    let mut req = request("lyon", "air.no2", PurgeKind::Raw, T0);
    req.batch_rows = 10;
    let receipt = store.purge(&req).await.expect("purge");
    assert_eq!((receipt.rows, receipt.batches), (25, 3));
    assert_eq!(receipt.from, Some(at(T0 - 5 * DAY)));
    assert_eq!(counts(&store, "lyon", "air.no2").await, (0, 4));
    let entries = purge_entries(&store, "lyon").await;
    let rows: Vec<u64> = entries.iter().map(|(_, d)| d.rows).collect();
    assert_eq!(rows, vec![10, 10, 5]);
    assert!(entries
        .iter()
        .all(|(_, d)| d.to == at(T0) && d.from.is_some_and(|f| f < at(T0))));
    chain_verifies(&store, "lyon").await;
    // A purge of exactly one full batch ends with an empty one, which writes nothing.
    store
        .commit(&[batch(
            "lyon",
            "gw-1",
            4,
            series("s3", "air.no2", T0 - DAY, 10),
        )])
        .await
        .expect("commit");
    let receipt = store.purge(&req).await.expect("purge");
    assert_eq!((receipt.rows, receipt.batches), (10, 1));
    assert_eq!(purge_entries(&store, "lyon").await.len(), 4);
}

pub async fn aggregate_purge(store: Arc<dyn Store>) {
    tenant_with_gateway(&store, "lyon", "gw-1").await;
    store
        .commit(&[
            batch(
                "lyon",
                "gw-1",
                1,
                series("s1", "air.no2", T0 - 5 * DAY, 120),
            ),
            batch("lyon", "gw-1", 2, series("s1", "air.no2", T0, 10)),
        ])
        .await
        .expect("commit");
    store
        .refresh_aggregates(at(T0 - 6 * DAY), at(T0 + DAY))
        .await
        .expect("refresh");
    let receipt: PurgeReceipt = store
        .purge(&request("lyon", "air.*", PurgeKind::Aggregate, T0 - DAY))
        .await
        .expect("aggregate purge");
    assert_eq!(receipt.what, "aggregates of metric class air.*");
    if store.backend() == Backend::Timescale {
        // 2 one-minute, 1 one-hour and 1 one-day buckets of the old readings.
        assert_eq!(receipt.rows, 4);
        assert_eq!(receipt.batches, 3);
        assert_eq!(purge_entries(&store, "lyon").await.len(), 3);
    } else {
        assert_eq!((receipt.rows, receipt.batches), (0, 0));
        assert!(receipt.note.is_some());
        assert!(purge_entries(&store, "lyon").await.is_empty());
    }
    // Raw readings are not touched by an aggregate purge.
    assert_eq!(counts(&store, "lyon", "air.no2").await, (120, 10));
    chain_verifies(&store, "lyon").await;
}
