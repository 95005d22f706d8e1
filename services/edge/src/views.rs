//! The JSON shapes of rooms, messages and push tokens, exactly as `docs/api.md` documents them.

use chat_schemas::view::rfc3339_millis;
use chat_schemas::RoomKind;
use serde::Serialize;

use crate::store::user_settings::PushToken;
use crate::store::{Message, Room};

/// A room as clients see it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    room_id: String,
    #[serde(rename = "type")]
    kind: RoomKind,
    name: Option<String>,
    members: Vec<String>,
    last_message: Option<MessageView>,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    unread_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    message_id: String,
    room_id: String,
    #[serde(rename = "type")]
    kind: String,
    sender_id: Option<String>,
    content: Option<String>,
    deleted: bool,
    sent_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushTokenView {
    token: String,
    platform: String,
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
