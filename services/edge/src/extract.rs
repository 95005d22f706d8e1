//! Request extractors that fail with the API's JSON errors instead of axum's plain text.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use chat_schemas::UserId;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::ApiError;

/// The authenticated caller, from `Authorization: Bearer <JWT>`.
pub struct Caller(pub UserId);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or_default());
        Ok(Self(state.auth.verify_header(header)?))
    }
}

/// A JSON body; malformed JSON is 400 `BAD_REQUEST`, an oversize body 413 `BODY_TOO_LARGE`.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_error(&rejection)),
        }
    }
}

fn json_error(rejection: &JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BODY_TOO_LARGE",
            "request body is too large",
        )
    } else {
        ApiError::bad_request("BAD_REQUEST", rejection.body_text())
    }
}
