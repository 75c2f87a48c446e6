//! `GET /api/v1/live`: the live-view websocket (protocol in `docs/live.md`, logic in
//! `beffroi-live`). This module owns the socket: authentication (header, or the first message
//! for browsers), the read/write loop, frame pacing, write timeouts and close frames.
//!
//! ```text
//! upgrade ─► auth (header, or {"type":"auth"} within auth_timeout; else close 4401)
//!         ─► hub.connect ─► hello
//!         ─► loop: client message ─► replies, at once
//!                  frames due (`beffroi_live::Pacer`: max_fps, cut with a commit) ─► frames
//!                                (each write ≤ send_timeout, else the client is dropped: 4408)
//!                  every ping_interval ─► ping; nothing heard for idle_timeout ─► close 4408
//!                  grantee views: agreements changed, or every RECHECK ─► decide again ─►
//!                                 `ended` for those no longer permitted
//!                  server close (shutdown 1001, too slow 4408, protocol 4400) ─► close frame
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use beffroi_live::{close, ClientMessage, Close, LiveError, Pacer, RECHECK};
use tokio::sync::watch;
use tokio::time::{timeout, Instant, Interval, MissedTickBehavior};

use crate::auth::{authenticate, bearer_token, Principal};
use crate::error::{ApiError, Result};
use crate::governed::{LiveGovernor, Requester};
use crate::ApiState;

/// Bytes read from a live socket at a time (larger messages still arrive whole, up to
/// `max_message_bytes`).
const READ_BUFFER: usize = 4096;

/// The subprotocol a client may ask for.
pub const SUBPROTOCOL: &str = "beffroi.live.v1";

/// Upgrades to the live-view websocket. A token in `Authorization` is checked before the
/// upgrade (401 problem when invalid); without one, the first message must authenticate. A
/// plain HTTP request is answered like any other route: 401 without a valid token, then 400.
pub async fn live(
    State(state): State<ApiState>,
    headers: HeaderMap,
    upgrade: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    let principal = match bearer_token(&headers)? {
        Some(token) => Some(authenticate(&state, token).await?),
        None => None,
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) if principal.is_some() => {
            return Err(ApiError::bad_request(format!(
                "expected a websocket upgrade: {}",
                rejection.body_text()
            )))
        }
        Err(_) => {
            return Err(ApiError::Unauthorized(
                "missing Authorization: Bearer <token> header",
            ))
        }
    };
    let max_message = state.live.config().max_message_bytes;
    Ok(upgrade
        .protocols([SUBPROTOCOL])
        // Clients send small requests: a 4 KiB read buffer instead of the default 128 KiB
        // keeps a thousand idle dashboards from holding 128 MiB.
        .read_buffer_size(READ_BUFFER)
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| session(state, socket, principal)))
}

async fn session(state: ApiState, mut socket: WebSocket, principal: Option<Principal>) {
    let principal = match principal {
        Some(principal) => principal,
        None => match first_message_auth(&state, &mut socket).await {
            Ok(principal) => principal,
            Err(reason) => return close_with(&state, socket, reason).await,
        },
    };
    let requester = Requester::of(principal.clone()).ok();
    let mut client = match state.live.connect(principal.scope).await {
        Ok(client) => client,
        Err(LiveError::ShuttingDown) => {
            let reason = Close::new(close::GOING_AWAY, "shutdown", "the server is shutting down");
            return close_with(&state, socket, reason).await;
        }
        Err(error) => {
            tracing::error!(%error, "cannot start a live view");
            let reason = Close::new(close::INTERNAL, "internal", "internal error");
            return close_with(&state, socket, reason).await;
        }
    };
    if let Some(requester) = requester {
        client.govern(Arc::new(LiveGovernor::new(state.clone(), requester)));
    }
    let mut grant_changes = client.grant_changes();
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let config = state.live.config().clone();
    let send_timeout = config.send_timeout;
    if !send(&mut socket, client.hello(), send_timeout).await {
        return;
    }
    let mut pacer = Pacer::new();
    let mut heard = Instant::now();
    let mut heartbeat =
        tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                if heard.elapsed() >= config.idle_timeout {
                    let reason = Close::new(close::TOO_SLOW, "idle", "nothing heard from the client, not even a pong");
                    return close_with(&state, socket, reason).await;
                }
                let ping = timeout(send_timeout, socket.send(Message::Ping(Default::default())));
                if !matches!(ping.await, Ok(Ok(()))) {
                    return too_slow(&state);
                }
            }
            incoming = socket.recv() => {
                heard = Instant::now();
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let reason = Close::new(close::PROTOCOL, "protocol", "binary frames are not part of the protocol");
                        return close_with(&state, socket, reason).await;
                    }
                    // axum answers pings itself; a pong only proves the client is there.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "live view connection failed");
                        let reason = Close::new(close::PROTOCOL, "protocol", "unreadable or oversize message");
                        return close_with(&state, socket, reason).await;
                    }
                };
                match client.handle(text.as_str()).await {
                    Ok(replies) => {
                        for reply in replies {
                            if !send(&mut socket, reply, send_timeout).await {
                                return too_slow(&state);
                            }
                        }
                    }
                    Err(reason) => return close_with(&state, socket, reason).await,
                }
            }
            () = grants_due(&mut grant_changes, &mut recheck), if client.has_grants() => {
                for frame in client.recheck().await {
                    if !send(&mut socket, frame, send_timeout).await {
                        return too_slow(&state);
                    }
                }
            }
            ready = pacer.ready(&client) => match ready {
                Ok(()) => {
                    for frame in client.take_frames() {
                        if !send(&mut socket, frame, send_timeout).await {
                            return too_slow(&state);
                        }
                    }
                }
                Err(reason) => return close_with(&state, socket, reason).await,
            }
        }
    }
}

/// Resolves when grantee views must be decided again: the agreements changed, or
/// [`RECHECK`] passed (an agreement reaching its end, a change made on another node).
async fn grants_due(changes: &mut Option<watch::Receiver<u64>>, tick: &mut Interval) {
    match changes {
        Some(receiver) => tokio::select! {
            changed = receiver.changed() => {
                if changed.is_err() {
                    *changes = None;
                }
            }
            _ = tick.tick() => {}
        },
        None => {
            tick.tick().await;
        }
    }
}

/// Waits for `{"type": "auth", "token": …}`.
async fn first_message_auth(
    state: &ApiState,
    socket: &mut WebSocket,
) -> std::result::Result<Principal, Close> {
    let unauthorized = |reason: &str| Close::new(close::UNAUTHORIZED, "unauthorized", reason);
    let first = timeout(state.live.config().auth_timeout, socket.recv())
        .await
        .map_err(|_| unauthorized("no auth message in time"))?;
    let Some(Ok(Message::Text(text))) = first else {
        return Err(unauthorized("expected an auth message"));
    };
    let Ok(ClientMessage::Auth { token }) = serde_json::from_str::<ClientMessage>(text.as_str())
    else {
        return Err(unauthorized(
            "expected {\"type\": \"auth\", \"token\": …} first",
        ));
    };
    authenticate(state, &token)
        .await
        .map_err(|error| unauthorized(&error.to_string()))
}

/// Writes one text frame within `limit`; false when it could not.
async fn send(socket: &mut WebSocket, text: String, limit: Duration) -> bool {
    matches!(
        timeout(limit, socket.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

/// The client did not take a frame in time: it is dropped without a close handshake (its
/// socket is not being read).
fn too_slow(state: &ApiState) {
    state.metrics.live_closed.incr("too_slow");
}

/// Sends a close frame (bounded in time) and counts why.
async fn close_with(state: &ApiState, mut socket: WebSocket, reason: Close) {
    state.metrics.live_closed.incr(reason.label);
    let frame = CloseFrame {
        code: reason.code,
        reason: Utf8Bytes::from(reason.reason),
    };
    let _ = timeout(
        state.live.config().send_timeout,
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}
