//! Room rules that do not depend on HTTP: 1:1 room identity and serialised membership changes.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use axum::http::StatusCode;
use chat_schemas::{ChatEvent, Envelope, MessageId, Quote, RoomId, UserId};
use tokio::time::{timeout, Instant};
use uuid::Uuid;

use crate::app::AppState;
use crate::error::ApiError;
use crate::membership::{MembershipError, Standing};
use crate::progress::NotYetVisible;
use crate::store::{Message, Room, StoreError, StoredQuote};
use crate::writer::AppendError;

/// How often a membership change is retried when other writes to the room keep winning.
const MAX_ATTEMPTS: u32 = 20;

/// Longest `clientMessageId`, in characters.
const MAX_CLIENT_MESSAGE_ID_CHARS: usize = 64;

/// The one room of a pair of users, the same whoever asks: a name-based UUID of the sorted pair
/// in the configured (secret) namespace, so that concurrent creations meet on one subject.
pub fn direct_room_id(namespace: Uuid, a: &UserId, b: &UserId) -> RoomId {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let name = format!("{low}\n{high}");
    RoomId::from(Uuid::new_v5(&namespace, name.as_bytes()))
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::unavailable("the message store", error)
    }
}

impl From<AppendError> for ApiError {
    fn from(error: AppendError) -> Self {
        ApiError::unavailable("the event log", error)
    }
}

impl From<MembershipError> for ApiError {
    fn from(error: MembershipError) -> Self {
        ApiError::unavailable("room membership", error)
    }
}

impl From<NotYetVisible> for ApiError {
    fn from(error: NotYetVisible) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_YET_VISIBLE",
            format!("{error}: the write is stored but not yet readable; retry shortly"),
        )
    }
}

/// Appends the event `decide` chooses given the room's current state, such that no other event
/// was stored in the room in between; returns its sequence and the event, or `None` when
/// `decide` chose nothing. On return the projections show the result.
///
/// `decide` sees the room as of its latest stored event (the projection is awaited), and the
/// append carries that event's sequence as JetStream's expected last subject sequence, so two
/// concurrent changes cannot both build on the same state: the loser re-reads and decides again.
pub async fn change_room<F>(
    state: &AppState,
    actor: &UserId,
    room: RoomId,
    decide: F,
) -> Result<Option<(u64, ChatEvent)>, ApiError>
where
    F: Fn(Option<&Room>) -> Result<Option<ChatEvent>, ApiError>,
{
    for attempt in 0..MAX_ATTEMPTS {
        let last = state.writer.last_sequence(room).await?;
        state.progress.wait_for(last).await?;
        let current = state.store.room(room).await?;
        let Some(event) = decide(current.as_ref())? else {
            return Ok(None);
        };
        let envelope = Envelope::new(room, actor.clone(), event);
        match state
            .writer
            .append(&envelope, &envelope.event_id.to_string(), Some(last))
            .await
        {
            Ok(appended) => {
                state.progress.wait_for(appended.sequence).await?;
                return Ok(Some((appended.sequence, envelope.event)));
            }
            Err(AppendError::Conflict) => {
                let backoff = 2_u64.saturating_pow(attempt.min(6))
                    + u64::from(envelope.event_id.as_bytes()[0] % 8);
                tokio::time::sleep(Duration::from_millis(backoff)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "ROOM_BUSY",
        "the room kept changing concurrently; retry",
    ))
}

/// A CHAT as stored, and whether this call stored it (`false`: an idempotent resend).
pub struct SentChat {
    /// The message as history shows it.
    pub message: Message,
    /// Whether this call appended it.
    pub created: bool,
}

/// A CHAT the log holds: durable, but perhaps not yet in the projections.
pub struct StoredChat {
    /// Its stream sequence, which is its message id.
    pub sequence: u64,
    /// The event as appended by this call; `None` for an idempotent resend (the log or the
    /// projection already held the message).
    pub appended: Option<Envelope>,
}

/// A CHAT as a client asks for it, in a POST or a SEND body, not checked yet: the body of
/// `POST /api/rooms/{roomId}/messages` in the OpenAPI document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SendMessage)]
pub struct ChatRequest {
    /// Not empty nor only whitespace; at most 4000 characters by default.
    #[schema(pattern = "\\S")]
    pub content: String,
    /// Makes resends idempotent: 1-64 characters, no control characters.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub client_message_id: Option<String>,
    /// The CHAT of the same room it answers, not deleted: its message id (a number is accepted
    /// too).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[1-9][0-9]*$")]
    pub reply_to: Option<serde_json::Value>,
    /// Members of the room it mentions, at most 50; repeats are dropped.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub mentions: Option<Vec<String>>,
}

/// Checks a message's text as sending and editing both require: 400 `EMPTY_CONTENT`, 413
/// `CONTENT_TOO_LARGE`.
pub fn check_content(state: &AppState, content: &str) -> Result<(), ApiError> {
    if content.trim().is_empty() {
        return Err(ApiError::bad_request(
            "EMPTY_CONTENT",
            "content must not be empty",
        ));
    }
    let max = state.edge.max_content_chars;
    if content.chars().count() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "CONTENT_TOO_LARGE",
            format!("content is limited to {max} characters"),
        ));
    }
    Ok(())
}

/// Stores a CHAT in the log: the checks and the append of the HTTP API and STOMP `SEND`.
///
/// Membership comes from the log (see [`crate::membership`]), so this works while Cassandra is
/// down, except for a reply, whose quote is read from the history. A `client_message_id` makes
/// resends idempotent: within JetStream's deduplication window the log itself refuses the
/// copy; after it, the projection of earlier ids answers (while Cassandra is unreachable, only
/// the window does). It is read only for an id [`crate::client_ids`] cannot rule out.
pub async fn store_chat(
    state: &AppState,
    sender: &UserId,
    room: RoomId,
    request: ChatRequest,
) -> Result<StoredChat, ApiError> {
    let ChatRequest {
        content,
        client_message_id,
        reply_to,
        mentions,
    } = request;
    check_content(state, &content)?;
    if let Some(id) = &client_message_id {
        let len = id.chars().count();
        if len == 0 || len > MAX_CLIENT_MESSAGE_ID_CHARS || id.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "INVALID_CLIENT_MESSAGE_ID",
                format!(
                    "clientMessageId must be 1-{MAX_CLIENT_MESSAGE_ID_CHARS} printable characters"
                ),
            ));
        }
    }
    let reply_to = reply_to.as_ref().map(reply_id).transpose()?;
    let mentions = mention_ids(mentions.as_deref().unwrap_or_default())?;
    require_member(state, room, sender).await?;
    if let Some(id) = &client_message_id {
        if let Some(sequence) = earlier_message(state, room, sender, id).await {
            return Ok(StoredChat {
                sequence,
                appended: None,
            });
        }
    }
    let reply_to = match reply_to {
        Some(id) => Some(quote(state, room, id).await?),
        None => None,
    };
    for user in &mentions {
        if state.membership.standing(room, user).await? != Standing::Member {
            return Err(ApiError::bad_request(
                "INVALID_MENTIONS",
                format!("{user} is not a member of this room"),
            ));
        }
    }

    let dedup_id = client_message_id
        .as_ref()
        .map(|id| format!("chat:{room}:{sender}:{id}"));
    let envelope = Envelope::new(
        room,
        sender.clone(),
        ChatEvent::Chat {
            content,
            client_message_id,
            reply_to,
            mentions,
        },
    );
    let dedup_id = dedup_id.unwrap_or_else(|| envelope.event_id.to_string());
    let appended = state.writer.append(&envelope, &dedup_id, None).await?;
    Ok(StoredChat {
        sequence: appended.sequence,
        appended: (!appended.duplicate).then_some(envelope),
    })
}

/// The message `sender`'s `id` produced in `room` before, as the projection says; Cassandra is
/// read only when [`crate::client_ids`] cannot rule the id out.
async fn earlier_message(state: &AppState, room: RoomId, sender: &UserId, id: &str) -> Option<u64> {
    let looked_up = match state.client_ids.maybe_used(room, sender, id).await {
        Ok(false) => return None,
        Ok(true) => state.store.client_message(room, sender, id).await,
        Err(error) => Err(error),
    };
    match looked_up {
        Ok(earlier) => earlier.and_then(|seq| u64::try_from(seq).ok()),
        Err(error) => {
            tracing::warn!(%error, "clientMessageId not looked up: only the log's deduplication window applies");
            None
        }
    }
}

/// 404 `ROOM_NOT_FOUND` or 403 `NOT_A_MEMBER` unless `user` is a member of `room`, as the
/// log says (the membership follower, so no Cassandra read).
pub async fn require_member(state: &AppState, room: RoomId, user: &UserId) -> Result<(), ApiError> {
    match state.membership.standing(room, user).await? {
        Standing::Member => Ok(()),
        Standing::NoSuchRoom => Err(ApiError::room_not_found()),
        Standing::NotMember => Err(ApiError::not_a_member()),
    }
}

/// Most members one CHAT may mention.
pub const MAX_MENTIONS: usize = 50;

/// The message id of a `replyTo`: 400 `INVALID_REPLY` unless it is one.
fn reply_id(raw: &serde_json::Value) -> Result<MessageId, ApiError> {
    let parsed = match raw {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| MessageId::from_sequence(n).ok()),
        _ => None,
    };
    parsed.ok_or_else(|| ApiError::bad_request("INVALID_REPLY", "replyTo must be a message id"))
}

/// The distinct user ids of `mentions`: 400 `INVALID_MENTIONS` for one that is not a user id,
/// or more than [`MAX_MENTIONS`].
fn mention_ids(raw: &[String]) -> Result<Vec<UserId>, ApiError> {
    let invalid = |message: String| ApiError::bad_request("INVALID_MENTIONS", message);
    let mut users: Vec<UserId> = Vec::with_capacity(raw.len());
    for s in raw {
        let user = UserId::parse(s).map_err(|e| invalid(format!("{s:?}: {e}")))?;
        if !users.contains(&user) {
            users.push(user);
        }
    }
    if users.len() > MAX_MENTIONS {
        return Err(invalid(format!("at most {MAX_MENTIONS} members")));
    }
    Ok(users)
}

/// The quote of the CHAT `id` of `room` that a reply answers: 400 `INVALID_REPLY` unless it is
/// a CHAT of this room that is not deleted.
async fn quote(state: &AppState, room: RoomId, id: MessageId) -> Result<Quote, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "INVALID_REPLY",
            format!("replyTo {id} is not a chat message of this room"),
        )
    };
    let seq = i64::try_from(id.sequence()).map_err(|_| invalid())?;
    let message = stored_message(state, room, seq)
        .await?
        .ok_or_else(invalid)?;
    match (message.kind.as_str(), message.deleted, &message.sender_id) {
        ("CHAT", false, Some(sender)) => {
            let sender = UserId::parse(sender).map_err(|_| invalid())?;
            Ok(Quote::new(
                id,
                sender,
                message.content.as_deref().unwrap_or_default(),
            ))
        }
        _ => Err(invalid()),
    }
}

/// Sends a CHAT over HTTP: stores it, then waits until the projections show it, so the next
/// read on any edge does (read-your-writes).
pub async fn send_chat(
    state: &AppState,
    sender: &UserId,
    room: RoomId,
    request: ChatRequest,
) -> Result<SentChat, ApiError> {
    let stored = store_chat(state, sender, room, request).await?;
    state.progress.wait_for(stored.sequence).await?;
    let id = sequence_as_id(stored.sequence)?;
    let Some(envelope) = stored.appended else {
        let message =
            state.store.message(room, id).await?.ok_or_else(|| {
                ApiError::unavailable("the message store", "resent message missing")
            })?;
        return Ok(SentChat {
            message,
            created: false,
        });
    };
    let ChatEvent::Chat {
        content,
        client_message_id,
        reply_to,
        mentions,
    } = envelope.event
    else {
        return Err(ApiError::unavailable("the event log", "not a chat message"));
    };
    Ok(SentChat {
        message: Message {
            id,
            room_id: room,
            kind: "CHAT".to_owned(),
            sender_id: Some(sender.to_string()),
            content: Some(content),
            user_ids: Vec::new(),
            deleted: false,
            sent_at: envelope.at.millis(),
            client_message_id,
            reply: reply_to.map(|quote| StoredQuote {
                message_id: i64::try_from(quote.message_id.sequence()).unwrap_or(i64::MAX),
                sender_id: quote.sender_id.to_string(),
                content: quote.content,
            }),
            mentions: mentions.iter().map(ToString::to_string).collect(),
            edited_at: None,
            reactions: BTreeMap::new(),
        },
        created: true,
    })
}

/// Deletes a CHAT for everyone; only its sender may. Deleting it again changes nothing. An id
/// past the largest sequence Cassandra stores (`i64::MAX`) names no message: 404, as any other.
pub async fn delete_chat(
    state: &AppState,
    caller: &UserId,
    room: RoomId,
    id: MessageId,
) -> Result<Message, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "MESSAGE_NOT_FOUND",
            "no such message",
        )
    };
    let seq = i64::try_from(id.sequence()).map_err(|_| not_found())?;
    let message = stored_message(state, room, seq)
        .await?
        .ok_or_else(not_found)?;
    if message.kind != "CHAT" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NOT_DELETABLE",
            "only chat messages can be deleted",
        ));
    }
    if message.sender_id.as_deref() != Some(caller.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "NOT_THE_SENDER",
            "only the sender can delete a message",
        ));
    }
    if message.deleted {
        return Ok(message);
    }
    let envelope = Envelope::new(
        room,
        caller.clone(),
        ChatEvent::Delete {
            message_ids: vec![id],
        },
    );
    let appended = state
        .writer
        .append(&envelope, &format!("delete:{room}:{id}"), None)
        .await?;
    state.progress.wait_for(appended.sequence).await?;
    state.store.message(room, seq).await?.ok_or_else(not_found)
}

/// The message `seq` of `room` as history holds it, waiting for the projector when the room's
/// log already holds an event that recent but the projection does not yet: a CHAT sent over
/// STOMP reaches history up to the projector's linger after its RECEIPT, and its sender may act
/// on it at once (reply, delete, edit, react, ask who read it). `None` when neither does.
pub async fn stored_message(
    state: &AppState,
    room: RoomId,
    seq: i64,
) -> Result<Option<Message>, ApiError> {
    if let Some(message) = state.store.message(room, seq).await? {
        return Ok(Some(message));
    }
    let Ok(wanted) = u64::try_from(seq) else {
        return Ok(None);
    };
    if state.progress.applied() >= wanted || state.writer.last_sequence(room).await? < wanted {
        return Ok(None);
    }
    state.progress.wait_for(wanted).await?;
    Ok(state.store.message(room, seq).await?)
}

/// Waits until history holds every event `room`'s log held when called, those before the
/// sequence `before` only when it is given: a page then shows every message its reader may
/// already have seen live or had acknowledged over STOMP, on any edge, although the projector
/// applies the log up to its linger later. Asks the stream's leader, one round trip; waits only
/// when the projector is behind that room.
pub async fn await_history(state: &AppState, room: RoomId, before: Option<u64>) {
    let log_end = async {
        let last = state.writer.last_sequence(room).await?;
        Ok(before.map_or(last, |before| last.min(before.saturating_sub(1))))
    };
    catch_up(state, log_end).await;
}

/// Waits until the projection holds every event the log held when called, in any room, as
/// [`await_history`] does for one: a room list then shows every message its reader may already
/// have seen live or had acknowledged. One request to the stream's leader.
pub async fn await_projection(state: &AppState) {
    catch_up(state, state.writer.last_stored()).await;
}

/// Waits for the projector to apply the sequence `log_end` gives, up to `edge.read_catch_up_ms`
/// for both: without an answer from the log or the projector in that time, the read shows
/// what the projection holds (stale, not failed).
async fn catch_up(state: &AppState, log_end: impl Future<Output = Result<u64, AppendError>>) {
    let patience = state.progress.catch_up_time();
    let deadline = Instant::now() + patience;
    let wanted = match timeout(patience, log_end).await {
        Ok(Ok(wanted)) => wanted,
        Ok(Err(error)) => {
            tracing::debug!(%error, "reading without the log's end");
            return;
        }
        Err(_) => {
            tracing::debug!("reading without the log's end: no answer in time");
            return;
        }
    };
    if state.progress.applied() >= wanted {
        return;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if let Err(behind) = state.progress.wait_within(wanted, left).await {
        tracing::debug!(%behind, "reading what the projector applied");
    }
}

/// A log sequence as the signed integer Cassandra stores.
fn sequence_as_id(sequence: u64) -> Result<i64, ApiError> {
    i64::try_from(sequence).map_err(|_| ApiError::unavailable("the event log", "sequence overflow"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_has_one_direct_room_whoever_asks() {
        let ns = Uuid::new_v4();
        let alice = UserId::parse("alice").expect("valid");
        let bob = UserId::parse("bob").expect("valid");
        let carol = UserId::parse("carol").expect("valid");
        assert_eq!(
            direct_room_id(ns, &alice, &bob),
            direct_room_id(ns, &bob, &alice)
        );
        assert_ne!(
            direct_room_id(ns, &alice, &bob),
            direct_room_id(ns, &alice, &carol)
        );
        assert_ne!(
            direct_room_id(ns, &alice, &bob),
            direct_room_id(Uuid::new_v4(), &alice, &bob)
        );
    }
}
