//! `POST /api/rooms/{roomId}/members` (INVITE) and `DELETE /api/rooms/{roomId}/members/me` (LEAVE).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chat_schemas::{ChatEvent, RoomKind, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

use super::doc;
use super::rooms::{read_room, room_too_large};
use super::{room_id, user_ids};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Body, Caller};
use crate::rooms::change_room;
use crate::store::Room;
use crate::views::RoomView;

/// Body of `POST /api/rooms/{roomId}/members`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Invite {
    /// Who to invite; users already in the room are skipped.
    #[schema(value_type = Vec<UserId>)]
    user_ids: Vec<String>,
}

/// The checks every membership change makes on the room it changes.
fn require_member(room: Option<&Room>, caller: &UserId) -> Result<Room, ApiError> {
    let room = room.ok_or_else(ApiError::room_not_found)?;
    if room.has_member(caller) {
        Ok(room.clone())
    } else {
        Err(ApiError::not_a_member())
    }
}

/// Invites users into a group; 200 with the room. Users already in it are skipped.
#[utoipa::path(
    post,
    path = "/api/rooms/{roomId}/members",
    tag = "rooms",
    operation_id = "invite",
    security(("bearer" = [])),
    params(("roomId" = uuid::Uuid, Path, description = "The group")),
    request_body = Invite,
    responses(
        (status = 200, description = "The room, with the new members", body = RoomView),
        (status = 400, response = inline(doc::InviteRefused)),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 403, response = inline(doc::NotAMember)),
        (status = 404, response = inline(doc::RoomNotFound)),
        (status = 409, response = inline(doc::InviteConflict)),
        (status = 413, response = inline(doc::BodyTooLarge)),
        (status = 422, response = inline(doc::RoomTooLarge)),
        (status = 503, response = inline(doc::WriteUnavailable)),
    ),
)]
pub async fn invite(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(raw_room): Path<String>,
    Body(body): Body<Invite>,
) -> Result<Json<RoomView>, ApiError> {
    let room = room_id(&raw_room)?;
    let invited = user_ids(&body.user_ids)?;
    if invited.is_empty() {
        return Err(ApiError::bad_request(
            "INVALID_MEMBERS",
            "userIds must name at least one user",
        ));
    }
    let max = state.edge.max_room_size;
    change_room(&state, &caller, room, |current| {
        let room = require_member(current, &caller)?;
        if room.kind == RoomKind::Direct {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "DIRECT_ROOM",
                "a DIRECT room has exactly two members; create a GROUP to chat with more",
            ));
        }
        let new: Vec<UserId> = invited
            .iter()
            .filter(|u| !room.has_member(u))
            .cloned()
            .collect();
        if room.members.len() + new.len() > max {
            return Err(room_too_large(max));
        }
        Ok((!new.is_empty()).then_some(ChatEvent::Invite { user_ids: new }))
    })
    .await?;
    Ok(Json(read_room(&state, room).await?))
}

/// The caller quits the room; 204.
#[utoipa::path(
    delete,
    path = "/api/rooms/{roomId}/members/me",
    tag = "rooms",
    operation_id = "leave",
    security(("bearer" = [])),
    params(("roomId" = uuid::Uuid, Path, description = "The room")),
    responses(
        (status = 204, description = "The caller left the room"),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 403, response = inline(doc::NotAMember)),
        (status = 404, response = inline(doc::RoomNotFound)),
        (status = 409, response = inline(doc::RoomBusy)),
        (status = 503, response = inline(doc::WriteUnavailable)),
    ),
)]
pub async fn leave(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(raw_room): Path<String>,
) -> Result<StatusCode, ApiError> {
    let room = room_id(&raw_room)?;
    change_room(&state, &caller, room, |current| {
        require_member(current, &caller)?;
        Ok(Some(ChatEvent::Leave {
            user_id: caller.clone(),
            read_count: 0,
        }))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
