//! The embedded broker's log events, at the level each deserves.
//!
//! rumqttd 0.20 logs every ordinary end of a client connection at ERROR (`router-drop` when the
//! client sent DISCONNECT or was taken over, `disconnected` when it closed its socket mid-packet)
//! and every connection and subscription at INFO, so its raw events would drown real problems.
//! [`layer`] takes rumqttd's events (INFO and above; its spans and per-packet DEBUG/TRACE events
//! stay disabled), classifies each by its message and its `error` field ([`classify`]) and
//! writes it again under the target [`TARGET`] at that level, with rumqttd's own target, level
//! and fields attached. Ordinary connection life goes to DEBUG; a listener that cannot bind, a
//! dead router, an unreadable commit log, a full connection table or a packet the broker cannot
//! parse stay at WARN or ERROR. The output filter drops rumqttd's raw events (`rumqttd=off`,
//! added by [`output_filter`]), so each event is written once.
//!
//! The new event is emitted by a relay thread, not from inside the layer's `on_event`: tracing
//! does not dispatch an event from inside another one's dispatch under a scoped subscriber,
//! and per-layer filters keep per-event state that a nested event would overwrite. The queue
//! to the relay is bounded ([`RELAY_QUEUE`]); rumqttd logs per connection, never per message.

use std::fmt::{self, Write as _};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, OnceLock};

use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_subscriber::filter::{filter_fn, EnvFilter, Filtered};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

/// The target under which the broker's events appear in the platform's logs.
pub const TARGET: &str = "beffroi::broker";

/// Targets of rumqttd's events (`rumqttd::server::broker`, `rumqttd::router::routing`, …).
const RUMQTTD: &str = "rumqttd";

/// Classified events waiting for the relay thread; past that, new ones are dropped.
pub const RELAY_QUEUE: usize = 1024;

/// I/O outcomes that are an ordinary end of a connection: the peer closed its socket
/// (`ConnectionAborted` when between packets, `ConnectionReset` when mid-packet, as rumqttd's
/// `Network::read_bytes` maps them), a broken pipe, or a client that stayed silent past its
/// keep-alive or its CONNECT deadline (`KeepAlive`, `Elapsed`).
const ORDINARY_ENDS: [&str; 7] = [
    "ConnectionAborted",
    "ConnectionReset",
    "BrokenPipe",
    "UnexpectedEof",
    "NotConnected",
    "KeepAlive",
    "Elapsed",
];

/// The level a rumqttd event deserves, from its message, its `error` field (rumqttd records
/// it with `Debug`) and the level rumqttd gave it.
pub fn classify(message: &str, error: Option<&str>, level: Level) -> Level {
    let error = error.unwrap_or_default();
    let ordinary_end = ORDINARY_ENDS.iter().any(|kind| error.contains(kind));
    match message {
        // The link's router side closed: the client sent DISCONNECT, a new session took its
        // client id over, or the router dropped it. `Recv` is the router hanging up; a full
        // router queue (`TrySend`) or a timeout waiting for it is a real problem.
        "router-drop" if error.contains("Recv") => Level::DEBUG,
        // The link returned without error (the connection ended on its own).
        "connection-stop" => Level::DEBUG,
        // The peer closed its socket or went silent; anything else (a packet rumqttd cannot
        // parse, which the gate should never forward) is worth a warning.
        "disconnected" | "Error while handling MQTT connect packet" if ordinary_end => Level::DEBUG,
        "disconnected" | "Error while handling MQTT connect packet" => Level::WARN,
        // A session taken over by a reconnecting client with the same id.
        "Remote link error" if error.contains("SessionEnd") => Level::DEBUG,
        // Races between a disconnect and the router's own clean-up.
        "Connection is already disconnected" => Level::DEBUG,
        m if m.starts_with("no-connection id") => Level::DEBUG,
        // Per-connection chatter: accept, registration, subscriptions, listening.
        _ if level > Level::WARN => Level::DEBUG,
        // Everything else keeps rumqttd's level: listener bind failures ("Server error - V5"),
        // "Router done!", commit-log read failures, "no space for new connection", …
        _ => level,
    }
}

/// One rumqttd event, classified: what the relay writes under [`TARGET`].
#[derive(Debug)]
struct BrokerEvent {
    level: Level,
    rumqttd_target: &'static str,
    rumqttd_level: Level,
    message: String,
    error: Option<String>,
    fields: String,
}

impl BrokerEvent {
    fn from_event(event: &Event<'_>) -> Self {
        let metadata = event.metadata();
        let mut fields = EventFields::default();
        event.record(&mut fields);
        Self {
            level: classify(&fields.message, fields.error.as_deref(), *metadata.level()),
            rumqttd_target: metadata.target(),
            rumqttd_level: *metadata.level(),
            message: fields.message,
            error: fields.error,
            fields: fields.others,
        }
    }

    /// Emits the event under [`TARGET`] at its classified level, to the current dispatcher.
    fn emit(&self) {
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: TARGET,
                    $level,
                    rumqttd_target = self.rumqttd_target,
                    rumqttd_level = %self.rumqttd_level,
                    error = self.error.as_deref(),
                    fields = (!self.fields.is_empty()).then_some(self.fields.as_str()),
                    "{}",
                    self.message
                )
            };
        }
        match self.level {
            Level::ERROR => emit!(Level::ERROR),
            Level::WARN => emit!(Level::WARN),
            Level::INFO => emit!(Level::INFO),
            Level::DEBUG => emit!(Level::DEBUG),
            _ => emit!(Level::TRACE),
        }
    }
}

/// The message, the `error` field and the other fields of one event.
#[derive(Debug, Default)]
struct EventFields {
    message: String,
    error: Option<String>,
    others: String,
}

impl Visit for EventFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "error" | "reason" => self.error = Some(format!("{value:?}")),
            name => {
                if !self.others.is_empty() {
                    self.others.push(' ');
                }
                let _ = write!(self.others, "{name}={value:?}");
            }
        }
    }
}

/// Classifies rumqttd's events and hands them to the relay thread, which writes them under
/// [`TARGET`] through the subscriber this layer belongs to.
#[derive(Debug)]
pub struct BrokerLogs {
    relay: SyncSender<BrokerEvent>,
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl BrokerLogs {
    /// The layer, and its relay thread (which ends when the layer is dropped).
    pub fn new() -> std::io::Result<Self> {
        let (relay, events) = sync_channel(RELAY_QUEUE);
        let dispatch = Arc::new(OnceLock::new());
        let target = Arc::clone(&dispatch);
        std::thread::Builder::new()
            .name("beffroi-broker-logs".into())
            .spawn(move || relay_events(&events, &target))?;
        Ok(Self { relay, dispatch })
    }
}

/// The relay thread: writes each event through the subscriber (held weakly: the subscriber
/// owns the layer that owns the sending side).
fn relay_events(events: &Receiver<BrokerEvent>, dispatch: &OnceLock<WeakDispatch>) {
    for event in events {
        if let Some(dispatch) = dispatch.get().and_then(WeakDispatch::upgrade) {
            tracing::dispatcher::with_default(&dispatch, || event.emit());
        }
    }
}

impl<S: Subscriber> Layer<S> for BrokerLogs {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        // Full queue: dropped rather than block the broker's threads.
        let _ = self.relay.try_send(BrokerEvent::from_event(event));
    }
}

/// Whether `target` is one of rumqttd's.
fn is_rumqttd(target: &str) -> bool {
    target == RUMQTTD || target.starts_with("rumqttd::")
}

/// The [`BrokerLogs`] layer with its filter: rumqttd's events at INFO and above, never its
/// spans (rumqttd opens one per PUBLISH; they stay disabled, as they cost on the hot path).
pub fn layer<S>(
) -> std::io::Result<Filtered<BrokerLogs, impl tracing_subscriber::layer::Filter<S>, S>>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    Ok(BrokerLogs::new()?.with_filter(filter_fn(|metadata| {
        metadata.is_event() && is_rumqttd(metadata.target()) && *metadata.level() <= Level::INFO
    })))
}

/// `filter` for the log output, with rumqttd's raw events dropped: [`layer`] writes them
/// again under [`TARGET`], where `RUST_LOG=beffroi::broker=debug` shows them all.
pub fn output_filter(filter: EnvFilter) -> EnvFilter {
    filter.add_directive(
        format!("{RUMQTTD}=off")
            .parse()
            .expect("a constant, valid directive"),
    )
}

/// A subscriber with the platform's log stack: `fmt_layer` filtered by `filter` (rumqttd's
/// raw events dropped), and [`layer`]. The `beffroi` binary installs it as the global
/// default; tests install it on one thread. Fails if the relay thread cannot start.
pub fn subscriber<L>(
    fmt_layer: L,
    filter: EnvFilter,
) -> std::io::Result<impl Subscriber + Send + Sync>
where
    L: Layer<tracing_subscriber::Registry> + Send + Sync,
{
    Ok(tracing_subscriber::registry()
        .with(fmt_layer.with_filter(output_filter(filter)))
        .with(layer()?))
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex, PoisonError};

    use super::*;

    /// The error fields rumqttd 0.20 records, as its `Debug` prints them (captured from a run
    /// of the platform: a socket closed between packets, one reset by its peer).
    const ABORTED: &str =
        "Network(Io(Custom { kind: ConnectionAborted, error: \"connection closed by peer\" }))";
    const RESET: &str = "Network(Io(Os { code: 104, kind: ConnectionReset, message: \"Connection reset by peer\" }))";

    #[test]
    fn ordinary_disconnects_are_debug() {
        let cases = [
            ("router-drop", Some("Link(Recv(RecvError))"), Level::ERROR),
            ("disconnected", Some(RESET), Level::ERROR),
            ("disconnected", Some(ABORTED), Level::INFO),
            ("connection-stop", None, Level::ERROR),
            (
                "Error while handling MQTT connect packet",
                Some(ABORTED),
                Level::ERROR,
            ),
            (
                "Error while handling MQTT connect packet",
                Some("Timeout(Elapsed(()))"),
                Level::ERROR,
            ),
            ("Remote link error", Some("SessionEnd"), Level::ERROR),
            ("no-connection id 3 is already gone", None, Level::ERROR),
            ("accept", None, Level::INFO),
            ("Client connection registered", None, Level::INFO),
        ];
        for (message, error, level) in cases {
            assert_eq!(
                classify(message, error, level),
                Level::DEBUG,
                "{message} {error:?}"
            );
        }
    }

    #[test]
    fn real_problems_keep_their_level_or_warn() {
        let cases = [
            (
                "Server error - V5",
                Some("Io(Os { code: 98, kind: AddrInUse, message: \"Address in use\" })"),
                Level::ERROR,
                Level::ERROR,
            ),
            (
                "Router done!",
                Some("Disconnected"),
                Level::ERROR,
                Level::ERROR,
            ),
            (
                "no space for new connection",
                None,
                Level::ERROR,
                Level::ERROR,
            ),
            (
                "Failed to read from commitlog",
                Some("InvalidFilterIndex(3)"),
                Level::ERROR,
                Level::ERROR,
            ),
            (
                "router-drop",
                Some("Link(TrySend(Full(..)))"),
                Level::ERROR,
                Level::ERROR,
            ),
            (
                "disconnected",
                Some("Network(Protocol(MalformedPacket))"),
                Level::ERROR,
                Level::WARN,
            ),
            (
                "Error while handling MQTT connect packet",
                Some("NotConnectPacket(PingReq)"),
                Level::ERROR,
                Level::WARN,
            ),
            (
                "Remote link error",
                Some("InvalidClientId"),
                Level::ERROR,
                Level::ERROR,
            ),
            (
                "Subscription cannot be validated: bad filter",
                None,
                Level::WARN,
                Level::WARN,
            ),
        ];
        for (message, error, level, expected) in cases {
            assert_eq!(
                classify(message, error, level),
                expected,
                "{message} {error:?}"
            );
        }
    }

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
                .into_owned()
        }
    }

    /// Runs `events` with the whole stack (`directives` as the filter) on this thread, and
    /// returns the lines written once one containing `last` appears (the relay keeps the
    /// events' order).
    fn write_through_the_stack(directives: &str, events: impl FnOnce(), last: &str) -> String {
        let capture = Capture::default();
        let writer = capture.clone();
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone());
        // Kept until the relay has written: it holds the subscriber weakly.
        let stack = Dispatch::new(subscriber(fmt, EnvFilter::new(directives)).unwrap());
        tracing::dispatcher::with_default(&stack, events);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !capture.text().contains(last) {
            assert!(
                std::time::Instant::now() < deadline,
                "no line with {last:?}: {}",
                capture.text()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        capture.text()
    }

    /// The whole stack, with events as rumqttd emits them (same targets, messages and fields).
    #[test]
    fn the_stack_writes_each_event_once_at_its_level() {
        let events = || {
            tracing::error!(target: "rumqttd::server::broker", error = ?DebugText(RESET), "disconnected");
            tracing::info!(target: "rumqttd::server::broker", count = 3, "accept");
            let in_use = DebugText("Io(Os { code: 98, kind: AddrInUse })");
            tracing::error!(target: "rumqttd::server::broker", error = ?in_use, "Server error - V5");
            tracing::info!(target: "beffroi::server", "platform line");
        };
        let text = write_through_the_stack("info", events, "Server error - V5");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains(" ERROR beffroi::broker: Server error - V5")
                    && l.contains("AddrInUse")
                    && l.contains("rumqttd_target=\"rumqttd::server::broker\"")),
            "{text}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains(" INFO beffroi::server: platform line")),
            "{text}"
        );

        // With the broker's DEBUG shown, the disconnect and the accept appear, once each.
        let events = || {
            tracing::error!(target: "rumqttd::server::broker", error = ?DebugText(RESET), "disconnected");
            tracing::info!(target: "rumqttd::server::broker", count = 3, "accept");
        };
        let text = write_through_the_stack("info,beffroi::broker=debug", events, "accept");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains(" DEBUG beffroi::broker: disconnected"),
            "{text}"
        );
        assert!(lines[0].contains("ConnectionReset"), "{text}");
        assert!(
            lines[1].contains(" DEBUG beffroi::broker: accept") && lines[1].contains("count=3"),
            "{text}"
        );
    }

    /// Prints a string as `Debug` without quotes, as rumqttd's error values print.
    struct DebugText<'a>(&'a str);

    impl fmt::Debug for DebugText<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
}
