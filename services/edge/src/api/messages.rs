//! `POST`/`GET /api/rooms/{roomId}/messages`, `DELETE /api/rooms/{roomId}/messages/{messageId}`;
//! the per-message unread endpoint is in `unread`.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chat_schemas::MessageId;
use serde::Deserialize;
use utoipa::IntoParams;

use super::unread::history_views;
use super::{doc, member_room, room_id};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Body, Caller};
use crate::rooms::{await_history, delete_chat, send_chat, ChatRequest};
use crate::views::{HistoryPage, MessageView};

/// Page size when `limit` is not given.
const DEFAULT_LIMIT: usize = 50;
/// Largest accepted `limit`.
const MAX_LIMIT: usize = 100;

/// Sends a CHAT (body: [`ChatRequest`]): 201 with the message, or 200 with the earlier one for
/// a resend.
#[utoipa::path(
    post,
    path = "/api/rooms/{roomId}/messages",
    tag = "messages",
    operation_id = "sendMessage",
    security(("bearer" = [])),
    params(("roomId" = uuid::Uuid, Path, description = "The room")),
    request_body = ChatRequest,
    responses(
        (status = 201, description = "The new message", body = MessageView),
        (status = 200, description = "The original message of a resent `clientMessageId`", body = MessageView),
        (status = 400, response = inline(doc::SendRefused)),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 403, response = inline(doc::NotAMember)),
        (status = 404, response = inline(doc::RoomNotFound)),
        (status = 413, response = inline(doc::SendTooLarge)),
        (status = 503, response = inline(doc::WriteUnavailable)),
    ),
)]
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only entries older than this message id (all when absent).
    #[param(pattern = "^[1-9][0-9]*$")]
    before: Option<String>,
    /// Page size, 1-100; 50 when absent.
    #[param(value_type = Option<u8>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// One page of history, newest first, with the cursor of the next older page; CHAT entries carry
/// their `unreadCount`.
#[utoipa::path(
    get,
    path = "/api/rooms/{roomId}/messages",
    tag = "messages",
    operation_id = "history",
    security(("bearer" = [])),
    params(("roomId" = uuid::Uuid, Path, description = "The room"), HistoryQuery),
    responses(
        (status = 200, description = "One page of history, newest first", body = HistoryPage),
        (status = 400, response = inline(doc::HistoryRefused)),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 403, response = inline(doc::NotAMember)),
        (status = 404, response = inline(doc::RoomNotFound)),
        (status = 503, response = inline(doc::Unavailable)),
    ),
)]
pub async fn history(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(raw_room): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<HistoryPage>, ApiError> {
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
    await_history(&state, room.id, before.map(|id| id.sequence())).await;
    let before = before.and_then(|id| i64::try_from(id.sequence()).ok());
    let mut messages = state.store.history(room.id, before, limit + 1).await?;
    let next_before = if messages.len() > limit {
        messages.truncate(limit);
        messages.last().map(|m| m.id.to_string())
    } else {
        None
    };
    let views = history_views(&state, room.id, &caller, &messages).await?;
    Ok(Json(HistoryPage {
        messages: views,
        next_before,
    }))
}

/// Deletes a message for everyone; 200 with its tombstone.
#[utoipa::path(
    delete,
    path = "/api/rooms/{roomId}/messages/{messageId}",
    tag = "messages",
    operation_id = "deleteMessage",
    security(("bearer" = [])),
    params(
        ("roomId" = uuid::Uuid, Path, description = "The room"),
        ("messageId" = String, Path, description = "The message: a positive decimal integer", pattern = "^[1-9][0-9]*$"),
    ),
    responses(
        (status = 200, description = "The tombstone (also when it was deleted before)", body = MessageView),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 403, response = inline(doc::DeleteForbidden)),
        (status = 404, response = inline(doc::MessageOrRoomNotFound)),
        (status = 409, response = inline(doc::NotDeletable)),
        (status = 503, response = inline(doc::WriteUnavailable)),
    ),
)]
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
