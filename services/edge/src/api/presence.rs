//! Who is in a room now: `GET /api/rooms/{roomId}/presence`, the snapshot a client starts from
//! before it follows INFO and OUT live (`docs/api.md`, `docs/protocol.md`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;

use super::{doc, member_room, room_id};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Caller;
use crate::views::PresenceView;

/// The members who have the room open on any device, to members, with the log position the
/// snapshot holds through, so that INFO and OUT after it can be applied on top without a gap.
#[utoipa::path(
    get,
    path = "/api/rooms/{roomId}/presence",
    tag = "rooms",
    operation_id = "presence",
    security(("bearer" = [])),
    params(("roomId" = uuid::Uuid, Path, description = "The room")),
    responses(
        (status = 200, description = "Who has the room open now", body = PresenceView),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 403, response = inline(doc::NotAMember)),
        (status = 404, response = inline(doc::RoomNotFound)),
        (status = 503, response = inline(doc::Unavailable)),
    ),
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(raw_room): Path<String>,
) -> Result<Json<PresenceView>, ApiError> {
    let room = member_room(&state, &caller, room_id(&raw_room)?).await?;
    let present = state.unread.present(&room.id).await?;
    Ok(Json(PresenceView {
        room_id: room.id.to_string(),
        user_ids: present.users,
        as_of: present.as_of.to_string(),
    }))
}
