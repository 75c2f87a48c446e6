//! `beffroi watch`: tails a live view in the terminal (integrators checking what a sensor
//! sends, tests following the platform from outside). It speaks the live-view protocol
//! (`docs/live.md`) over tokio-tungstenite, `ws://` or `wss://` (system roots).
//!
//! The token comes from `--token` or `BEFFROI_TOKEN` (better: it stays out of the shell
//! history) and is sent in the upgrade's `Authorization` header. Output is one line per value
//! or event (`--format text`) or each frame as received (`--format json`). It stops after
//! `--count` values or events, after `--seconds`, on Ctrl-C, or when the server closes; a close
//! for any reason but a normal one is an error (exit status 1) naming the code and reason.

use std::time::Duration;

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Options of `beffroi watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// The platform's HTTP address (http:// or https://).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API token (default: $BEFFROI_TOKEN).
    #[arg(long, env = "BEFFROI_TOKEN", hide_env_values = true)]
    pub token: String,
    /// What to follow.
    #[arg(long, value_enum, default_value_t = StreamArg::Readings)]
    pub stream: StreamArg,
    /// Metric names or `prefix.*` (repeatable).
    #[arg(long = "metric")]
    pub metrics: Vec<String>,
    /// Zones (repeatable).
    #[arg(long = "zone")]
    pub zones: Vec<String>,
    /// Sensors (repeatable).
    #[arg(long = "sensor")]
    pub sensors: Vec<String>,
    /// Bounding box `west,south,east,north` (WGS 84 degrees).
    #[arg(long, value_parser = parse_bbox, allow_hyphen_values = true)]
    pub bbox: Option<[f64; 4]>,
    /// raw, 1m, 5m, 15m or 1h.
    #[arg(long, default_value = "raw")]
    pub granularity: String,
    /// Follow another tenant's readings under its sharing agreement (with --purpose).
    #[arg(long, requires = "purpose")]
    pub grantor: Option<String>,
    /// Why (research, public_service, …), recorded in the grantor's audit log.
    #[arg(long, requires = "grantor")]
    pub purpose: Option<String>,
    /// Skip the snapshot of latest values.
    #[arg(long)]
    pub no_snapshot: bool,
    /// Most frames per second.
    #[arg(long)]
    pub max_fps: Option<u32>,
    /// Stop after this many values or events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// The stream to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamArg {
    /// Committed readings.
    Readings,
    /// Alarm changes.
    Alarms,
    /// Security events.
    Security,
    /// Gateway states.
    Gateways,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per value or event.
    Text,
    /// Each frame as received, one per line.
    Json,
}

fn parse_bbox(text: &str) -> Result<[f64; 4], String> {
    let values: Vec<f64> = text
        .split(',')
        .map(|v| v.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("expected west,south,east,north: {e}"))?;
    values
        .try_into()
        .map_err(|_| "expected four numbers: west,south,east,north".to_owned())
}

/// The websocket URL of the live endpoint under an HTTP base URL.
fn live_url(base: &str) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let rest = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        anyhow::bail!("--url must start with http://, https://, ws:// or wss://");
    };
    Ok(format!("{rest}/api/v1/live"))
}

/// The `subscribe` message for `args`.
fn subscription(args: &WatchArgs) -> Value {
    let stream = match args.stream {
        StreamArg::Readings => "readings",
        StreamArg::Alarms => "alarms",
        StreamArg::Security => "security",
        StreamArg::Gateways => "gateways",
    };
    let mut message = json!({
        "type": "subscribe", "id": "watch", "stream": stream, "snapshot": !args.no_snapshot,
    });
    if args.stream == StreamArg::Readings {
        message["granularity"] = json!(args.granularity);
        let mut filter = json!({
            "metrics": args.metrics, "zones": args.zones, "sensors": args.sensors,
        });
        if let Some(bbox) = args.bbox {
            filter["bbox"] = json!(bbox);
        }
        message["filter"] = filter;
        if let (Some(grantor), Some(purpose)) = (&args.grantor, &args.purpose) {
            message["grantor"] = json!(grantor);
            message["purpose"] = json!(purpose);
        }
    }
    message
}

/// Runs `beffroi watch`.
pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let url = live_url(&args.url)?;
    let mut request = url
        .as_str()
        .into_client_request()
        .with_context(|| format!("bad URL {url}"))?;
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", args.token))
            .context("the token is not valid header text")?,
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("cannot open {url}"))?;
    if let Some(max_fps) = args.max_fps {
        let options = json!({"type": "options", "max_fps": max_fps}).to_string();
        socket.send(Message::text(options)).await?;
    }
    socket
        .send(Message::text(subscription(&args).to_string()))
        .await?;
    let deadline = args
        .seconds
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut seen = 0u64;
    loop {
        let next = async {
            match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, socket.next()).await.ok(),
                None => Some(socket.next().await),
            }
        };
        let message = tokio::select! {
            message = next => message,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(message) = message else {
            let _ = socket.close(None).await;
            return Ok(());
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(text.as_str())
                    .with_context(|| format!("the server sent invalid JSON: {text}"))?;
                if frame["type"] == "error" {
                    anyhow::bail!("the server refused the view: {}", frame["detail"]);
                }
                if frame["type"] == "ended" {
                    anyhow::bail!(
                        "the sharing agreement no longer permits the view: {}",
                        frame["detail"]
                    );
                }
                seen += print_frame(&frame, text.as_str(), args.format);
                if args.count.is_some_and(|count| seen >= count) {
                    let _ = socket.close(None).await;
                    return Ok(());
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return match frame {
                    Some(f) if u16::from(f.code) != 1000 => anyhow::bail!(
                        "the server closed the view: {} {}",
                        u16::from(f.code),
                        f.reason
                    ),
                    _ => Ok(()),
                };
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error).context("live view connection failed"),
            None => anyhow::bail!("the server closed the connection"),
        }
    }
}

/// Prints a frame; returns how many values or events it carried.
fn print_frame(frame: &Value, raw: &str, format: Format) -> u64 {
    let items = frame["items"].as_array().map_or(0, Vec::len) as u64;
    let count = match frame["type"].as_str() {
        Some("readings" | "buckets") => items,
        Some("alarm" | "security_event" | "gateway") => 1,
        _ => 0,
    };
    if format == Format::Json {
        println!("{raw}");
        return count;
    }
    // A grantee's items carry only the fields its agreement allows: "-" for the others.
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match frame["type"].as_str() {
        Some("readings") => {
            for item in frame["items"].as_array().into_iter().flatten() {
                println!(
                    "{}  {}  {} = {} {}  ({})",
                    text(&item["time"]),
                    text(&item["sensor"]),
                    text(&item["metric"]),
                    text(&item["value"]),
                    text(&item["unit"]),
                    text(&item["gateway"])
                );
            }
        }
        Some("buckets") => {
            for item in frame["items"].as_array().into_iter().flatten() {
                println!(
                    "{}  {}  {}  avg {} min {} max {} n {} {}{}",
                    text(&item["start"]),
                    text(&item["sensor"]),
                    text(&item["metric"]),
                    item["avg"],
                    item["min"],
                    item["max"],
                    item["count"],
                    text(&item["unit"]),
                    if item["revised"] == true {
                        " (revised)"
                    } else {
                        ""
                    }
                );
            }
        }
        Some("alarm") => {
            let a = &frame["alarm"];
            println!(
                "ALARM #{} {} {} [{}] {}",
                a["id"],
                text(&a["state"]),
                text(&a["severity"]),
                text(&a["rule_name"]),
                text(&a["message"])
            );
        }
        Some("security_event") => {
            let e = &frame["event"];
            println!(
                "SECURITY {} {} tenant={} gateway={} address={} {}",
                text(&e["time"]),
                text(&e["kind"]),
                text(&e["tenant"]),
                text(&e["gateway"]),
                text(&e["address"]),
                text(&e["detail"])
            );
        }
        Some("gateway") => {
            let g = &frame["gateway"];
            println!(
                "GATEWAY {} last_seen={} spool={} revoked={}",
                text(&g["id"]),
                text(&g["state"]["last_seen"]),
                g["state"]["spool_batches"],
                g["revoked"]
            );
        }
        Some("subscribed") => eprintln!("{}", subscribed_line(frame)),
        _ => {}
    }
    count
}

/// What `beffroi watch` says when the view starts: its series and, for a grantee view under
/// an embargo, by how much its values are delayed.
fn subscribed_line(frame: &Value) -> String {
    let mut line = format!("watching ({} series", frame["series"]);
    if let Some(embargo_s) = frame["embargo_s"].as_u64() {
        line.push_str(&format!(
            ", delayed by {embargo_s} s: each value arrives once it is that old"
        ));
    }
    line.push(')');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_bboxes() {
        assert_eq!(
            live_url("http://127.0.0.1:8080/").unwrap(),
            "ws://127.0.0.1:8080/api/v1/live"
        );
        assert_eq!(
            live_url("https://beffroi.example").unwrap(),
            "wss://beffroi.example/api/v1/live"
        );
        assert!(live_url("ftp://x").is_err());
        assert_eq!(
            parse_bbox("4.8,45.7,4.9,45.8").unwrap(),
            [4.8, 45.7, 4.9, 45.8]
        );
        assert!(parse_bbox("1,2,3").is_err());
        assert!(parse_bbox("a,2,3,4").is_err());
    }

    #[test]
    fn the_start_line_says_how_long_a_view_is_delayed() {
        let live = json!({"type": "subscribed", "id": "watch", "stream": "readings", "series": 3});
        assert_eq!(subscribed_line(&live), "watching (3 series)");
        let delayed = json!({"type": "subscribed", "id": "watch", "stream": "readings",
                             "series": 2, "embargo_s": 3600});
        assert_eq!(
            subscribed_line(&delayed),
            "watching (2 series, delayed by 3600 s: each value arrives once it is that old)"
        );
    }
}
