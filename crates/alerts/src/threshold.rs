//! The state machine of one threshold rule for one series, in measurement time.
//!
//! ```text
//!             holds (for_s = 0)                       does not hold
//!   Normal ──────────────────────────► Active ───────────────────────► Normal
//!     │ holds                            ▲                              (resolve)
//!     ▼                                  │ holds, time − since ≥ for_s
//!   Pending { since } ───────────────────┘ (raise)
//!     │ does not hold
//!     ▼
//!   Normal
//! ```
//! Readings older than the last one seen are ignored (a replayed backlog cannot re-open a
//! state that newer readings closed). The condition is confirmed only by readings: a sensor
//! that reports every 15 minutes confirms a 10-minute condition at its second reading.

use beffroi_protocol::Timestamp;

/// Where a series stands against a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The condition does not hold.
    Normal,
    /// The condition holds since `since`, not long enough yet.
    Pending { since: Timestamp },
    /// The condition held long enough: an alarm is active.
    Active,
}

/// What an observation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing changes for the alarm.
    Stay,
    /// Open the alarm.
    Raise,
    /// The condition ended: clear the alarm.
    Resolve,
}

/// One threshold rule's state for one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Threshold {
    phase: Phase,
    last: Option<Timestamp>,
}

impl Threshold {
    /// A series with no reading seen yet.
    pub(crate) const fn new() -> Self {
        Self {
            phase: Phase::Normal,
            last: None,
        }
    }

    /// A series whose alarm is active (resumed from the store after a restart).
    pub(crate) const fn active() -> Self {
        Self {
            phase: Phase::Active,
            last: None,
        }
    }

    /// The current phase.
    #[cfg(test)]
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// A reading measured at `time` for which the condition `holds` or not; the condition
    /// must hold for `hold_us` microseconds of measurement time.
    pub(crate) fn observe(&mut self, time: Timestamp, holds: bool, hold_us: i64) -> Step {
        if self.last.is_some_and(|last| time < last) {
            return Step::Stay;
        }
        self.last = Some(time);
        let (phase, step) = match (self.phase, holds) {
            (Phase::Normal, true) if hold_us <= 0 => (Phase::Active, Step::Raise),
            (Phase::Normal, true) => (Phase::Pending { since: time }, Step::Stay),
            (Phase::Pending { since }, true) if time.micros_since(since) >= hold_us => {
                (Phase::Active, Step::Raise)
            }
            (phase @ Phase::Pending { .. }, true) | (phase @ Phase::Active, true) => {
                (phase, Step::Stay)
            }
            (Phase::Normal | Phase::Pending { .. }, false) => (Phase::Normal, Step::Stay),
            (Phase::Active, false) => (Phase::Normal, Step::Resolve),
        };
        self.phase = phase;
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix_micros(s * S)
    }

    #[test]
    fn holds_for_the_duration_then_raises_once_and_resolves() {
        let mut t = Threshold::new();
        let hold = 600 * S;
        assert_eq!(t.observe(at(0), true, hold), Step::Stay);
        assert_eq!(t.phase(), Phase::Pending { since: at(0) });
        assert_eq!(t.observe(at(599), true, hold), Step::Stay);
        assert_eq!(t.observe(at(600), true, hold), Step::Raise);
        assert_eq!(t.observe(at(700), true, hold), Step::Stay, "raised once");
        assert_eq!(t.observe(at(701), false, hold), Step::Resolve);
        assert_eq!(t.phase(), Phase::Normal);
    }

    #[test]
    fn an_interruption_restarts_the_duration() {
        let mut t = Threshold::new();
        let hold = 60 * S;
        t.observe(at(0), true, hold);
        t.observe(at(30), false, hold);
        assert_eq!(t.observe(at(40), true, hold), Step::Stay);
        assert_eq!(t.observe(at(99), true, hold), Step::Stay, "since 40, not 0");
        assert_eq!(t.observe(at(100), true, hold), Step::Raise);
    }

    #[test]
    fn zero_duration_raises_at_once_and_old_readings_are_ignored() {
        let mut t = Threshold::new();
        assert_eq!(t.observe(at(10), true, 0), Step::Raise);
        assert_eq!(
            t.observe(at(5), false, 0),
            Step::Stay,
            "older than the last"
        );
        assert_eq!(t.phase(), Phase::Active);
        assert_eq!(t.observe(at(11), false, 0), Step::Resolve);
    }

    #[test]
    fn a_resumed_alarm_resolves_at_the_first_normal_reading() {
        let mut t = Threshold::active();
        assert_eq!(t.observe(at(1), true, 60 * S), Step::Stay);
        assert_eq!(t.observe(at(2), false, 60 * S), Step::Resolve);
    }
}
