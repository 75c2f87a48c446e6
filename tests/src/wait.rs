//! Bounded waiting: every wait in the harness has a deadline and fails with what it awaited.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a scenario waits for a condition unless it says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often [`poll_until`] checks a condition that cannot be awaited directly (a process
/// exit, a port opening, a line in a log file).
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Checks `check` every [`POLL_INTERVAL`] until it returns `Some`, for at most `timeout`.
/// On timeout the error says what was awaited and the last state `describe` gives.
pub async fn poll_until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
    describe: impl Fn() -> String,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "timed out after {timeout:?} waiting for {what}; state: {}",
                describe()
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
