//! `PUT`/`DELETE /api/rooms/{roomId}/messages/{messageId}/reactions/{emoji}`: a member's
//! reaction to a CHAT, added or taken back; both idempotent.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::unread::room_message;
use super::{doc, member_room, room_id};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Caller;
use crate::message_changes::react;

/// Adds the caller's reaction: 204, also when it was there already.
#[utoipa::path(
    put,
    path = "/api/rooms/{roomId}/messages/{messageId}/reactions/{emoji}",
    tag = "messages",
    operation_id = "addReaction",
    security(("bearer" = [])),
    params(
        ("roomId" = uuid::Uuid, Path, description = "The room"),
        ("messageId" = String, Path, description = "The CHAT: a positive decimal integer", pattern = "^[1-9][0-9]*$"),
        ("emoji" = String, Path, description = "One emoji (one grapheme cluster, at most 16 bytes of UTF-8), URL-encoded"),
    ),
    responses(
        (status = 204, description = "The reaction is as asked (also when it already was)"),
        (status = 400, response = inline(doc::ReactionRefused)),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 403, response = inline(doc::NotAMember)),
        (status = 404, response = inline(doc::MessageOrRoomNotFound)),
        (status = 409, response = inline(doc::ReactionConflict)),
        (status = 503, response = inline(doc::WriteUnavailable)),
    ),
)]
pub async fn add(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((raw_room, raw_message, emoji)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    set(&state, &caller, &raw_room, &raw_message, &emoji, true).await
}

/// Takes the caller's reaction back: 204, also when there was none.
#[utoipa::path(
    delete,
    path = "/api/rooms/{roomId}/messages/{messageId}/reactions/{emoji}",
    tag = "messages",
    operation_id = "removeReaction",
    security(("bearer" = [])),
    params(
        ("roomId" = uuid::Uuid, Path, description = "The room"),
        ("messageId" = String, Path, description = "The CHAT: a positive decimal integer", pattern = "^[1-9][0-9]*$"),
        ("emoji" = String, Path, description = "One emoji (one grapheme cluster, at most 16 bytes of UTF-8), URL-encoded"),
    ),
    responses(
        (status = 204, description = "The reaction is as asked (also when it already was)"),
        (status = 400, response = inline(doc::ReactionRefused)),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 403, response = inline(doc::NotAMember)),
        (status = 404, response = inline(doc::MessageOrRoomNotFound)),
        (status = 409, response = inline(doc::ReactionConflict)),
        (status = 503, response = inline(doc::WriteUnavailable)),
    ),
)]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((raw_room, raw_message, emoji)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    set(&state, &caller, &raw_room, &raw_message, &emoji, false).await
}

async fn set(
    state: &AppState,
    caller: &chat_schemas::UserId,
    raw_room: &str,
    raw_message: &str,
    emoji: &str,
    added: bool,
) -> Result<StatusCode, ApiError> {
    let room = member_room(state, caller, room_id(raw_room)?).await?;
    let message = room_message(state, room.id, raw_message).await?;
    react(state, caller, room.id, &message, emoji, added).await?;
    Ok(StatusCode::NO_CONTENT)
}
