//! The policy crate's one integration-test binary: the decision rules one by one, agreement
//! validation, unknown terms, pseudonyms, suppression, ODRL, pooling, and property tests of the
//! engine over random agreements and requests.

#![allow(clippy::unwrap_used)]

#[path = "policy/support.rs"]
mod support;

#[path = "policy/strategies.rs"]
mod strategies;

#[path = "policy/validity.rs"]
mod validity;

#[path = "policy/lifecycle.rs"]
mod lifecycle;

#[path = "policy/purpose.rs"]
mod purpose;

#[path = "policy/prohibition.rs"]
mod prohibition;

#[path = "policy/unknown_terms.rs"]
mod unknown_terms;

#[path = "policy/validate.rs"]
mod validate;

#[path = "policy/buckets.rs"]
mod buckets;

#[path = "policy/allow_lists.rs"]
mod allow_lists;

#[path = "policy/embargo.rs"]
mod embargo;

#[path = "policy/scope.rs"]
mod scope;

#[path = "policy/pseudonym.rs"]
mod pseudonym;

#[path = "policy/suppression.rs"]
mod suppression;

#[path = "policy/odrl.rs"]
mod odrl;

#[path = "policy/pooling.rs"]
mod pooling;

#[path = "policy/properties.rs"]
mod properties;
