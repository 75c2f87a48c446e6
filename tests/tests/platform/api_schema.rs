//! Scenario 17: Schemathesis against the live API (issue #11). A real platform (SQLite) with a
//! tenant that has data of several kinds (a gateway with stored readings, a zone, a sensor, an
//! alarm rule, an agreement in force); the Schemathesis CLI reads `/api/v1/openapi.json` from it
//! and sends generated requests — valid and invalid — to every operation with the tenant's
//! admin token (`tests/schemathesis/schemathesis.toml` points the operations on one thing at
//! that data). No response may be a server error (`not_a_server_error`), and each must match
//! the document: a documented status code and content type, a body that fits the documented
//! schema (`status_code_conformance`, `content_type_conformance`,
//! `response_schema_conformance`). The platform's own count of 5xx responses must not grow
//! during the run either, and Schemathesis must report having tested every operation of the
//! document.
//!
//! Schemathesis comes from PyPI (`tests/schemathesis/requirements.txt`); `tests/run` installs
//! it into `target/schemathesis` (`BEFFROI_SCHEMATHESIS` names another virtualenv). Without
//! it this test fails when `CI` is set and is skipped with a notice otherwise.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::Timestamp;
use beffroi_tests::input;
use beffroi_tests::PlatformSpec;
use serde_json::json;

use crate::common::{
    jsonl_agent, range, recent_base, unique_tenant, wait_stored, write_jsonl, Scenario,
};

/// The checks every response must pass.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance";
/// Fixed, so that a failure can be replayed with the same requests.
const SEED: &str = "11";
/// Generated cases per operation and phase: enough to reach every parameter's edge cases,
/// few enough that the run (about 5,000 requests) takes well under a minute on two cores.
const MAX_EXAMPLES: &str = "50";

/// The longest the run may take (it takes about 25 s on two cores).
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The `schemathesis` executable, or `None` (with a notice) when it is not installed and `CI`
/// is not set.
fn schemathesis(repository: &Path) -> anyhow::Result<Option<PathBuf>> {
    let root = std::env::var_os("BEFFROI_SCHEMATHESIS")
        .map_or_else(|| repository.join("target/schemathesis"), PathBuf::from);
    let bin = root.join("bin/schemathesis");
    if bin.is_file() {
        return Ok(Some(bin));
    }
    anyhow::ensure!(
        std::env::var_os("CI").is_none(),
        "schemathesis is missing from {}: `tests/run` installs it (pip install -r \
         tests/schemathesis/requirements.txt into that virtualenv)",
        root.display()
    );
    eprintln!(
        "NOTICE: api_schema skipped: no schemathesis in {} (run tests/run, or pip install -r \
         tests/schemathesis/requirements.txt into that virtualenv)",
        root.display()
    );
    Ok(None)
}

/// The document's own URL: Schemathesis reads it but does not count it among the operations
/// it tests.
const DOCUMENT: &str = "GET /api/v1/openapi.json";

/// Every operation a document describes, as `METHOD /path`.
fn operations(document: &serde_json::Value) -> BTreeSet<String> {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "patch", "head", "options", "trace",
    ];
    let Some(paths) = document["paths"].as_object() else {
        return BTreeSet::new();
    };
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect()
}

/// The operations a Schemathesis JUnit report has a test case for (its `<testcase name="GET
/// /path" …>` elements; the stateful phase has one more, not an operation).
fn tested_operations(junit: &str) -> BTreeSet<String> {
    junit
        .split("<testcase name=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_conforms_to_its_openapi_document() -> anyhow::Result<()> {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let Some(schemathesis) = schemathesis(&repository)? else {
        return Ok(());
    };
    let scenario = Scenario::new("api-schema")?;
    let mut platform = scenario.platform("platform", &PlatformSpec::default())?;
    let tenant = unique_tenant("schema");
    platform.create_tenant(&tenant).await?;
    let token = platform.create_token(&tenant, "admin").await?;
    let gateway = platform.enroll(&tenant, "gw-schema").await?;
    platform.start().await?;
    let api = platform.api_as(&token);

    let zone = json!({ "name": "Centre", "geometry": { "type": "Polygon",
        "coordinates": [[[4.8, 45.7], [4.9, 45.7], [4.9, 45.8], [4.8, 45.8], [4.8, 45.7]]] } });
    let put = api.put_json("/api/v1/zones/centre", &zone).await?;
    anyhow::ensure!(put.status == 200, "PUT zone: {}", put.body);
    let sensor = json!({ "kind": "air", "unit": "ug/m3", "lat": 45.75, "lon": 4.85,
        "zone": "centre" });
    let put = api.put_json("/api/v1/sensors/sensor-01", &sensor).await?;
    anyhow::ensure!(put.status == 200, "PUT sensor: {}", put.body);
    let rule = json!({ "id": "pm25-high", "name": "PM2.5 high", "severity": "warning",
        "condition": { "kind": "threshold", "metric": "air.pm25", "op": "gt", "value": 0.0 } });
    let created = api.post_json("/api/v1/alarm-rules", &rule).await?;
    anyhow::ensure!(created.status == 201, "POST alarm rule: {}", created.body);
    let now = Timestamp::now().unix_micros();
    let day = 86_400_000_000;
    let agreement = json!({ "id": "open-air", "grantee": "public", "state": "active",
        "not_before": Timestamp::from_unix_micros(now - day).to_string(),
        "not_after": Timestamp::from_unix_micros(now + day).to_string(),
        "purposes": ["open_data"], "action": "read_aggregate",
        "target": { "metrics": ["air.pm25"] }, "min_bucket_s": 3600, "functions": ["avg"],
        "k": 1, "spatial_level": "zone", "pseudonymise": false, "embargo_s": 0 });
    let created = api.post_json("/api/v1/agreements", &agreement).await?;
    anyhow::ensure!(created.status == 201, "POST agreement: {}", created.body);

    let base = recent_base();
    let readings = input::readings_from(base, 0, 200);
    let file = gateway.dir.join("readings.jsonl");
    write_jsonl(&file, &readings)?;
    let mut agent = gateway.agent(jsonl_agent(&file, false), platform.gate_port)?;
    agent.start()?;
    wait_stored(&api, range(base), readings.len(), &[&platform.log]).await?;
    agent.kill9()?;

    // `/readyz` answered 503 while the platform started: count only what follows.
    let server_errors = "beffroi_http_requests_total{class=\"5xx\"}";
    let server_errors_before = api.metric(server_errors).await?;
    let document = api.get_json("/api/v1/openapi.json").await?;
    let documented = operations(&document);
    anyhow::ensure!(documented.len() > 1, "no operations in {document}");
    let url = format!("http://{}/api/v1/openapi.json", platform.api_addr());
    let junit = scenario.path("schemathesis-junit.xml");
    let mut command = tokio::process::Command::new(&schemathesis);
    command
        .arg("--config-file")
        .arg(repository.join("tests/schemathesis/schemathesis.toml"))
        .args(["run", &url, "--checks", CHECKS, "--seed", SEED])
        // One worker: with two threads, Python 3.11.7's AST constructor (which Hypothesis
        // calls) can fail with "AST constructor recursion depth mismatch" (CPython gh-106905),
        // an internal error of the tool that says nothing about the API.
        .args(["--max-examples", MAX_EXAMPLES, "--workers", "1"])
        .args(["--request-timeout", "20", "--generation-database", "none"])
        .arg("--no-color")
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&junit)
        .current_dir(scenario.dir())
        .env("NO_COLOR", "1")
        .env("BEFFROI_TENANT", &tenant)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .with_context(|| format!("schemathesis ran for more than {RUN_TIMEOUT:?}"))?
        .context("running schemathesis")?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "---- schemathesis ({:.1?}) ----\n{report}\n---- end of schemathesis ----",
        started.elapsed()
    );
    anyhow::ensure!(
        output.status.success(),
        "schemathesis found failures ({}); its report is above",
        output.status
    );
    let junit = std::fs::read_to_string(&junit).context("schemathesis's JUnit report")?;
    let tested = tested_operations(&junit);
    let untested: Vec<&String> = documented
        .iter()
        .filter(|operation| *operation != DOCUMENT && !tested.contains(*operation))
        .collect();
    anyhow::ensure!(
        untested.is_empty(),
        "schemathesis did not test {untested:?} of the document's {} operations",
        documented.len()
    );
    let answered = api.metric(server_errors).await? - server_errors_before;
    anyhow::ensure!(
        answered == 0.0,
        "the platform counted {answered} 5xx responses during the run"
    );
    scenario.pass();
    Ok(())
}
