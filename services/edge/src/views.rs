//! The JSON shapes of rooms and messages, exactly as `docs/api.md` documents them.

use chat_schemas::RoomKind;
use serde::Serialize;
use time::macros::format_description;
use time::OffsetDateTime;

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
        }
    }
}

/// A history entry as clients see it; `userIds` only on INVITE and LEAVE entries.
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
        }
    }
}

/// `2026-11-25T14:35:50.123Z`: fixed width, UTC, millisecond precision.
pub fn rfc3339_millis(millis: i64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_milliseconds() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_764_081_350_123),
            "2025-11-25T14:35:50.123Z"
        );
    }
}
