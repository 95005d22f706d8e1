//! The caller's push tokens: `PUT /api/users/me/push-tokens`, `GET /api/users/me/push-tokens`,
//! `DELETE /api/users/me/push-tokens/{token}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{doc, object_body};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Body, Caller};
use crate::views::{PushTokenList, PushTokenView};

/// Longest push token, in characters.
pub const MAX_TOKEN_CHARS: usize = 4096;

/// The platforms a push token may be for.
pub const PLATFORMS: [&str; 3] = ["android", "ios", "web"];

/// Body of `PUT /api/users/me/push-tokens`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterToken {
    /// The device token: 1-4096 characters without whitespace or control characters.
    #[schema(pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f]+$", max_length = 4096)]
    token: String,
    /// `android`, `ios` or `web`.
    #[schema(pattern = "^(android|ios|web)$")]
    platform: String,
}

/// Registers (or registers again) a device token for the caller: 200 with the stored token.
#[utoipa::path(
    put,
    path = "/api/users/me/push-tokens",
    tag = "settings",
    operation_id = "registerPushToken",
    security(("bearer" = [])),
    request_body = RegisterToken,
    responses(
        (status = 200, description = "The token as stored", body = PushTokenView),
        (status = 400, response = inline(doc::RegisterRefused)),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 413, response = inline(doc::BodyTooLarge)),
        (status = 503, response = inline(doc::Unavailable)),
    ),
)]
pub async fn register(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Body(body): Body<Map<String, Value>>,
) -> Result<Json<PushTokenView>, ApiError> {
    let body: RegisterToken = object_body(body)?;
    let token = check_token(&body.token)?;
    let platform = check_platform(&body.platform)?;
    let stored = state
        .store
        .user_settings()
        .register_push_token(
            &caller,
            token,
            platform,
            state.edge.max_push_tokens_per_user,
        )
        .await?;
    Ok(Json(PushTokenView::from(&stored)))
}

/// The caller's push tokens, most recently registered first: `{"tokens": [...]}`.
#[utoipa::path(
    get,
    path = "/api/users/me/push-tokens",
    tag = "settings",
    operation_id = "listPushTokens",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's tokens, most recently registered first", body = PushTokenList),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 503, response = inline(doc::Unavailable)),
    ),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
) -> Result<Json<PushTokenList>, ApiError> {
    let tokens = state.store.user_settings().push_tokens(&caller).await?;
    let views: Vec<PushTokenView> = tokens.iter().map(PushTokenView::from).collect();
    Ok(Json(PushTokenList { tokens: views }))
}

/// Removes one of the caller's tokens: 204, or 404 `PUSH_TOKEN_NOT_FOUND` when the caller has
/// no such token (also when it is another user's).
#[utoipa::path(
    delete,
    path = "/api/users/me/push-tokens/{token}",
    tag = "settings",
    operation_id = "removePushToken",
    security(("bearer" = [])),
    params(("token" = String, Path, description = "The token, percent-encoded as one path segment")),
    responses(
        (status = 204, description = "The token is removed"),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 404, response = inline(doc::PushTokenNotFound)),
        (status = 503, response = inline(doc::Unavailable)),
    ),
)]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    let token = check_token(&token).map_err(|_| ApiError::push_token_not_found())?;
    if state
        .store
        .user_settings()
        .remove_push_token(&caller, token)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::push_token_not_found())
    }
}

/// A token of 1–[`MAX_TOKEN_CHARS`] characters without whitespace or control characters, else
/// 400 `INVALID_TOKEN_FORMAT`.
fn check_token(token: &str) -> Result<&str, ApiError> {
    let length = token.chars().count();
    let clean = !token.chars().any(|c| c.is_whitespace() || c.is_control());
    if (1..=MAX_TOKEN_CHARS).contains(&length) && clean {
        Ok(token)
    } else {
        Err(ApiError::bad_request(
            "INVALID_TOKEN_FORMAT",
            format!(
                "token must be 1-{MAX_TOKEN_CHARS} characters without whitespace or control \
                 characters"
            ),
        ))
    }
}

/// One of [`PLATFORMS`], else 400 `INVALID_PLATFORM`.
fn check_platform(platform: &str) -> Result<&str, ApiError> {
    if PLATFORMS.contains(&platform) {
        Ok(platform)
    } else {
        Err(ApiError::bad_request(
            "INVALID_PLATFORM",
            format!("platform must be android, ios or web, not {platform:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_code(token: &str) -> Option<&'static str> {
        check_token(token).err().map(|e| e.code)
    }

    #[test]
    fn tokens_are_checked() {
        assert_eq!(token_code("fcm:APA91b-x_y.z"), None);
        assert_eq!(token_code(&"é".repeat(MAX_TOKEN_CHARS)), None);
        for bad in [
            String::new(),
            "a".repeat(MAX_TOKEN_CHARS + 1),
            "a b".to_owned(),
            "a\tb".to_owned(),
            "ab\n".to_owned(),
            "a\u{0}b".to_owned(),
            "a\u{a0}b".to_owned(),
        ] {
            assert_eq!(token_code(&bad), Some("INVALID_TOKEN_FORMAT"), "{bad:?}");
        }
    }

    #[test]
    fn platforms_are_checked() {
        for ok in PLATFORMS {
            assert!(check_platform(ok).is_ok());
        }
        for bad in ["", "Android", "IOS", "windows"] {
            let code = check_platform(bad).err().map(|e| e.code);
            assert_eq!(code, Some("INVALID_PLATFORM"), "{bad:?}");
        }
    }
}
