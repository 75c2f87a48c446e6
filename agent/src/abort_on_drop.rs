//! [`AbortOnDrop`]: ties a background task's life to its owner.

use tokio::task::JoinHandle;

/// Aborts the task when dropped (a connection's driver stops with the connection).
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
