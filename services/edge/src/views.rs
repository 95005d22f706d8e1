//! The JSON shapes of rooms, messages and push tokens, exactly as `docs/api.md` documents them.
//! Each derives its OpenAPI schema, so the served document (`/api/openapi.json`) is these types.

use chat_schemas::view::rfc3339_millis;
use chat_schemas::RoomKind;
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::user_settings::PushToken;
use crate::store::{Message, Room};

/// A room as clients see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Room)]
pub struct RoomView {
    #[schema(format = Uuid)]
    room_id: String,
    #[serde(rename = "type")]
    kind: RoomKind,
    /// `null` for DIRECT rooms.
    name: Option<String>,
    /// Sorted.
    members: Vec<String>,
    /// The latest CHAT (a deleted one as its tombstone), without `unreadCount`.
    last_message: Option<MessageView>,
    /// The latest activity: creation, CHAT, INVITE, LEAVE.
    #[schema(format = DateTime)]
    updated_at: String,
    /// The caller's unread messages in the room; only in `GET /api/rooms` and
    /// `GET /api/rooms/{roomId}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    unread_count: Option<u64>,
    /// Whether the caller muted the room's push notifications; only in `GET /api/rooms` and
    /// `GET /api/rooms/{roomId}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    muted: Option<bool>,
}

impl RoomView {
    /// The same room with the caller's `unreadCount` in it.
    pub fn with_unread_count(mut self, count: u64) -> Self {
        self.unread_count = Some(count);
        self
    }

    /// The same room with `muted`: whether the caller muted its push notifications.
    pub fn with_muted(mut self, muted: bool) -> Self {
        self.muted = Some(muted);
        self
    }
}

impl From<&Room> for RoomView {
    fn from(room: &Room) -> Self {
        Self {
            room_id: room.id.to_string(),
            kind: room.kind,
            name: room.name.clone(),
            members: room.members.iter().cloned().collect(),
            last_message: room.last_message.as_ref().map(MessageView::from),
            updated_at: rfc3339_millis(room.updated_at),
            unread_count: None,
            muted: None,
        }
    }
}

/// A history entry as clients see it; `userIds` only on INVITE and LEAVE entries, `unreadCount`
/// only on CHAT entries of a history page.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Message)]
pub struct MessageView {
    /// The event's sequence number in the log, in decimal.
    #[schema(pattern = "^[1-9][0-9]*$")]
    message_id: String,
    #[schema(format = Uuid)]
    room_id: String,
    /// `CHAT`, `INVITE` or `LEAVE`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(CHAT|INVITE|LEAVE)$")]
    kind: String,
    /// The sender (CHAT), inviter (INVITE) or leaver (LEAVE).
    sender_id: Option<String>,
    /// `null` for a tombstone and for INVITE and LEAVE entries.
    content: Option<String>,
    deleted: bool,
    #[schema(format = DateTime)]
    sent_at: String,
    /// Who was invited or who left; only on INVITE and LEAVE entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    user_ids: Option<Vec<String>>,
    /// Only when the sender gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    client_message_id: Option<String>,
    /// How many members have not read it; only on the CHAT entries of a history page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    unread_count: Option<u64>,
}

impl MessageView {
    /// The same entry with its `unreadCount`: how many members have not read it.
    pub fn with_unread_count(mut self, count: u64) -> Self {
        self.unread_count = Some(count);
        self
    }
}

impl From<&Message> for MessageView {
    fn from(message: &Message) -> Self {
        let system = message.kind != "CHAT";
        Self {
            message_id: message.id.to_string(),
            room_id: message.room_id.to_string(),
            kind: message.kind.clone(),
            sender_id: message.sender_id.clone(),
            content: if message.deleted || system {
                None
            } else {
                message.content.clone()
            },
            deleted: message.deleted,
            sent_at: rfc3339_millis(message.sent_at),
            user_ids: system.then(|| message.user_ids.clone()),
            client_message_id: message.client_message_id.clone(),
            unread_count: None,
        }
    }
}

/// A push token as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PushToken)]
pub struct PushTokenView {
    /// The device token exactly as registered.
    token: String,
    /// `android`, `ios` or `web`.
    #[schema(pattern = "^(android|ios|web)$")]
    platform: String,
    /// When the caller last registered it.
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<&PushToken> for PushTokenView {
    fn from(token: &PushToken) -> Self {
        Self {
            token: token.token.clone(),
            platform: token.platform.clone(),
            updated_at: rfc3339_millis(token.updated_at),
        }
    }
}

/// `GET /api/rooms`: the caller's rooms, most recent activity first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomList {
    /// Each with the caller's `unreadCount` and `muted`.
    pub rooms: Vec<RoomView>,
}

/// `GET /api/rooms/{roomId}/messages`: one page of history, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    /// CHAT entries carry their `unreadCount`.
    pub messages: Vec<MessageView>,
    /// The cursor of the next older page, `null` when this page reaches the start of the room.
    #[schema(pattern = "^[1-9][0-9]*$")]
    pub next_before: Option<String>,
}

/// `GET /api/rooms/{roomId}/messages/{messageId}/unread`: who has not read the message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnreadUsers {
    /// Sorted by byte order.
    pub user_ids: Vec<String>,
}

/// `GET /api/users/me/unread`: the caller's total badge.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Badge {
    /// The sum of the caller's `unreadCount` over all their rooms.
    pub unread_count: u64,
}

/// `PUT /api/rooms/{roomId}/mute`: the caller's mute of the room, as now stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MuteState {
    /// The room.
    #[schema(format = Uuid)]
    pub room_id: String,
    /// Whether the caller gets no push notifications for it.
    pub muted: bool,
}

/// `GET /api/users/me/push-tokens`: the caller's tokens, most recently registered first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushTokenList {
    /// `[]` when none.
    pub tokens: Vec<PushTokenView>,
}
