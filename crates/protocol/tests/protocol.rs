//! The protocol crate's one integration-test binary: property tests of the codecs and the
//! COSE envelope, hand-written non-canonical encodings, limits, error messages, and the
//! published test vectors in `tests/vectors/`.

#![allow(clippy::unwrap_used)]

#[path = "protocol/strategies.rs"]
mod strategies;

#[path = "protocol/round_trip.rs"]
mod round_trip;

#[path = "protocol/tamper.rs"]
mod tamper;

#[path = "protocol/robustness.rs"]
mod robustness;

#[path = "protocol/canonical.rs"]
mod canonical;

#[path = "protocol/limits.rs"]
mod limits;

#[path = "protocol/vectors.rs"]
mod vectors;
