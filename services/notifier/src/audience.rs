//! Who gets a push for an event, and what it says.
//!
//! A CHAT goes to the members in its unread set — the receipts worker's record of who was not
//! in the room when it was recorded, the sender never among them — except those who muted the
//! room. Someone who opened the room since has read it and is no longer in the set, so gets no
//! push either. An INVITE (or a room's creation) goes to every invited user.

use std::time::Duration;

use chat_schemas::{ChatEvent, Envelope, RoomKind, UserId};
use receipts::ReadKeys;
use redis::aio::ConnectionManager;

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
}

/// The audience could not be determined now; the event is handed back for later.
#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
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
    redis: &ConnectionManager,
    keys: &ReadKeys,
    directory: &Directory,
    receipts_wait: Duration,
) -> Result<Option<Audience>, AudienceError> {
    let room = envelope.room_id;
    let actor = envelope.actor.as_str();
    let (users, body, kind, mutable) = match &envelope.event {
        ChatEvent::Chat { content, .. } => {
            wait_applied(redis, keys, envelope, seq, receipts_wait).await?;
            let mut users: Vec<String> = redis::cmd("SMEMBERS")
                .arg(keys.unread(&room, seq))
                .query_async(&mut redis.clone())
                .await?;
            users.sort();
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

/// Waits until the receipts worker applied `seq` of the room, so its unread set is final.
async fn wait_applied(
    redis: &ConnectionManager,
    keys: &ReadKeys,
    envelope: &Envelope,
    seq: u64,
    within: Duration,
) -> Result<(), AudienceError> {
    let deadline = tokio::time::Instant::now() + within;
    let key = keys.applied(&envelope.room_id);
    let mut pause = Duration::from_millis(5);
    loop {
        let applied: Option<u64> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut redis.clone())
            .await?;
        if applied.unwrap_or(0) >= seq {
            return Ok(());
        }
        if tokio::time::Instant::now() + pause > deadline {
            return Err(AudienceError::NotApplied(seq));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
