//! `POST /api/rooms`, `GET /api/rooms`, `GET /api/rooms/{roomId}`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chat_read_state::MemberCounts;
use chat_schemas::{ChatEvent, RoomId, RoomKind, UserId};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use utoipa::ToSchema;

use super::doc;
use super::{member_room, room_id, user_ids};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Body, Caller};
use crate::rooms::{await_history, await_projection, change_room, direct_room_id};
use crate::store::Room;
use crate::views::{RoomList, RoomView};

/// Longest group name, in characters.
const MAX_NAME_CHARS: usize = 100;

/// How many rooms of a list are read from Cassandra at once.
const LIST_CONCURRENCY: usize = 32;

/// Body of `POST /api/rooms`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateRoom {
    /// `DIRECT` or `GROUP`.
    #[serde(rename = "type")]
    #[schema(value_type = RoomKind)]
    kind: String,
    /// A group's name, 1-100 characters; none on a DIRECT room.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    /// DIRECT: exactly one other user; GROUP: the first members besides the creator.
    #[serde(default)]
    #[schema(value_type = Vec<UserId>)]
    user_ids: Vec<String>,
}

/// Creates a group, or finds (and, after a LEAVE, restores) the pair's 1:1 room.
#[utoipa::path(
    post,
    path = "/api/rooms",
    tag = "rooms",
    operation_id = "createRoom",
    security(("bearer" = [])),
    request_body = CreateRoom,
    responses(
        (status = 201, description = "A new room", body = RoomView),
        (status = 200, description = "The pair's existing DIRECT room (restored after a LEAVE)", body = RoomView),
        (status = 400, response = inline(doc::CreateRoomRefused)),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 409, response = inline(doc::CreateRoomConflict)),
        (status = 413, response = inline(doc::BodyTooLarge)),
        (status = 422, response = inline(doc::RoomTooLarge)),
        (status = 503, response = inline(doc::WriteUnavailable)),
    ),
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Body(body): Body<CreateRoom>,
) -> Result<(StatusCode, Json<RoomView>), ApiError> {
    let mut invited = user_ids(&body.user_ids)?;
    invited.retain(|u| *u != caller);
    match body.kind.as_str() {
        "DIRECT" => create_direct(&state, caller, invited, body.name).await,
        "GROUP" => create_group(&state, caller, invited, body.name).await,
        other => Err(ApiError::bad_request(
            "INVALID_ROOM_TYPE",
            format!("type must be DIRECT or GROUP, not {other:?}"),
        )),
    }
}

async fn create_direct(
    state: &AppState,
    caller: UserId,
    invited: Vec<UserId>,
    name: Option<String>,
) -> Result<(StatusCode, Json<RoomView>), ApiError> {
    if name.is_some() {
        return Err(ApiError::bad_request(
            "INVALID_NAME",
            "a DIRECT room has no name",
        ));
    }
    let [other] = invited.as_slice() else {
        return Err(ApiError::bad_request(
            "INVALID_MEMBERS",
            "a DIRECT room needs exactly one other user in userIds",
        ));
    };
    let room = direct_room_id(state.edge.direct_room_namespace, &caller, other);
    let pair = [caller.clone(), other.clone()];
    let created = change_room(state, &caller, room, |current| match current {
        None => Ok(Some(ChatEvent::RoomCreated {
            kind: RoomKind::Direct,
            name: None,
            members: pair.to_vec(),
        })),
        Some(room) => {
            let returning: Vec<UserId> = pair
                .iter()
                .filter(|u| !room.has_member(u))
                .cloned()
                .collect();
            Ok((!returning.is_empty()).then_some(ChatEvent::Invite {
                user_ids: returning,
            }))
        }
    })
    .await?;
    let status = match created {
        Some((_, ChatEvent::RoomCreated { .. })) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(read_room(state, room).await?)))
}

async fn create_group(
    state: &AppState,
    caller: UserId,
    invited: Vec<UserId>,
    name: Option<String>,
) -> Result<(StatusCode, Json<RoomView>), ApiError> {
    let name = match name.map(|n| n.trim().to_owned()) {
        Some(n) if n.is_empty() || n.chars().count() > MAX_NAME_CHARS => {
            return Err(ApiError::bad_request(
                "INVALID_NAME",
                format!("name must be 1-{MAX_NAME_CHARS} characters"),
            ))
        }
        other => other,
    };
    let mut members = vec![caller.clone()];
    members.extend(invited);
    if members.len() > state.edge.max_room_size {
        return Err(room_too_large(state.edge.max_room_size));
    }
    let room = RoomId::random();
    change_room(state, &caller, room, |current| match current {
        None => Ok(Some(ChatEvent::RoomCreated {
            kind: RoomKind::Group,
            name: name.clone(),
            members: members.clone(),
        })),
        Some(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "ROOM_EXISTS",
            "room id collision; retry",
        )),
    })
    .await?;
    Ok((StatusCode::CREATED, Json(read_room(state, room).await?)))
}

/// The room as the projection shows it after a write.
pub async fn read_room(state: &AppState, room: RoomId) -> Result<RoomView, ApiError> {
    let current = state
        .store
        .room(room)
        .await?
        .ok_or_else(ApiError::room_not_found)?;
    Ok(RoomView::from(&current))
}

/// 422 `ROOM_TOO_LARGE`.
pub fn room_too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "ROOM_TOO_LARGE",
        format!("a room has at most {max} members"),
    )
}

/// The caller's rooms, most recent activity first, each with the caller's `unreadCount`,
/// `mentionCount` and `muted`.
#[utoipa::path(
    get,
    path = "/api/rooms",
    tag = "rooms",
    operation_id = "listRooms",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's rooms", body = RoomList),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 503, response = inline(doc::Unavailable)),
    ),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
) -> Result<Json<RoomList>, ApiError> {
    await_projection(&state).await;
    let (mut rooms, muted) =
        tokio::try_join!(member_rooms(&state, &caller), muted_rooms(&state, &caller))?;
    let ids: Vec<RoomId> = rooms.iter().map(|room| room.id).collect();
    let counts = unread_by_room(&state, &caller, &ids).await?;
    rooms.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
    let views: Vec<RoomView> = rooms
        .iter()
        .map(|room| room_view(room, &counts, muted.contains(&room.id)))
        .collect();
    Ok(Json(RoomList { rooms: views }))
}

/// One room, to its members, with the caller's `unreadCount`, `mentionCount` and `muted`.
#[utoipa::path(
    get,
    path = "/api/rooms/{roomId}",
    tag = "rooms",
    operation_id = "showRoom",
    security(("bearer" = [])),
    params(("roomId" = uuid::Uuid, Path, description = "The room")),
    responses(
        (status = 200, description = "The room", body = RoomView),
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
) -> Result<Json<RoomView>, ApiError> {
    let id = room_id(&raw_room)?;
    await_history(&state, id, None).await;
    let room = member_room(&state, &caller, id).await?;
    let this = [room.id];
    let (counts, muted) = tokio::try_join!(unread_by_room(&state, &caller, &this), async {
        Ok::<_, ApiError>(
            state
                .store
                .user_settings()
                .is_muted(&caller, room.id)
                .await?,
        )
    })?;
    Ok(Json(room_view(&room, &counts, muted)))
}

/// The rooms `caller` is a member of, in no particular order.
async fn member_rooms(state: &AppState, caller: &UserId) -> Result<Vec<Room>, ApiError> {
    let ids = state.store.user_room_ids(caller).await?;
    let mut rooms: Vec<Room> = futures::stream::iter(ids)
        .map(|id| state.store.room(id))
        .buffer_unordered(LIST_CONCURRENCY)
        .try_filter_map(|room| async move { Ok(room) })
        .try_collect()
        .await?;
    rooms.retain(|room| room.has_member(caller));
    Ok(rooms)
}

/// `caller`'s unread and mention counts in each of `rooms`, in one Redis round trip; rooms
/// with neither are absent.
async fn unread_by_room(
    state: &AppState,
    caller: &UserId,
    rooms: &[RoomId],
) -> Result<HashMap<RoomId, MemberCounts>, ApiError> {
    Ok(state.unread.of_user(caller, rooms).await?)
}

/// The rooms `caller` muted, in one Cassandra partition read.
async fn muted_rooms(state: &AppState, caller: &UserId) -> Result<HashSet<RoomId>, ApiError> {
    Ok(state.store.user_settings().muted_rooms(caller).await?)
}

/// The room as the caller sees it: `unreadCount` and `mentionCount` 0 when `counts` has no
/// entry for it.
fn room_view(room: &Room, counts: &HashMap<RoomId, MemberCounts>, muted: bool) -> RoomView {
    let counts = counts.get(&room.id).copied().unwrap_or_default();
    RoomView::from(room)
        .with_counts(counts.unread, counts.mentions)
        .with_muted(muted)
}
