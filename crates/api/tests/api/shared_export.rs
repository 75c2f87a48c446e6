//! Grantee exports (`/api/v1/shared/{grantor}/export`) on each backend, over the governance
//! fixture (tenant A's 9 sensors, `air.no2` every 10 minutes for 4 hours): a raw export is
//! exactly the REST pages of the same query, in RFC 4180 CSV or SenML; it is decided and
//! audited on the `export` channel, denied and failing closed like every governed read; its
//! closing entry holds the rows and the SHA-256 of the body, or says the client went away.

use beffroi_audit::AuditKind;
use beffroi_formats::csv::CsvReader;
use http_body_util::BodyExt as _;
use sha2::{Digest as _, Sha256};

use super::governance::{
    aggregate_agreement, audit_of, create, days_from_now, denied, fixture, Fixture, METRIC,
};
use super::*;

on_each_backend!(
    a_raw_export_is_the_rest_pages_in_one_audited_download,
    an_aggregate_export_is_the_cells_and_totals_as_csv,
    exports_are_denied_and_fail_closed_like_reads,
    a_client_leaving_mid_export_is_recorded,
);

/// Columns the export agreement lets through, in their canonical order.
const COLUMNS: [&str; 6] = ["time", "value", "unit", "metric", "sensor", "seq"];
/// A text value that needs every RFC 4180 escape.
const TRICKY_TEXT: &str = "he said \"hi\", then\r\nleft";
const TRICKY_UNIT: &str = "a,b\"q\"";

/// A raw, pseudonymising agreement for `grantee` on `air.*` (tagged sensors).
fn export_agreement(id: &str, grantee: &str) -> Value {
    json!({
        "id": id, "grantee": grantee, "state": "active",
        "not_before": days_from_now(-30), "not_after": days_from_now(30),
        "purposes": ["research"], "action": "read_raw",
        "target": { "metrics": ["air.*"], "tags": ["air-quality"] },
        "functions": ["avg"], "k": 1, "spatial_level": "sensor",
        "pseudonymise": true, "fields": COLUMNS, "embargo_s": 0
    })
}

/// Commits readings of sensor `n1` of A (a fixture sensor), `per_batch` a batch.
async fn commit(h: &Harness, seq: u64, readings: Vec<Reading>, per_batch: usize) -> Result<()> {
    let batches: Vec<CommitBatch> = readings
        .chunks(per_batch)
        .enumerate()
        .map(|(n, chunk)| -> Result<CommitBatch> {
            Ok(CommitBatch {
                tenant: TenantId::new(A)?,
                gateway: GatewayId::new("gw-a3")?,
                seq: seq + n as u64,
                key_id: KeyId::new("k-a3")?,
                signature: [7; 64],
                received_at: Timestamp::now(),
                readings: chunk.to_vec(),
            })
        })
        .collect::<Result<_>>()?;
    h.store.commit(&batches).await?;
    Ok(())
}

/// Two readings whose unit and value need quoting in CSV.
async fn tricky_readings(h: &Harness, f: &Fixture) -> Result<()> {
    let time =
        |minutes: i64| Timestamp::from_unix_micros(f.base.unix_micros() + minutes * MINUTE_US);
    let readings = vec![
        reading(
            "n1",
            "air.note",
            TRICKY_UNIT,
            time(1),
            ReadingValue::Text(TRICKY_TEXT.into()),
        ),
        reading("n1", "air.flag", "", time(2), ReadingValue::Bool(true)),
    ];
    commit(h, 5000, readings, 100).await
}

/// The items of every REST page of `query`, in order.
async fn rest_pages(h: &Harness, query: &str) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/shared/{A}/readings?{query}&limit=50");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = h.get_json(&path, &h.tokens.b_viewer).await?;
        items.extend(page["items"].as_array().context("items")?.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(items),
        }
    }
}

/// Every record of a CSV body, header first; fails on anything RFC 4180 does not allow.
fn csv_records(body: &[u8]) -> Result<Vec<Vec<String>>> {
    let mut reader = CsvReader::new(body);
    let (mut records, mut fields) = (Vec::new(), Vec::new());
    while reader.next_record(&mut fields)? {
        records.push(fields.clone());
    }
    Ok(records)
}

/// A JSON scalar as the CSV export writes it.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The export entries (access permits on the `export` channel) of A's log.
async fn export_permits(h: &Harness) -> Result<Vec<Value>> {
    Ok(audit_of(h, AuditKind::AccessPermit)
        .await?
        .into_iter()
        .filter(|e| e.detail["channel"] == "export")
        .map(|e| Value::Object(e.detail))
        .collect())
}

/// The closing entries of exports, once there are `n` (they are written after the stream).
async fn closings(h: &Harness, n: usize) -> Result<Vec<Value>> {
    for _ in 0..100 {
        let closed: Vec<Value> = export_permits(h)
            .await?
            .into_iter()
            .filter(|d| d["query"]["export"]["ended"].is_string())
            .collect();
        if closed.len() >= n {
            return Ok(closed);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("fewer than {n} closing entries after 5 s")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn a_raw_export_is_the_rest_pages_in_one_audited_download(h: Harness) -> Result<()> {
    let f = fixture(&h).await?;
    tricky_readings(&h, &f).await?;
    create(&h, &export_agreement("paris-export", "tenant:paris")).await?;
    let query = format!("purpose=research&metric=air.*&{}", f.range());
    let rest = rest_pages(&h, &query).await?;
    assert_eq!(rest.len(), 9 * 24 + 2);

    let export = h
        .get(
            &format!("/api/v1/shared/{A}/export?{query}&format=csv"),
            &h.tokens.b_viewer,
        )
        .await?;
    assert_eq!(export.status, StatusCode::OK, "{}", export.text());
    assert!(
        export.content_type.starts_with("text/csv"),
        "{}",
        export.content_type
    );
    let disposition = export
        .headers
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .context("Content-Disposition")?;
    assert!(
        disposition.starts_with(&format!("attachment; filename=\"{A}_paris-export_"))
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let records = csv_records(&export.body)?;
    assert_eq!(records[0], COLUMNS, "the header: the allowed fields");
    let expected: Vec<Vec<String>> = rest
        .iter()
        .map(|item| COLUMNS.iter().map(|c| text_of(&item[*c])).collect())
        .collect();
    assert_eq!(records[1..], expected[..], "the REST pages, concatenated");
    let tricky = records
        .iter()
        .find(|r| r[3] == "air.note")
        .context("the text reading")?;
    assert_eq!(
        (tricky[1].as_str(), tricky[2].as_str()),
        (TRICKY_TEXT, TRICKY_UNIT)
    );
    assert!(
        records[1..].iter().all(|r| r[4].starts_with("p_")),
        "pseudonyms"
    );
    for hidden in ["gw-a2", "n1", "north", "zone", "gateway"] {
        assert!(!export.text().contains(hidden), "{hidden} leaked");
    }

    // Two entries on the export channel: the opening one before any byte, the closing one
    // with the rows and the hash of exactly the body received.
    let closed = closings(&h, 1).await?;
    let permits = export_permits(&h).await?;
    assert_eq!(permits.len(), 2, "{permits:?}");
    let opening = &permits[0];
    assert_eq!(opening["query"]["export"]["opened"], true);
    assert_eq!(opening["rows"], 0);
    assert!(opening["result_hash"].is_null(), "{opening}");
    assert_eq!(closed[0]["query"]["export"]["ended"], "completed");
    assert_eq!(
        closed[0]["query"]["export"]["opened_at"],
        opening["query"]["decided_at"]
    );
    assert_eq!(closed[0]["rows"], rest.len());
    assert_eq!(closed[0]["result_hash"], sha256_hex(&export.body));
    assert_eq!(closed[0]["agreement"]["id"], "paris-export");
    assert_eq!(closed[0]["grantee"], "tenant:paris");

    // SenML: one record per row, `n` = pseudonym:metric, units, exact times.
    let senml = h
        .get(
            &format!("/api/v1/shared/{A}/export?{query}&format=senml"),
            &h.tokens.b_viewer,
        )
        .await?;
    assert_eq!(senml.status, StatusCode::OK, "{}", senml.text());
    assert_eq!(senml.content_type, "application/senml+json");
    let pack = senml.json();
    let pack = pack.as_array().context("a SenML pack is an array")?;
    assert_eq!(pack.len(), rest.len());
    for (record, item) in pack.iter().zip(&rest) {
        let name = format!("{}:{}", text_of(&item["sensor"]), text_of(&item["metric"]));
        assert_eq!(record["n"], name.as_str());
        let time = Timestamp::parse_rfc3339(&text_of(&item["time"])).context("time")?;
        let t = record["t"].as_f64().context("t")?;
        assert!(
            (t - time.unix_micros() as f64 / 1e6).abs() < 2e-6,
            "{record}"
        );
        match item["metric"].as_str() {
            Some(METRIC) => {
                assert_eq!(record["u"], "ug/m3");
                assert_eq!(record["v"], item["value"]);
            }
            Some("air.note") => {
                assert_eq!(record["u"], TRICKY_UNIT);
                assert_eq!(record["vs"], TRICKY_TEXT);
            }
            _ => {
                assert!(record.get("u").is_none(), "an empty unit is left out");
                assert_eq!(record["vb"], true);
            }
        }
    }
    let closed = closings(&h, 2).await?;
    assert_eq!(closed[1]["result_hash"], sha256_hex(&senml.body));
    assert_eq!(closed[1]["query"]["export"]["format"], "senml");
    h.stop().await
}

async fn an_aggregate_export_is_the_cells_and_totals_as_csv(h: Harness) -> Result<()> {
    let f = fixture(&h).await?;
    create(&h, &aggregate_agreement("paris-hourly", "tenant:paris")).await?;
    let query = format!(
        "purpose=research&metric={METRIC}&{}&bucket=1h&functions=avg,count",
        f.range()
    );
    let cells = h
        .get_json(
            &format!("/api/v1/shared/{A}/aggregates?{query}"),
            &h.tokens.b_viewer,
        )
        .await?;
    let export = h
        .get(
            &format!("/api/v1/shared/{A}/export?{query}"),
            &h.tokens.b_viewer,
        )
        .await?;
    assert_eq!(export.status, StatusCode::OK, "{}", export.text());
    assert!(export.content_type.starts_with("text/csv"));
    let records = csv_records(&export.body)?;
    let header = [
        "kind",
        "metric",
        "bucket",
        "unit",
        "suppressed",
        "fine_buckets",
        "avg",
        "count",
    ];
    assert_eq!(records[0], header);
    let mut expected = Vec::new();
    for (kind, items) in [("cell", &cells["cells"]), ("total", &cells["totals"])] {
        for item in items.as_array().context("cells")? {
            expected.push(vec![
                kind.to_owned(),
                text_of(&item["metric"]),
                text_of(&item["bucket"]),
                text_of(&item["unit"]),
                text_of(item.get("suppressed").unwrap_or(&json!(false))),
                text_of(&item["fine_buckets"]),
                text_of(&item["values"]["avg"]),
                text_of(&item["values"]["count"]),
            ]);
        }
    }
    assert!(expected.len() > 4, "cells and totals: {cells}");
    assert_eq!(records[1..], expected[..]);
    let permits = export_permits(&h).await?;
    assert_eq!(
        permits.len(),
        1,
        "a bounded answer: one entry, as a REST read"
    );
    assert_eq!(permits[0]["rows"], expected.len());
    assert_eq!(permits[0]["result_hash"], sha256_hex(&export.body));
    // SenML carries raw rows only.
    h.get(
        &format!("/api/v1/shared/{A}/export?{query}&format=senml"),
        &h.tokens.b_viewer,
    )
    .await?
    .problem(StatusCode::BAD_REQUEST);
    h.stop().await
}

async fn exports_are_denied_and_fail_closed_like_reads(h: Harness) -> Result<()> {
    let f = fixture(&h).await?;
    let path = format!(
        "/api/v1/shared/{A}/export?purpose=research&metric={METRIC}&{}",
        f.range()
    );
    denied(&h.get(&path, &h.tokens.b_viewer).await?, "no_agreement");
    let denials = audit_of(&h, AuditKind::AccessDeny).await?;
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0].detail["channel"], "export");
    assert_eq!(denials[0].detail["grantee"], "tenant:paris");

    create(&h, &export_agreement("paris-export", "tenant:paris")).await?;
    let wrong = path.replace("purpose=research", "purpose=billing");
    denied(&h.get(&wrong, &h.tokens.b_viewer).await?, "wrong_purpose");
    assert_eq!(audit_of(&h, AuditKind::AccessDeny).await?.len(), 2);
    denied(
        &h.get(&format!("{path}&fields=gateway"), &h.tokens.b_viewer)
            .await?,
        "field_not_allowed",
    );

    // Bad requests are refused before any decision.
    let long = format!(
        "/api/v1/shared/{A}/export?purpose=research&from={}&to={}",
        f.base,
        Timestamp::from_unix_micros(f.base.unix_micros() + 367 * 24 * 60 * MINUTE_US)
    );
    for bad in [
        long,
        format!("{path}&format=xml"),
        format!("{path}&limit=10"),
        format!("{path}&level=zone&fields=time"),
    ] {
        h.get(&bad, &h.tokens.b_viewer)
            .await?
            .problem(StatusCode::BAD_REQUEST);
    }
    assert_eq!(audit_of(&h, AuditKind::AccessDeny).await?.len(), 3);

    h.database.break_audit_log().await?;
    let failed = h.get(&path, &h.tokens.b_viewer).await?;
    let detail = failed.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(detail.contains("audit"), "{detail}");
    assert!(!failed.text().contains("p_"), "no data leaves");
    h.get(&wrong, &h.tokens.b_viewer)
        .await?
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    h.database.repair_audit_log().await?;
    assert!(export_permits(&h).await?.is_empty(), "nothing was exported");
    h.stop().await
}

async fn a_client_leaving_mid_export_is_recorded(h: Harness) -> Result<()> {
    const BULK: i64 = 30_000;
    let f = fixture(&h).await?;
    let readings = (0..BULK)
        .map(|i| {
            let time = Timestamp::from_unix_micros(f.base.unix_micros() + i * 400_000);
            reading(
                "n1",
                "air.bulk",
                "ug/m3",
                time,
                ReadingValue::Number(i as f64),
            )
        })
        .collect();
    commit(&h, 9000, readings, 5000).await?;
    create(&h, &export_agreement("paris-export", "tenant:paris")).await?;
    let path = format!(
        "/api/v1/shared/{A}/export?purpose=research&metric=air.bulk&{}",
        f.range()
    );

    // Read the first chunk, then hang up.
    let stream = tokio::net::TcpStream::connect(h.addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let request = Request::builder()
        .uri(&path)
        .header(header::HOST, h.addr.to_string())
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", h.tokens.b_viewer),
        )
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.context("a first chunk")??;
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    drop(body);
    drop(sender);
    connection.abort();

    let closed = closings(&h, 1).await?;
    assert_eq!(
        closed[0]["query"]["export"]["ended"], "disconnected",
        "{}",
        closed[0]
    );
    let rows = closed[0]["rows"].as_i64().context("rows")?;
    assert!(rows > 0 && rows < BULK, "{rows} of {BULK} rows released");
    assert!(closed[0]["result_hash"].is_string());
    h.stop().await
}
