//! A minimal HTTP client for the platform's API: one HTTP/1.0 request per connection
//! (`Connection: close`, so the response is delimited by the end of the stream and never
//! chunked), plain HTTP on loopback, every call bounded by [`REQUEST_TIMEOUT`].
//!
//! Small on purpose: the scenarios send a few hundred GETs and PUTs to `127.0.0.1`, and a
//! full client library would add TLS stacks and dozens of crates to the test build.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use beffroi_protocol::{MetricName, Reading, SensorId, Timestamp, Unit, Value};
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The longest one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The page size used to walk paginated lists (small enough to exercise pagination).
pub const PAGE: u32 = 1000;

/// A response: status and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body, as text.
    pub body: String,
}

impl Response {
    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("status {} with a non-JSON body: {}", self.status, self.body))
    }
}

/// A stored reading as `GET /api/v1/readings` returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiReading {
    /// The gateway that sent it.
    pub gateway: String,
    /// Its batch.
    pub seq: u64,
    /// The sensor.
    pub sensor: SensorId,
    /// The metric.
    pub metric: MetricName,
    /// The unit.
    pub unit: Unit,
    /// When measured.
    pub time: Timestamp,
    /// The value.
    pub value: Value,
}

impl ApiReading {
    /// The reading without its provenance (comparable with the input).
    pub fn reading(&self) -> Reading {
        Reading {
            sensor: self.sensor.clone(),
            metric: self.metric.clone(),
            unit: self.unit.clone(),
            time: self.time,
            value: self.value.clone(),
        }
    }
}

/// The API of one platform, as one caller (a bearer token, or anonymous).
#[derive(Debug, Clone)]
pub struct Api {
    addr: SocketAddr,
    token: Option<String>,
}

impl Api {
    /// Anonymous calls to `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, token: None }
    }

    /// The same API with `Authorization: Bearer {token}`.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            addr: self.addr,
            token: Some(token.to_owned()),
        }
    }

    /// `GET path` (path and query, already encoded).
    pub async fn get(&self, path: &str) -> anyhow::Result<Response> {
        self.request("GET", path, None).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put_json(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<Response> {
        self.request("PUT", path, Some(body.to_string())).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<Response> {
        self.request("POST", path, Some(body.to_string())).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Response> {
        self.request("DELETE", path, None).await
    }

    /// `GET path`, which must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let response = self.get(path).await?;
        anyhow::ensure!(
            response.status == 200,
            "GET {path}: status {}: {}",
            response.status,
            response.body
        );
        response.json()
    }

    /// Every raw reading of the caller's tenant in `[from, to)`, walking the cursor pages.
    pub async fn readings(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> anyhow::Result<Vec<ApiReading>> {
        #[derive(Deserialize)]
        struct Page {
            items: Vec<ApiReading>,
            next_cursor: Option<String>,
        }
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/readings?from={from}&to={to}&limit={PAGE}");
            if let Some(cursor) = &cursor {
                path.push_str("&cursor=");
                path.push_str(cursor);
            }
            let page: Page = serde_json::from_value(self.get_json(&path).await?)
                .with_context(|| format!("GET {path}: unexpected page shape"))?;
            all.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// Every item of an offset-paginated list (`/api/v1/quarantine`, `/api/v1/security-events`).
    pub async fn all_items(&self, path: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut all = Vec::new();
        let mut offset = 0u64;
        loop {
            let page = self
                .get_json(&format!("{path}?limit=100&offset={offset}"))
                .await?;
            let items = page["items"]
                .as_array()
                .with_context(|| format!("{path}: no items in {page}"))?;
            all.extend(items.iter().cloned());
            match page["next_offset"].as_u64() {
                Some(next) => offset = next,
                None => return Ok(all),
            }
        }
    }

    /// The caller's quarantined messages.
    pub async fn quarantine(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        self.all_items("/api/v1/quarantine").await
    }

    /// The caller's security events.
    pub async fn security_events(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        self.all_items("/api/v1/security-events").await
    }

    /// `GET /metrics`: the value of one sample (`name` with its labels, as printed), 0 if
    /// absent.
    pub async fn metric(&self, sample: &str) -> anyhow::Result<f64> {
        let response = self.get("/metrics").await?;
        anyhow::ensure!(response.status == 200, "GET /metrics: {}", response.status);
        Ok(response
            .body
            .lines()
            .filter_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .filter_map(|value| value.trim().parse::<f64>().ok())
            .next()
            .unwrap_or(0.0))
    }

    /// Whether `GET /readyz` answers 200 (false on any failure, including no listener).
    pub async fn is_ready(&self) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(2), self.get("/readyz")).await,
            Ok(Ok(Response { status: 200, .. }))
        )
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<Response> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(method, path, body))
            .await
            .with_context(|| format!("{method} {path}: no response within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("{method} http://{}{path}", self.addr))
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<Response> {
        let mut stream = TcpStream::connect(self.addr).await?;
        let mut head = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.addr
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(body) = &body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        if let Some(body) = &body {
            stream.write_all(body.as_bytes()).await?;
        }
        stream.flush().await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse_response(&raw)
    }
}

fn parse_response(raw: &[u8]) -> anyhow::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("response without an end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).context("response headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut content_type = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        anyhow::ensure!(
            !(name == "transfer-encoding" && value.contains("chunked")),
            "chunked response to an HTTP/1.0 request"
        );
        if name == "content-type" {
            content_type = Some(value.to_owned());
        }
    }
    Ok(Response {
        status,
        content_type,
        body: String::from_utf8_lossy(&raw[split + 4..]).into_owned(),
    })
}
