//! An in-process client of the live hub, without a websocket and without pacing: it takes
//! its frames as soon as the hub queues a value for it. Its latency publish → queued is the
//! commit and the fan-out; what the websocket clients see on top of it is the frame pacing
//! (`max_fps`), the JSON, the socket and the client.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context as _;
use beffroi_live::Hub;
use beffroi_protocol::{TenantId, Timestamp};
use beffroi_store::{Role, TokenScope};
use tokio_util::sync::CancellationToken;

use crate::bench::gateways::Phase;
use crate::bench::histogram::Histogram;
use crate::bench::live_frame::{self, Frame};

/// Follows `filter` (a readings filter) of `tenant` and records, while the window is open,
/// each value's latency publish → taken from its queue; returns the values taken.
pub(crate) async fn run(
    hub: Hub,
    tenant: TenantId,
    filter: serde_json::Value,
    latency: Arc<Histogram>,
    phase: Arc<Phase>,
    stop: CancellationToken,
) -> anyhow::Result<u64> {
    let mut client = hub
        .connect(TokenScope::Tenant {
            tenant,
            role: Role::Viewer,
        })
        .await
        .context("hub probe: cannot connect")?;
    let subscribe = serde_json::json!({
        "type": "subscribe", "id": "probe", "stream": "readings", "filter": filter,
        "snapshot": false,
    });
    let replies = client
        .handle(&subscribe.to_string())
        .await
        .map_err(|close| anyhow::anyhow!("hub probe closed: {}", close.reason))?;
    if !replies.iter().any(|r| r.contains("\"subscribed\"")) {
        anyhow::bail!("hub probe: subscription refused: {replies:?}");
    }
    let mut values = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(values),
            ready = client.ready() => {
                if let Err(close) = ready {
                    anyhow::bail!("hub probe closed: {}", close.reason);
                }
            }
        }
        let now = Timestamp::now().unix_micros();
        let measuring = phase.measuring.load(Ordering::Relaxed);
        for frame in client.take_frames() {
            if let (true, Some(Frame::Readings { times_us, .. })) =
                (measuring, live_frame::parse(&frame))
            {
                values += times_us.len() as u64;
                for time in times_us {
                    latency.record_signed(now - time);
                }
            }
        }
    }
}
