//! `PUT /api/rooms/{roomId}/mute`: the caller mutes or unmutes a room's push notifications.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{member_room, object_body, room_id};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Body, Caller};

/// Body of `PUT /api/rooms/{roomId}/mute`.
#[derive(Debug, Deserialize)]
pub struct SetMute {
    muted: bool,
}

/// Mutes or unmutes the room for the caller, a member: 200 with `{"roomId", "muted"}`.
pub async fn set(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(raw_room): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let body: SetMute = object_body(body)?;
    let room = member_room(&state, &caller, room_id(&raw_room)?).await?;
    state
        .store
        .user_settings()
        .set_muted(&caller, room.id, body.muted)
        .await?;
    Ok(Json(
        json!({ "roomId": room.id.to_string(), "muted": body.muted }),
    ))
}
