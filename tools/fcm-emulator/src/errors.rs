//! FCM HTTP v1 error bodies, shaped like Google's.
//!
//! Every error answer is `{"error":{"code","message","status","details":[...]}}`. Errors that FCM
//! attributes to the message carry a `google.firebase.fcm.v1.FcmError` detail with the
//! `errorCode`; field errors also carry a `google.rpc.BadRequest` detail. The two errors that come
//! from Google's front end rather than from FCM (bad credentials, unknown project) have no
//! `FcmError` detail, as in production.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The `@type` of FCM's own error detail.
pub const FCM_ERROR_TYPE: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
/// The `@type` of the field-violation detail.
pub const BAD_REQUEST_TYPE: &str = "type.googleapis.com/google.rpc.BadRequest";
/// The message of Google's 401 answer to missing, unknown, expired or revoked access tokens.
pub const UNAUTHENTICATED_MESSAGE: &str = "Request had invalid authentication credentials. \
Expected OAuth 2 access token, login cookie or other valid authentication credential. \
See https://developers.google.com/identity/sign-in/web/devconsole-project.";

/// FCM's `errorCode` values (the `google.firebase.fcm.v1.FcmError` detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// The request or message is malformed (HTTP 400).
    InvalidArgument,
    /// The registration token is no longer valid (HTTP 404).
    Unregistered,
    /// The token belongs to another sender (HTTP 403).
    SenderIdMismatch,
    /// Sending limit exceeded (HTTP 429).
    QuotaExceeded,
    /// The server is overloaded (HTTP 503).
    Unavailable,
    /// Unknown internal error (HTTP 500).
    Internal,
    /// The APNs certificate or Web Push auth key was rejected (HTTP 401).
    ThirdPartyAuthError,
}

impl ErrorCode {
    /// The `errorCode` string, e.g. `"UNREGISTERED"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::Unregistered => "UNREGISTERED",
            Self::SenderIdMismatch => "SENDER_ID_MISMATCH",
            Self::QuotaExceeded => "QUOTA_EXCEEDED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
            Self::ThirdPartyAuthError => "THIRD_PARTY_AUTH_ERROR",
        }
    }

    /// The HTTP status FCM answers with for this code.
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::InvalidArgument => StatusCode::BAD_REQUEST,
            Self::Unregistered => StatusCode::NOT_FOUND,
            Self::SenderIdMismatch => StatusCode::FORBIDDEN,
            Self::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ThirdPartyAuthError => StatusCode::UNAUTHORIZED,
        }
    }

    /// The canonical `google.rpc.Code` name that goes in `error.status`.
    pub fn rpc_status(self) -> &'static str {
        match self {
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::Unregistered => "NOT_FOUND",
            Self::SenderIdMismatch => "PERMISSION_DENIED",
            Self::QuotaExceeded => "RESOURCE_EXHAUSTED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
            Self::ThirdPartyAuthError => "UNAUTHENTICATED",
        }
    }

    /// The message FCM puts in `error.message` for this code when nothing more specific applies.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::InvalidArgument => "Request contains an invalid argument.",
            Self::Unregistered => "Requested entity was not found.",
            Self::SenderIdMismatch => "SenderId mismatch",
            Self::QuotaExceeded => "Quota exceeded for sending messages.",
            Self::Unavailable => "The service is currently unavailable.",
            Self::Internal => "Internal error encountered.",
            Self::ThirdPartyAuthError => "Auth error from APNS or Web Push Service",
        }
    }
}

/// One `google.rpc.BadRequest.FieldViolation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The offending field path, e.g. `message.token`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// An error answer of the send endpoint, rendered as Google's JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub http: StatusCode,
    /// `error.status`, a `google.rpc.Code` name.
    pub status: &'static str,
    /// `error.message`.
    pub message: String,
    /// The FCM `errorCode` detail, if FCM would send one.
    pub error_code: Option<ErrorCode>,
    /// Field violations for a `google.rpc.BadRequest` detail (none: no such detail).
    pub field_violations: Vec<FieldViolation>,
    /// Seconds for a `Retry-After` header, if any.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An FCM error with the code's default message.
    pub fn fcm(code: ErrorCode) -> Self {
        Self::fcm_with_message(code, code.default_message())
    }

    /// An FCM error with a specific message.
    pub fn fcm_with_message(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            http: code.http_status(),
            status: code.rpc_status(),
            message: message.into(),
            error_code: Some(code),
            field_violations: Vec::new(),
            retry_after: None,
        }
    }

    /// A 400 `INVALID_ARGUMENT` error with a message.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::fcm_with_message(ErrorCode::InvalidArgument, message)
    }

    /// A 400 `INVALID_ARGUMENT` error about one field: the message doubles as the violation's
    /// description, as Google does for JSON payload errors.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::invalid_argument(message.clone()).with_violation(field, message)
    }

    /// FCM's exact answer to a malformed registration token.
    pub fn invalid_registration_token() -> Self {
        Self::invalid_argument("The registration token is not a valid FCM registration token")
            .with_violation("message.token", "Invalid registration token")
    }

    /// Google's 401 answer to bad credentials: no FCM `errorCode`.
    pub fn unauthenticated() -> Self {
        Self {
            http: StatusCode::UNAUTHORIZED,
            status: "UNAUTHENTICATED",
            message: UNAUTHENTICATED_MESSAGE.to_owned(),
            error_code: None,
            field_violations: Vec::new(),
            retry_after: None,
        }
    }

    /// A 404 `NOT_FOUND` for a project this emulator does not serve: no FCM `errorCode`, so that
    /// a client does not mistake it for `UNREGISTERED`.
    pub fn project_not_found(project_id: &str) -> Self {
        Self {
            http: StatusCode::NOT_FOUND,
            status: "NOT_FOUND",
            message: format!("Requested entity was not found. (project '{project_id}')"),
            error_code: None,
            field_violations: Vec::new(),
            retry_after: None,
        }
    }

    /// Adds a field violation (and so a `google.rpc.BadRequest` detail).
    pub fn with_violation(
        mut self,
        field: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.field_violations.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
        self
    }

    /// Sets the `Retry-After` header.
    pub fn with_retry_after(mut self, seconds: Option<u64>) -> Self {
        self.retry_after = seconds;
        self
    }

    /// The JSON body Google would send.
    pub fn body(&self) -> Value {
        let mut details = Vec::new();
        if let Some(code) = self.error_code {
            details.push(json!({"@type": FCM_ERROR_TYPE, "errorCode": code.as_str()}));
        }
        if !self.field_violations.is_empty() {
            let violations: Vec<Value> = self
                .field_violations
                .iter()
                .map(|v| json!({"field": v.field, "description": v.description}))
                .collect();
            details.push(json!({"@type": BAD_REQUEST_TYPE, "fieldViolations": violations}));
        }
        let mut error = json!({
            "code": self.http.as_u16(),
            "message": self.message,
            "status": self.status,
        });
        if !details.is_empty() {
            error["details"] = Value::Array(details);
        }
        json!({ "error": error })
    }

    /// The key this error is counted under in `/admin/stats` `sendsRejectedByErrorCode`, if any.
    pub fn stats_error_code(&self) -> Option<&'static str> {
        self.error_code.map(ErrorCode::as_str)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.http, Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if self.http == StatusCode::UNAUTHORIZED && self.error_code.is_none() {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_token_error_matches_fcm() {
        let body = ApiError::invalid_registration_token().body();
        let expected = json!({"error":{"code":400,"message":"The registration token is not a valid FCM registration token","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"},{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}]}});
        assert_eq!(body, expected);
    }

    #[test]
    fn unauthenticated_has_no_details() {
        let body = ApiError::unauthenticated().body();
        assert_eq!(body["error"]["code"], 401);
        assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
        assert!(body["error"].get("details").is_none());
    }

    #[test]
    fn mapping_matches_fcm() {
        let cases = [
            (ErrorCode::Unregistered, 404, "NOT_FOUND"),
            (ErrorCode::QuotaExceeded, 429, "RESOURCE_EXHAUSTED"),
            (ErrorCode::Unavailable, 503, "UNAVAILABLE"),
            (ErrorCode::Internal, 500, "INTERNAL"),
            (ErrorCode::SenderIdMismatch, 403, "PERMISSION_DENIED"),
            (ErrorCode::ThirdPartyAuthError, 401, "UNAUTHENTICATED"),
            (ErrorCode::InvalidArgument, 400, "INVALID_ARGUMENT"),
        ];
        for (code, http, status) in cases {
            let body = ApiError::fcm(code).body();
            assert_eq!(body["error"]["code"], http);
            assert_eq!(body["error"]["status"], status);
            assert_eq!(body["error"]["details"][0]["errorCode"], code.as_str());
        }
    }
}
