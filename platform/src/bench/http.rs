//! The benchmark's HTTP client: one HTTP/1.1 keep-alive connection to the platform's API
//! (hyper), requests sent one after the other, whole bodies read.

use std::net::SocketAddr;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Method, Request};
use hyper_util::rt::TokioIo;

/// A connection to the API.
pub(crate) struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// A response: status and whole body.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: Bytes,
}

impl Client {
    /// Connects to the API at `addr`.
    pub(crate) async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to the API at {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                eprintln!("bench: HTTP connection closed: {error}");
            }
        });
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    /// `GET path` with a bearer token.
    pub(crate) async fn get(&mut self, path: &str, token: &str) -> anyhow::Result<Reply> {
        self.send(Method::GET, path, token, None).await
    }

    /// `POST path` with a JSON body and a bearer token.
    pub(crate) async fn post_json(
        &mut self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<Reply> {
        let bytes = serde_json::to_vec(body)?;
        self.send(Method::POST, path, token, Some(bytes)).await
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Reply> {
        self.sender
            .ready()
            .await
            .context("the API closed the connection")?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .with_context(|| format!("request {path}"))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }
}
