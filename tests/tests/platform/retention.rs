//! Scenario 10 (issue #8): retention per tenant and metric class, end to end on SQLite. A
//! policy set through the API (`PUT /api/v1/retention/air.%2A`), old readings put straight
//! into the database (ingest would quarantine them as stale), then `beffroi retention apply`
//! purges exactly the class's old readings, prints the receipt, leaves a `purge` entry with
//! the same figures in the tenant's audit log, and `beffroi audit verify` still passes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use beffroi_protocol::Timestamp;
use beffroi_tests::PlatformSpec;
use serde_json::json;

use crate::common::{unique_tenant, Scenario};

/// Runs `sql` on the SQLite file behind the platform's back; returns what it printed.
fn sqlite(path: &Path, sql: &str) -> anyhow::Result<String> {
    let output = Command::new("sqlite3")
        .args(["-bail", "-cmd", ".timeout 10000"])
        .arg(path)
        .arg(sql)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "sqlite3 {sql:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Inserts `n` readings of `metric` one second apart from `start_us` (a series of its own).
fn insert_readings(
    db: &Path,
    tenant: &str,
    metric: &str,
    first_id: i64,
    start_us: i64,
    n: i64,
) -> anyhow::Result<()> {
    sqlite(
        db,
        &format!(
            "INSERT OR IGNORE INTO series (tenant, sensor, metric, unit) \
             VALUES ('{tenant}', 's1', '{metric}', 'ug/m3'); \
             WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < {n}) \
             INSERT INTO readings (id, time, tenant, series, value_num) \
             SELECT {first_id} + n, {start_us} + n * 1000000, \
             (SELECT key FROM tenants WHERE id = '{tenant}'), \
             (SELECT id FROM series WHERE tenant = '{tenant}' AND metric = '{metric}'), n \
             FROM i;"
        ),
    )
    .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_with_receipts_on_sqlite() -> anyhow::Result<()> {
    const DAY_US: i64 = 86_400_000_000;
    let scenario = Scenario::new("retention-sqlite")?;
    let mut platform = scenario.platform("platform", &PlatformSpec::default())?;
    let db = platform.data_dir.join("beffroi.db");
    let tenant = unique_tenant("retention");
    platform.create_tenant(&tenant).await?;
    let token = platform.create_token(&tenant, "admin").await?;
    platform.start().await?;
    let api = platform.api_as(&token);

    let put = api
        .put_json("/api/v1/retention/air.%2A", &json!({"raw_days": 30}))
        .await?;
    assert_eq!(put.status, 200, "{}", put.body);
    let listed = platform
        .cli(&["retention", "list", "--tenant", &tenant])
        .await?;
    assert!(
        listed.starts_with("air.*\traw 30 days\taggregate kept"),
        "{listed}"
    );

    let now = Timestamp::now().unix_micros();
    insert_readings(&db, &tenant, "air.no2", 1_000, now - 40 * DAY_US, 100)?;
    insert_readings(&db, &tenant, "air.no2", 2_000, now - DAY_US, 10)?;
    insert_readings(&db, &tenant, "noise.laeq", 3_000, now - 40 * DAY_US, 50)?;

    let applied = platform
        .cli(&["retention", "apply", "--tenant", &tenant])
        .await?;
    let line = applied
        .lines()
        .find(|l| l.contains("\tair.*\traw\t"))
        .unwrap_or_default();
    assert!(line.contains("\t100 rows\t"), "{applied}");
    let count = |metric: &str| {
        sqlite(
            &db,
            &format!(
                "SELECT count(*) FROM readings WHERE series = \
                 (SELECT id FROM series WHERE tenant = '{tenant}' AND metric = '{metric}')"
            ),
        )
    };
    assert_eq!(count("air.no2")?, "10");
    assert_eq!(count("noise.laeq")?, "50");

    // The receipt is in the tenant's log, and the log verifies.
    let log = api.get_json("/api/v1/audit?kind=purge").await?;
    let purges: Vec<_> = log["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|e| e["kind"] == "purge")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(purges.len(), 1, "{log}");
    assert_eq!(purges[0]["actor"], "system:retention");
    assert_eq!(purges[0]["detail"]["rows"], 100);
    assert_eq!(
        purges[0]["detail"]["what"],
        "raw readings of metric class air.*"
    );
    let verified = platform
        .cli(&["audit", "verify", "--tenant", &tenant])
        .await?;
    assert!(verified.contains("result: OK"), "{verified}");

    // Nothing left to purge: a second round deletes nothing and writes no receipt.
    let again = platform
        .cli(&["retention", "apply", "--tenant", &tenant])
        .await?;
    assert!(again.contains("\t0 rows\t"), "{again}");
    platform.terminate(Duration::from_secs(10)).await?;
    scenario.pass();
    Ok(())
}
