//! Query-string parameters: repeated keys allowed, unknown keys refused with a 400 that names
//! them (a typo such as `?sensors=` must not silently widen a query).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::{ApiError, Result};

/// The decoded `key=value` pairs of a request's query string, in order.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// Parses a raw (percent-encoded) query string.
    pub fn parse(raw: &str) -> Self {
        Self(
            form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// Fails with 400 when a key is not in `allowed`.
    pub fn allow_only(&self, allowed: &[&str]) -> Result<()> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some((key, _)) => Err(ApiError::bad_request(format!(
                "unknown query parameter {key:?}; allowed: {}",
                allowed.join(", ")
            ))),
        }
    }

    /// The value of a key given at most once; 400 when it is repeated.
    pub fn single<'a>(&'a self, key: &'a str) -> Result<Option<&'a str>> {
        let mut values = self.all(key);
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::bad_request(format!(
                "query parameter {key:?} may be given only once"
            )));
        }
        Ok(first)
    }

    /// Every value of a repeatable key, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A single value parsed with `parse`, whose error becomes a 400 naming the key.
    pub fn parsed<'a, T, E: std::fmt::Display>(
        &'a self,
        key: &'a str,
        parse: impl FnOnce(&'a str) -> Result<T, E>,
    ) -> Result<Option<T>> {
        self.single(key)?
            .map(|v| parse(v).map_err(|e| ApiError::bad_request(format!("{key}: {e}"))))
            .transpose()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        Ok(Self::parse(parts.uri.query().unwrap_or("")))
    }
}

/// `limit` and `offset` of a listing, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Items per page.
    pub limit: u32,
    /// Items to skip.
    pub offset: u64,
}

/// Default page size of offset-paginated listings.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
/// Largest page size of offset-paginated listings.
pub const MAX_PAGE_LIMIT: u32 = 1000;

impl Paging {
    /// Reads `?limit=1..=1000` (default 100) and `?offset=` (default 0), refusing anything else.
    pub fn from_query(query: &QueryParams) -> Result<Self> {
        Self::with_keys(query, &[])
    }

    /// [`Paging::from_query`] on a listing that also takes the keys `filters`.
    pub fn with_keys(query: &QueryParams, filters: &[&str]) -> Result<Self> {
        let allowed: Vec<&str> = ["limit", "offset"].iter().chain(filters).copied().collect();
        query.allow_only(&allowed)?;
        let limit = query
            .parsed("limit", |v| parse_limit(v, MAX_PAGE_LIMIT))?
            .unwrap_or(DEFAULT_PAGE_LIMIT);
        let offset = query
            .parsed("offset", |v| {
                v.parse::<u64>()
                    .map_err(|_| "must be a non-negative integer".to_owned())
            })?
            .unwrap_or(0);
        Ok(Self { limit, offset })
    }
}

/// Parses a page size in `1..=max`.
pub fn parse_limit(value: &str, max: u32) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be an integer from 1 to {max}, got {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_unknown_keys() {
        let q = QueryParams::parse("sensor=a&sensor=b%2Dc&limit=5");
        assert_eq!(q.all("sensor").collect::<Vec<_>>(), ["a", "b-c"]);
        assert!(q.single("sensor").is_err());
        assert_eq!(q.single("limit").ok().flatten(), Some("5"));
        assert!(q.allow_only(&["sensor", "limit"]).is_ok());
        assert!(q.allow_only(&["sensor"]).is_err());
    }

    #[test]
    fn paging_bounds() {
        let page = |s| Paging::from_query(&QueryParams::parse(s));
        assert_eq!(
            page("").ok(),
            Some(Paging {
                limit: 100,
                offset: 0
            })
        );
        assert!(page("limit=0").is_err());
        assert!(page("limit=1001").is_err());
        assert!(page("offset=-1").is_err());
        assert!(page("limit=1000&offset=7").is_ok());
    }
}
