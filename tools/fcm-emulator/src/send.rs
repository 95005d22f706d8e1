//! `POST /v1/projects/{projectId}/messages:send`, FCM's HTTP v1 send endpoint.
//!
//! Checks, in order: the bearer access token (401 `UNAUTHENTICATED`); the project (404
//! `NOT_FOUND`); a programmed fault (429/500/503); the body (400 `INVALID_ARGUMENT`, see
//! [`crate::validate`]); a failure programmed for the token (`UNREGISTERED`,
//! `SENDER_ID_MISMATCH`, `THIRD_PARTY_AUTH_ERROR`). Then it records the delivery unless
//! `validate_only` and, after the programmed delay, answers
//! `{"name": "projects/{projectId}/messages/{id}"}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::errors::ApiError;
use crate::oauth::bearer_token;
use crate::state::EmulatorState;
use crate::validate::{validate_send, Target};

/// The send handler.
pub async fn send_endpoint(
    State(state): State<Arc<EmulatorState>>,
    Path(project_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Like FCM, the send is accepted (and delivered) or refused as soon as it arrives, and the
    // programmed delay holds back only the answer: a sender that gives up waiting, or dies,
    // cannot tell whether the push went out.
    let outcome = send(&state, &project_id, &headers, &body);
    let delay = state.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match outcome {
        Ok(name) => (StatusCode::OK, Json(json!({ "name": name }))).into_response(),
        Err(error) => {
            tracing::warn!(
                http = error.http.as_u16(),
                status = error.status,
                error_code = error.stats_error_code().unwrap_or("-"),
                message = %error.message,
                "send rejected"
            );
            state.record_rejection(&error);
            error.into_response()
        }
    }
}

fn send(
    state: &EmulatorState,
    project_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, ApiError> {
    let authorized = bearer_token(headers).is_some_and(|token| state.access_token_valid(token));
    if !authorized {
        return Err(ApiError::unauthenticated());
    }
    if project_id != state.project_id {
        return Err(ApiError::project_not_found(project_id));
    }
    if let Some(fault) = state.take_fault() {
        return Err(fault);
    }
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_argument(format!("Invalid JSON payload received. {e}")))?;
    let send = validate_send(&body)?;
    let to = match &send.target {
        Target::Token(token) => format!("token {}", short(token)),
        Target::Topic(topic) => format!("topic {topic}"),
        Target::Condition(condition) => format!("condition {condition}"),
    };
    let token = match send.target {
        Target::Token(token) => {
            if let Some(code) = state.programmed(&token) {
                return Err(ApiError::fcm(code));
            }
            Some(token)
        }
        Target::Topic(_) | Target::Condition(_) => None,
    };
    let name = state.record_send(token, send.message, send.validate_only);
    tracing::info!(
        name = %name,
        to = %to,
        validate_only = send.validate_only,
        "push accepted"
    );
    Ok(name)
}

/// The first characters of a token, for logs.
pub(crate) fn short(token: &str) -> String {
    match token.char_indices().nth(16) {
        Some((end, _)) => format!("{}…", &token[..end]),
        None => token.to_owned(),
    }
}
