//! `PUT`/`DELETE /api/rooms/{roomId}/messages/{messageId}/reactions/{emoji}`: a member's
//! reaction to a CHAT, added or taken back; both idempotent.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::unread::room_message;
use super::{member_room, room_id};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Caller;
use crate::message_changes::react;

/// Adds the caller's reaction: 204, also when it was there already.
pub async fn add(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((raw_room, raw_message, emoji)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    set(&state, &caller, &raw_room, &raw_message, &emoji, true).await
}

/// Takes the caller's reaction back: 204, also when there was none.
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
