//! A strict reader of JSON values for the ODRL import: every value carries its path in the
//! document, objects are checked against an allow-list of keys, and every error names the
//! path of the offending value.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::error::{excerpt, Error, Result};
use crate::vocabulary::{Term, TermSet};

/// A value and its path in the document.
#[derive(Clone, Copy)]
pub(super) struct At<'p, 'v> {
    pub(super) path: &'p str,
    pub(super) value: &'v Value,
}

/// An object whose keys were all checked against an allow-list.
pub(super) struct Object<'a> {
    pub(super) path: String,
    map: &'a Map<String, Value>,
}

pub(super) fn odrl_error(path: &str, reason: impl Into<String>) -> Error {
    Error::Odrl {
        path: if path.is_empty() {
            "$".into()
        } else {
            path.into()
        },
        reason: reason.into(),
    }
}

pub(super) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl<'v> At<'_, 'v> {
    pub(super) fn err(&self, reason: impl Into<String>) -> Error {
        odrl_error(self.path, reason)
    }

    /// The value as an object whose every key is in `allowed`.
    pub(super) fn object(&self, allowed: &[&str]) -> Result<Object<'v>> {
        let map = self
            .value
            .as_object()
            .ok_or_else(|| self.err("expected an object"))?;
        if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(odrl_error(
                &child(self.path, key),
                format!("unknown property {:?}", excerpt(key)),
            ));
        }
        Ok(Object {
            path: self.path.to_owned(),
            map,
        })
    }

    pub(super) fn str(&self) -> Result<&'v str> {
        self.value
            .as_str()
            .ok_or_else(|| self.err("expected a string"))
    }

    pub(super) fn u64(&self) -> Result<u64> {
        self.value
            .as_u64()
            .ok_or_else(|| self.err("expected a non-negative integer"))
    }

    pub(super) fn u32(&self) -> Result<u32> {
        u32::try_from(self.u64()?).map_err(|_| self.err("expected an integer below 2^32"))
    }

    pub(super) fn bool(&self) -> Result<bool> {
        self.value
            .as_bool()
            .ok_or_else(|| self.err("expected true or false"))
    }

    /// The value as an array, with each item's path.
    pub(super) fn items(&self) -> Result<Vec<(String, &'v Value)>> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| self.err("expected an array"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{}[{i}]", self.path), v))
            .collect())
    }

    /// A string equal to `expected`.
    pub(super) fn exactly(&self, expected: &str) -> Result<()> {
        if self.str()? == expected {
            Ok(())
        } else {
            Err(self.err(format!("expected {expected:?}")))
        }
    }

    /// A string parsed with `FromStr`, its error as the reason.
    pub(super) fn parse<T: FromStr<Err = E>, E: Display>(&self) -> Result<T> {
        self.str()?.parse().map_err(|e: E| self.err(e.to_string()))
    }

    /// A string with `prefix`, the rest parsed.
    pub(super) fn parse_after<T: FromStr<Err = E>, E: Display>(&self, prefix: &str) -> Result<T> {
        let text = self.str()?;
        let rest = text
            .strip_prefix(prefix)
            .ok_or_else(|| self.err(format!("expected an IRI starting with {prefix:?}")))?;
        rest.parse().map_err(|e: E| self.err(e.to_string()))
    }

    /// An array of strings, each parsed, without duplicates.
    pub(super) fn parse_set<T: FromStr<Err = E> + Ord, E: Display>(&self) -> Result<BTreeSet<T>> {
        let mut set = BTreeSet::new();
        for (path, value) in self.items()? {
            let item = At { path: &path, value };
            if !set.insert(item.parse()?) {
                return Err(item.err("duplicate"));
            }
        }
        Ok(set)
    }

    /// An array of vocabulary words, each known.
    pub(super) fn term_set<T: Term + FromStr<Err = Error>>(&self) -> Result<TermSet<T>> {
        Ok(self.parse_set::<T, Error>()?.into_iter().collect())
    }
}

impl<'a> Object<'a> {
    pub(super) fn get(&self, key: &str) -> Option<(String, &'a Value)> {
        self.map.get(key).map(|v| (child(&self.path, key), v))
    }

    pub(super) fn required(&self, key: &str) -> Result<(String, &'a Value)> {
        self.get(key)
            .ok_or_else(|| odrl_error(&child(&self.path, key), "missing"))
    }
}

/// Calls `f` with the `At` of `(path, value)`.
pub(super) fn with<'v, T>(
    (path, value): (String, &'v Value),
    f: impl FnOnce(At<'_, 'v>) -> Result<T>,
) -> Result<T> {
    f(At { path: &path, value })
}
