//! Unread counts, as the receipts worker keeps them in Redis: `GET /api/users/me/unread`,
//! `GET /api/rooms/{roomId}/messages/{messageId}/unread`, and the `unreadCount` of history
//! entries.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use chat_schemas::{MessageId, RoomId, UserId};
use futures::future::try_join_all;

use super::{doc, member_room, room_id};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Caller;
use crate::rooms::stored_message;
use crate::store::Message;
use crate::views::{Badge, MessageView, UnreadUsers};

/// The caller's total badge: `{"unreadCount": N}` over all their rooms (the room ids from
/// Cassandra, the counts from Redis).
#[utoipa::path(
    get,
    path = "/api/users/me/unread",
    tag = "unread",
    operation_id = "badge",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's total badge", body = Badge),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 503, response = inline(doc::Unavailable)),
    ),
)]
pub async fn badge(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
) -> Result<Json<Badge>, ApiError> {
    let rooms = state.store.user_room_ids(&caller).await?;
    let total = state.unread.total(&caller, &rooms).await?;
    Ok(Json(Badge {
        unread_count: total,
    }))
}

/// Who has not read a message, to members: `{"userIds": [...]}`, sorted.
#[utoipa::path(
    get,
    path = "/api/rooms/{roomId}/messages/{messageId}/unread",
    tag = "unread",
    operation_id = "readersMissing",
    security(("bearer" = [])),
    params(
        ("roomId" = uuid::Uuid, Path, description = "The room"),
        ("messageId" = String, Path, description = "The message: a positive decimal integer", pattern = "^[1-9][0-9]*$"),
    ),
    responses(
        (status = 200, description = "The members who have not read the message, sorted", body = UnreadUsers),
        (status = 401, response = inline(doc::Unauthorized)),
        (status = 403, response = inline(doc::NotAMember)),
        (status = 404, response = inline(doc::MessageOrRoomNotFound)),
        (status = 503, response = inline(doc::Unavailable)),
    ),
)]
pub async fn readers_missing(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((raw_room, raw_message)): Path<(String, String)>,
) -> Result<Json<UnreadUsers>, ApiError> {
    let room = member_room(&state, &caller, room_id(&raw_room)?).await?;
    let message = room_message(&state, room.id, &raw_message).await?;
    let user_ids = match tracked_seq(&message) {
        Some(seq) => state.unread.readers_missing(&room.id, seq).await?,
        None => Vec::new(),
    };
    Ok(Json(UnreadUsers { user_ids }))
}

/// The history entry `raw` names in `room`, once projected ([`stored_message`]): 404
/// `MESSAGE_NOT_FOUND` when `raw` is not a message id or names no entry of the room.
pub(super) async fn room_message(
    state: &AppState,
    room: RoomId,
    raw: &str,
) -> Result<Message, ApiError> {
    let id = raw
        .parse::<MessageId>()
        .map_err(|_| ApiError::message_not_found())?;
    let seq = i64::try_from(id.sequence()).map_err(|_| ApiError::message_not_found())?;
    stored_message(state, room, seq)
        .await?
        .ok_or_else(ApiError::message_not_found)
}

/// The sequence whose unread set counts for `message`: only a CHAT that is not deleted has one
/// (a delete drops the set, system entries never get one).
fn tracked_seq(message: &Message) -> Option<u64> {
    let live_chat = message.kind == "CHAT" && !message.deleted;
    live_chat.then(|| u64::try_from(message.id).ok()).flatten()
}

/// A page of history as `caller` sees it: every CHAT with its `unreadCount` (read in one Redis
/// round trip; 0 for a tombstone) and its reactions, a reply's quote marked deleted once the
/// quoted CHAT is, system entries as they are.
pub async fn history_views(
    state: &AppState,
    room: RoomId,
    caller: &UserId,
    messages: &[Message],
) -> Result<Vec<MessageView>, ApiError> {
    let tracked: Vec<(u64, &str)> = messages
        .iter()
        .filter_map(|m| Some((tracked_seq(m)?, m.sender_id.as_deref().unwrap_or_default())))
        .collect();
    let mut counts = state.unread.of_messages(&room, &tracked).await?.into_iter();
    let gone = deleted_quotes(state, room, messages).await?;
    Ok(messages
        .iter()
        .map(|message| {
            let view = MessageView::from(message);
            if message.kind != "CHAT" {
                return view;
            }
            let count = match tracked_seq(message) {
                Some(_) => counts.next().unwrap_or(0),
                None => 0,
            };
            let view = view
                .with_unread_count(count)
                .with_reactions(message, caller);
            match &message.reply {
                Some(quote) if gone.contains(&quote.message_id) => view.with_quote_deleted(),
                _ => view,
            }
        })
        .collect())
}

/// The CHATs quoted by replies of `messages` that are deleted (or no longer found): those in
/// the page as it shows them, the others read, concurrently.
async fn deleted_quotes(
    state: &AppState,
    room: RoomId,
    messages: &[Message],
) -> Result<HashSet<i64>, ApiError> {
    let in_page: HashMap<i64, bool> = messages.iter().map(|m| (m.id, m.deleted)).collect();
    let mut gone = HashSet::new();
    let mut elsewhere = Vec::new();
    for quote in messages.iter().filter_map(|m| m.reply.as_ref()) {
        match in_page.get(&quote.message_id) {
            Some(true) => {
                gone.insert(quote.message_id);
            }
            Some(false) => {}
            None if !elsewhere.contains(&quote.message_id) => elsewhere.push(quote.message_id),
            None => {}
        }
    }
    let found = try_join_all(elsewhere.iter().map(|&id| state.store.message(room, id))).await?;
    for (id, message) in elsewhere.into_iter().zip(found) {
        if message.is_none_or(|m| m.deleted) {
            gone.insert(id);
        }
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, deleted: bool) -> Message {
        Message {
            id: 7,
            room_id: RoomId::random(),
            kind: kind.to_owned(),
            sender_id: Some("alice".to_owned()),
            content: None,
            user_ids: Vec::new(),
            deleted,
            sent_at: 0,
            client_message_id: None,
            reply: None,
            mentions: Vec::new(),
            edited_at: None,
            reactions: std::collections::BTreeMap::new(),
        }
    }

    #[test]
    fn only_live_chats_have_an_unread_set() {
        assert_eq!(tracked_seq(&entry("CHAT", false)), Some(7));
        assert_eq!(tracked_seq(&entry("CHAT", true)), None);
        assert_eq!(tracked_seq(&entry("INVITE", false)), None);
        assert_eq!(tracked_seq(&entry("LEAVE", false)), None);
    }
}
