//! A live-view websocket client (`/api/v1/live`, protocol in `docs/live.md`) for the
//! scenarios: it authenticates the way browsers do (first message) or with a header, sends
//! requests and waits, bounded, for the frames a scenario expects.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    /// A JSON frame.
    Frame(Value),
    /// The server closed: code and reason (1006 when the connection dropped without a close
    /// frame).
    Closed(u16, String),
}

/// One live-view connection.
pub struct LiveClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `hello` the server sent.
    pub hello: Value,
}

impl LiveClient {
    /// Connects to the platform's API at `addr` and authenticates with its first message, as
    /// the dashboard does.
    pub async fn connect(addr: SocketAddr, token: &str) -> anyhow::Result<Self> {
        let url = format!("ws://{addr}/api/v1/live");
        let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .with_context(|| format!("cannot open {url}"))?;
        let auth = json!({"type": "auth", "token": token}).to_string();
        socket.send(Message::text(auth)).await?;
        Self::after_hello(socket).await
    }

    /// Connects with `Authorization: Bearer` on the upgrade request.
    pub async fn connect_with_header(addr: SocketAddr, token: &str) -> anyhow::Result<Self> {
        let mut request = format!("ws://{addr}/api/v1/live").into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Self::after_hello(socket).await
    }

    async fn after_hello(
        socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    ) -> anyhow::Result<Self> {
        let mut client = Self {
            socket,
            hello: Value::Null,
        };
        match client.next(Duration::from_secs(10)).await? {
            LiveEvent::Frame(hello) if hello["type"] == "hello" => {
                client.hello = hello;
                Ok(client)
            }
            other => anyhow::bail!("expected hello, got {other:?}"),
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &Value) -> anyhow::Result<()> {
        self.socket.send(Message::text(message.to_string())).await?;
        Ok(())
    }

    /// Subscribes and waits for the `subscribed` answer; returns it and any snapshot frames
    /// that came before the caller looks again.
    pub async fn subscribe(&mut self, request: Value) -> anyhow::Result<Value> {
        let id = request["id"].clone();
        let mut message = json!({"type": "subscribe"});
        if let (Value::Object(m), Value::Object(r)) = (&mut message, request) {
            m.extend(r);
        }
        self.send(&message).await?;
        self.until(Duration::from_secs(10), |f| {
            (f["type"] == "subscribed" || f["type"] == "error") && f["id"] == id
        })
        .await
    }

    /// The next frame or close, within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<LiveEvent> {
        // One deadline for the call: pings and pongs in between do not extend it.
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .context("no live frame in time")?;
            return Ok(match message {
                Some(Ok(Message::Text(text))) => LiveEvent::Frame(
                    serde_json::from_str(text.as_str())
                        .with_context(|| format!("invalid JSON frame {text}"))?,
                ),
                Some(Ok(Message::Close(frame))) => match frame {
                    Some(f) => LiveEvent::Closed(u16::from(f.code), f.reason.to_string()),
                    None => LiveEvent::Closed(1005, String::new()),
                },
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => LiveEvent::Closed(1006, String::new()),
            });
        }
    }

    /// The first frame for which `wanted` holds, skipping others; fails on close or timeout.
    pub async fn until(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                anyhow::bail!("no wanted frame in {timeout:?}; last frames: {seen:?}");
            }
            match self.next(left).await {
                Ok(LiveEvent::Frame(frame)) if wanted(&frame) => return Ok(frame),
                Ok(LiveEvent::Frame(frame)) => {
                    seen.push(frame);
                    if seen.len() > 20 {
                        seen.remove(0);
                    }
                }
                Ok(LiveEvent::Closed(code, reason)) => {
                    anyhow::bail!("closed ({code} {reason}) while waiting; last frames: {seen:?}")
                }
                Err(error) => anyhow::bail!("{error}; last frames: {seen:?}"),
            }
        }
    }

    /// Waits for the server to close; returns the code and reason.
    pub async fn closed(&mut self, timeout: Duration) -> anyhow::Result<(u16, String)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let LiveEvent::Closed(code, reason) = self.next(left).await? {
                return Ok((code, reason));
            }
        }
    }
}
