//! Agent integration tests.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod config;
mod enroll;
mod platform_double;
mod renewal;
mod sources;
mod uplink;
