//! Changes to a CHAT after it was sent, other than deleting it: reactions and edits. Each is an
//! event in the log (REACTION, EDIT), so it is projected, replayed and resumed like the rest;
//! the HTTP answer comes once the projections show it (read-your-writes).

use std::time::Duration;

use axum::http::StatusCode;
use chat_schemas::{ChatEvent, Envelope, MessageId, RoomId, Timestamp, UserId};
use unicode_segmentation::UnicodeSegmentation;

use crate::app::AppState;
use crate::error::ApiError;
use crate::rooms::check_content;
use crate::store::Message;

/// How long after sending its sender may edit a CHAT.
pub const EDIT_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest reaction, in bytes of UTF-8 (an emoji with skin tone and joiners fits).
pub const MAX_EMOJI_BYTES: usize = 16;

/// Checks that `emoji` is one grapheme cluster of at most [`MAX_EMOJI_BYTES`] bytes that holds
/// an emoji character and no control or space: 400 `INVALID_REACTION`. Letters of any script
/// are text, not reactions.
pub fn check_emoji(emoji: &str) -> Result<(), ApiError> {
    let one_cluster = emoji.graphemes(true).count() == 1;
    let pictorial = emoji.chars().any(is_emoji_char)
        && !emoji.chars().any(|c| c.is_control() || c.is_whitespace());
    if one_cluster && pictorial && emoji.len() <= MAX_EMOJI_BYTES {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "INVALID_REACTION",
            format!("a reaction is one emoji of at most {MAX_EMOJI_BYTES} bytes"),
        ))
    }
}

/// Whether `c` is in a block of emoji and pictographs, or makes an emoji of what precedes it
/// (variation selector 16, the keycap mark): the Unicode emoji blocks, not the full property,
/// which needs tables this check does not justify.
fn is_emoji_char(c: char) -> bool {
    matches!(u32::from(c),
        0x1F000..=0x1FAFF | 0x2190..=0x21FF | 0x2300..=0x23FF | 0x2460..=0x24FF
        | 0x25A0..=0x27BF | 0x2900..=0x297F | 0x2B00..=0x2BFF | 0x3030 | 0x303D | 0x3297
        | 0x3299 | 0xA9 | 0xAE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0xFE0F | 0x20E3)
}

/// Adds (`added`) or takes back `caller`'s reaction `emoji` to the CHAT `message` of `room`.
/// Idempotent: when the reaction already is as asked, nothing is appended.
pub async fn react(
    state: &AppState,
    caller: &UserId,
    room: RoomId,
    message: &Message,
    emoji: &str,
    added: bool,
) -> Result<(), ApiError> {
    check_emoji(emoji)?;
    let target = live_chat(message)?;
    if message.has_reaction(caller, emoji) == added {
        return Ok(());
    }
    let event = ChatEvent::Reaction {
        target_id: target,
        user_id: caller.clone(),
        emoji: emoji.to_owned(),
        added,
    };
    append_visible(state, caller, room, event).await
}

/// Replaces the content of `caller`'s CHAT `message` of `room`: 403 `NOT_THE_SENDER`, 409
/// `MESSAGE_DELETED` or `EDIT_WINDOW_CLOSED`, and the content rules of sending. The same content
/// again appends nothing. Returns the message as history shows it now.
pub async fn edit_chat(
    state: &AppState,
    caller: &UserId,
    room: RoomId,
    message: Message,
    content: String,
) -> Result<Message, ApiError> {
    if message.kind != "CHAT" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NOT_EDITABLE",
            "only chat messages can be edited",
        ));
    }
    if message.sender_id.as_deref() != Some(caller.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "NOT_THE_SENDER",
            "only the sender can edit a message",
        ));
    }
    let target = live_chat(&message)?;
    let window = i64::try_from(EDIT_WINDOW.as_millis()).unwrap_or(i64::MAX);
    if Timestamp::now().millis() - message.sent_at > window {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "EDIT_WINDOW_CLOSED",
            "a message can be edited within 24 hours of sending",
        ));
    }
    check_content(state, &content)?;
    if message.content.as_deref() == Some(content.as_str()) {
        return Ok(message);
    }
    let event = ChatEvent::Edit {
        target_id: target,
        content,
    };
    append_visible(state, caller, room, event).await?;
    state
        .store
        .message(room, message.id)
        .await?
        .ok_or_else(ApiError::message_not_found)
}

/// The id of `message` when it is a CHAT that is not deleted: 404 `MESSAGE_NOT_FOUND` for a
/// system entry, 409 `MESSAGE_DELETED` for a deleted CHAT.
fn live_chat(message: &Message) -> Result<MessageId, ApiError> {
    if message.kind != "CHAT" {
        return Err(ApiError::message_not_found());
    }
    if message.deleted {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "MESSAGE_DELETED",
            "the message was deleted",
        ));
    }
    u64::try_from(message.id)
        .ok()
        .and_then(|seq| MessageId::from_sequence(seq).ok())
        .ok_or_else(ApiError::message_not_found)
}

/// Appends `event` by `actor` to `room` and waits until the projections show it.
async fn append_visible(
    state: &AppState,
    actor: &UserId,
    room: RoomId,
    event: ChatEvent,
) -> Result<(), ApiError> {
    let envelope = Envelope::new(room, actor.clone(), event);
    let appended = state
        .writer
        .append(&envelope, &envelope.event_id.to_string(), None)
        .await?;
    state.progress.wait_for(appended.sequence).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaction_is_one_emoji() {
        for good in ["👍", "❤️", "👍🏽", "🇰🇷", "1️⃣", "😂"] {
            assert!(check_emoji(good).is_ok(), "{good}");
        }
        for bad in ["", "a", "ok", "👍👍", "👍 ", "\u{7}", "👨‍👩‍👧‍👦", "한"]
        {
            let refused = check_emoji(bad).map_err(|e| e.code);
            assert_eq!(refused, Err("INVALID_REACTION"), "{bad:?}");
        }
    }
}
