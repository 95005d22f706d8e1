//! The admin API under `/admin` (no authentication: the emulator binds loopback by default) and
//! the human-readable delivery list at `GET /`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::errors::ErrorCode;
use crate::send::short;
use crate::state::{Delivery, EmulatorState, Fault};

/// How many deliveries `GET /` lists.
pub const HOME_DELIVERIES: usize = 50;

/// The `/admin/...` routes (to be nested under `/admin`).
pub fn routes() -> Router<Arc<EmulatorState>> {
    Router::new()
        .route("/tokens/{token}/unregister", post(unregister))
        .route("/tokens/{token}/sender-mismatch", post(sender_mismatch))
        .route(
            "/tokens/{token}/third-party-auth-error",
            post(third_party_auth_error),
        )
        .route("/faults", post(faults))
        .route("/delay", post(delay))
        .route("/revoke-access-tokens", post(revoke))
        .route("/deliveries", get(deliveries))
        .route("/stats", get(stats))
        .route("/reset", post(reset))
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.into() })),
    )
        .into_response()
}

fn program(state: &EmulatorState, token: String, code: ErrorCode) -> StatusCode {
    tracing::info!(token = %short(&token), error_code = code.as_str(), "token programmed");
    state.program_token(token, code);
    StatusCode::NO_CONTENT
}

/// `POST /admin/tokens/{token}/unregister`: sends to the token get `UNREGISTERED` from now on.
pub async fn unregister(
    State(state): State<Arc<EmulatorState>>,
    Path(token): Path<String>,
) -> StatusCode {
    program(&state, token, ErrorCode::Unregistered)
}

/// `POST /admin/tokens/{token}/sender-mismatch`: sends get `SENDER_ID_MISMATCH`.
pub async fn sender_mismatch(
    State(state): State<Arc<EmulatorState>>,
    Path(token): Path<String>,
) -> StatusCode {
    program(&state, token, ErrorCode::SenderIdMismatch)
}

/// `POST /admin/tokens/{token}/third-party-auth-error`: sends get `THIRD_PARTY_AUTH_ERROR`.
pub async fn third_party_auth_error(
    State(state): State<Arc<EmulatorState>>,
    Path(token): Path<String>,
) -> StatusCode {
    program(&state, token, ErrorCode::ThirdPartyAuthError)
}

/// Body of `POST /admin/faults`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRequest {
    /// 429 (`QUOTA_EXCEEDED`), 500 (`INTERNAL`) or 503 (`UNAVAILABLE`).
    pub status: u16,
    /// How many of the next sends fail.
    pub count: u32,
    /// `Retry-After` seconds to send along.
    pub retry_after_seconds: Option<u64>,
}

/// `POST /admin/faults`: the next `count` sends (any token) fail with `status`. Faults queue up
/// behind those already programmed.
pub async fn faults(
    State(state): State<Arc<EmulatorState>>,
    body: Result<Json<FaultRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    let code = match request.status {
        429 => ErrorCode::QuotaExceeded,
        500 => ErrorCode::Internal,
        503 => ErrorCode::Unavailable,
        other => return bad_request(format!("status must be 429, 500 or 503, not {other}")),
    };
    tracing::info!(
        status = request.status,
        count = request.count,
        retry_after = ?request.retry_after_seconds,
        "faults programmed"
    );
    state.push_fault(Fault {
        code,
        remaining: request.count,
        retry_after: request.retry_after_seconds,
    });
    StatusCode::NO_CONTENT.into_response()
}

/// Body of `POST /admin/delay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayRequest {
    /// Milliseconds every send waits before answering.
    pub ms: u64,
}

/// `POST /admin/delay`: every send is answered `ms` milliseconds after it was accepted or
/// refused (0: at once).
pub async fn delay(
    State(state): State<Arc<EmulatorState>>,
    body: Result<Json<DelayRequest>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(request)) => {
            tracing::info!(ms = request.ms, "send delay set");
            state.set_delay(Duration::from_millis(request.ms));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(rejection) => bad_request(rejection.body_text()),
    }
}

/// `POST /admin/revoke-access-tokens`: every issued access token becomes invalid.
pub async fn revoke(State(state): State<Arc<EmulatorState>>) -> StatusCode {
    tracing::info!("access tokens revoked");
    state.revoke_access_tokens();
    StatusCode::NO_CONTENT
}

/// `GET /admin/deliveries[?token=T]`: `{"deliveries": [...]}` in arrival order.
pub async fn deliveries(
    State(state): State<Arc<EmulatorState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    let deliveries = state.deliveries(query.get("token").map(String::as_str));
    Json(json!({ "deliveries": deliveries }))
}

/// `GET /admin/stats`: the counters.
pub async fn stats(State(state): State<Arc<EmulatorState>>) -> Json<Value> {
    Json(json!(state.stats()))
}

/// `POST /admin/reset`: clears deliveries, faults, programmed tokens, the delay and the counters.
pub async fn reset(State(state): State<Arc<EmulatorState>>) -> StatusCode {
    tracing::info!("state reset");
    state.reset();
    StatusCode::NO_CONTENT
}

/// `GET /`: the last [`HOME_DELIVERIES`] deliveries as plain text, oldest first.
pub async fn home(State(state): State<Arc<EmulatorState>>) -> String {
    let (recent, total) = state.last_deliveries(HOME_DELIVERIES);
    let mut out = format!(
        "fcm-emulator: project {}, {total} deliveries stored, showing the last {}\n",
        state.project_id,
        recent.len()
    );
    for delivery in &recent {
        out.push('\n');
        describe(&mut out, delivery);
    }
    out
}

fn describe(out: &mut String, delivery: &Delivery) {
    let message = &delivery.message;
    let target = match (
        &delivery.token,
        message.get("topic"),
        message.get("condition"),
    ) {
        (Some(token), _, _) => format!("token {}", short(token)),
        (None, Some(topic), _) if !topic.is_null() => format!("topic {topic}"),
        (None, _, Some(condition)) => format!("condition {condition}"),
        _ => "?".to_owned(),
    };
    let _ = writeln!(out, "{}  {target}", delivery.received_at);
    if let Some(notification) = message.get("notification").filter(|n| n.is_object()) {
        let text = |key: &str| notification.get(key).and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(
            out,
            "  notification: {:?} / {:?}",
            text("title"),
            text("body")
        );
    }
    if let Some(data) = message.get("data").filter(|d| d.is_object()) {
        let _ = writeln!(out, "  data: {data}");
    }
    for platform in ["android", "apns", "webpush"] {
        if let Some(config) = message.get(platform).filter(|c| c.is_object()) {
            let _ = writeln!(out, "  {platform}: {config}");
        }
    }
    let _ = writeln!(out, "  name: {}", delivery.name);
}
