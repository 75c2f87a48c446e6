//! The one API error type and its `application/problem+json` (RFC 9457) rendering.
//!
//! Every failure a handler, an extractor or a middleware layer can produce is an [`ApiError`];
//! clients always get the same body shape `{type, title, status, detail}`. Details of server
//! faults (5xx) go to the log, never to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Result alias for this crate.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: a bad id, time, parameter, cursor or body.
    #[error("{0}")]
    BadRequest(String),
    /// No bearer token, a malformed one, or one the platform does not know.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The token's role does not allow this.
    #[error("this requires the {required} role; the token has {actual}")]
    Forbidden {
        /// The role the endpoint requires.
        required: &'static str,
        /// The token's role.
        actual: &'static str,
    },
    /// A platform token was presented where a tenant's data is served.
    #[error("a platform token reads no tenant's data; use a token of the tenant")]
    PlatformToken,
    /// A tenant token was presented where only platform operators are served.
    #[error("this is for platform operators; a tenant token cannot read it")]
    TenantToken,
    /// A partner token was presented outside `/api/v1/shared/…` and `/api/v1/me`.
    #[error("a partner token reads only what is shared with it, under /api/v1/shared")]
    PartnerToken,
    /// The policy engine denied a governed read (403, the reason code in the problem's
    /// `reason` member).
    #[error("{reason}: {message}")]
    Denied {
        /// The stable reason code (`beffroi_policy::DenyReason`).
        reason: &'static str,
        /// Why, for the client.
        message: String,
    },
    /// Nothing with this id in the caller's tenant (or no such route).
    #[error("{0}")]
    NotFound(String),
    /// The method is not served on this path.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// A write conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// The body exceeds the request size limit.
    #[error("the request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body is not declared as JSON.
    #[error("expected a body with Content-Type: application/json")]
    UnsupportedMediaType,
    /// The request took longer than the server allows.
    #[error("the request did not complete within {0:?}")]
    Timeout(std::time::Duration),
    /// The platform is not ready (starting, stopping, or its store does not answer).
    #[error("{0}")]
    NotReady(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] beffroi_store::Error),
    /// The system's random number generator failed (token issuance).
    #[error("random number generator: {0}")]
    Random(String),
    /// The audit log could not be written: the change was not applied, or the data did not
    /// leave (fail closed).
    #[error("audit log unavailable: {0}")]
    AuditUnavailable(String),
}

/// The RFC 9457 body.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    /// Extension member of access denials: the policy's reason code.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

impl ApiError {
    /// Shorthand for [`ApiError::BadRequest`].
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest(detail.into())
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. }
            | ApiError::PlatformToken
            | ApiError::TenantToken
            | ApiError::PartnerToken
            | ApiError::Denied { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::AuditUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(e) => match e {
                beffroi_store::Error::NotFound { .. } => StatusCode::NOT_FOUND,
                beffroi_store::Error::AlreadyExists { .. } => StatusCode::CONFLICT,
                beffroi_store::Error::Conflict { .. } => StatusCode::CONFLICT,
                beffroi_store::Error::Invalid { .. } => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable problem type slug, part of the `type` URI.
    fn slug(&self) -> &'static str {
        match self.status() {
            StatusCode::BAD_REQUEST => "bad-request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => match self {
                ApiError::Denied { .. } => "access-denied",
                _ => "forbidden",
            },
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
            StatusCode::SERVICE_UNAVAILABLE => match self {
                ApiError::Timeout(_) => "timeout",
                ApiError::AuditUnavailable(_) => "audit-unavailable",
                _ => "not-ready",
            },
            _ => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = if status.is_server_error() && !matches!(self, ApiError::NotReady(_)) {
            // Server faults are logged with their cause; the client learns only that it failed.
            tracing::error!(error = %self, "request failed");
            match self {
                ApiError::Timeout(_) => self.to_string(),
                ApiError::AuditUnavailable(_) => {
                    "audit log unavailable: nothing was changed and no data was returned".to_owned()
                }
                _ => "internal error; the cause is in the server log".to_owned(),
            }
        } else {
            self.to_string()
        };
        let problem = Problem {
            kind: format!("urn:beffroi:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            reason: match &self {
                ApiError::Denied { reason, .. } => Some(*reason),
                _ => None,
            },
        };
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"beffroi\""),
            );
        }
        response
    }
}

impl From<beffroi_protocol::Error> for ApiError {
    fn from(error: beffroi_protocol::Error) -> Self {
        ApiError::BadRequest(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_faults_hide_their_detail() {
        let error = ApiError::Store(beffroi_store::Error::Unsupported("secret detail".into()));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let response = error.into_response();
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(PROBLEM_JSON.as_bytes())
        );
    }

    #[test]
    fn store_not_found_is_404() {
        let error = ApiError::Store(beffroi_store::Error::NotFound {
            what: "zone",
            id: "x".into(),
        });
        assert_eq!(error.status(), StatusCode::NOT_FOUND);
        assert_eq!(error.slug(), "not-found");
    }
}
