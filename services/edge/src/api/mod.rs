//! The HTTP API under `/api`, plus health endpoints; `docs/api.md` is its contract.

mod dev_login;
mod edits;
mod members;
mod messages;
mod mutes;
mod push;
mod reactions;
mod rooms;
mod unread;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{delete, get, post, put};
use axum::Router;
use chat_platform::health::Report;
use chat_schemas::{RoomId, UserId};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::Room;

/// Every route of the edge.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.edge.max_body_bytes;
    let routes = Router::new()
        .route("/api/rooms", get(rooms::list).post(rooms::create))
        .route("/api/rooms/{room_id}", get(rooms::show))
        .route(
            "/api/rooms/{room_id}/messages",
            get(messages::history).post(messages::send),
        )
        .route(
            "/api/rooms/{room_id}/messages/{message_id}",
            delete(messages::delete).patch(edits::edit),
        )
        .route(
            "/api/rooms/{room_id}/messages/{message_id}/reactions/{emoji}",
            put(reactions::add).delete(reactions::remove),
        )
        .route(
            "/api/rooms/{room_id}/messages/{message_id}/unread",
            get(unread::readers_missing),
        )
        .route("/api/rooms/{room_id}/members", post(members::invite))
        .route("/api/rooms/{room_id}/members/me", delete(members::leave))
        .route("/api/rooms/{room_id}/mute", put(mutes::set))
        .route("/api/users/me/unread", get(unread::badge))
        .route(
            "/api/users/me/push-tokens",
            get(push::list).put(push::register),
        )
        .route("/api/users/me/push-tokens/{token}", delete(push::remove))
        .route("/ws", get(crate::live::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready));
    // Off by default: without the route the path is an unknown endpoint like any other.
    let routes = if state.edge.dev_login {
        routes.route("/api/dev/login", post(dev_login::login))
    } else {
        routes
    };
    routes
        .fallback(crate::web::fallback)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// 200 while the edge can carry chat (NATS and Redis answer, not shutting down), 503 otherwise;
/// the body names each dependency's state (`docs/health.md`).
async fn ready(State(state): State<Arc<AppState>>) -> Report {
    state.readiness.report().await
}

/// A room id from the path; one that is not even a UUID names no room.
fn room_id(raw: &str) -> Result<RoomId, ApiError> {
    raw.parse().map_err(|_| ApiError::room_not_found())
}

/// The room, if it exists and `caller` is a member: 404 `ROOM_NOT_FOUND` or 403 `NOT_A_MEMBER`.
async fn member_room(state: &AppState, caller: &UserId, room: RoomId) -> Result<Room, ApiError> {
    let room = state
        .store
        .room(room)
        .await?
        .ok_or_else(ApiError::room_not_found)?;
    if room.has_member(caller) {
        Ok(room)
    } else {
        Err(ApiError::not_a_member())
    }
}

/// A body that must be a JSON object of `T`'s shape; anything else (an array, even one whose
/// elements would fill `T`'s fields in order) is 400 `BAD_REQUEST`.
fn object_body<T: DeserializeOwned>(body: Map<String, Value>) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(body))
        .map_err(|e| ApiError::bad_request("BAD_REQUEST", format!("invalid body: {e}")))
}

/// Parses and de-duplicates user ids from a request body (400 `INVALID_USER_ID`).
fn user_ids(raw: &[String]) -> Result<Vec<UserId>, ApiError> {
    let mut ids = Vec::with_capacity(raw.len());
    for s in raw {
        let id = UserId::parse(s)
            .map_err(|e| ApiError::bad_request("INVALID_USER_ID", format!("{s:?}: {e}")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}
