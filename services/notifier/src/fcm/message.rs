//! The FCM HTTP v1 message for one push, within FCM's 4 KB payload limit.

use serde_json::{json, Value};

/// FCM refuses messages above 4096 bytes; the body is shortened until the message fits.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Longest preview of a message's text, in characters, before the size limit applies.
pub const MAX_PREVIEW_CHARS: usize = 200;

/// The `data` field that marks a push that may repeat one the device already got: the app shows
/// it only when it has not shown that `messageId` yet (docs/notifier.md, "Exactly once").
pub const RESENT_FIELD: &str = "resent";

/// The `data` field, `"true"`, of a push to a member the CHAT mentions: it comes also when they
/// muted the room, and the app may show it as a mention.
pub const MENTION_FIELD: &str = "mention";

/// Room kept in every message for [`mark_resent`]'s `,"resent":"true"`.
const RESENT_MARK_BYTES: usize = 16;

/// What a push says, independent of the device it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The notification title: the group's name, or the sender in a 1:1 room.
    pub title: String,
    /// The notification body: a preview of the message, or what happened.
    pub body: String,
    /// The room, for grouping and for the app to open.
    pub room_id: String,
    /// The event's message id.
    pub message_id: String,
    /// `CHAT` or `INVITE`.
    pub kind: &'static str,
}

/// The `message` object of `messages:send` for `token`, with the recipient's `badge`, marked
/// as a mention of the recipient when `mention`.
pub fn message(notice: &Notice, token: &str, badge: u64, mention: bool) -> Value {
    let mut body: String = notice.body.chars().take(MAX_PREVIEW_CHARS).collect();
    if body.chars().count() < notice.body.chars().count() {
        body.push('…');
    }
    loop {
        let message = build(notice, &body, token, badge, mention);
        let size = message.to_string().len() + RESENT_MARK_BYTES;
        if size <= MAX_MESSAGE_BYTES || body.is_empty() {
            return message;
        }
        let keep = body
            .chars()
            .count()
            .saturating_sub(size - MAX_MESSAGE_BYTES + 1);
        body = body.chars().take(keep).collect();
        body.push('…');
        if keep == 0 {
            body.clear();
        }
    }
}

/// Marks `message` (a `message` object) as one that may repeat a push FCM already accepted for
/// its token, in `data` where every app sees it: a retry after an answer that never came, or
/// a send the notifier may have made before a crash.
pub fn mark_resent(message: &mut Value) {
    if let Some(data) = message.get_mut("data").and_then(Value::as_object_mut) {
        data.insert(RESENT_FIELD.to_owned(), Value::from("true"));
    }
}

fn build(notice: &Notice, body: &str, token: &str, badge: u64, mention: bool) -> Value {
    let mut message = json!({
        "token": token,
        "notification": {"title": notice.title, "body": body},
        "data": {
            "roomId": notice.room_id,
            "messageId": notice.message_id,
            "type": notice.kind,
        },
        "android": {
            "collapse_key": notice.room_id,
            "priority": "HIGH",
            "notification": {"tag": notice.room_id},
        },
        "apns": {
            "headers": {"apns-collapse-id": collapse_id(&notice.room_id)},
            "payload": {"aps": {"thread-id": notice.room_id, "badge": badge}},
        },
    });
    if let (true, Some(data)) = (mention, message["data"].as_object_mut()) {
        data.insert(MENTION_FIELD.to_owned(), Value::from("true"));
    }
    message
}

/// `apns-collapse-id` may be at most 64 bytes; a room id (36) always fits.
fn collapse_id(room_id: &str) -> String {
    room_id.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(body: &str) -> Notice {
        Notice {
            title: "Housemates".into(),
            body: body.into(),
            room_id: "9a0f1f5e-3c1d-4a53-9d55-1a2b3c4d5e6f".into(),
            message_id: "42".into(),
            kind: "CHAT",
        }
    }

    #[test]
    fn data_values_are_strings_and_grouping_is_per_room() {
        let m = message(&notice("hi"), "tok", 3, false);
        assert_eq!(m["data"]["messageId"], "42");
        assert!(m["data"]
            .as_object()
            .expect("data")
            .values()
            .all(Value::is_string));
        assert_eq!(m["android"]["notification"]["tag"], m["data"]["roomId"]);
        assert_eq!(
            m["apns"]["payload"]["aps"]["thread-id"],
            m["data"]["roomId"]
        );
        assert_eq!(m["apns"]["payload"]["aps"]["badge"], 3);
        assert_eq!(m["notification"]["body"], "hi");
    }

    #[test]
    fn long_text_is_cut_to_a_preview_and_the_message_fits() {
        let long = "가".repeat(5_000);
        let m = message(&notice(&long), "tok", 0, false);
        let body = m["notification"]["body"].as_str().expect("body");
        assert_eq!(body.chars().count(), MAX_PREVIEW_CHARS + 1);
        assert!(body.ends_with('…'));
        let token = "t".repeat(3_000);
        let mut m = message(&notice(&long), &token, 0, true);
        mark_resent(&mut m);
        assert!(
            m.to_string().len() <= MAX_MESSAGE_BYTES,
            "marked, it still fits: {}",
            m.to_string().len()
        );
    }

    #[test]
    fn a_mention_is_marked_in_data() {
        let mention = message(&notice("hi"), "tok", 3, true);
        assert_eq!(mention["data"][MENTION_FIELD], "true");
        assert_eq!(
            message(&notice("hi"), "tok", 3, false)["data"].get(MENTION_FIELD),
            None
        );
    }

    #[test]
    fn a_possible_repeat_is_marked_in_data_and_nothing_else_changes() {
        let first = message(&notice("hi"), "tok", 3, false);
        let mut again = first.clone();
        mark_resent(&mut again);
        assert_eq!(again["data"][RESENT_FIELD], "true");
        again["data"]
            .as_object_mut()
            .expect("data")
            .remove(RESENT_FIELD);
        assert_eq!(again, first);
        assert_eq!(first["data"].get(RESENT_FIELD), None);
    }
}
