//! `beffroi bench live-clients` (hidden): the live-view websocket clients of a benchmark, in a
//! process of their own so that the platform's resident memory and CPU are the platform's.
//! The benchmark starts it (`super::ws_client_process`) and talks to it in JSON lines:
//!
//! ```text
//! parent ─stdin──► spec (url, token, groups of clients: count, max_fps, views)
//! child           connects every client (64 handshakes at a time): hello → options → subscribe
//!                 (no snapshot) → "subscribed"
//! child ─stdout──► {"ready": {connected, failed, …}}
//! parent ─stdin──► start            the measure window opens: frames, values and latencies count
//! parent ─stdin──► sample           (any number of times in the window)
//! child ─stdout──► {"sample": {…}}  frames and values received so far in the window, clients
//!                                   closed early so far, the process's RSS
//! parent ─stdin──► stop (or EOF)    it closes; every client closes normally
//! child ─stdout──► {"report": {…}}  per group: frames/s per client, values, latency per value
//!                                   (receipt − reading time) and per frame (receipt − newest
//!                                   reading time), closes by the server; CPU and RSS
//! ```
//! Receipt is the wall clock when the frame is read, reading time the wall clock the
//! simulated gateway stamped at publish: the same clock on the same machine.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beffroi_protocol::Timestamp;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::histogram::{Histogram, Summary};
use super::live_frame::{self, Frame};
use super::usage::{self, CpuSample};

/// Name of the client process's runtime threads.
pub const CLIENT_THREAD: &str = "bench-client";
/// Websocket handshakes in progress at once (the API's accept backlog is 1,024).
const HANDSHAKES_AT_ONCE: usize = 64;
/// Longest one client may take to connect and subscribe.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// The subscription id every client uses.
const SUB_ID: &str = "view";

/// Options of `beffroi bench live-clients`.
#[derive(Debug, Clone, clap::Args)]
pub struct LiveClientsArgs {
    /// Worker threads of the clients' runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// What the parent asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClientsSpec {
    /// `ws://host:port/api/v1/live`.
    pub url: String,
    /// A tenant token (sent in `Authorization`).
    pub token: String,
    /// Groups of clients, measured apart.
    pub groups: Vec<GroupSpec>,
}

/// Clients alike.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupSpec {
    /// Its label in the report.
    pub name: String,
    /// How many.
    pub clients: usize,
    /// `options.max_fps`; `None`: the server's default.
    pub max_fps: Option<u32>,
    /// Readings filters (`docs/live.md`); client `i` subscribes with `views[i % len]`.
    pub views: Vec<serde_json::Value>,
}

/// The child's lines on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ChildLine {
    /// Every client connected and subscribed, or failed.
    Ready(Ready),
    /// The measure window's figures.
    Report(ClientsReport),
    /// The window so far, on `sample`.
    Sample(ClientsSample),
}

/// The window so far, every client together (counts since `start`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct ClientsSample {
    /// Readings frames received.
    pub frames: u64,
    /// Values in them.
    pub values: u64,
    /// Connections that ended before the window closed.
    pub closed: u64,
    /// Resident memory of the client process now.
    pub rss_bytes: Option<u64>,
}

/// The outcome of connecting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ready {
    /// Clients connected and subscribed.
    pub connected: usize,
    /// Clients that could not.
    pub failed: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// The child's soft open-file limit.
    pub open_files: Option<u64>,
    /// Time to connect them all, s.
    pub seconds: f64,
}

impl Ready {
    /// `N clients connected, M failed in S s`, with the first error if any.
    pub(crate) fn describe(&self) -> String {
        let first = self
            .first_error
            .as_deref()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default();
        format!(
            "{} clients connected, {} failed in {:.1} s{first}",
            self.connected, self.failed, self.seconds
        )
    }
}

/// The measure window, seen from the clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClientsReport {
    /// Length of the window, s.
    pub seconds: f64,
    /// CPU of the client process in the window, % of one core.
    pub cpu_pct: f64,
    /// Resident memory of the client process at the end of the window.
    pub rss_bytes: Option<u64>,
    /// Per group, in the spec's order.
    pub groups: Vec<GroupReport>,
}

/// One group's figures in the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct GroupReport {
    /// Its label.
    pub name: String,
    /// Clients asked for.
    pub clients: usize,
    /// Clients connected and subscribed.
    pub connected: usize,
    /// Readings frames received in the window.
    pub frames: u64,
    /// Values in them.
    pub values: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Frames/s of the connected clients: slowest, median, fastest.
    pub fps: Spread,
    /// Receipt − reading time, every value.
    pub value_latency: Summary,
    /// Receipt − newest reading time of the frame, every frame.
    pub frame_latency: Summary,
    /// Per view (index into the group's views): clients on it, values they received.
    pub views: Vec<ViewCount>,
    /// Connections that ended before the window closed, by close code or cause.
    pub closed: BTreeMap<String, u64>,
    /// `error` replies, and items without a readable time.
    pub errors: u64,
}

/// Smallest, median and largest of a per-client figure.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Spread {
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// Of `values` (sorted in place).
    pub(crate) fn of(values: &mut [f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        Self {
            min: values[0],
            p50: values[(values.len() - 1) / 2],
            max: values[values.len() - 1],
        }
    }
}

/// Clients on one view and what they received.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct ViewCount {
    /// Connected clients on the view.
    pub clients: usize,
    /// Values they received, together.
    pub values: u64,
}

/// A group's shared recorders.
#[derive(Default)]
struct GroupState {
    value_latency: Histogram,
    frame_latency: Histogram,
    /// Frames received in the window so far (read by `sample`).
    frames: AtomicU64,
    /// Values in them.
    values: AtomicU64,
    /// Connections that ended early so far.
    closed: AtomicU64,
}

/// What one client did in the window.
#[derive(Debug, Default)]
struct ClientStats {
    group: usize,
    view: usize,
    connected: bool,
    frames: u64,
    values: u64,
    bytes: u64,
    errors: u64,
    /// Why it ended before the window closed.
    closed: Option<String>,
}

/// Runs the client process: reads the spec on stdin, answers on stdout.
pub(crate) fn run(args: LiveClientsArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .thread_name(CLIENT_THREAD)
        .build()
        .context("cannot start the clients' runtime")?
        .block_on(serve_parent())
}

async fn serve_parent() -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let line = stdin
        .next_line()
        .await?
        .context("no client spec on stdin")?;
    let spec: Arc<ClientsSpec> = Arc::new(serde_json::from_str(&line).context("client spec")?);
    let total: usize = spec.groups.iter().map(|g| g.clients).sum();
    let open_files = super::fd_limit::raise_open_files(total as u64 + 256);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let shared = Arc::new(Shared {
        spec: spec.clone(),
        groups: spec.groups.iter().map(|_| GroupState::default()).collect(),
        measuring: AtomicBool::new(false),
        done: CancellationToken::new(),
        handshakes: Semaphore::new(HANDSHAKES_AT_ONCE),
        ready: ready_tx,
    });

    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for (g, group) in spec.groups.iter().enumerate() {
        for i in 0..group.clients {
            let view = i % group.views.len().max(1);
            tasks.push(tokio::spawn(client(shared.clone(), g, view)));
        }
    }
    let (mut connected, mut failed, mut first_error) = (0, 0, None);
    let deadline = tokio::time::Instant::now()
        + CONNECT_TIMEOUT
        + Duration::from_millis(100) * u32::try_from(total).unwrap_or(u32::MAX);
    while connected + failed < total {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => connected += 1,
            Ok(Some(Err(error))) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
            Ok(None) | Err(_) => {
                failed = total - connected;
                first_error.get_or_insert_with(|| "clients did not report in time".into());
                break;
            }
        }
    }
    say(&ChildLine::Ready(Ready {
        connected,
        failed,
        first_error,
        open_files,
        seconds: started.elapsed().as_secs_f64(),
    }))?;

    // Window: "start", then "stop" (or the parent gone).
    while let Some(line) = stdin.next_line().await? {
        if line.trim() == "start" {
            break;
        }
    }
    let (cpu_before, opened) = (CpuSample::now(), Instant::now());
    shared.measuring.store(true, Ordering::Relaxed);
    while let Some(line) = stdin.next_line().await? {
        match line.trim() {
            "stop" => break,
            "sample" => say(&ChildLine::Sample(sample(&shared.groups)))?,
            _ => {}
        }
    }
    shared.measuring.store(false, Ordering::Relaxed);
    let (cpu_after, seconds) = (CpuSample::now(), opened.elapsed().as_secs_f64());
    let rss_bytes = usage::resident();
    shared.done.cancel();

    let mut stats = Vec::with_capacity(tasks.len());
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(s)) => stats.push(s),
            Ok(Err(error)) => anyhow::bail!("a client task failed: {error}"),
            Err(_) => anyhow::bail!("a client did not close within 10 s"),
        }
    }
    let report = ClientsReport {
        seconds,
        cpu_pct: cpu_before.usage_until(&cpu_after).process,
        rss_bytes,
        groups: spec
            .groups
            .iter()
            .zip(shared.groups.iter())
            .enumerate()
            .map(|(g, (group, state))| group_report(g, group, state, &stats, seconds))
            .collect(),
    };
    say(&ChildLine::Report(report))
}

/// The window so far, every group together.
fn sample(groups: &[GroupState]) -> ClientsSample {
    let sum = |f: fn(&GroupState) -> &AtomicU64| {
        groups.iter().map(|g| f(g).load(Ordering::Relaxed)).sum()
    };
    ClientsSample {
        frames: sum(|g| &g.frames),
        values: sum(|g| &g.values),
        closed: sum(|g| &g.closed),
        rss_bytes: usage::resident(),
    }
}

fn group_report(
    g: usize,
    spec: &GroupSpec,
    state: &GroupState,
    stats: &[ClientStats],
    seconds: f64,
) -> GroupReport {
    let mine: Vec<&ClientStats> = stats.iter().filter(|s| s.group == g).collect();
    let mut fps: Vec<f64> = mine
        .iter()
        .filter(|s| s.connected)
        .map(|s| s.frames as f64 / seconds.max(1e-9))
        .collect();
    let mut views = vec![ViewCount::default(); spec.views.len().max(1)];
    let mut closed = BTreeMap::new();
    for s in &mine {
        if s.connected {
            views[s.view].clients += 1;
            views[s.view].values += s.values;
        }
        if let Some(reason) = &s.closed {
            *closed.entry(reason.clone()).or_insert(0) += 1;
        }
    }
    GroupReport {
        name: spec.name.clone(),
        clients: spec.clients,
        connected: mine.iter().filter(|s| s.connected).count(),
        frames: mine.iter().map(|s| s.frames).sum(),
        values: mine.iter().map(|s| s.values).sum(),
        bytes: mine.iter().map(|s| s.bytes).sum(),
        fps: Spread::of(&mut fps),
        value_latency: state.value_latency.summary(),
        frame_latency: state.frame_latency.summary(),
        views,
        closed,
        errors: mine.iter().map(|s| s.errors).sum(),
    }
}

/// One JSON line on stdout.
fn say(line: &ChildLine) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, line)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Everything the clients share.
struct Shared {
    spec: Arc<ClientsSpec>,
    /// One per group of the spec.
    groups: Vec<GroupState>,
    /// The window is open.
    measuring: AtomicBool,
    /// The window closed: close the connections.
    done: CancellationToken,
    handshakes: Semaphore,
    /// Each client's connect outcome.
    ready: mpsc::UnboundedSender<Result<(), String>>,
}

/// Client `view` of group `group`: connects, then reads frames until the window closes.
async fn client(shared: Arc<Shared>, group: usize, view: usize) -> ClientStats {
    let mut stats = ClientStats {
        group,
        view,
        ..ClientStats::default()
    };
    let Shared {
        spec,
        groups,
        measuring,
        done,
        handshakes,
        ready,
    } = shared.as_ref();
    let connect = async {
        let _turn = handshakes.acquire().await;
        connect(spec, &spec.groups[group], view).await
    };
    let mut socket = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(error)) => {
            let _ = ready.send(Err(format!("{error:#}")));
            return stats;
        }
        Err(_) => {
            let _ = ready.send(Err("connect and subscribe timed out".into()));
            return stats;
        }
    };
    stats.connected = true;
    let _ = ready.send(Ok(()));
    let state = &groups[group];
    loop {
        let message = tokio::select! {
            () = done.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), socket.close(None)).await;
                break;
            }
            message = socket.next() => message,
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                if measuring.load(Ordering::Relaxed) {
                    on_text(text.as_str(), state, &mut stats);
                }
            }
            Some(Ok(Message::Close(frame))) => {
                stats.closed = Some(frame.map_or_else(
                    || "close without code".to_owned(),
                    |f| format!("{} {}", u16::from(f.code), f.reason),
                ));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                stats.closed = Some(format!("error: {error}"));
                break;
            }
            None => {
                stats.closed = Some("connection ended".into());
                break;
            }
        }
    }
    if stats.closed.is_some() {
        state.closed.fetch_add(1, Ordering::Relaxed);
    }
    stats
}

/// Counts a frame received in the window.
fn on_text(text: &str, state: &GroupState, stats: &mut ClientStats) {
    let now = Timestamp::now().unix_micros();
    match live_frame::parse(text) {
        Some(Frame::Readings {
            times_us,
            unreadable,
        }) => {
            stats.frames += 1;
            stats.bytes += text.len() as u64;
            stats.values += times_us.len() as u64;
            state.frames.fetch_add(1, Ordering::Relaxed);
            state
                .values
                .fetch_add(times_us.len() as u64, Ordering::Relaxed);
            stats.errors += unreadable as u64;
            for &time in &times_us {
                state.value_latency.record_signed(now - time);
            }
            if let Some(newest) = times_us.iter().max() {
                state.frame_latency.record_signed(now - newest);
            }
        }
        Some(Frame::Other(kind)) if kind == "error" => stats.errors += 1,
        Some(Frame::Other(_)) => {}
        None => stats.errors += 1,
    }
}

/// Opens the websocket, reads `hello`, sets `max_fps`, subscribes and waits for `subscribed`.
async fn connect(spec: &ClientsSpec, group: &GroupSpec, view: usize) -> anyhow::Result<Socket> {
    let mut request = spec.url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", spec.token))?,
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("cannot open {}", spec.url))?;
    let hello = next_text(&mut socket).await?;
    if !hello.contains("\"hello\"") {
        anyhow::bail!("expected hello, got {hello}");
    }
    if let Some(fps) = group.max_fps {
        let options = serde_json::json!({"type": "options", "max_fps": fps});
        socket.send(Message::text(options.to_string())).await?;
    }
    let filter = group
        .views
        .get(view)
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    let subscribe = serde_json::json!({
        "type": "subscribe", "id": SUB_ID, "stream": "readings", "filter": filter,
        "snapshot": false,
    });
    socket.send(Message::text(subscribe.to_string())).await?;
    loop {
        let text = next_text(&mut socket).await?;
        match live_frame::parse(&text) {
            Some(Frame::Other(kind)) if kind == "subscribed" => return Ok(socket),
            Some(Frame::Other(kind)) if kind == "error" => anyhow::bail!("refused: {text}"),
            // Frames may already flow if a reply came first; keep reading.
            _ => {}
        }
    }
}

async fn next_text(socket: &mut Socket) -> anyhow::Result<String> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => anyhow::bail!("closed by the server: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.into()),
            None => anyhow::bail!("connection ended"),
        }
    }
}
