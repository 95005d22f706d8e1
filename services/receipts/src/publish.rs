//! What clients hear about an applied event: the room view (`chat.view.room.{roomId}`) and the
//! room-list feeds (`chat.user.{userId}`), as JSON in the shapes of `docs/protocol.md`.

use async_nats::HeaderMap;
use bytes::Bytes;
use chat_schemas::view::{client_json, info_json, out_json};
use chat_schemas::{ChatEvent, EventLog, UserId};
use serde_json::Value;

use crate::state::{LoggedEvent, Outcome};

/// One NATS message to publish.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Where.
    pub subject: String,
    /// Sequence headers.
    pub headers: HeaderMap,
    /// The JSON body.
    pub body: Bytes,
}

/// Everything to publish for `event` after applying it gave `outcome`: the room view first,
/// then the feed entries.
pub fn publications(log: &EventLog, event: &LoggedEvent, outcome: &Outcome) -> Vec<Publication> {
    let envelope = &event.envelope;
    let room = &envelope.room_id;
    let (previous, body) = match outcome {
        Outcome::Nothing => return Vec::new(),
        Outcome::Info {
            previous,
            read_count,
            last_read,
        } => {
            let ChatEvent::Info { user_id, .. } = &envelope.event else {
                return Vec::new();
            };
            (*previous, info_json(room, user_id, *read_count, *last_read))
        }
        Outcome::Out { previous } => {
            let ChatEvent::Out { user_id, .. } = &envelope.event else {
                return Vec::new();
            };
            (*previous, out_json(room, user_id))
        }
        Outcome::Chat {
            previous, unread, ..
        } => {
            let Some(mut body) = client_json(event.seq, envelope) else {
                return Vec::new();
            };
            set(&mut body, "unreadCount", Value::from(*unread));
            (*previous, body)
        }
        Outcome::Leave {
            previous,
            read_count,
        } => {
            let Some(mut body) = client_json(event.seq, envelope) else {
                return Vec::new();
            };
            set(&mut body, "readCount", Value::from(*read_count));
            (*previous, body)
        }
        Outcome::Shown { previous } => {
            let Some(body) = client_json(event.seq, envelope) else {
                return Vec::new();
            };
            (*previous, body)
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(EventLog::SEQUENCE_HEADER, event.seq.to_string().as_str());
    headers.insert(EventLog::PREVIOUS_HEADER, previous.to_string().as_str());
    if let ChatEvent::Leave { user_id, .. } = &envelope.event {
        headers.insert(EventLog::LEAVER_HEADER, user_id.as_str());
    }
    let view = body.to_string();
    let entries = feed(log, event, outcome, &view);
    let mut out = Vec::with_capacity(1 + entries.len());
    out.push(Publication {
        subject: log.view_room_subject(room),
        headers,
        body: Bytes::from(view),
    });
    out.extend(entries);
    out
}

/// Room-list feed entries: every member for a CHAT (with their `roomUnreadCount` and
/// `mentionCount`), the first members of a new room, the invited for an INVITE. `view` is the
/// room view's JSON object, written once for all of them.
fn feed(log: &EventLog, event: &LoggedEvent, outcome: &Outcome, view: &str) -> Vec<Publication> {
    let mut headers = HeaderMap::new();
    headers.insert(EventLog::MESSAGE_ID_HEADER, event.seq.to_string().as_str());
    headers.insert(
        EventLog::ROOM_HEADER,
        event.envelope.room_id.to_string().as_str(),
    );
    let entry = |user: &UserId, body: Bytes| Publication {
        subject: log.user_subject(user),
        headers: headers.clone(),
        body,
    };
    match (&event.envelope.event, outcome) {
        (
            ChatEvent::Chat { .. },
            Outcome::Chat {
                members, mentions, ..
            },
        ) => members
            .iter()
            .map(|(user, count)| {
                let mentioned = mentions
                    .iter()
                    .find(|(u, _)| u == user)
                    .map_or(0, |(_, n)| *n);
                entry(user, with_counts(view, *count, mentioned))
            })
            .collect(),
        (ChatEvent::RoomCreated { members, .. }, Outcome::Shown { .. }) => {
            let body = Bytes::from(view.to_owned());
            members.iter().map(|u| entry(u, body.clone())).collect()
        }
        (ChatEvent::Invite { user_ids }, Outcome::Shown { .. }) => {
            let body = Bytes::from(view.to_owned());
            user_ids.iter().map(|u| entry(u, body.clone())).collect()
        }
        _ => Vec::new(),
    }
}

/// A member's feed entry for a CHAT: the room view's JSON object `view` with their
/// `roomUnreadCount` and `mentionCount` written at its end, as text. A room of n members gets
/// n entries per CHAT, so the view is not copied and serialized again for each.
fn with_counts(view: &str, room_unread: u64, mentions: u64) -> Bytes {
    let fields = view.strip_suffix('}').unwrap_or(view);
    let comma = if fields.ends_with('{') { "" } else { "," };
    Bytes::from(format!(
        "{fields}{comma}\"roomUnreadCount\":{room_unread},\"mentionCount\":{mentions}}}"
    ))
}

fn set(body: &mut Value, field: &str, value: Value) {
    if let Some(map) = body.as_object_mut() {
        map.insert(field.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use chat_schemas::{Envelope, RoomId};

    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    #[test]
    fn a_chat_reaches_the_room_and_every_members_feed_with_counts() {
        let log = EventLog::new("S", "p.");
        let room = RoomId::random();
        let event = LoggedEvent {
            seq: 12,
            envelope: Envelope::new(
                room,
                user("alice"),
                ChatEvent::Chat {
                    content: "hi".into(),
                    client_message_id: None,
                    reply_to: None,
                    mentions: Vec::new(),
                },
            ),
        };
        let outcome = Outcome::Chat {
            previous: 9,
            unread: 1,
            members: vec![(user("alice"), 0), (user("carol"), 3)],
            mentions: vec![(user("carol"), 2)],
        };
        let out = publications(&log, &event, &outcome);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].subject, log.view_room_subject(&room));
        let header =
            |p: &Publication, name: &str| p.headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(
            header(&out[0], EventLog::PREVIOUS_HEADER).as_deref(),
            Some("9")
        );
        let room_body: Value = serde_json::from_slice(&out[0].body).expect("json");
        assert_eq!(room_body["unreadCount"], 1);
        assert!(room_body.get("roomUnreadCount").is_none());
        let carol: Value = serde_json::from_slice(&out[2].body).expect("json");
        assert_eq!(out[2].subject, log.user_subject(&user("carol")));
        assert_eq!(
            (
                carol["unreadCount"].clone(),
                carol["roomUnreadCount"].clone(),
                carol["mentionCount"].clone()
            ),
            (1.into(), 3.into(), 2.into())
        );
        let alice: Value = serde_json::from_slice(&out[1].body).expect("json");
        assert_eq!(alice["mentionCount"], 0);
        assert_eq!(
            header(&out[2], EventLog::MESSAGE_ID_HEADER).as_deref(),
            Some("12")
        );
        assert_eq!(
            header(&out[2], EventLog::ROOM_HEADER),
            Some(room.to_string())
        );
    }

    #[test]
    fn counts_are_written_into_the_views_object() {
        let entry = with_counts(r#"{"type":"CHAT","content":"}"}"#, 3, 1);
        let parsed: Value = serde_json::from_slice(&entry).expect("json");
        assert_eq!(
            parsed,
            serde_json::json!({"type": "CHAT", "content": "}", "roomUnreadCount": 3, "mentionCount": 1})
        );
        let parsed: Value = serde_json::from_slice(&with_counts("{}", 0, 0)).expect("json");
        assert_eq!(
            parsed,
            serde_json::json!({"roomUnreadCount": 0, "mentionCount": 0})
        );
    }

    #[test]
    fn presence_that_changed_nothing_publishes_nothing() {
        let log = EventLog::new("S", "");
        let event = LoggedEvent {
            seq: 3,
            envelope: Envelope::new(
                RoomId::random(),
                user("bob"),
                ChatEvent::Out {
                    user_id: user("bob"),
                    edge: Some("e1".into()),
                },
            ),
        };
        assert!(publications(&log, &event, &Outcome::Nothing).is_empty());
        let out = publications(&log, &event, &Outcome::Out { previous: 2 });
        let body: Value = serde_json::from_slice(&out[0].body).expect("json");
        assert_eq!(
            (body["type"].clone(), body["userId"].clone()),
            ("OUT".into(), "bob".into())
        );
    }
}
