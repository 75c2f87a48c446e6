//! Audit log cases: appends chain and verify, listings page and filter, unknown tenants write
//! nothing, tenants are isolated, concurrent appends (also from another node) serialize, and
//! tampering with rows behind the store's back is detected at the right seq, and an append
//! whose tenant's head is held by a stuck transaction fails in bounded time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use beffroi_audit::{
    sign_checkpoint, AccessDetail, AgreementRef, AuditActor, AuditEntry, AuditHead, AuditKind,
    Channel, Checkpoint, Digest, NewAuditEntry, Problem, SeqRange, Verifier, VerifyReport,
};
use beffroi_protocol::{SigningKey, TenantId};
use beffroi_store::{AuditFilter, Error, Store};

use crate::fixtures::*;
use crate::harness::Database;

fn platform_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// An access decision at `T0 + i` seconds.
fn access(t: &str, i: u64) -> NewAuditEntry {
    let deny = i % 5 == 4;
    let detail = AccessDetail {
        grantee: format!("partner-{}", i % 2),
        agreement: Some(AgreementRef {
            id: "air-quality".into(),
            version: 3,
        }),
        purpose: Some("research".into()),
        channel: Channel::Rest,
        query: serde_json::json!({"metrics": ["air.pm25"], "from": "2026-01-01T00:00:00Z"}),
        rows: if deny { 0 } else { i * 10 },
        result_hash: (!deny).then(|| Digest::of(&i.to_be_bytes())),
        reason: deny.then(|| "purpose not allowed".to_owned()),
    };
    let kind = if deny {
        AuditKind::AccessDeny
    } else {
        AuditKind::AccessPermit
    };
    NewAuditEntry::new(
        tenant(t),
        at(T0 + i as i64 * SEC),
        AuditActor::Token(format!("tok-{}", i % 3)),
        kind,
        &detail,
    )
    .expect("access entry")
}

/// A configuration change whose detail exercises the JSON text round trip.
fn change(t: &str, i: u64) -> NewAuditEntry {
    let detail = serde_json::json!({
        "rule": format!("pm25-{i}"),
        "threshold": 50.5,
        "tiny": 1e-300,
        "big": u64::MAX,
        "note": "quote \" backslash \\ tab \t é 😀",
        "nested": {"z": [1, null, true], "a": {}},
    });
    NewAuditEntry::new(
        tenant(t),
        at(T0 + i as i64 * SEC),
        AuditActor::User("alice".into()),
        AuditKind::RuleChange,
        &detail,
    )
    .expect("change entry")
}

/// Entry `i` of a typical log.
fn event(t: &str, i: u64) -> NewAuditEntry {
    if i % 4 == 3 {
        change(t, i)
    } else {
        access(t, i)
    }
}

async fn append(store: &Arc<dyn Store>, entries: &[NewAuditEntry]) -> Vec<AuditEntry> {
    store.append_audit(entries).await.expect("append audit")
}

/// Appends entries `from..=to` of tenant `t`, one call each.
async fn append_events(store: &Arc<dyn Store>, t: &str, from: u64, to: u64) -> Vec<AuditEntry> {
    let mut out = Vec::new();
    for i in from..=to {
        out.extend(append(store, &[event(t, i)]).await);
    }
    out
}

async fn tenants(store: &Arc<dyn Store>, ids: &[&str]) {
    for t in ids {
        store
            .create_tenant(&tenant(t), &format!("Tenant {t}"))
            .await
            .expect("create tenant");
    }
}

/// Every entry of `t` matching `filter`, following pages of `page` entries.
async fn read_log(
    store: &Arc<dyn Store>,
    t: &str,
    filter: &AuditFilter,
    page: u32,
) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    loop {
        let after = out.last().map_or(0, |e| e.seq);
        let got = store
            .audit_entries(&tenant(t), filter, after, page)
            .await
            .expect("audit entries");
        assert!(got.len() <= page as usize);
        let last_page = got.len() < page as usize;
        out.extend(got);
        if last_page {
            return out;
        }
    }
}

/// Verifies `t`'s log as stored, streaming it page by page, against its stored checkpoints.
pub async fn verify_stored(store: &Arc<dyn Store>, t: &str) -> VerifyReport {
    let checkpoints = store
        .audit_checkpoints(&tenant(t))
        .await
        .expect("checkpoints");
    let keys = [platform_key().verifying_key()];
    let mut verifier = Verifier::new(tenant(t), AuditHead::GENESIS, &checkpoints, &keys);
    let mut after = 0;
    loop {
        let page = store
            .audit_entries(&tenant(t), &AuditFilter::default(), after, 4)
            .await
            .expect("audit entries");
        for entry in &page {
            verifier.push(entry);
        }
        match page.last() {
            Some(last) if page.len() == 4 => after = last.seq,
            _ => return verifier.finish(),
        }
    }
}

/// Signs `t`'s current head and stores the checkpoint.
async fn checkpoint(store: &Arc<dyn Store>, t: &str) -> Checkpoint {
    let head = store
        .audit_head(&tenant(t))
        .await
        .expect("head")
        .expect("a head");
    let checkpoint = sign_checkpoint(&platform_key(), &tenant(t), head, at(T0 + 86_400 * SEC));
    assert!(store
        .store_checkpoint(&checkpoint)
        .await
        .expect("store checkpoint"));
    checkpoint
}

pub async fn appends_chain_and_verify(store: Arc<dyn Store>) {
    tenants(&store, &["lyon"]).await;
    let lyon = tenant("lyon");
    assert_eq!(store.audit_head(&lyon).await.expect("head"), None);
    assert!(append(&store, &[]).await.is_empty());
    assert!(store.audit_tenants().await.expect("tenants").is_empty());

    let mut appended = append(&store, &[event("lyon", 1)]).await;
    appended.extend(
        append(
            &store,
            &[event("lyon", 2), event("lyon", 3), event("lyon", 4)],
        )
        .await,
    );
    appended.extend(append_events(&store, "lyon", 5, 20).await);
    let mut prev = Digest::ZERO;
    for (i, entry) in appended.iter().enumerate() {
        assert_eq!(entry.seq, i as u64 + 1);
        assert_eq!(entry.prev_hash, prev);
        assert_eq!(entry.computed_hash(), entry.hash);
        prev = entry.hash;
    }
    assert_eq!(
        store.audit_head(&lyon).await.expect("head"),
        Some(AuditHead {
            seq: 20,
            hash: prev
        })
    );
    // What is read back is exactly what was appended (times, details, hashes).
    assert_eq!(
        read_log(&store, "lyon", &AuditFilter::default(), 6).await,
        appended
    );

    let report = verify_stored(&store, "lyon").await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        report.not_checkpointed,
        Some(SeqRange { first: 1, last: 20 })
    );

    let first = checkpoint(&store, "lyon").await;
    assert!(
        !store.store_checkpoint(&first).await.expect("again"),
        "a checkpoint at a seq already checkpointed is kept, not replaced"
    );
    assert_eq!(
        store.audit_checkpoints(&lyon).await.expect("checkpoints"),
        vec![first]
    );
    let report = verify_stored(&store, "lyon").await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.last_checkpoint, Some(20));
    assert_eq!(report.not_checkpointed, None);
    assert_eq!(
        report
            .accesses
            .groups
            .values()
            .map(|s| s.count)
            .sum::<u64>(),
        15
    );

    append_events(&store, "lyon", 21, 22).await;
    let report = verify_stored(&store, "lyon").await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        report.not_checkpointed,
        Some(SeqRange {
            first: 21,
            last: 22
        })
    );
    assert_eq!(store.audit_tenants().await.expect("tenants"), vec![lyon]);
}

pub async fn listing_filters(store: Arc<dyn Store>) {
    tenants(&store, &["lyon"]).await;
    let all = append_events(&store, "lyon", 1, 20).await;
    let seqs = |entries: &[AuditEntry]| entries.iter().map(|e| e.seq).collect::<Vec<_>>();

    let denied = AuditFilter {
        kinds: vec![AuditKind::AccessDeny],
        ..AuditFilter::default()
    };
    assert_eq!(
        seqs(&read_log(&store, "lyon", &denied, 2).await),
        [4, 9, 14]
    );
    let changes_and_denials = AuditFilter {
        kinds: vec![AuditKind::RuleChange, AuditKind::AccessDeny],
        ..AuditFilter::default()
    };
    assert_eq!(
        seqs(&read_log(&store, "lyon", &changes_and_denials, 3).await),
        [3, 4, 7, 9, 11, 14, 15, 19]
    );
    let window = AuditFilter {
        from: Some(at(T0 + 5 * SEC)),
        to: Some(at(T0 + 8 * SEC)),
        ..AuditFilter::default()
    };
    assert_eq!(
        seqs(&read_log(&store, "lyon", &window, 10).await),
        [5, 6, 7]
    );

    let after = store
        .audit_entries(&tenant("lyon"), &AuditFilter::default(), 17, 100)
        .await
        .expect("after");
    assert_eq!(&after[..], &all[17..]);
    let one = store
        .audit_entries(&tenant("lyon"), &AuditFilter::default(), 0, 0)
        .await
        .expect("limit 0");
    assert_eq!(seqs(&one), [1], "a limit of 0 reads 1");
    let none = store
        .audit_entries(&tenant("nowhere"), &AuditFilter::default(), 0, 10)
        .await
        .expect("unknown tenant");
    assert!(none.is_empty());
}

pub async fn unknown_tenant_writes_nothing(store: Arc<dyn Store>) {
    tenants(&store, &["lyon"]).await;
    append_events(&store, "lyon", 1, 3).await;
    let head = store.audit_head(&tenant("lyon")).await.expect("head");

    let err = store
        .append_audit(&[event("nowhere", 1)])
        .await
        .expect_err("unknown tenant");
    assert!(
        matches!(err, Error::NotFound { what: "tenant", .. }),
        "{err}"
    );
    // One call is one transaction: the known tenant's entries are not written either.
    let err = store
        .append_audit(&[event("lyon", 4), event("nowhere", 1)])
        .await
        .expect_err("unknown tenant");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(store.audit_head(&tenant("lyon")).await.expect("head"), head);
    assert_eq!(
        read_log(&store, "lyon", &AuditFilter::default(), 10)
            .await
            .len(),
        3
    );
    assert_eq!(
        store.audit_tenants().await.expect("tenants"),
        vec![tenant("lyon")]
    );

    let stray = sign_checkpoint(
        &platform_key(),
        &tenant("nowhere"),
        AuditHead::GENESIS,
        at(T0),
    );
    let err = store.store_checkpoint(&stray).await.expect_err("unknown");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

pub async fn tenants_are_isolated(store: Arc<dyn Store>) {
    tenants(&store, &["lyon", "metz", "nice"]).await;
    // One call for two tenants: each continues its own chain, results in input order.
    append_events(&store, "metz", 1, 2).await;
    let mixed = append(
        &store,
        &[
            event("metz", 3),
            event("lyon", 1),
            event("metz", 4),
            event("lyon", 2),
        ],
    )
    .await;
    let placed: Vec<_> = mixed.iter().map(|e| (e.tenant.as_str(), e.seq)).collect();
    assert_eq!(placed, [("metz", 3), ("lyon", 1), ("metz", 4), ("lyon", 2)]);
    for e in &mixed {
        assert_eq!(e.detail, event(e.tenant.as_str(), e.seq).detail);
    }
    append_events(&store, "lyon", 3, 5).await;

    let lyon = read_log(&store, "lyon", &AuditFilter::default(), 10).await;
    let metz = read_log(&store, "metz", &AuditFilter::default(), 10).await;
    assert_eq!(lyon.len(), 5);
    assert_eq!(metz.len(), 4);
    assert!(lyon.iter().all(|e| e.tenant == tenant("lyon")));
    assert!(metz.iter().all(|e| e.tenant == tenant("metz")));

    checkpoint(&store, "metz").await;
    assert!(store
        .audit_checkpoints(&tenant("lyon"))
        .await
        .expect("checkpoints")
        .is_empty());
    for t in ["lyon", "metz"] {
        let report = verify_stored(&store, t).await;
        assert!(report.is_ok(), "{t}: {report}");
    }
    assert_eq!(
        store.audit_tenants().await.expect("tenants"),
        vec![tenant("lyon"), tenant("metz")],
        "a tenant without entries is not listed"
    );
    assert_eq!(store.audit_head(&tenant("nice")).await.expect("head"), None);
}

pub async fn concurrent_appends_serialize(store: Arc<dyn Store>, db: Database) {
    tenants(&store, &["lyon", "metz"]).await;
    // Two platform nodes on the same database, several writers each; some calls cover both
    // tenants (locked in the same order on every node, so no deadlock).
    let other = db.open_another().await;
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let node = if w % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for round in 0..6u64 {
                let i = w * 100 + round;
                let call = match round % 3 {
                    0 => vec![event("lyon", i)],
                    1 => vec![event("lyon", i), event("metz", i), event("lyon", i + 50)],
                    _ => vec![event("metz", i), event("lyon", i)],
                };
                let out = node.append_audit(&call).await.expect("append");
                assert_eq!(out.len(), call.len());
                for (new, stored) in call.iter().zip(&out) {
                    assert_eq!(new.detail, stored.detail);
                    assert_eq!(new.tenant, stored.tenant);
                }
                got.extend(out);
            }
            got
        }));
    }
    let mut returned: BTreeMap<TenantId, Vec<AuditEntry>> = BTreeMap::new();
    for task in tasks {
        for entry in task.await.expect("task") {
            returned
                .entry(entry.tenant.clone())
                .or_default()
                .push(entry);
        }
    }
    for (t, expected) in [("lyon", 8 * 8), ("metz", 8 * 4)] {
        let mut mine = returned.remove(&tenant(t)).expect("entries");
        mine.sort_by_key(|e| e.seq);
        let seqs: Vec<u64> = mine.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=expected).collect::<Vec<u64>>(),
            "{t}: no gap, no twice"
        );
        assert_eq!(
            read_log(&store, t, &AuditFilter::default(), 16).await,
            mine,
            "{t}: what each writer got back is what is stored"
        );
        checkpoint(&other, t).await;
        let report = verify_stored(&store, t).await;
        assert!(report.is_ok(), "{t}: {report}");
        assert_eq!(report.last_checkpoint, Some(expected));
    }
    other.close().await;
}

pub async fn tampering_is_detected(store: Arc<dyn Store>, db: Database) {
    let names = ["edit", "actor", "del", "swap", "cut", "garbled", "intact"];
    tenants(&store, &names).await;
    for t in names {
        append(&store, &[event(t, 1), event(t, 2), event(t, 3)]).await;
        append_events(&store, t, 4, 10).await;
        checkpoint(&store, t).await;
    }
    db.execute(
        "UPDATE audit_entries SET detail = '{\"grantee\":\"nobody\",\"channel\":\"rest\"}' \
         WHERE tenant = 'edit' AND seq = 4",
    )
    .await;
    db.execute(
        "UPDATE audit_entries SET actor = 'user:mallory' WHERE tenant = 'actor' AND seq = 2",
    )
    .await;
    db.execute("DELETE FROM audit_entries WHERE tenant = 'del' AND seq = 6")
        .await;
    db.execute(
        "UPDATE audit_entries SET seq = 1000 WHERE tenant = 'swap' AND seq = 3; \
         UPDATE audit_entries SET seq = 3 WHERE tenant = 'swap' AND seq = 8; \
         UPDATE audit_entries SET seq = 8 WHERE tenant = 'swap' AND seq = 1000",
    )
    .await;
    db.execute("DELETE FROM audit_entries WHERE tenant = 'cut' AND seq > 7")
        .await;
    db.execute("UPDATE audit_entries SET detail = 'not json' WHERE tenant = 'garbled' AND seq = 5")
        .await;

    let cases: [(&str, u64, &[Problem]); 5] = [
        ("edit", 4, &[Problem::Altered { seq: 4 }]),
        ("actor", 2, &[Problem::Altered { seq: 2 }]),
        (
            "del",
            6,
            &[
                Problem::Missing { first: 6, last: 6 },
                Problem::ChainBroken { seq: 7 },
            ],
        ),
        (
            "swap",
            3,
            &[Problem::Altered { seq: 3 }, Problem::Altered { seq: 8 }],
        ),
        (
            "cut",
            8,
            &[Problem::Truncated {
                last: 7,
                checkpoint: 10,
            }],
        ),
    ];
    for (t, first_bad, expected) in cases {
        let report = verify_stored(&store, t).await;
        assert_eq!(report.first_bad_seq, Some(first_bad), "{t}: {report}");
        for problem in expected {
            assert!(
                report.problems.contains(problem),
                "{t}: {problem}: {report}"
            );
        }
    }
    // A row that no longer decodes stops the listing, naming the seq.
    let err = store
        .audit_entries(&tenant("garbled"), &AuditFilter::default(), 0, 100)
        .await
        .expect_err("garbled row");
    assert!(
        matches!(&err, Error::Corrupt { table: "audit_entries", reason } if reason.contains("seq 5")),
        "{err}"
    );
    let report = verify_stored(&store, "intact").await;
    assert!(report.is_ok(), "{report}");

    // Appends go on from the stored head; the damage stays visible.
    append_events(&store, "del", 11, 12).await;
    let report = verify_stored(&store, "del").await;
    assert_eq!(report.first_bad_seq, Some(6), "{report}");
    assert_eq!(report.head.seq, 12);
}

/// A transaction that holds a tenant's head row (a stuck node, a manual `SELECT … FOR UPDATE`)
/// makes appends fail after the lock timeout instead of waiting forever: a governed read then
/// fails closed (503) rather than hanging. PostgreSQL only (SQLite's writer lock is bounded by
/// its busy timeout).
pub async fn a_held_head_fails_the_append_in_bounded_time(store: Arc<dyn Store>, db: Database) {
    let Database::Postgres { .. } = &db else {
        println!("notice: a PostgreSQL case; nothing checked on SQLite");
        return;
    };
    tenants(&store, &["lyon"]).await;
    append_events(&store, "lyon", 1, 1).await;
    let mut holder = db.pg_connection().await;
    sqlx::raw_sql("BEGIN; SELECT seq FROM audit_heads WHERE tenant = 'lyon' FOR UPDATE")
        .execute(&mut holder)
        .await
        .expect("hold the head");
    let started = Instant::now();
    let held = store.append_audit(&[event("lyon", 2)]).await;
    let waited = started.elapsed();
    assert!(held.is_err(), "the append went through a held head");
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(30)).contains(&waited),
        "failed after {waited:?}, not after the lock timeout"
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");
    let next = append_events(&store, "lyon", 2, 2).await;
    assert_eq!(next[0].seq, 2, "the failed append left no trace");
}
