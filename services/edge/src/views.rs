//! The JSON shapes of rooms, messages and push tokens, exactly as `docs/api.md` documents them.

use chat_schemas::view::rfc3339_millis;
use chat_schemas::{RoomKind, UserId};
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
    mention_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
    reply_to: Option<QuoteView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mentions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unread_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reactions: Option<Vec<ReactionView>>,
}

/// The CHAT a reply answers: its content as it was when the reply was sent, or `deleted` once
/// it is deleted.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuoteView {
    message_id: String,
    sender_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

/// One emoji's reactions to a CHAT, as one member sees them.
#[derive(Debug, PartialEq, Eq, Serialize)]
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
