//! Agent integration tests.

mod config;
mod sources;
mod uplink;
