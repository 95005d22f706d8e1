//! Stored events as clients receive them in MESSAGE frames (`docs/protocol.md`).

use chat_schemas::view::{client_json, rfc3339_millis};
use chat_schemas::{ChatEvent, Envelope, UserId};
use serde_json::json;

use crate::store::Message;

/// A stored room event, ready to deliver: its log position and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomEvent {
    /// Stream sequence: the event's `messageId`.
    pub seq: u64,
    /// The room's previous stored event (0 when unknown); a different value than what a
    /// subscription delivered last means it missed something.
    pub previous: u64,
    /// For a LEAVE, who left: that user's subscriptions end with it.
    pub leaver: Option<UserId>,
    /// The encoded JSON body.
    pub body: String,
}

/// A [`RoomEvent`] from a stored envelope, or `None` for events clients never see; a CHAT
/// carries `unread` as its `unreadCount`.
pub fn room_event(
    seq: u64,
    previous: u64,
    envelope: &Envelope,
    unread: Option<u64>,
) -> Option<RoomEvent> {
    let mut value = client_json(seq, envelope)?;
    if let (ChatEvent::Chat { .. }, Some(count), Some(map)) =
        (&envelope.event, unread, value.as_object_mut())
    {
        map.insert("unreadCount".into(), count.into());
    }
    let leaver = match &envelope.event {
        ChatEvent::Leave { user_id, .. } => Some(user_id.clone()),
        _ => None,
    };
    Some(RoomEvent {
        seq,
        previous,
        leaver,
        body: value.to_string(),
    })
}

/// A history entry from the projection as the room event clients would have received live.
///
/// Used to resume a client past the log's retention. DELETE events are not kept as entries: a
/// deleted CHAT comes as its tombstone, `content` null and `deleted` true. A CHAT carries
/// `unread` as its `unreadCount`.
pub fn from_history(message: &Message, unread: u64) -> RoomEvent {
    let room_id = message.room_id.to_string();
    let message_id = message.id.to_string();
    let sender = message.sender_id.as_deref().unwrap_or_default();
    let (kind, value) = match message.kind.as_str() {
        "INVITE" => (
            "INVITE",
            json!({"type": "INVITE", "roomId": room_id, "messageId": message_id,
                   "inviterId": sender, "userIds": message.user_ids}),
        ),
        "LEAVE" => (
            "LEAVE",
            json!({"type": "LEAVE", "roomId": room_id, "messageId": message_id, "userId": sender}),
        ),
        _ => {
            let mut chat = json!({
                "type": "CHAT",
                "roomId": room_id,
                "messageId": message_id,
                "senderId": sender,
                "content": message.content,
                "sentAt": rfc3339_millis(message.sent_at),
            });
            if let Some(map) = chat.as_object_mut() {
                if let Some(id) = &message.client_message_id {
                    map.insert("clientMessageId".into(), id.clone().into());
                }
                if message.deleted {
                    map.insert("deleted".into(), true.into());
                }
                map.insert("unreadCount".into(), unread.into());
            }
            ("CHAT", chat)
        }
    };
    RoomEvent {
        seq: u64::try_from(message.id).unwrap_or_default(),
        previous: 0,
        leaver: (kind == "LEAVE")
            .then(|| UserId::parse(sender).ok())
            .flatten(),
        body: value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use chat_schemas::RoomId;

    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    #[test]
    fn a_chat_carries_its_unread_count_and_a_leave_its_leaver() {
        let room = RoomId::random();
        let chat = Envelope::new(
            room,
            user("alice"),
            ChatEvent::Chat {
                content: "hi".into(),
                client_message_id: None,
                reply_to: None,
                mentions: Vec::new(),
            },
        );
        let event = room_event(7, 5, &chat, Some(2)).expect("visible");
        let body: serde_json::Value = serde_json::from_str(&event.body).expect("json");
        assert_eq!(
            (event.seq, event.previous, &body["unreadCount"]),
            (7, 5, &json!(2))
        );
        let leave = Envelope::new(
            room,
            user("bob"),
            ChatEvent::Leave {
                user_id: user("bob"),
                read_count: 0,
            },
        );
        let event = room_event(11, 9, &leave, None).expect("visible");
        assert_eq!(event.leaver, Some(user("bob")));
        assert!(!event.body.contains("unreadCount"));
    }
}
