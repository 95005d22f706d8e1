//! Stored events as clients receive them in MESSAGE frames (`docs/protocol.md`).

use chat_schemas::{ChatEvent, Envelope, UserId};
use serde_json::{json, Value};

use crate::store::Message;
use crate::views::rfc3339_millis;

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

/// The client-visible JSON of a stored event, or `None` for events clients never see.
pub fn client_json(seq: u64, envelope: &Envelope) -> Option<(&'static str, Value)> {
    let room_id = envelope.room_id.to_string();
    let message_id = seq.to_string();
    let actor = envelope.actor.as_str();
    let value = match &envelope.event {
        ChatEvent::Chat {
            content,
            client_message_id,
        } => {
            let mut chat = json!({
                "type": "CHAT",
                "roomId": room_id,
                "messageId": message_id,
                "senderId": actor,
                "content": content,
                "sentAt": rfc3339_millis(envelope.at.millis()),
            });
            if let (Some(id), Some(map)) = (client_message_id, chat.as_object_mut()) {
                map.insert("clientMessageId".into(), id.clone().into());
            }
            ("CHAT", chat)
        }
        ChatEvent::RoomCreated { members, .. } => {
            let invited: Vec<&str> = members
                .iter()
                .map(UserId::as_str)
                .filter(|m| *m != actor)
                .collect();
            ("INVITE", invite(&room_id, &message_id, actor, &invited))
        }
        ChatEvent::Invite { user_ids } => {
            let invited: Vec<&str> = user_ids.iter().map(UserId::as_str).collect();
            ("INVITE", invite(&room_id, &message_id, actor, &invited))
        }
        ChatEvent::Leave { user_id, .. } => (
            "LEAVE",
            json!({"type": "LEAVE", "roomId": room_id, "messageId": message_id, "userId": user_id}),
        ),
        ChatEvent::Delete { message_ids } => (
            "DELETE",
            json!({"type": "DELETE", "roomId": room_id, "messageId": message_id, "messageIds": message_ids}),
        ),
        ChatEvent::Info { .. } | ChatEvent::Out { .. } | ChatEvent::Unknown => return None,
    };
    Some(value)
}

fn invite(room_id: &str, message_id: &str, inviter: &str, invited: &[&str]) -> Value {
    json!({
        "type": "INVITE",
        "roomId": room_id,
        "messageId": message_id,
        "inviterId": inviter,
        "userIds": invited,
    })
}

/// A [`RoomEvent`] from a stored envelope, or `None` for events clients never see.
pub fn room_event(seq: u64, previous: u64, envelope: &Envelope) -> Option<RoomEvent> {
    let (_, value) = client_json(seq, envelope)?;
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
/// deleted CHAT comes as its tombstone, `content` null and `deleted` true.
pub fn from_history(message: &Message) -> RoomEvent {
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
    use chat_schemas::{MessageId, RoomId, RoomKind};

    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    #[test]
    fn events_have_the_documented_shapes() {
        let room = RoomId::random();
        let chat = Envelope::new(
            room,
            user("alice"),
            ChatEvent::Chat {
                content: "hi".into(),
                client_message_id: None,
            },
        );
        let (kind, body) = client_json(7, &chat).expect("visible");
        assert_eq!(kind, "CHAT");
        assert_eq!(body["messageId"], "7");
        assert_eq!(body["senderId"], "alice");
        assert!(body.get("clientMessageId").is_none());

        let created = Envelope::new(
            room,
            user("alice"),
            ChatEvent::RoomCreated {
                kind: RoomKind::Group,
                name: None,
                members: vec![user("alice"), user("bob")],
            },
        );
        let (kind, body) = client_json(1, &created).expect("visible");
        assert_eq!((kind, &body["userIds"]), ("INVITE", &json!(["bob"])));
        assert_eq!(body["inviterId"], "alice");

        let delete = Envelope::new(
            room,
            user("alice"),
            ChatEvent::Delete {
                message_ids: vec![MessageId::from_sequence(7).expect("id")],
            },
        );
        assert_eq!(
            client_json(9, &delete).expect("visible").1["messageIds"],
            json!(["7"])
        );

        let out = Envelope::new(
            room,
            user("bob"),
            ChatEvent::Out {
                user_id: user("bob"),
            },
        );
        assert!(client_json(10, &out).is_none());
        let leave = Envelope::new(
            room,
            user("bob"),
            ChatEvent::Leave {
                user_id: user("bob"),
                read_count: 0,
            },
        );
        assert_eq!(
            room_event(11, 9, &leave).expect("visible").leaver,
            Some(user("bob"))
        );
    }
}
