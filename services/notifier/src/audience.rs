//! Who gets a push for an event, and what it says.
//!
//! A CHAT goes to the members in its unread set — those whose read position (the receipts
//! worker's) is before it: not in the room when it was recorded, the sender never among them —
//! except those who muted the room, unless the CHAT mentions them. Someone who opened the room
//! since has read it and is no longer in the set, so gets no push either. An INVITE (or a
//! room's creation) goes to every invited user.

use std::collections::HashSet;
use std::time::Duration;

use chat_read_state::{QueryError, UnreadCounts};
use chat_schemas::{ChatEvent, Envelope, RoomKind, UserId};

use crate::directory::{Directory, DirectoryError};
use crate::fcm::Notice;

/// Who gets a push and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    /// The recipients (before mutes, for CHAT).
    pub users: Vec<String>,
    /// The notification.
    pub notice: Notice,
    /// Whether mutes apply (CHAT) or not (INVITE).
    pub mutable: bool,
    /// The recipients the CHAT mentions: mutes do not apply to them, and their push says so.
    pub mentioned: HashSet<String>,
}

/// The audience could not be determined now; the event is handed back for later.
#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The read state could not be read.
    #[error(transparent)]
    Unread(#[from] QueryError),
    /// Cassandra failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The receipts worker has not applied the event yet.
    #[error("the receipts worker has not applied message {0} yet")]
    NotApplied(u64),
}

/// Who gets a push for `envelope` (stored at `seq`), or `None` for events that push nothing.
pub async fn audience(
    seq: u64,
    envelope: &Envelope,
    unread: &UnreadCounts,
    directory: &Directory,
    receipts_wait: Duration,
) -> Result<Option<Audience>, AudienceError> {
    let room = envelope.room_id;
    let actor = envelope.actor.as_str();
    let mut mentioned = HashSet::new();
    let (users, body, kind, mutable) = match &envelope.event {
        ChatEvent::Chat {
            content, mentions, ..
        } => {
            let users = unread_set(unread, envelope, seq, receipts_wait).await?;
            mentioned = mentions
                .iter()
                .map(UserId::as_str)
                .filter(|m| users.iter().any(|u| u == m))
                .map(str::to_owned)
                .collect();
            (users, content.clone(), "CHAT", true)
        }
        ChatEvent::RoomCreated { members, .. } => (
            others(members, actor),
            format!("{actor} invited you"),
            "INVITE",
            false,
        ),
        ChatEvent::Invite { user_ids } => (
            others(user_ids, actor),
            format!("{actor} invited you"),
            "INVITE",
            false,
        ),
        _ => return Ok(None),
    };
    if users.is_empty() {
        return Ok(None);
    }
    let title = match (&envelope.event, directory.room(room.as_uuid()).await?) {
        (
            ChatEvent::RoomCreated {
                kind: RoomKind::Group,
                name: Some(name),
                ..
            },
            _,
        ) => name.clone(),
        (_, Some((Some(kind), Some(name)))) if kind == "GROUP" => name,
        _ => actor.to_owned(),
    };
    Ok(Some(Audience {
        users,
        notice: Notice {
            title,
            body,
            room_id: room.to_string(),
            message_id: seq.to_string(),
            kind,
        },
        mutable,
        mentioned,
    }))
}

fn others(users: &[UserId], actor: &str) -> Vec<String> {
    users
        .iter()
        .map(UserId::as_str)
        .filter(|u| *u != actor)
        .map(str::to_owned)
        .collect()
}

/// The unread set of message `seq` once the receipts worker applied it (it is final then):
/// asked at once, which usually finds it applied (the worker is quicker than the notifier's
/// own work on the event), then again with growing pauses until `within` has passed.
async fn unread_set(
    unread: &UnreadCounts,
    envelope: &Envelope,
    seq: u64,
    within: Duration,
) -> Result<Vec<String>, AudienceError> {
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(users) = unread
            .readers_missing_once_applied(&envelope.room_id, seq)
            .await?
        {
            return Ok(users);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(AudienceError::NotApplied(seq));
        }
        tokio::time::sleep_until(deadline.min(now + pause)).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
