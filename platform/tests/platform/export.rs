//! Reversibility (issue #8): a tenant seeded with readings of every value type (a unit and
//! text values that need CSV quoting), gateways (one revoked, one with a certificate),
//! sensors, a zone, an alarm rule, retention, agreements (one pseudonymised, granted to a
//! partner), audit entries and a signed checkpoint is exported, imported into an empty
//! instance, and exported again: every data file is identical (the audit log gains only the
//! `import` entry), and the imported audit log verifies with the instance's trusted keys.
//! A byte changed in a file or in the manifest makes the import refuse, naming the file,
//! before anything is written; importing a tenant that exists is refused. On SQLite files
//! and on PostgreSQL (`TEST_DATABASE_URL`, a schema per instance; required under `CI`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use beffroi::audit::PlatformAuditKey;
use beffroi::export::{export_tenant, import_tenant, manifest::Manifest, ExportError};
use beffroi_api::audit::check_log;
use beffroi_audit::{sign_checkpoint, AuditActor, AuditHead, AuditKind, NewAuditEntry};
use beffroi_policy::{Agreement, PartnerId};
use beffroi_protocol::{
    key_id_for, GatewayId, MetricName, Reading, SensorId, SigningKey, TenantId, Timestamp, Unit,
    Value,
};
use beffroi_store::{
    AlarmRule, CommitBatch, Comparison, NewGateway, OpenOptions, Partner, RetentionPolicy,
    RuleCondition, Sensor, Severity, Store, TimescaleMode, Zone,
};
use serde_json::json;

const T0: i64 = 1_767_225_600_000_000;

/// One platform instance: its data directory (PKI) and store.
struct Instance {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    /// PostgreSQL: the server URL and the instance's schema, dropped at the end.
    schema: Option<(String, String)>,
}

impl Instance {
    fn pki(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    fn key(&self) -> PlatformAuditKey {
        PlatformAuditKey::load_or_create(&self.pki()).unwrap()
    }

    async fn close(self) {
        self.store.close().await;
        if let Some((url, schema)) = self.schema {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
    }
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

async fn instance(backend: Backend, name: &str) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    // The instance's key-encryption key, where the platform keeps it.
    let kek =
        beffroi::kek::load_or_create(&dir.path().join("pki").join(beffroi::kek::KEK_FILE)).unwrap();
    match backend {
        Backend::Sqlite => {
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("beffroi.db").display()
            );
            let options = OpenOptions {
                kek: Some(kek),
                ..OpenOptions::default()
            };
            let store = beffroi_store::open(&url, options).await.unwrap();
            Instance {
                dir,
                store,
                schema: None,
            }
        }
        Backend::Postgres => {
            let url = database_url().expect("checked by the caller");
            let schema = format!("export_test_{}_{name}", std::process::id());
            let options = OpenOptions {
                max_connections: 4,
                schema: Some(schema.clone()),
                timescale: TimescaleMode::Off,
                kek: Some(kek),
                ..OpenOptions::default()
            };
            let store = beffroi_store::open(&url, options).await.unwrap();
            Instance {
                dir,
                store,
                schema: Some((url, schema)),
            }
        }
    }
}

/// `TEST_DATABASE_URL`; without it `None` with a notice, or a failure under CI.
fn database_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("TEST_DATABASE_URL is not set: CI must run the export round trip on PostgreSQL")
        }
        _ => {
            eprintln!("notice: TEST_DATABASE_URL is not set; the PostgreSQL round trip is skipped");
            None
        }
    }
}

fn tenant() -> TenantId {
    TenantId::new("lyon").unwrap()
}

fn id(text: &str) -> SensorId {
    SensorId::new(text).unwrap()
}

fn agreement(value: serde_json::Value) -> Agreement {
    serde_json::from_value(value).unwrap()
}

/// The readings of batch `seq` of gateway `g`: numbers, booleans and texts that need
/// quoting, over three sensors.
fn readings(g: u64, seq: u64) -> Vec<Reading> {
    (0..50u64)
        .map(|i| {
            let n = (g * 1000 + seq) * 50 + i;
            let time = Timestamp::from_unix_micros(T0 + (seq * 50 + i) as i64 * 1_000_000);
            let sensor = id(["s-1", "s-2", "s-3"][(n % 3) as usize]);
            let (metric, unit, value) = match n % 4 {
                0 | 1 => ("air.pm25", "ug/m3", Value::Number(n as f64 / 7.0)),
                2 => ("door.open", "", Value::Bool(n % 8 == 2)),
                _ => (
                    "status.text",
                    "a,\"b\"",
                    Value::Text(format!("ok, \"{n}\"\r\nnext")),
                ),
            };
            Reading {
                sensor,
                metric: MetricName::new(metric).unwrap(),
                unit: Unit::new(unit).unwrap(),
                time,
                value,
            }
        })
        .collect()
}

/// Seeds the tenant: 2 gateways × 30 batches × 50 readings, registry, rules, retention,
/// agreements, audit entries and a checkpoint, then two entries after the checkpoint.
async fn seed(source: &Instance) {
    let store = source.store.as_ref();
    let lyon = tenant();
    store
        .create_tenant(&lyon, "Métropole de Lyon")
        .await
        .unwrap();
    for g in 1..=2u8 {
        let key = SigningKey::from_bytes(&[g; 32]).verifying_key();
        store
            .register_gateway(&NewGateway {
                tenant: lyon.clone(),
                id: GatewayId::new(format!("gw-{g}")).unwrap(),
                key_id: key_id_for(&key),
                public_key: *key.as_bytes(),
                cert_fingerprint: None,
                cert_not_after: None,
            })
            .await
            .unwrap();
    }
    let gw = |g: u64| GatewayId::new(format!("gw-{g}")).unwrap();
    store
        .set_gateway_certificate(
            &lyon,
            &gw(1),
            &"ab".repeat(32),
            Timestamp::from_unix_micros(T0 * 2),
        )
        .await
        .unwrap();
    store
        .revoke_gateway(&lyon, &gw(2), Timestamp::now())
        .await
        .unwrap();
    store
        .upsert_zone(&Zone {
            tenant: lyon.clone(),
            id: id("centre"),
            name: "Centre, \"Presqu'île\"".into(),
            geometry: json!({"type": "Polygon", "coordinates": [[[4.8, 45.7], [4.9, 45.7], [4.9, 45.8], [4.8, 45.7]]]}),
        })
        .await
        .unwrap();
    let sensors: Vec<Sensor> = (1..=3)
        .map(|i| Sensor {
            tenant: lyon.clone(),
            id: id(&format!("s-{i}")),
            kind: "air".into(),
            unit: Some(Unit::new("ug/m3").unwrap()),
            lat: Some(45.75 + f64::from(i) / 1000.0),
            lon: Some(4.85),
            zone: (i < 3).then(|| id("centre")),
            tags: vec![serde_json::from_value(json!("school-street")).unwrap()],
            placed_at: None,
        })
        .collect();
    store.upsert_sensors(&sensors).await.unwrap();
    for seq in 1..=30u64 {
        let batches: Vec<CommitBatch> = (1..=2u64)
            .map(|g| CommitBatch {
                tenant: lyon.clone(),
                gateway: gw(g),
                seq,
                key_id: key_id_for(&SigningKey::from_bytes(&[g as u8; 32]).verifying_key()),
                signature: [(seq % 251) as u8; 64],
                received_at: Timestamp::from_unix_micros(T0 + seq as i64 * 60_000_000),
                readings: readings(g, seq),
            })
            .collect();
        store.commit(&batches).await.unwrap();
    }
    store
        .create_alarm_rule(&AlarmRule {
            tenant: lyon.clone(),
            id: id("pm25-high"),
            name: "PM2.5 high".into(),
            severity: Severity::Major,
            enabled: true,
            condition: RuleCondition::Threshold {
                metric: MetricName::new("air.pm25").unwrap(),
                zone: Some(id("centre")),
                sensors: vec![],
                op: Comparison::Gt,
                value: 50.5,
                for_s: 600,
                pooled: None,
            },
            created_at: Timestamp::from_unix_micros(T0),
            updated_at: Timestamp::from_unix_micros(T0 + 1),
        })
        .await
        .unwrap();
    store
        .set_retention_policy(&RetentionPolicy {
            tenant: lyon.clone(),
            class: "air.*".parse().unwrap(),
            raw_days: Some(365),
            aggregate_days: None,
            updated_at: Timestamp::from_unix_micros(T0),
        })
        .await
        .unwrap();
    store
        .create_partner(&Partner {
            id: PartnerId::new("air-lab").unwrap(),
            name: "Laboratoire Air".into(),
            created_at: Timestamp::from_unix_micros(T0),
        })
        .await
        .unwrap();
    let shared = agreement(json!({
        "id": "air-lab", "version": 1, "grantor": "lyon", "grantee": "partner:air-lab",
        "state": "active", "not_before": "2026-01-01T00:00:00Z",
        "not_after": "2027-01-01T00:00:00Z", "purposes": ["research"],
        "action": "read_aggregate", "target": {"metrics": ["air.*"]}, "min_bucket_s": 3600,
        "functions": ["avg", "count"], "k": 3, "spatial_level": "zone",
        "pseudonymise": true, "embargo_s": 0
    }));
    let created = store
        .create_agreement(&shared, Some(&[5; 32]), Timestamp::from_unix_micros(T0))
        .await
        .unwrap();
    // Version 2: import must keep it.
    let mut suspended = created.agreement.clone();
    suspended.state = beffroi_policy::State::Suspended;
    store
        .update_agreement(&suspended, 1, Timestamp::from_unix_micros(T0 + 5))
        .await
        .unwrap();
    let public = agreement(json!({
        "id": "open-data", "version": 1, "grantor": "lyon", "grantee": "public",
        "state": "draft", "not_before": "2026-01-01T00:00:00Z",
        "not_after": "2027-01-01T00:00:00Z", "purposes": ["research"],
        "action": "read_aggregate", "target": {"metrics": ["air.pm25"]}, "min_bucket_s": 86400,
        "functions": ["avg"], "k": 5, "spatial_level": "zone",
        "pseudonymise": false, "embargo_s": 3600
    }));
    store
        .create_agreement(&public, None, Timestamp::from_unix_micros(T0))
        .await
        .unwrap();
    let entry = |n: i64| {
        NewAuditEntry::new(
            lyon.clone(),
            Timestamp::from_unix_micros(T0 + n),
            AuditActor::User("alice".into()),
            AuditKind::RegistryChange,
            &json!({"change": n, "note": "a \"quoted\", text"}),
        )
        .unwrap()
    };
    store
        .append_audit(&(0..5).map(entry).collect::<Vec<_>>())
        .await
        .unwrap();
    let head = store.audit_head(&lyon).await.unwrap().unwrap();
    let checkpoint = sign_checkpoint(
        source.key().signing_key(),
        &lyon,
        head,
        Timestamp::from_unix_micros(T0 + 10),
    );
    assert!(store.store_checkpoint(&checkpoint).await.unwrap());
    store
        .append_audit(&(5..7).map(entry).collect::<Vec<_>>())
        .await
        .unwrap();
}

fn manifest(dir: &Path) -> Manifest {
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn export(from: &Instance, out: &Path) -> Manifest {
    export_tenant(
        from.store.as_ref(),
        &from.key(),
        &tenant(),
        out,
        AuditActor::User("test".into()),
        false,
    )
    .await
    .unwrap()
    .manifest
}

async fn import(into: &Instance, dir: &Path, trust: &Instance) -> Result<(), ExportError> {
    import_tenant(
        into.store.as_ref(),
        &into.pki(),
        dir,
        &trust.key().keys().all(),
        AuditActor::User("test".into()),
        false,
    )
    .await
    .map(drop)
}

/// Copies the export in `from` to a new directory, with `edit` applied to the file `name`.
fn tampered(from: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        std::fs::copy(item.path(), copy.path().join(item.file_name())).unwrap();
    }
    let path = copy.path().join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    edit(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
    copy
}

async fn round_trip(backend: Backend) {
    let source = instance(backend, "source").await;
    seed(&source).await;
    let first = tempfile::tempdir().unwrap();
    let out1 = first.path().join("lyon");
    let m1 = export(&source, &out1).await;
    assert_eq!(m1.tenant.id, tenant());
    assert_eq!(m1.audit_head.seq, 7);
    assert_eq!(
        m1.export_audit_seq, 8,
        "the export is recorded after what it covers"
    );
    let rows = |m: &Manifest, f: &str| m.file(f).unwrap().rows;
    assert_eq!(rows(&m1, "readings.csv"), 3000);
    assert_eq!(rows(&m1, "batches.csv"), 60);
    assert_eq!(rows(&m1, "audit.jsonl"), 7);
    assert_eq!(rows(&m1, "audit-checkpoints.json"), 1);
    assert_eq!(rows(&m1, "audit-keys.pem"), 1);
    assert_eq!(rows(&m1, "agreements.json"), 2);
    assert_eq!(rows(&m1, "partners.json"), 1);
    let csv = std::fs::read_to_string(out1.join("readings.csv")).unwrap();
    assert!(
        csv.contains(",\"a,\"\"b\"\"\",2026-01-01T"),
        "the unit is quoted"
    );
    assert!(csv.contains(",string,\"ok, \"\""), "the text is quoted");
    assert!(
        csv.contains("\"\"\r\nnext\"\r\n"),
        "line breaks stay in the field"
    );

    // Refusals before anything is written: tampered files and manifest, an untrusted key.
    let target = instance(backend, "target").await;
    for (file, offset) in [
        ("readings.csv", 100),
        ("sensors.json", 10),
        ("audit.jsonl", 30),
    ] {
        let bad = tampered(&out1, file, |b| b[offset] ^= 0x01);
        let error = import(&target, bad.path(), &source)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(file) && error.contains("altered"),
            "{error}"
        );
    }
    let bad = tampered(&out1, "manifest.json", |b| {
        let text =
            String::from_utf8(b.clone())
                .unwrap()
                .replacen("\"rows\": 3000", "\"rows\": 2999", 1);
        *b = text.into_bytes();
    });
    let error = import(&target, bad.path(), &source)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("manifest.json") && error.contains("altered"),
        "{error}"
    );
    let stranger = instance(Backend::Sqlite, "stranger").await;
    let error = import(&target, &out1, &stranger)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("does not trust"), "{error}");
    assert!(
        target.store.tenant(&tenant()).await.unwrap().is_none(),
        "nothing was written"
    );

    import(&target, &out1, &source).await.unwrap();
    let error = import(&target, &out1, &source)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("already exists"), "{error}");

    // The imported log verifies with the keys the import added to the trusted ones.
    let keys = target.key().keys().all();
    let checkpoints = target.store.audit_checkpoints(&tenant()).await.unwrap();
    let check = check_log(
        target.store.as_ref(),
        &tenant(),
        AuditHead::GENESIS,
        &checkpoints,
        &keys,
    )
    .await
    .unwrap();
    assert_eq!(check.first_bad_seq(), None, "{check}");
    assert_eq!(check.report.checkpoints_matched, 1);
    assert_eq!(
        check.report.head.seq, 8,
        "the import entry follows the imported log"
    );

    let second = tempfile::tempdir().unwrap();
    let out2 = second.path().join("lyon");
    let m2 = export(&target, &out2).await;
    for file in &m1.files {
        let again = m2.file(&file.path).unwrap();
        if file.path == "audit.jsonl" {
            assert_eq!(again.rows, file.rows + 1, "only the import entry was added");
            let before = std::fs::read(out1.join("audit.jsonl")).unwrap();
            let after = std::fs::read(out2.join("audit.jsonl")).unwrap();
            assert!(
                after.starts_with(&before),
                "the imported log is kept verbatim"
            );
        } else {
            assert_eq!(again, file, "{} differs after the round trip", file.path);
        }
    }
    assert_eq!(m2.files.len(), m1.files.len());
    let reread = manifest(&out2);
    assert_eq!(reread.files, m2.files);

    for instance in [source, target, stranger] {
        instance.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_round_trip_on_sqlite() {
    round_trip(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_round_trip_on_postgres() {
    if database_url().is_some() {
        round_trip(Backend::Postgres).await;
    }
}

#[tokio::test]
async fn export_refuses_a_non_empty_directory_and_an_unknown_tenant() {
    let source = instance(Backend::Sqlite, "refusals").await;
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("notes.txt"), "mine").unwrap();
    source.store.create_tenant(&tenant(), "Lyon").await.unwrap();
    let actor = || AuditActor::User("test".into());
    let error = export_tenant(
        source.store.as_ref(),
        &source.key(),
        &tenant(),
        out.path(),
        actor(),
        false,
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("not empty"), "{error}");
    let other = TenantId::new("paris").unwrap();
    let error = export_tenant(
        source.store.as_ref(),
        &source.key(),
        &other,
        &out.path().join("x"),
        actor(),
        false,
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("does not exist"), "{error}");
    source.close().await;
}
