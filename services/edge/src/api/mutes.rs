//! `PUT /api/rooms/{roomId}/mute`: the caller mutes or unmutes a room's push notifications.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{doc, member_room, object_body, room_id};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Body, Caller};
use crate::views::MuteState;

/// Body of `PUT /api/rooms/{roomId}/mute`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetMute {
    /// `true` mutes the room's push notifications for the caller, `false` unmutes them.
    muted: bool,
}

/// Mutes or unmutes the room for the caller, a member: 200 with `{"roomId", "muted"}`.
#[utoipa::path(
    put,
    path = "/api/rooms/{roomId}/mute",
    tag = "settings",
    operation_id = "setMute",
    security(("bearer" = [])),
    params(("roomId" = uuid::Uuid, Path, description = "The room")),
    request_body = SetMute,
    responses(
        (status = 200, description = "The caller's mute of the room, as now stored", body = MuteState),
        (status = 400, response = inline(doc::BadBody)),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 403, response = inline(doc::NotAMember)),
        (status = 404, response = inline(doc::RoomNotFound)),
        (status = 413, response = inline(doc::BodyTooLarge)),
        (status = 503, response = inline(doc::Unavailable)),
    ),
)]
pub async fn set(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(raw_room): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Result<Json<MuteState>, ApiError> {
    let body: SetMute = object_body(body)?;
    let room = member_room(&state, &caller, room_id(&raw_room)?).await?;
    state
        .store
        .user_settings()
        .set_muted(&caller, room.id, body.muted)
        .await?;
    Ok(Json(MuteState {
        room_id: room.id.to_string(),
        muted: body.muted,
    }))
}
