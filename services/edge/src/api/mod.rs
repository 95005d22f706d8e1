//! The HTTP API under `/api`, plus health endpoints; `docs/api.md` is its contract.

mod dev_login;
pub mod doc;
#[cfg(test)]
mod doc_tests;
mod edits;
mod members;
mod messages;
mod mutes;
mod presence;
mod push;
mod reactions;
mod rooms;
mod unread;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::Router;
use chat_platform::health::Report;
use chat_schemas::{RoomId, UserId};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::Room;

/// Every route of the edge, with its state.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.edge.max_body_bytes;
    unstated()
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Every route of the edge before it gets its state: the documented ones, the WebSocket (STOMP,
/// `docs/protocol.md`, not HTTP API), and the web client (`docs/web.md`) or the JSON 404 of
/// every other path.
pub fn unstated() -> Router<Arc<AppState>> {
    let (routes, _) = documented().split_for_parts();
    routes
        .route("/ws", get(crate::live::upgrade))
        .fallback(crate::web::fallback)
}

/// The OpenAPI document of every route [`documented`] serves.
pub fn document() -> utoipa::openapi::OpenApi {
    documented().into_openapi()
}

/// The routes of the HTTP API and the health endpoints, each registered with its
/// `#[utoipa::path]` operation, so a route and its documentation are one item.
fn documented() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .routes(routes!(rooms::list, rooms::create))
        .routes(routes!(rooms::show))
        .routes(routes!(messages::history, messages::send))
        .routes(routes!(messages::delete, edits::edit))
        .routes(routes!(reactions::add, reactions::remove))
        .routes(routes!(unread::readers_missing))
        .routes(routes!(presence::show))
        .routes(routes!(members::invite))
        .routes(routes!(members::leave))
        .routes(routes!(mutes::set))
        .routes(routes!(unread::badge))
        .routes(routes!(push::list, push::register))
        .routes(routes!(push::remove))
        .routes(routes!(dev_login::login))
        .routes(routes!(doc::openapi))
        .routes(routes!(healthz))
        .routes(routes!(ready))
}

/// 200 `ok` while the process serves HTTP, whatever its dependencies do (`docs/health.md`).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    operation_id = "healthz",
    responses((status = 200, description = "The process serves HTTP", body = String, content_type = "text/plain")),
)]
async fn healthz() -> &'static str {
    "ok"
}

/// 200 while the edge can carry chat (NATS and Redis answer, not shutting down), 503 otherwise;
/// the body names each dependency's state (`docs/health.md`).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "meta",
    operation_id = "readyz",
    responses(
        (status = 200, description = "`ready`, or `degraded` when only Cassandra is down", body = Report),
        (status = 503, description = "`unavailable`: NATS or Redis is down, or the edge is shutting down", body = Report),
    ),
)]
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
