//! The path-id extractor: `/…/{id}` parsed into a protocol newtype, 400 problem when invalid.

use std::str::FromStr;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::error::ApiError;

/// One id from the path, validated by its type's `FromStr` (the protocol newtypes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPath<T>(pub T);

impl<T, S> FromRequestParts<S> for IdPath<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))?;
        text.parse::<T>()
            .map(IdPath)
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }
}
