//! API errors: a status and a stable machine-readable code, rendered as
//! `{"error":{"code":"...","message":"..."}}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;

/// An error answer of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code clients switch on, e.g. `NOT_A_MEMBER`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 for input that does not have the documented shape.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `ROOM_NOT_FOUND`.
    pub fn room_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "no such room")
    }

    /// 403 `NOT_A_MEMBER`.
    pub fn not_a_member() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "NOT_A_MEMBER",
            "you are not a member of this room",
        )
    }

    /// 404 `MESSAGE_NOT_FOUND`.
    pub fn message_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "MESSAGE_NOT_FOUND",
            "no such message",
        )
    }

    /// 404 `PUSH_TOKEN_NOT_FOUND`: the caller has no such push token.
    pub fn push_token_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "PUSH_TOKEN_NOT_FOUND",
            "you have no such push token",
        )
    }

    /// The JSON body this error answers with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code, self.message.clone())
    }

    /// 503 for a server the edge depends on failing.
    pub fn unavailable(what: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "{what} failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            format!("{what} is unavailable, retry later"),
        )
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let code = match error {
            AuthError::Missing => "UNAUTHORIZED",
            AuthError::Expired => "TOKEN_EXPIRED",
            AuthError::Invalid(_) => "INVALID_TOKEN",
        };
        Self::new(StatusCode::UNAUTHORIZED, code, error.to_string())
    }
}

impl From<chat_read_state::QueryError> for ApiError {
    fn from(error: chat_read_state::QueryError) -> Self {
        ApiError::unavailable("the unread counts", error)
    }
}

/// The body of every error answer; its schema is the OpenAPI document's `Error`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The `error` of an [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code clients switch on, e.g. `NOT_A_MEMBER`.
    #[schema(pattern = "^[A-Z][A-Z_]*$")]
    pub code: &'static str,
    /// For people.
    pub message: String,
}

impl ErrorBody {
    /// The body of an error with `code` and `message`, as the OpenAPI document's examples show.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(self.body());
        if self.status == StatusCode::UNAUTHORIZED {
            (self.status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}
