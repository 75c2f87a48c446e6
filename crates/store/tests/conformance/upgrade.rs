//! Upgrades from the previous release: a database at its schema (migrations up to 0007),
//! filled through SQL with rows as that release wrote them, is opened by the current store,
//! which migrates it forward; everything reads back through the `Store` API and the gateway
//! keeps sending. A migration changed after it was applied, or applied by a newer release,
//! makes opening fail with a clear error.

use beffroi_audit::{AuditActor, AuditHead, AuditKind, Chain, NewAuditEntry};
use beffroi_policy::SensorTag;
use beffroi_protocol::Value;
use beffroi_store::{
    AlarmRule, CommitOutcome, Comparison, Error, GatewayKey, Role, RuleCondition, Sensor, SeqState,
    Severity, StoredReading, TokenScope,
};

use crate::fixtures::*;
use crate::harness::{test_kek, Database};

/// The first migration the previous release did not have.
const FIRST_NEW_MIGRATION: &str = "0008";

/// How each backend writes times, bytes and booleans in SQL text.
struct Dialect {
    postgres: bool,
}

impl Dialect {
    fn of(db: &Database) -> Self {
        Self {
            postgres: matches!(db, Database::Postgres { .. }),
        }
    }

    /// A time, `micros` since the Unix epoch (INTEGER on SQLite, TIMESTAMPTZ on PostgreSQL).
    fn time(&self, micros: i64) -> String {
        if self.postgres {
            format!("(TIMESTAMPTZ 'epoch' + {micros} * INTERVAL '1 microsecond')")
        } else {
            micros.to_string()
        }
    }

    fn bytes(&self, bytes: &[u8]) -> String {
        if self.postgres {
            format!("'\\x{}'::bytea", hex::encode(bytes))
        } else {
            format!("x'{}'", hex::encode(bytes))
        }
    }

    fn bool(&self, value: bool) -> &'static str {
        match (self.postgres, value) {
            (true, true) => "TRUE",
            (true, false) => "FALSE",
            (false, true) => "1",
            (false, false) => "0",
        }
    }
}

/// The previous release's gateway: its signing key id and public key.
const KEY_ID: &str = "gw-1-lyon-key";
const PUBLIC_KEY: [u8; 32] = [7; 32];
/// The secret hash of its admin API token.
const TOKEN_SHA256: [u8; 32] = [0x11; 32];

/// The previous release's audit entries for `lyon`, chained as it chained them.
fn audit_entries() -> Vec<beffroi_audit::AuditEntry> {
    let mut chain = Chain::resume(tenant("lyon"), AuditHead::GENESIS);
    [
        (
            AuditKind::RuleChange,
            serde_json::json!({"rule": "pm25-high", "change": "created"}),
        ),
        (
            AuditKind::GatewayChange,
            serde_json::json!({"gateway": "gw-1", "change": "registered"}),
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (kind, detail))| {
        let entry = NewAuditEntry::new(
            tenant("lyon"),
            at(T0 + i as i64 * SEC),
            AuditActor::Token("tok-admin".into()),
            kind,
            &detail,
        )
        .expect("audit entry");
        chain.append(&entry).expect("chained")
    })
    .collect()
}

/// Rows as the previous release wrote them: a tenant, a gateway with its key and seqs 1 and
/// 2 committed, two sensors, their series and three readings, an alarm rule, an API token
/// and two audit entries with their head.
fn previous_release_rows(d: &Dialect) -> String {
    let t = |micros: i64| d.time(micros);
    let signature = |seq: u64| {
        let mut bytes = [0u8; 64];
        bytes[..8].copy_from_slice(&seq.to_be_bytes());
        bytes[63] = 0xa5;
        d.bytes(&bytes)
    };
    let received = T0 + 3600 * SEC;
    let tenant_key = "(SELECT key FROM tenants WHERE id = 'lyon')";
    let series = |sensor: &str| {
        format!("(SELECT id FROM series WHERE tenant = 'lyon' AND sensor = '{sensor}')")
    };
    let reading_id = |seq: u64, idx: u32| {
        format!(
            "(SELECT id FROM batches WHERE tenant = 'lyon' AND gateway = 'gw-1' AND seq = {seq}) \
             * 65536 + {idx}"
        )
    };
    let mut sql = format!(
        "INSERT INTO tenants (id, name, created_at) VALUES ('lyon', 'Lyon', {t0});
         INSERT INTO gateways (tenant, id, key_id, public_key, cert_fingerprint, revoked,
             created_at, last_seen, last_committed_seq, ack_contiguous, cert_not_after)
         VALUES ('lyon', 'gw-1', '{KEY_ID}', {key}, 'fp-lyon-gw-1', {no}, {t0}, {received_at},
             2, 2, {not_after});
         INSERT INTO sensors (tenant, id, kind, unit, lat, lon, zone, tags)
         VALUES ('lyon', 's1', 'air', 'ug/m3', 45.76, 4.83, NULL, '[\"school-street\"]'),
                ('lyon', 's2', 'noise', 'dB', NULL, NULL, NULL, '[]');
         INSERT INTO series (tenant, sensor, metric, unit)
         VALUES ('lyon', 's1', 'air.pm25', 'ug/m3'), ('lyon', 's2', 'noise.laeq', 'dB');
         INSERT INTO batches (tenant, gateway, seq, key_id, signature, received_at,
             committed_at, readings, first_time, last_time)
         VALUES ('lyon', 'gw-1', 1, '{KEY_ID}', {sig1}, {received_at}, {received_at}, 2,
                 {t0}, {t1}),
                ('lyon', 'gw-1', 2, '{KEY_ID}', {sig2}, {received_at}, {received_at}, 1,
                 {t2}, {t2});
         INSERT INTO readings (id, time, tenant, series, value_num)
         VALUES ({r10}, {t0}, {tenant_key}, {s1}, 12.5),
                ({r11}, {t1}, {tenant_key}, {s2}, 61.0),
                ({r20}, {t2}, {tenant_key}, {s1}, 14.25);
         INSERT INTO alarm_rules (tenant, id, name, severity, enabled, condition, created_at,
             updated_at)
         VALUES ('lyon', 'pm25-high', 'PM2.5 high', 'major', {yes},
             '{{\"kind\":\"threshold\",\"metric\":\"air.pm25\",\"op\":\"gt\",\"value\":50.5,\"for_s\":600}}',
             {t0}, {t0});
         INSERT INTO api_tokens (id, tenant, partner, role, name, secret_sha256, created_at)
         VALUES ('tok-admin', 'lyon', NULL, 'admin', 'Lyon admin', {token}, {t0});",
        t0 = t(T0),
        t1 = t(T0 + SEC),
        t2 = t(T0 + 2 * SEC),
        received_at = t(received),
        not_after = t(T0 + 365 * 86_400 * SEC),
        key = d.bytes(&PUBLIC_KEY),
        no = d.bool(false),
        yes = d.bool(true),
        sig1 = signature(1),
        sig2 = signature(2),
        s1 = series("s1"),
        s2 = series("s2"),
        r10 = reading_id(1, 0),
        r11 = reading_id(1, 1),
        r20 = reading_id(2, 0),
        token = d.bytes(&TOKEN_SHA256),
    );
    let entries = audit_entries();
    for e in &entries {
        sql.push_str(&format!(
            "INSERT INTO audit_entries (tenant, seq, time, actor, kind, detail, prev_hash, hash)
             VALUES ('lyon', {seq}, {time}, '{actor}', '{kind}', '{detail}', {prev}, {hash});",
            seq = e.seq,
            time = t(e.time.unix_micros()),
            actor = e.actor,
            kind = e.kind.as_str(),
            detail = beffroi_audit::canonical_detail(&e.detail),
            prev = d.bytes(e.prev_hash.as_bytes()),
            hash = d.bytes(e.hash.as_bytes()),
        ));
    }
    let head = entries.last().expect("entries");
    sql.push_str(&format!(
        "INSERT INTO audit_heads (tenant, seq, hash) VALUES ('lyon', {}, {});",
        head.seq,
        d.bytes(head.hash.as_bytes())
    ));
    sql
}

fn stored(
    seq: u64,
    sensor_id: &str,
    metric_name: &str,
    unit_name: &str,
    time: i64,
    value: f64,
) -> StoredReading {
    StoredReading {
        gateway: gw("gw-1"),
        seq,
        sensor: sensor(sensor_id),
        metric: metric(metric_name),
        unit: unit(unit_name),
        time: at(time),
        value: Value::Number(value),
    }
}

/// The previous release's database, opened and migrated by this one, reads back whole.
pub async fn previous_release_reads_back(db: Database) {
    db.migrate_before(FIRST_NEW_MIGRATION).await;
    db.execute(&previous_release_rows(&Dialect::of(&db))).await;
    let store = db.open_another().await;
    let lyon = tenant("lyon");

    let tenants = store.list_tenants().await.expect("tenants");
    assert_eq!(tenants.len(), 1);
    assert_eq!(
        (tenants[0].id.as_str(), tenants[0].name.as_str()),
        ("lyon", "Lyon")
    );

    let readings = read_all(&store, &all_of("lyon", T0, T0 + 3600 * SEC), 2).await;
    assert_eq!(
        readings,
        [
            stored(1, "s1", "air.pm25", "ug/m3", T0, 12.5),
            stored(1, "s2", "noise.laeq", "dB", T0 + SEC, 61.0),
            stored(2, "s1", "air.pm25", "ug/m3", T0 + 2 * SEC, 14.25),
        ]
    );

    // The gateway's key is its current key, and it goes on sending where it was.
    let k = store
        .gateway_key(&key(KEY_ID))
        .await
        .expect("key")
        .expect("migrated key");
    assert_eq!(
        k,
        GatewayKey {
            tenant: lyon.clone(),
            gateway: gw("gw-1"),
            public_key: PUBLIC_KEY,
            revoked_at: None,
            retired_at: None,
        }
    );
    let gateways = store.list_gateways(&lyon).await.expect("gateways");
    assert_eq!(gateways.len(), 1);
    assert_eq!(gateways[0].keys.len(), 1);
    assert_eq!(gateways[0].keys[0].key_id, key(KEY_ID));
    assert_eq!(
        gateways[0].cert_not_after,
        Some(at(T0 + 365 * 86_400 * SEC))
    );
    assert_eq!(
        store
            .seq_state(&lyon, &gw("gw-1"))
            .await
            .expect("seq state"),
        SeqState {
            contiguous: 2,
            above: vec![]
        }
    );
    let out = store
        .commit(&[
            small_batch("lyon", "gw-1", 2),
            small_batch("lyon", "gw-1", 3),
        ])
        .await
        .expect("commit after the upgrade");
    assert_eq!(out, [CommitOutcome::Duplicate, CommitOutcome::Stored]);

    let sensors = store.list_sensors(&lyon).await.expect("sensors");
    assert_eq!(
        sensors.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s1", "s2"]
    );
    assert_eq!(
        sensors[0],
        Sensor {
            tenant: lyon.clone(),
            id: sensor("s1"),
            kind: "air".into(),
            unit: Some(unit("ug/m3")),
            lat: Some(45.76),
            lon: Some(4.83),
            zone: None,
            tags: vec![SensorTag::new("school-street").expect("tag")],
            // Placed before moves were kept: since the epoch.
            placed_at: Some(at(0)),
        }
    );

    let rules = store.list_alarm_rules(&lyon).await.expect("rules");
    assert_eq!(
        rules,
        [AlarmRule {
            tenant: lyon.clone(),
            id: sensor("pm25-high"),
            name: "PM2.5 high".into(),
            severity: Severity::Major,
            enabled: true,
            condition: RuleCondition::Threshold {
                metric: metric("air.pm25"),
                zone: None,
                sensors: vec![],
                op: Comparison::Gt,
                value: 50.5,
                for_s: 600,
                pooled: None,
            },
            created_at: at(T0),
            updated_at: at(T0),
        }]
    );

    let token = store
        .token_by_hash(&TOKEN_SHA256)
        .await
        .expect("token")
        .expect("migrated token");
    assert_eq!(
        token.scope,
        TokenScope::Tenant {
            tenant: lyon.clone(),
            role: Role::Admin
        }
    );

    assert_eq!(
        store.audit_head(&lyon).await.expect("head").map(|h| h.seq),
        Some(2)
    );
    let report = crate::audit::verify_stored(&store, "lyon").await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.entries, 2);
    store.close().await;
}

/// sqlx's table of applied migrations: version, description, checksum (SHA-384 of the file).
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// A migration changed after a database applied it: opening fails, naming the migration.
pub async fn a_changed_migration_is_refused(db: Database) {
    db.open_another().await.close().await;
    let d = Dialect::of(&db);
    db.execute(&format!(
        "UPDATE {MIGRATIONS_TABLE} SET checksum = {} WHERE version = 1",
        d.bytes(&[0; 48])
    ))
    .await;
    let error = db
        .open_with(Some(test_kek()))
        .await
        .err()
        .expect("a changed migration");
    assert!(matches!(error, Error::Migrate(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "migration: migration 1 was previously applied but has been modified"
    );
}

/// A database a newer release migrated (a migration this release does not know): opening
/// fails rather than run an older schema's code on it; migrations only go forward.
pub async fn a_newer_schema_is_refused(db: Database) {
    db.open_another().await.close().await;
    let d = Dialect::of(&db);
    db.execute(&format!(
        "INSERT INTO {MIGRATIONS_TABLE} (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', {}, {}, 0)",
        d.bool(true),
        d.bytes(&[0; 48])
    ))
    .await;
    let error = db
        .open_with(Some(test_kek()))
        .await
        .err()
        .expect("a newer schema");
    assert!(matches!(error, Error::Migrate(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "migration: migration 9999 was previously applied but is missing in the resolved \
         migrations"
    );
}
