//! `PATCH /api/rooms/{roomId}/messages/{messageId}`: the sender edits a CHAT's content.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::unread::room_message;
use super::{doc, member_room, room_id};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Body, Caller};
use crate::message_changes::edit_chat;
use crate::views::MessageView;

/// Body of `PATCH /api/rooms/{roomId}/messages/{messageId}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EditMessage {
    /// The new content: the rules of sending (not empty nor only whitespace, at most 4000
    /// characters by default).
    #[schema(pattern = "\\S")]
    content: String,
}

/// Edits the caller's CHAT: 200 with the entry as history now shows it.
#[utoipa::path(
    patch,
    path = "/api/rooms/{roomId}/messages/{messageId}",
    tag = "messages",
    operation_id = "editMessage",
    security(("bearer" = [])),
    params(
        ("roomId" = uuid::Uuid, Path, description = "The room"),
        ("messageId" = String, Path, description = "The message: a positive decimal integer", pattern = "^[1-9][0-9]*$"),
    ),
    request_body = EditMessage,
    responses(
        (status = 200, description = "The message as history now shows it", body = MessageView),
        (status = 400, response = inline(doc::EditRefused)),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 403, response = inline(doc::EditForbidden)),
        (status = 404, response = inline(doc::MessageOrRoomNotFound)),
        (status = 409, response = inline(doc::EditConflict)),
        (status = 413, response = inline(doc::SendTooLarge)),
        (status = 503, response = inline(doc::WriteUnavailable)),
    ),
)]
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
