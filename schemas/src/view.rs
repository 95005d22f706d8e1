//! Stored events as clients see them: the JSON bodies of STOMP MESSAGE frames and feed entries
//! (`docs/protocol.md`). Defined here because the edge (resumes, history) and the receipts worker
//! (live fan-out with unread counts) must produce identical shapes.

use serde_json::{json, Value};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::event::{ChatEvent, Envelope};
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
            chat
        }
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
}
