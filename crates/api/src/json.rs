//! The one JSON body extractor: axum's `Json` with every rejection mapped to problem+json.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;
use crate::BODY_LIMIT_BYTES;

/// A JSON request body (or response) whose rejections are [`ApiError`]s: malformed JSON and
/// bodies that do not match the schema are 400 with serde's message (line, column, field),
/// a missing `Content-Type: application/json` is 415, a body over the limit is 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(map_rejection(rejection)),
        }
    }
}

fn map_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::bad_request(format!(
            "the body does not match the schema: {}",
            e.body_text()
        )),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request(format!("the body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: BODY_LIMIT_BYTES,
        },
        other => ApiError::bad_request(format!("could not read the body: {}", other.body_text())),
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
