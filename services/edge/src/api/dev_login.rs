//! `POST /api/dev/login`: a token for any user id, so that a person can try the web client on a
//! local machine without a token issuer. The route exists only with `[edge] dev_login = true`:
//! otherwise the path is an unknown endpoint (404 `NOT_FOUND`), so a production edge does not
//! even reveal it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_schemas::UserId;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::object_body;
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Body;

/// How long a development token lives: a working day, like `edge mint-token`'s default.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Body of `POST /api/dev/login`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevLogin {
    user_id: String,
}

/// 200 with `{"token"}`, a token for the user id valid for a day; 400 `INVALID_USER_ID` for an
/// id outside the rules of `sub`.
pub async fn login(
    State(state): State<Arc<AppState>>,
    Body(body): Body<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let body: DevLogin = object_body(body)?;
    let user = UserId::parse(&body.user_id).map_err(|e| {
        ApiError::bad_request("INVALID_USER_ID", format!("{:?}: {e}", body.user_id))
    })?;
    let token = state
        .auth
        .mint_dev(&user, DEV_TOKEN_TTL)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint"))?
        .map_err(|e| ApiError::unavailable("signing a token", e))?;
    Ok(Json(json!({ "token": token })))
}
