//! A progress line on standard error for long exports and imports: rows done, total, rate.
//!
//! On a terminal one line is redrawn in place at most four times a second; otherwise (CI,
//! logs) a plain line is printed every ten seconds, and one at the end either way.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

/// Progress of one long step (`readings`, `audit entries`…).
#[derive(Debug)]
pub struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    shown: Instant,
    terminal: bool,
    visible: bool,
}

impl Progress {
    /// Progress of `total` rows of `what`, shown on standard error.
    pub fn new(what: &'static str, total: u64) -> Self {
        Self::with_visibility(what, total, true)
    }

    /// Progress that shows nothing (library callers and tests that want quiet).
    pub fn hidden(what: &'static str, total: u64) -> Self {
        Self::with_visibility(what, total, false)
    }

    fn with_visibility(what: &'static str, total: u64, visible: bool) -> Self {
        let now = Instant::now();
        Self {
            what,
            total,
            done: 0,
            started: now,
            shown: now,
            terminal: std::io::stderr().is_terminal(),
            visible,
        }
    }

    /// Counts `rows` more, and shows the line if it is time to.
    pub fn advance(&mut self, rows: u64) {
        self.done += rows;
        let every = if self.terminal {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(10)
        };
        if self.shown.elapsed() >= every {
            self.shown = Instant::now();
            self.show(false);
        }
    }

    /// Shows the final line.
    pub fn finish(self) {
        self.show(true);
    }

    /// Rows counted so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    fn show(&self, last: bool) {
        if !self.visible {
            return;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            self.done as f64 / seconds
        } else {
            0.0
        };
        // Nothing to do is all done.
        let percent = (self.done.min(self.total) * 100)
            .checked_div(self.total)
            .unwrap_or(100);
        let line = format!(
            "{}: {}/{} ({percent} %), {rate:.0}/s, {seconds:.1} s",
            self.what, self.done, self.total
        );
        let mut err = std::io::stderr().lock();
        // A progress line that cannot be written is not worth failing the command for.
        let _ = if self.terminal {
            write!(err, "\r\x1b[K{line}{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
    }
}
