//! The live-view websocket over a real connection: both ways to authenticate, refusals with
//! their close codes, a view fed after commit, and a slow client that is cut off while a fast
//! one keeps up.

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

use super::*;

pub(super) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

pub(super) async fn open(h: &Harness, header: Option<&str>) -> Result<Socket> {
    let mut request = format!("ws://{}/api/v1/live", h.addr).into_client_request()?;
    if let Some(token) = header {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    Ok(tokio_tungstenite::connect_async(request).await?.0)
}

pub(super) async fn send(socket: &mut Socket, message: Value) -> Result<()> {
    socket.send(Message::text(message.to_string())).await?;
    Ok(())
}

/// The next text frame as JSON, or the close code (as `{"close": code}`).
pub(super) async fn next(socket: &mut Socket) -> Result<Value> {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await? {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(text.as_str())?),
            Some(Ok(Message::Close(frame))) => {
                return Ok(json!({"close": frame.map_or(1005, |f| u16::from(f.code))}))
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Ok(json!({"close": 1006})),
        }
    }
}

fn pm25(tenant: &str, value: f64) -> Result<CommitBatch> {
    Ok(CommitBatch {
        tenant: TenantId::new(tenant)?,
        gateway: GatewayId::new("gw-a1")?,
        seq: 1,
        key_id: KeyId::new("k-a1")?,
        signature: [0; 64],
        received_at: Timestamp::now(),
        readings: vec![Reading {
            sensor: SensorId::new("shared")?,
            metric: MetricName::new("air.pm25")?,
            unit: Unit::new("ug/m3")?,
            time: Timestamp::now(),
            value: ReadingValue::Number(value),
        }],
    })
}

#[tokio::test]
async fn header_or_first_message_authenticates_and_views_follow_commits() -> Result<()> {
    let h = Harness::start().await?;
    let mut by_header = open(&h, Some(&h.tokens.a_viewer)).await?;
    let hello = next(&mut by_header).await?;
    assert_eq!(hello["type"], "hello");
    assert_eq!(
        (hello["tenant"].as_str(), hello["role"].as_str()),
        (Some(A), Some("viewer"))
    );

    let mut browser = open(&h, None).await?;
    send(
        &mut browser,
        json!({"type": "auth", "token": h.tokens.a_viewer}),
    )
    .await?;
    assert_eq!(next(&mut browser).await?["type"], "hello");
    send(
        &mut browser,
        json!({"type": "subscribe", "id": "pm", "stream": "readings",
               "filter": {"metrics": ["air.pm25"], "sensors": ["shared"]}, "snapshot": false}),
    )
    .await?;
    assert_eq!(next(&mut browser).await?["type"], "subscribed");
    h.live.batch_committed(&pm25(B, 9000.0)?);
    h.live.batch_committed(&pm25(A, 42.0)?);
    let frame = next(&mut browser).await?;
    assert_eq!(frame["type"], "readings", "{frame}");
    assert_eq!(
        frame["items"][0]["value"], 42.0,
        "only tenant A's value: {frame}"
    );

    // A plain HTTP request to the endpoint: 401 without a token, 400 with one.
    h.send(Method::GET, "/api/v1/live", None, None)
        .await?
        .problem(StatusCode::UNAUTHORIZED);
    h.get("/api/v1/live", &h.tokens.a_viewer)
        .await?
        .problem(StatusCode::BAD_REQUEST);
    // A bad header token is refused before the upgrade.
    assert!(open(&h, Some("bfr_nope")).await.is_err());
    h.live.close_all();
    assert_eq!(next(&mut browser).await?["close"], 1001);
    h.stop().await
}

#[tokio::test]
async fn refusals_close_with_their_codes() -> Result<()> {
    let h = Harness::start_with(
        LiveConfig {
            auth_timeout: Duration::from_millis(300),
            ..LiveConfig::default()
        },
        DashboardConfig::default(),
    )
    .await?;
    let mut wrong = open(&h, None).await?;
    send(
        &mut wrong,
        json!({"type": "auth", "token": "bfr_0123456789abcdef_AAAA"}),
    )
    .await?;
    assert_eq!(next(&mut wrong).await?["close"], 4401);

    let mut silent = open(&h, None).await?;
    assert_eq!(
        next(&mut silent).await?["close"],
        4401,
        "no auth message in time"
    );

    let mut binary = open(&h, Some(&h.tokens.a_viewer)).await?;
    next(&mut binary).await?;
    binary.send(Message::binary(vec![1, 2, 3])).await?;
    assert_eq!(next(&mut binary).await?["close"], 4400);

    assert!(h.metrics.live_closed.get("unauthorized") >= 2);
    assert_eq!(h.metrics.live_closed.get("protocol"), 1);
    h.stop().await
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_others_keep_up() -> Result<()> {
    let h = Harness::start_with(
        LiveConfig {
            send_timeout: Duration::from_millis(500),
            ..LiveConfig::default()
        },
        DashboardConfig::default(),
    )
    .await?;
    let id = seed_alarm(&*h.store, A).await?;
    let alarm = h
        .store
        .alarm(&TenantId::new(A)?, id)
        .await?
        .context("seeded")?;
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let mut socket = open(&h, Some(&h.tokens.a_viewer)).await?;
        next(&mut socket).await?;
        send(
            &mut socket,
            json!({"type": "subscribe", "id": "a", "stream": "alarms", "snapshot": false}),
        )
        .await?;
        assert_eq!(next(&mut socket).await?["type"], "subscribed");
        sockets.push(socket);
    }
    let (mut slow, mut fast) = (sockets.remove(0), sockets.remove(0));

    // The slow client reads nothing while 30,000 alarm changes (about 18 MB) go out; the fast
    // one reads them all as they come.
    let reader = tokio::spawn(async move {
        let mut seen = 0;
        while seen < 30_000 {
            let frame = next(&mut fast).await?;
            anyhow::ensure!(frame["type"] == "alarm", "unexpected {frame}");
            seen += 1;
        }
        Ok::<_, anyhow::Error>(seen)
    });
    let pusher = {
        let live = h.live.clone();
        tokio::spawn(async move {
            for n in 0..30_000 {
                let mut alarm = alarm.clone();
                alarm.occurrences = n;
                live.alarm_changed(&alarm);
                // A steady stream (at most 16,000 a second), not one burst: a client that reads
                // keeps up.
                if n % 16 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    pusher.await?;
    assert_eq!(tokio::time::timeout(WAIT * 3, reader).await???, 30_000);
    // The slow client was closed: too slow.
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.metrics.live_closed.get("too_slow") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow client was never closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What it reads now ends with a close, not with 30,000 alarms.
    let mut got = 0;
    loop {
        let frame = next(&mut slow).await?;
        if frame.get("close").is_some() {
            break;
        }
        got += 1;
    }
    assert!(got < 30_000, "the slow client got everything ({got})");
    h.stop().await
}

#[tokio::test]
async fn a_peer_that_answers_nothing_is_dropped_and_a_live_one_is_kept() -> Result<()> {
    let h = Harness::start_with(
        LiveConfig {
            ping_interval: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(400),
            ..LiveConfig::default()
        },
        DashboardConfig::default(),
    )
    .await?;
    let mut silent = open(&h, Some(&h.tokens.a_viewer)).await?;
    next(&mut silent).await?;
    let mut alive = open(&h, Some(&h.tokens.a_viewer)).await?;
    next(&mut alive).await?;
    // `alive` keeps reading (tungstenite answers the pings as it reads); `silent` reads nothing.
    let reader = tokio::spawn(async move {
        let until = tokio::time::Instant::now() + Duration::from_millis(1500);
        while tokio::time::Instant::now() < until {
            if let Ok(Some(Ok(Message::Close(_))) | None) =
                tokio::time::timeout(Duration::from_millis(100), alive.next()).await
            {
                anyhow::bail!("the live peer was closed");
            }
        }
        Ok(alive)
    });
    let _alive = reader.await??;
    assert_eq!(h.metrics.live_closed.get("idle"), 1);
    assert_eq!(h.live.client_count(), 1, "only the live peer is left");
    drop(silent);
    h.stop().await
}
