//! The agreement lifecycle.
//!
//! ```text
//! draft ──► active ◄──► suspended
//!   │         │             │
//!   └─────────┴──► revoked ◄┘      (revoked is final)
//! ```
//!
//! Only an `active` agreement inside its validity window permits. Prohibitions of `active`
//! and `suspended` agreements apply: suspending an agreement must never widen access.

use crate::vocabulary::vocabulary;

vocabulary!(
    /// Where an agreement is in its lifecycle.
    State, "state" {
        /// Being written; grants nothing, forbids nothing.
        Draft => "draft",
        /// In force (inside its validity window).
        Active => "active",
        /// Paused by the grantor; grants nothing, its prohibitions still apply.
        Suspended => "suspended",
        /// Ended for good; grants and forbids nothing.
        Revoked => "revoked",
    }
);

impl State {
    /// Whether the lifecycle allows going from `self` to `next`.
    pub fn can_become(self, next: State) -> bool {
        matches!(
            (self, next),
            (State::Draft, State::Active)
                | (State::Active, State::Suspended)
                | (State::Suspended, State::Active)
                | (
                    State::Draft | State::Active | State::Suspended,
                    State::Revoked
                )
        )
    }

    /// Whether the agreement's prohibitions apply (`active` or `suspended`).
    pub fn binds_prohibitions(self) -> bool {
        matches!(self, State::Active | State::Suspended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::Term;

    #[test]
    fn transitions() {
        let allowed = [
            (State::Draft, State::Active),
            (State::Active, State::Suspended),
            (State::Suspended, State::Active),
            (State::Draft, State::Revoked),
            (State::Active, State::Revoked),
            (State::Suspended, State::Revoked),
        ];
        for from in State::ALL {
            for to in State::ALL {
                assert_eq!(
                    from.can_become(*to),
                    allowed.contains(&(*from, *to)),
                    "{from} -> {to}"
                );
            }
        }
    }
}
