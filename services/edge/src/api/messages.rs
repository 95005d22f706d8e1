//! `POST`/`GET /api/rooms/{roomId}/messages`, `DELETE /api/rooms/{roomId}/messages/{messageId}`;
//! the per-message unread endpoint is in `unread`.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chat_schemas::MessageId;
use serde::Deserialize;
use serde_json::{json, Value};

use super::unread::history_views;
use super::{member_room, room_id};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Body, Caller};
use crate::rooms::{delete_chat, send_chat, ChatRequest};
use crate::views::MessageView;

/// Page size when `limit` is not given.
const DEFAULT_LIMIT: usize = 50;
/// Largest accepted `limit`.
const MAX_LIMIT: usize = 100;

/// Sends a CHAT (body: [`ChatRequest`]): 201 with the message, or 200 with the earlier one for
/// a resend.
pub async fn send(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(raw_room): Path<String>,
    Body(body): Body<ChatRequest>,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    let room = room_id(&raw_room)?;
    let sent = send_chat(&state, &caller, room, body).await?;
    let status = if sent.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = MessageView::from(&sent.message).with_reactions(&sent.message, &caller);
    Ok((status, Json(view)))
}

/// Query of `GET /api/rooms/{roomId}/messages`.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    before: Option<String>,
    limit: Option<String>,
}

/// One page of history, newest first, with the cursor of the next older page; CHAT entries carry
/// their `unreadCount`.
pub async fn history(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(raw_room): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("BAD_REQUEST", e.body_text()))?;
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("INVALID_LIMIT", format!("limit must be 1-{MAX_LIMIT}"))
            })?,
    };
    let before = query
        .before
        .as_deref()
        .map(|raw| {
            raw.parse::<MessageId>()
                .map_err(|e| ApiError::bad_request("INVALID_CURSOR", format!("before: {e}")))
        })
        .transpose()?;
    let room = member_room(&state, &caller, room_id(&raw_room)?).await?;
    let before = before.and_then(|id| i64::try_from(id.sequence()).ok());
    let mut messages = state.store.history(room.id, before, limit + 1).await?;
    let next_before = if messages.len() > limit {
        messages.truncate(limit);
        messages.last().map(|m| m.id.to_string())
    } else {
        None
    };
    let views = history_views(&state, room.id, &caller, &messages).await?;
    Ok(Json(
        json!({ "messages": views, "nextBefore": next_before }),
    ))
}

/// Deletes a message for everyone; 200 with its tombstone.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((raw_room, raw_message)): Path<(String, String)>,
) -> Result<Json<MessageView>, ApiError> {
    let room = member_room(&state, &caller, room_id(&raw_room)?).await?;
    let id = raw_message
        .parse::<MessageId>()
        .map_err(|_| ApiError::message_not_found())?;
    let message = delete_chat(&state, &caller, room.id, id).await?;
    Ok(Json(
        MessageView::from(&message).with_reactions(&message, &caller),
    ))
}
