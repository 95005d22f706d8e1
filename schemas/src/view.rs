//! Stored events as clients see them: the JSON bodies of STOMP MESSAGE frames and feed entries
//! (`docs/protocol.md`). Defined here because the edge (resumes, history) and the receipts worker
//! (live fan-out with unread counts) must produce identical shapes.

use serde_json::{json, Value};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::event::{ChatEvent, Envelope, Quote};
use crate::ids::{MessageId, RoomId, UserId};

/// The client-visible JSON of a stored event, or `None` for events clients never see as such
/// (presence signals become INFO/OUT only through the receipts worker, see [`info_json`]).
///
/// CHAT bodies get their `unreadCount` from whoever knows it; this function leaves it out.
pub fn client_json(seq: u64, envelope: &Envelope) -> Option<Value> {
    let room_id = envelope.room_id.to_string();
    let message_id = seq.to_string();
    let actor = envelope.actor.as_str();
    let value = match &envelope.event {
        ChatEvent::Chat {
            content,
            client_message_id,
            reply_to,
            mentions,
        } => {
            let mut chat = serde_json::Map::new();
            chat.insert("type".into(), "CHAT".into());
            chat.insert("roomId".into(), room_id.into());
            chat.insert("messageId".into(), message_id.into());
            chat.insert("senderId".into(), actor.into());
            chat.insert("content".into(), content.as_str().into());
            chat.insert("sentAt".into(), rfc3339_millis(envelope.at.millis()).into());
            if let Some(id) = client_message_id {
                chat.insert("clientMessageId".into(), id.as_str().into());
            }
            if let Some(quote) = reply_to {
                chat.insert("replyTo".into(), quote_json(quote));
            }
            if !mentions.is_empty() {
                chat.insert("mentions".into(), json!(mentions));
            }
            Value::Object(chat)
        }
        ChatEvent::Reaction {
            target_id,
            user_id,
            emoji,
            added,
        } => json!({
            "type": "REACTION",
            "roomId": room_id,
            "messageId": message_id,
            "targetId": target_id.to_string(),
            "userId": user_id,
            "emoji": emoji,
            "added": added,
        }),
        ChatEvent::Edit { target_id, content } => json!({
            "type": "EDIT",
            "roomId": room_id,
            "messageId": message_id,
            "targetId": target_id.to_string(),
            "content": content,
            "editedAt": rfc3339_millis(envelope.at.millis()),
        }),
        ChatEvent::RoomCreated { members, .. } => {
            let invited: Vec<&str> = members
                .iter()
                .map(UserId::as_str)
                .filter(|m| *m != actor)
                .collect();
            invite(&room_id, &message_id, actor, &invited)
        }
        ChatEvent::Invite { user_ids } => {
            let invited: Vec<&str> = user_ids.iter().map(UserId::as_str).collect();
            invite(&room_id, &message_id, actor, &invited)
        }
        ChatEvent::Leave { user_id, .. } => {
            json!({"type": "LEAVE", "roomId": room_id, "messageId": message_id, "userId": user_id})
        }
        ChatEvent::Delete { message_ids } => {
            json!({"type": "DELETE", "roomId": room_id, "messageId": message_id, "messageIds": message_ids})
        }
        ChatEvent::Info { .. } | ChatEvent::Out { .. } | ChatEvent::Unknown => return None,
    };
    Some(value)
}

/// A reply's `replyTo` as clients see it while the quoted CHAT exists; history shows
/// `"deleted": true` instead of `content` once it is deleted.
pub fn quote_json(quote: &Quote) -> Value {
    json!({
        "messageId": quote.message_id.to_string(),
        "senderId": quote.sender_id,
        "content": quote.content,
    })
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

/// INFO: `user` entered the room and read `read_count` messages, the newest of them
/// `last_read` (none when there was nothing to read).
pub fn info_json(
    room: &RoomId,
    user: &UserId,
    read_count: u64,
    last_read: Option<MessageId>,
) -> Value {
    json!({
        "type": "INFO",
        "roomId": room.to_string(),
        "userId": user,
        "readCount": read_count,
        "lastReadMessageId": last_read,
    })
}

/// OUT: `user` has no screen of the room open anywhere any more.
pub fn out_json(room: &RoomId, user: &UserId) -> Value {
    json!({"type": "OUT", "roomId": room.to_string(), "userId": user})
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
    use crate::event::RoomKind;

    fn user(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    #[test]
    fn times_are_utc_with_milliseconds() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_764_081_350_123),
            "2025-11-25T14:35:50.123Z"
        );
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
                reply_to: None,
                mentions: Vec::new(),
            },
        );
        let body = client_json(7, &chat).expect("visible");
        assert_eq!(body["type"], "CHAT");
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
        let body = client_json(1, &created).expect("visible");
        assert_eq!(
            (&body["type"], &body["userIds"]),
            (&json!("INVITE"), &json!(["bob"]))
        );
        assert_eq!(body["inviterId"], "alice");

        let delete = Envelope::new(
            room,
            user("alice"),
            ChatEvent::Delete {
                message_ids: vec![MessageId::from_sequence(7).expect("id")],
            },
        );
        assert_eq!(
            client_json(9, &delete).expect("visible")["messageIds"],
            json!(["7"])
        );

        let out = Envelope::new(
            room,
            user("bob"),
            ChatEvent::Out {
                user_id: user("bob"),
                edge: None,
            },
        );
        assert!(client_json(10, &out).is_none());
        let info = info_json(&room, &user("bob"), 2, MessageId::from_sequence(9).ok());
        assert_eq!(info["lastReadMessageId"], "9");
        assert_eq!(info["readCount"], 2);
        assert_eq!(
            info_json(&room, &user("bob"), 0, None)["lastReadMessageId"],
            Value::Null
        );
        assert_eq!(out_json(&room, &user("bob"))["type"], "OUT");
    }

    #[test]
    fn replies_mentions_reactions_and_edits_have_the_documented_shapes() {
        let room = RoomId::random();
        let id = |n| MessageId::from_sequence(n).expect("id");
        let reply = Envelope::new(
            room,
            user("bob"),
            ChatEvent::Chat {
                content: "네!".into(),
                client_message_id: None,
                reply_to: Some(Quote::new(id(7), user("alice"), &"가".repeat(150))),
                mentions: vec![user("alice")],
            },
        );
        let body = client_json(8, &reply).expect("visible");
        assert_eq!(body["replyTo"]["messageId"], "7");
        assert_eq!(body["replyTo"]["senderId"], "alice");
        assert_eq!(
            body["replyTo"]["content"]
                .as_str()
                .map(|c| c.chars().count()),
            Some(Quote::MAX_CHARS)
        );
        assert_eq!(body["mentions"], json!(["alice"]));

        let reaction = Envelope::new(
            room,
            user("bob"),
            ChatEvent::Reaction {
                target_id: id(7),
                user_id: user("bob"),
                emoji: "👍".into(),
                added: true,
            },
        );
        assert_eq!(
            client_json(9, &reaction).expect("visible"),
            json!({"type": "REACTION", "roomId": room.to_string(), "messageId": "9",
                   "targetId": "7", "userId": "bob", "emoji": "👍", "added": true})
        );

        let mut edit = Envelope::new(
            room,
            user("alice"),
            ChatEvent::Edit {
                target_id: id(7),
                content: "고쳤어요".into(),
            },
        );
        edit.at = crate::Timestamp(1_764_081_350_123);
        assert_eq!(
            client_json(10, &edit).expect("visible"),
            json!({"type": "EDIT", "roomId": room.to_string(), "messageId": "10",
                   "targetId": "7", "content": "고쳤어요", "editedAt": "2025-11-25T14:35:50.123Z"})
        );
    }
}
