//! The OpenAPI 3.1 document of the HTTP API, served at `GET /api/openapi.json`.
//!
//! Every operation in it comes from a handler's `#[utoipa::path]`, registered together with its
//! route (see [`super::documented`]), and every body schema from the type the handler returns, so
//! the document and the router cannot drift apart. The error answers shared by many operations
//! are here; their examples are built by the same [`ApiError`] constructors the handlers use.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::Json;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr, Type};
use utoipa::{Modify, ToResponse};

use crate::auth::AuthError;
use crate::error::{ApiError, ErrorBody, ErrorDetail};

/// The parts of the document that no handler carries: what the API is, its security scheme, and
/// the answer of a path that names no endpoint.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "chat edge HTTP API",
        description = "The edge's HTTP API; docs/api.md is its contract. Every `/api/*` call \
                       except this document carries `Authorization: Bearer <JWT>`. A path that \
                       names no endpoint answers 404 with the `NotFound` response."
    ),
    modifiers(&BearerJwt),
    components(schemas(ErrorBody, ErrorDetail), responses(NotFound)),
    tags(
        (name = "rooms", description = "Rooms and their membership"),
        (name = "messages", description = "History, sending and deleting"),
        (name = "unread", description = "Unread counts, from the receipts worker's state"),
        (name = "settings", description = "Push tokens and room mutes"),
        (name = "meta", description = "This document and the health endpoints"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer JWT scheme (HS256 or RS256, see docs/api.md) that authenticated operations
/// require as `security(("bearer" = []))`.
struct BearerJwt;

impl Modify for BearerJwt {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document, built once from the handlers' annotations.
static DOCUMENT: LazyLock<OpenApi> = LazyLock::new(super::document);

/// This document: the whole HTTP API as OpenAPI 3.1.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of the HTTP API", body = Object)),
)]
pub async fn openapi() -> Json<&'static OpenApi> {
    Json(&DOCUMENT)
}

/// An error answer whose body is the `Error` schema, with one named example per code in
/// `errors`; 401 answers also document their `WWW-Authenticate: Bearer` header.
pub fn error_response(description: &str, errors: &[ApiError]) -> RefOr<Response> {
    let examples = errors.iter().map(|error| {
        let value = serde_json::to_value(error.body()).unwrap_or_default();
        (error.code, ExampleBuilder::new().value(Some(value)).build())
    });
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Error")))
        .examples_from_iter(examples)
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content);
    if errors.iter().any(|e| e.status == StatusCode::UNAUTHORIZED) {
        let header = HeaderBuilder::new()
            .schema(utoipa::openapi::ObjectBuilder::new().schema_type(Type::String))
            .description(Some("`Bearer`"))
            .build();
        response = response.header("WWW-Authenticate", header);
    }
    RefOr::T(response.build())
}

/// Declares a response type whose answer is [`error_response`] of a description and errors.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident: $description:expr => [$($error:expr),+ $(,)?];)+) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl ToResponse<'static> for $name {
                fn response() -> (&'static str, RefOr<Response>) {
                    (stringify!($name), error_response($description, &[$($error),+]))
                }
            }
        )+
    };
}

/// 400 for a body that is not JSON of the documented shape.
fn bad_body() -> ApiError {
    ApiError::bad_request("BAD_REQUEST", "invalid body: missing field `content`")
}

/// 503 for a write stored in the log that the projector has not applied in time.
fn not_yet_visible() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "NOT_YET_VISIBLE",
        "not visible within 5000 ms: the write is stored but not yet readable; retry shortly",
    )
}

/// 503 for NATS, Cassandra or Redis failing (built without [`ApiError::unavailable`], which
/// logs a failure).
fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "the message store is unavailable, retry later",
    )
}

/// 409 for a membership change that lost 20 races in a row.
fn room_busy() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "ROOM_BUSY",
        "the room kept changing concurrently; retry",
    )
}

error_responses! {
    /// 401: every authenticated operation.
    Unauthorized: "No token, or one that is malformed, wrongly signed or expired" => [
        AuthError::Missing.into(),
        AuthError::Invalid("InvalidSignature".into()).into(),
        AuthError::Expired.into(),
    ];
    /// 503 of reads: a server the edge needs failed.
    Unavailable: "NATS, Cassandra or Redis failed; nothing was acknowledged" => [unavailable()];
    /// 503 of writes, which also wait for the projector (read-your-writes).
    WriteUnavailable: "A server failed (nothing acknowledged), or the write is stored but the \
                       projector did not apply it in time (resending is safe)" => [
        unavailable(),
        not_yet_visible(),
    ];
    /// 413 of operations with a body.
    BodyTooLarge: "The request body is over the limit (default 64 KiB)" => [
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_LARGE", "request body is too large"),
    ];
    /// 400 of operations whose body has no further checks.
    BadBody: "The body is not JSON of the documented shape" => [bad_body()];
    /// 404 of operations on a room.
    RoomNotFound: "No such room, or a room id that is not a UUID" => [ApiError::room_not_found()];
    /// 403 of operations on a room.
    NotAMember: "The room exists and the caller is not in it" => [ApiError::not_a_member()];
    /// 409 of membership changes.
    RoomBusy: "Membership kept changing concurrently for 20 attempts; retry" => [room_busy()];
    /// 404 of a path that names no endpoint (no operation: the router's fallback).
    NotFound: "No such endpoint" => [
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint"),
    ];
    /// 400 of `POST /api/rooms`.
    CreateRoomRefused: "The body is not a valid room" => [
        bad_body(),
        ApiError::bad_request("INVALID_ROOM_TYPE", "type must be DIRECT or GROUP, not \"PAIR\""),
        ApiError::bad_request("INVALID_MEMBERS", "a DIRECT room needs exactly one other user in userIds"),
        ApiError::bad_request("INVALID_USER_ID", "\"b b\": invalid user id"),
        ApiError::bad_request("INVALID_NAME", "name must be 1-100 characters"),
    ];
    /// 409 of `POST /api/rooms`.
    CreateRoomConflict: "Membership kept changing concurrently, or a new group's random id was \
                         taken; retry" => [
        room_busy(),
        ApiError::new(StatusCode::CONFLICT, "ROOM_EXISTS", "room id collision; retry"),
    ];
    /// 422 of operations that add members.
    RoomTooLarge: "The room would have more members than the cap (default 10000)" => [
        super::rooms::room_too_large(10_000),
    ];
    /// 400 of `POST /api/rooms/{roomId}/messages`.
    SendRefused: "The body is not a valid message" => [
        bad_body(),
        ApiError::bad_request("EMPTY_CONTENT", "content must not be empty"),
        ApiError::bad_request("INVALID_CLIENT_MESSAGE_ID", "clientMessageId must be 1-64 printable characters"),
        ApiError::bad_request("INVALID_REPLY", "replyTo 7 is not a chat message of this room"),
        ApiError::bad_request("INVALID_MENTIONS", "carol is not a member of this room"),
    ];
    /// 400 of `PATCH /api/rooms/{roomId}/messages/{messageId}`.
    EditRefused: "The body is not a valid edit" => [
        bad_body(),
        ApiError::bad_request("EMPTY_CONTENT", "content must not be empty"),
    ];
    /// 403 of `PATCH /api/rooms/{roomId}/messages/{messageId}`.
    EditForbidden: "The caller is not in the room, or did not send the message" => [
        ApiError::not_a_member(),
        ApiError::new(StatusCode::FORBIDDEN, "NOT_THE_SENDER", "only the sender can edit a message"),
    ];
    /// 409 of `PATCH /api/rooms/{roomId}/messages/{messageId}`.
    EditConflict: "The entry is an INVITE or LEAVE, the message is deleted, or it was sent more \
                   than 24 hours ago" => [
        ApiError::new(StatusCode::CONFLICT, "NOT_EDITABLE", "only chat messages can be edited"),
        ApiError::new(StatusCode::CONFLICT, "MESSAGE_DELETED", "the message was deleted"),
        ApiError::new(StatusCode::CONFLICT, "EDIT_WINDOW_CLOSED", "a message can be edited within 24 hours of sending"),
    ];
    /// 400 of the reaction operations.
    ReactionRefused: "The emoji is not one grapheme cluster holding an emoji, of at most 16 \
                      bytes" => [
        ApiError::bad_request("INVALID_REACTION", "a reaction is one emoji of at most 16 bytes"),
    ];
    /// 409 of the reaction operations.
    ReactionConflict: "The message is deleted" => [
        ApiError::new(StatusCode::CONFLICT, "MESSAGE_DELETED", "the message was deleted"),
    ];
    /// 400 of `POST /api/dev/login`.
    DevLoginRefused: "The body has no string `userId`, or it is not a valid user id" => [
        ApiError::bad_request("BAD_REQUEST", "invalid body: missing field `userId`"),
        ApiError::bad_request("INVALID_USER_ID", "\"b b\": invalid user id"),
    ];
    /// 413 of `POST /api/rooms/{roomId}/messages`.
    SendTooLarge: "The content is over the limit (default 4000 characters), or the body is \
                   (default 64 KiB)" => [
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "CONTENT_TOO_LARGE", "content is limited to 4000 characters"),
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_LARGE", "request body is too large"),
    ];
    /// 400 of `GET /api/rooms/{roomId}/messages`.
    HistoryRefused: "`before` is not a message id, or `limit` is not an integer 1-100" => [
        ApiError::bad_request("BAD_REQUEST", "Failed to deserialize query string"),
        ApiError::bad_request("INVALID_CURSOR", "before: not a message id"),
        ApiError::bad_request("INVALID_LIMIT", "limit must be 1-100"),
    ];
    /// 404 of operations on one message.
    MessageOrRoomNotFound: "No such room (or not a UUID), or no such message in it (or not a \
                            positive decimal integer)" => [
        ApiError::room_not_found(),
        ApiError::message_not_found(),
    ];
    /// 403 of `DELETE /api/rooms/{roomId}/messages/{messageId}`.
    DeleteForbidden: "The caller is not in the room, or did not send the message" => [
        ApiError::not_a_member(),
        ApiError::new(StatusCode::FORBIDDEN, "NOT_THE_SENDER", "only the sender can delete a message"),
    ];
    /// 409 of `DELETE /api/rooms/{roomId}/messages/{messageId}`.
    NotDeletable: "The entry is an INVITE or LEAVE" => [
        ApiError::new(StatusCode::CONFLICT, "NOT_DELETABLE", "only chat messages can be deleted"),
    ];
    /// 400 of `POST /api/rooms/{roomId}/members`.
    InviteRefused: "The body is not a valid invitation" => [
        bad_body(),
        ApiError::bad_request("INVALID_USER_ID", "\"b b\": invalid user id"),
        ApiError::bad_request("INVALID_MEMBERS", "userIds must name at least one user"),
    ];
    /// 409 of `POST /api/rooms/{roomId}/members`.
    InviteConflict: "The room is DIRECT, or membership kept changing concurrently" => [
        ApiError::new(
            StatusCode::CONFLICT,
            "DIRECT_ROOM",
            "a DIRECT room has exactly two members; create a GROUP to chat with more",
        ),
        room_busy(),
    ];
    /// 400 of `PUT /api/users/me/push-tokens`.
    RegisterRefused: "The body is not a valid push token registration" => [
        bad_body(),
        ApiError::bad_request("INVALID_TOKEN_FORMAT", "token must be 1-4096 characters without whitespace or control characters"),
        ApiError::bad_request("INVALID_PLATFORM", "platform must be android, ios or web, not \"windows\""),
    ];
    /// 404 of `DELETE /api/users/me/push-tokens/{token}`.
    PushTokenNotFound: "The caller has no such token (unknown, removed, malformed or another \
                        user's)" => [ApiError::push_token_not_found()];
}
