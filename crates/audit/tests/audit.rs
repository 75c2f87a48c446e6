//! The audit crate's tests: chain construction, tamper detection, checkpoints, the encoding
//! vector and property tests on random logs.

#![allow(clippy::unwrap_used)]

#[path = "audit/chain.rs"]
mod chain;
#[path = "audit/checkpoints.rs"]
mod checkpoints;
#[path = "audit/fixtures.rs"]
mod fixtures;
#[path = "audit/properties.rs"]
mod properties;
#[path = "audit/tamper.rs"]
mod tamper;
#[path = "audit/vector.rs"]
mod vector;
