//! `PATCH /api/rooms/{roomId}/messages/{messageId}`: the sender edits a CHAT's content.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;

use super::unread::room_message;
use super::{member_room, room_id};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Body, Caller};
use crate::message_changes::edit_chat;
use crate::views::MessageView;

/// Body of `PATCH /api/rooms/{roomId}/messages/{messageId}`.
#[derive(Debug, Deserialize)]
pub struct EditMessage {
    content: String,
}

/// Edits the caller's CHAT: 200 with the entry as history now shows it.
pub async fn edit(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((raw_room, raw_message)): Path<(String, String)>,
    Body(body): Body<EditMessage>,
) -> Result<Json<MessageView>, ApiError> {
    let room = member_room(&state, &caller, room_id(&raw_room)?).await?;
    let message = room_message(&state, room.id, &raw_message).await?;
    let edited = edit_chat(&state, &caller, room.id, message, body.content).await?;
    Ok(Json(
        MessageView::from(&edited).with_reactions(&edited, &caller),
    ))
}
