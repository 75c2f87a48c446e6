//! The open-file limit: a thousand websocket clients need a thousand sockets in the client
//! process and as many in the platform's. The soft limit is raised towards the hard limit
//! (no privilege needed); past the hard limit the run goes on and says so.
//!
//! Through rustix's safe `setrlimit`: the workspace forbids `unsafe`, so libc cannot be
//! called directly.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft `RLIMIT_NOFILE` to at least `wanted` if the hard limit allows; returns
/// the soft limit now in force (`None`: unlimited).
pub(crate) fn raise_open_files(wanted: u64) -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|current| current >= wanted) {
        return limit.current;
    }
    let target = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            if target < wanted {
                eprintln!(
                    "bench: open files limited to {target} by the hard limit ({wanted} wanted)"
                );
            }
            Some(target)
        }
        Err(error) => {
            eprintln!("bench: cannot raise the open-file limit to {target}: {error}");
            limit.current
        }
    }
}
