//! Frame pacing: at most one round of frames per `1 / max_fps`, cut when a commit lands.
//!
//! ```text
//! idle view    ──value──► frame at once
//! dense view   ──values──► held until the next slot ─► slot opens ─► next change (≤ hold) ─► frame
//!                                                                    none in time ─► frame
//! ```
//! A value that reaches an idle client goes out at once. Values that arrive inside the interval
//! wait for the next slot. A dense view (a zone, a city) gets a commit every few milliseconds,
//! so when its slot opens the values it holds are already a few milliseconds old: the round
//! waits for the next change, at most a quarter of the interval and [`MAX_HOLD`], and leaves
//! with it. Its newest item is then as fresh as the commit path makes it; cutting frames on a
//! clock instead made it wait half the gap between commits on average (docs/benchmarks.md,
//! "Live views"). Slots stay `1 / max_fps` apart whatever the hold, so the rate holds at
//! `max_fps` and two rounds are never closer than three quarters of the interval.

use std::time::Duration;

use tokio::time::{sleep_until, timeout, Instant};

use crate::client::Client;
use crate::queue::Close;

/// Longest a round waits past its slot for the next change.
const MAX_HOLD: Duration = Duration::from_millis(10);

/// When a connection's next round of frames may go; one per connection task.
#[derive(Debug)]
pub struct Pacer {
    next_slot: Instant,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

impl Pacer {
    /// A pacer whose first round may go at once.
    pub fn new() -> Self {
        Self {
            next_slot: Instant::now(),
        }
    }

    /// Waits until `client` has something queued and its round is due (see the module doc),
    /// or the connection must close. Take the frames when it returns `Ok`. Cancel-safe: a
    /// round interrupted before it returns starts again from the same slot.
    pub async fn ready(&mut self, client: &Client) -> Result<(), Close> {
        let pace = client.min_interval();
        let queue = client.queue();
        if Instant::now() < self.next_slot {
            // Values arriving in the interval do not wake the task: it wakes at the slot.
            sleep_until(self.next_slot).await;
            if queue.pending()? {
                // Nothing more in time: the held values go as they are.
                let _ = timeout(hold(pace), queue.next_change()).await;
                self.next_slot += pace;
                return Ok(());
            }
        }
        client.ready().await?;
        self.next_slot = Instant::now() + pace;
        Ok(())
    }
}

/// How long a round waits past its slot for the next change at this `pace`.
fn hold(pace: Duration) -> Duration {
    (pace / 4).min(MAX_HOLD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_is_a_quarter_of_the_interval_at_most_max_hold() {
        assert_eq!(hold(Duration::from_millis(20)), Duration::from_millis(5));
        assert_eq!(hold(Duration::from_millis(100)), MAX_HOLD);
        assert_eq!(hold(Duration::from_secs(1)), MAX_HOLD);
    }
}
