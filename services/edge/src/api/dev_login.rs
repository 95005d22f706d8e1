//! `POST /api/dev/login`: a token for any user id, so that a person can try the web client on a
//! local machine without a token issuer. It works only with `[edge] dev_login = true`: otherwise
//! it answers exactly as an unknown endpoint (404 `NOT_FOUND`), so a production edge does not
//! reveal it (the route is always there, so that the OpenAPI document and the router agree).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_schemas::UserId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{doc, object_body};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Body;

/// How long a development token lives: a working day, like `edge mint-token`'s default.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Body of `POST /api/dev/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevLogin {
    /// The user to sign in as: 1-128 characters of `[A-Za-z0-9_.@-]`.
    #[schema(pattern = "^[A-Za-z0-9_.@-]{1,128}$")]
    user_id: String,
}

/// The answer of `POST /api/dev/login`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DevToken {
    /// An HS256 JWT for the user, valid for 24 hours.
    token: String,
}

/// 200 with `{"token"}`, a token for the user id valid for a day; 400 `INVALID_USER_ID` for an
/// id outside the rules of `sub`; 404 `NOT_FOUND` unless the edge runs with the development
/// login on.
#[utoipa::path(
    post,
    path = "/api/dev/login",
    tag = "meta",
    operation_id = "devLogin",
    request_body = DevLogin,
    responses(
        (status = 200, description = "A token for the user (development login on)", body = DevToken),
        (status = 400, response = inline(doc::DevLoginRefused)),
        (status = 404, response = inline(doc::NotFound)),
    ),
)]
pub async fn login(
    State(state): State<Arc<AppState>>,
    Body(body): Body<Map<String, Value>>,
) -> Result<Json<DevToken>, ApiError> {
    let body: DevLogin = object_body(body)?;
    let user = UserId::parse(&body.user_id).map_err(|e| {
        ApiError::bad_request("INVALID_USER_ID", format!("{:?}: {e}", body.user_id))
    })?;
    let token = state
        .auth
        .mint_dev(&user, DEV_TOKEN_TTL)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint"))?
        .map_err(|e| ApiError::unavailable("signing a token", e))?;
    Ok(Json(DevToken { token }))
}
