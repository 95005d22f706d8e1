//! The JSON shapes of rooms, messages and push tokens, exactly as `docs/api.md` documents them.
//! Each derives its OpenAPI schema, so the served document (`/api/openapi.json`) is these types.

use chat_schemas::view::rfc3339_millis;
use chat_schemas::{RoomKind, UserId};
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
    /// Of those, the CHATs that mention the caller; only where `unreadCount` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    mention_count: Option<u64>,
    /// Whether the caller muted the room's push notifications; only in `GET /api/rooms` and
    /// `GET /api/rooms/{roomId}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    muted: Option<bool>,
}

impl RoomView {
    /// The same room with the caller's `unreadCount` and `mentionCount` in it.
    pub fn with_counts(mut self, unread: u64, mentions: u64) -> Self {
        self.unread_count = Some(unread);
        self.mention_count = Some(mentions);
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
            mention_count: None,
            muted: None,
        }
    }
}

/// A history entry as clients see it; `userIds` only on INVITE and LEAVE entries, `unreadCount`
/// and `reactions` only on CHAT entries of a history page; `replyTo`, `mentions` and `editedAt`
/// only when a CHAT (not deleted) has them.
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
    /// The CHAT a reply answers; only on replies that are not deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    reply_to: Option<QuoteView>,
    /// Members the CHAT mentions; only when it mentions some.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    mentions: Vec<String>,
    /// When the sender last edited it; only once they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false, format = DateTime)]
    edited_at: Option<String>,
    /// How many members have not read it; only on the CHAT entries of a history page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    unread_count: Option<u64>,
    /// The caller's view of a CHAT's reactions, ordered by first use; on CHAT entries only,
    /// never on a room's `lastMessage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    reactions: Option<Vec<ReactionView>>,
}

/// The CHAT a reply answers: its content as it was when the reply was sent, or `deleted` once
/// it is deleted.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Quote)]
pub struct QuoteView {
    #[schema(pattern = "^[1-9][0-9]*$")]
    message_id: String,
    sender_id: String,
    /// Its content when the reply was sent, at most 100 characters; absent once deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    content: Option<String>,
    /// `true` once the quoted CHAT is deleted; absent before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    deleted: bool,
}

/// One emoji's reactions to a CHAT, as one member sees them.
#[derive(Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = Reaction)]
pub struct ReactionView {
    emoji: String,
    count: u64,
    /// Whether the caller is among them.
    me: bool,
}

/// A CHAT's reactions grouped by emoji, ordered by first use (the sequence of the oldest
/// reaction still standing), with the caller's own marked.
pub fn reactions(message: &Message, caller: &UserId) -> Vec<ReactionView> {
    let mut by_emoji: Vec<(i64, ReactionView)> = Vec::new();
    for (key, &seq) in &message.reactions {
        let Some((user, emoji)) = key.split_once(' ') else {
            continue;
        };
        let me = user == caller.as_str();
        match by_emoji.iter_mut().find(|(_, r)| r.emoji == emoji) {
            Some((first, reaction)) => {
                *first = (*first).min(seq);
                reaction.count += 1;
                reaction.me |= me;
            }
            None => by_emoji.push((
                seq,
                ReactionView {
                    emoji: emoji.to_owned(),
                    count: 1,
                    me,
                },
            )),
        }
    }
    by_emoji.sort_by_key(|(first, _)| *first);
    by_emoji.into_iter().map(|(_, r)| r).collect()
}

impl MessageView {
    /// The same entry with its reactions as `caller` sees them.
    pub fn with_reactions(mut self, message: &Message, caller: &UserId) -> Self {
        self.reactions = Some(reactions(message, caller));
        self
    }

    /// The same entry with the CHAT it answers shown as deleted.
    pub fn with_quote_deleted(mut self) -> Self {
        if let Some(quote) = &mut self.reply_to {
            quote.content = None;
            quote.deleted = true;
        }
        self
    }

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
            reply_to: message
                .reply
                .as_ref()
                .filter(|_| !message.deleted)
                .map(|quote| QuoteView {
                    message_id: quote.message_id.to_string(),
                    sender_id: quote.sender_id.clone(),
                    content: Some(quote.content.clone()),
                    deleted: false,
                }),
            mentions: if message.deleted {
                Vec::new()
            } else {
                message.mentions.clone()
            },
            edited_at: message
                .edited_at
                .filter(|_| !message.deleted)
                .map(rfc3339_millis),
            unread_count: None,
            reactions: None,
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

/// `GET /api/rooms/{roomId}/presence`: who has the room open now.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresenceView {
    /// The room.
    pub room_id: String,
    /// The members with the room open on any device, sorted by byte order.
    pub user_ids: Vec<String>,
    /// The message id (log position) of the room's last event this snapshot includes, `"0"`
    /// before the first: apply INFO and OUT with a greater `message-id` on top of it.
    #[schema(pattern = "^[0-9]+$")]
    pub as_of: String,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chat_schemas::RoomId;

    use super::*;

    #[test]
    fn reactions_group_by_emoji_in_order_of_first_use_and_mark_the_caller() {
        let message = Message {
            id: 7,
            room_id: RoomId::random(),
            kind: "CHAT".to_owned(),
            sender_id: Some("alice".to_owned()),
            content: Some("hi".to_owned()),
            user_ids: Vec::new(),
            deleted: false,
            sent_at: 0,
            client_message_id: None,
            reply: None,
            mentions: Vec::new(),
            edited_at: None,
            reactions: BTreeMap::from([
                ("bob ❤️".to_owned(), 12),
                ("carol 👍".to_owned(), 9),
                ("alice ❤️".to_owned(), 15),
                ("alice 👍🏽".to_owned(), 20),
            ]),
        };
        let bob = UserId::parse("bob").expect("valid");
        let view = |emoji: &str, count, me| ReactionView {
            emoji: emoji.to_owned(),
            count,
            me,
        };
        assert_eq!(
            reactions(&message, &bob),
            vec![
                view("👍", 1, false),
                view("❤️", 2, true),
                view("👍🏽", 1, false)
            ]
        );
    }
}
