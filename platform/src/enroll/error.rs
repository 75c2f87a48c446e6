//! The enrollment endpoint's refusals: `{"error": code, "message": text}` with the status and
//! the stable code of docs/gateway-identity.md.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Why a request was refused; the code is also the `outcome` label of
/// `beffroi_enroll_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 400: malformed JSON, CSR, signing key or proof (the token is not spent).
    BadRequest,
    /// 401: no such token, or no token.
    TokenUnknown,
    /// 401: the token was redeemed already.
    TokenUsed,
    /// 401: the token is past its expiry.
    TokenExpired,
    /// 403: the request names another tenant or gateway than the token.
    TokenMismatch,
    /// 403: the gateway is revoked.
    GatewayRevoked,
    /// 401: renewal without a valid client certificate.
    CertificateRequired,
    /// 409: the signing key is registered already.
    KeyInUse,
    /// 503: the store or the audit log is unavailable (fail closed).
    Unavailable,
}

impl Code {
    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "bad_request",
            Code::TokenUnknown => "token_unknown",
            Code::TokenUsed => "token_used",
            Code::TokenExpired => "token_expired",
            Code::TokenMismatch => "token_mismatch",
            Code::GatewayRevoked => "gateway_revoked",
            Code::CertificateRequired => "certificate_required",
            Code::KeyInUse => "key_in_use",
            Code::Unavailable => "unavailable",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BadRequest => StatusCode::BAD_REQUEST,
            Code::TokenUnknown
            | Code::TokenUsed
            | Code::TokenExpired
            | Code::CertificateRequired => StatusCode::UNAUTHORIZED,
            Code::TokenMismatch | Code::GatewayRevoked => StatusCode::FORBIDDEN,
            Code::KeyInUse => StatusCode::CONFLICT,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A refusal: its code and a message for the operator of the gateway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct Refusal {
    /// What went wrong.
    pub code: Code,
    /// Why, in words (never a secret, never a server-side cause).
    pub message: String,
}

impl Refusal {
    /// A refusal with `code`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    /// 503 `unavailable`; the cause goes to the log only.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "enrollment request failed");
        Self::new(
            Code::Unavailable,
            "the platform cannot serve this request now; try again later",
        )
    }
}

impl From<beffroi_store::Error> for Refusal {
    fn from(error: beffroi_store::Error) -> Self {
        Self::unavailable(&error)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'static str,
    message: &'a str,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.code.as_str(),
            message: &self.message,
        };
        (self.code.status(), Json(body)).into_response()
    }
}
