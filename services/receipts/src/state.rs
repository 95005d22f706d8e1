//! Applying the log to the read state: one `apply.lua` call per event, a whole batch in one
//! pipelined round trip, each call atomic and applied at most once per room sequence. Each
//! applied event's outcome is recorded until [`ReadState::published`] marks it published, so a
//! redelivery after a crash publishes exactly what the first application would have. Every
//! write is fenced by the partition lease.

use std::collections::HashMap;

use chat_schemas::{ChatEvent, Envelope, MessageId, RoomId, UserId};
use redis::aio::ConnectionManager;
use redis::{RedisError, Value};

use crate::keys::ReadKeys;

/// The script that applies one event.
const APPLY: &str = include_str!("apply.lua");

/// The script that marks a batch published and records the partition's progress.
const PUBLISHED: &str = include_str!("published.lua");

/// Redis refused or lost a batch; nothing is half-applied per event, and applying again is safe.
#[derive(Debug, thiserror::Error)]
pub enum ReadStateError {
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    /// The script answered something this build does not understand.
    #[error("unexpected answer from the apply script: {0}")]
    Answer(String),
    /// The lease no longer holds this worker's token: nothing was written, and this worker must
    /// stop applying (another one took over, or the lease expired).
    #[error("the partition lease is no longer held by this worker")]
    Fenced,
}

/// Who may write the read state: the partition lease key and the token of its holder. The
/// scripts check it atomically with their writes, so a worker that lost its lease (a stall
/// longer than the lease, Redis restarted without the key) can never write after the next
/// holder started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease key.
    pub key: String,
    /// The holder's token stored in it.
    pub holder: String,
}

/// One event of the log with its stream sequence.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    /// Stream sequence: the event's message id.
    pub seq: u64,
    /// The event.
    pub envelope: Envelope,
}

/// What applying an event changed that clients must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to publish (presence that changed nothing, events clients never see).
    Nothing,
    /// A CHAT was recorded.
    Chat {
        /// The room's previous published sequence.
        previous: u64,
        /// How many members have not read it.
        unread: u64,
        /// Every member with their unread count in the room, for the room-list feeds.
        members: Vec<(UserId, u64)>,
    },
    /// An INVITE, a room creation or a DELETE: published as stored.
    Shown {
        /// The room's previous published sequence.
        previous: u64,
    },
    /// A LEAVE.
    Leave {
        /// The room's previous published sequence.
        previous: u64,
        /// How many messages leaving marked read.
        read_count: u64,
    },
    /// A user's first presence in the room: INFO.
    Info {
        /// The room's previous published sequence.
        previous: u64,
        /// How many messages entering marked read.
        read_count: u64,
        /// The newest of them.
        last_read: Option<MessageId>,
    },
    /// A user's last presence ended: OUT.
    Out {
        /// The room's previous published sequence.
        previous: u64,
    },
}

/// The read state in Redis, written in log order.
pub struct ReadState {
    redis: ConnectionManager,
    keys: ReadKeys,
    hash: String,
    published: redis::Script,
    max_tracked: usize,
}

impl ReadState {
    /// Writes under `keys`, keeping unread sets for the newest `max_tracked` messages per room.
    pub fn new(redis: ConnectionManager, keys: ReadKeys, max_tracked: usize) -> Self {
        Self {
            redis,
            keys,
            hash: redis::Script::new(APPLY).get_hash().to_owned(),
            published: redis::Script::new(PUBLISHED),
            max_tracked,
        }
    }

    /// Applies `events` in order in one round trip. With a `fence` (a worker), each write is
    /// refused once the lease is lost ([`ReadStateError::Fenced`]) and the outcome of every
    /// event after `silent_until` is recorded until [`ReadState::published`]; without one (the
    /// rebuild, which holds every lease itself) nothing is fenced or recorded.
    pub async fn apply(
        &mut self,
        events: &[LoggedEvent],
        fence: Option<&Fence>,
        silent_until: u64,
    ) -> Result<Vec<Outcome>, ReadStateError> {
        match self.try_apply(events, fence, silent_until).await {
            Err(ReadStateError::Redis(e))
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(APPLY)
                    .query_async::<String>(&mut self.redis)
                    .await?;
                self.try_apply(events, fence, silent_until).await
            }
            other => other,
        }
    }

    async fn try_apply(
        &mut self,
        events: &[LoggedEvent],
        fence: Option<&Fence>,
        silent_until: u64,
    ) -> Result<Vec<Outcome>, ReadStateError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (lease, holder) = fence.map_or(("", ""), |f| (f.key.as_str(), f.holder.as_str()));
        let mut pipe = redis::pipe();
        for event in events {
            let record = fence.is_some() && event.seq > silent_until;
            let mut call = redis::cmd("EVALSHA");
            call.arg(&self.hash).arg(0).arg(self.keys.prefix());
            call.arg(lease)
                .arg(holder)
                .arg(if record { "1" } else { "0" });
            call.arg(event.envelope.room_id.to_string()).arg(event.seq);
            operation(&event.envelope, self.max_tracked, &mut call);
            pipe.add_command(call);
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.redis).await?;
        replies.into_iter().map(outcome).collect()
    }

    /// Marks `events` (applied, then published) as published: their recorded outcomes are
    /// deleted, so a redelivery publishes nothing again; and records `last` as the progress of
    /// `consumer`. Both in one fenced call, after publishing and before the ack.
    pub async fn published(
        &mut self,
        events: &[LoggedEvent],
        fence: &Fence,
        consumer: &str,
        last: u64,
    ) -> Result<(), ReadStateError> {
        let mut upto: HashMap<&RoomId, u64> = HashMap::new();
        for event in events {
            let seq = upto.entry(&event.envelope.room_id).or_default();
            *seq = (*seq).max(event.seq);
        }
        let mut call = self.published.prepare_invoke();
        call.arg(self.keys.prefix())
            .arg(&fence.key)
            .arg(&fence.holder)
            .arg(self.keys.progress(consumer))
            .arg(last);
        for (room, seq) in upto {
            call.arg(room.to_string()).arg(seq);
        }
        match call.invoke_async::<i64>(&mut self.redis).await? {
            1 => Ok(()),
            _ => Err(ReadStateError::Fenced),
        }
    }
}

/// The script's operation and arguments for one event.
fn operation(envelope: &Envelope, max_tracked: usize, call: &mut redis::Cmd) {
    match &envelope.event {
        ChatEvent::Chat { .. } => {
            call.arg("chat")
                .arg(envelope.actor.as_str())
                .arg(max_tracked);
        }
        ChatEvent::RoomCreated { members, .. } => {
            call.arg("members");
            for member in members {
                call.arg(member.as_str());
            }
        }
        ChatEvent::Invite { user_ids } => {
            call.arg("members");
            for user in user_ids {
                call.arg(user.as_str());
            }
        }
        ChatEvent::Delete { message_ids } => {
            call.arg("delete");
            for id in message_ids {
                call.arg(id.sequence());
            }
        }
        ChatEvent::Leave { user_id, .. } => {
            call.arg("leave").arg(user_id.as_str());
        }
        ChatEvent::Info { user_id, edge, .. } => {
            call.arg("enter")
                .arg(user_id.as_str())
                .arg(edge.as_deref().unwrap_or_default());
        }
        ChatEvent::Out { user_id, edge } => {
            call.arg("exit")
                .arg(user_id.as_str())
                .arg(edge.as_deref().unwrap_or_default());
        }
        ChatEvent::Unknown => {
            call.arg("none");
        }
    }
}

/// Decodes one reply of `apply.lua`.
fn outcome(reply: Value) -> Result<Outcome, ReadStateError> {
    let bad = |what: &str| ReadStateError::Answer(what.to_owned());
    let Value::Array(items) = reply else {
        return Err(bad("not an array"));
    };
    let text = |i: usize| match items.get(i) {
        Some(Value::BulkString(bytes)) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        Some(Value::SimpleString(s)) => Ok(s.clone()),
        _ => Err(bad("missing text")),
    };
    let number = |i: usize| match items.get(i) {
        Some(Value::Int(n)) => Ok(*n),
        _ => Err(bad("missing number")),
    };
    let unsigned = |i: usize| number(i).map(|n| u64::try_from(n).unwrap_or(0));
    Ok(match text(0)?.as_str() {
        "fenced" => return Err(ReadStateError::Fenced),
        "none" => Outcome::Nothing,
        "chat" => {
            let mut members = Vec::with_capacity(items.len().saturating_sub(3) / 2);
            let mut i = 3;
            while i + 1 < items.len() {
                if let Ok(user) = UserId::parse(&text(i)?) {
                    members.push((user, unsigned(i + 1)?));
                }
                i += 2;
            }
            Outcome::Chat {
                previous: unsigned(1)?,
                unread: unsigned(2)?,
                members,
            }
        }
        "shown" => Outcome::Shown {
            previous: unsigned(1)?,
        },
        "leave" => Outcome::Leave {
            previous: unsigned(1)?,
            read_count: unsigned(2)?,
        },
        "info" => Outcome::Info {
            previous: unsigned(1)?,
            read_count: unsigned(2)?,
            last_read: text(3)?.parse().ok(),
        },
        "out" => Outcome::Out {
            previous: unsigned(1)?,
        },
        other => return Err(bad(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_fenced_write_is_an_error_and_a_leave_always_has_its_read_count() {
        assert!(matches!(
            outcome(Value::Array(vec![text("fenced")])),
            Err(ReadStateError::Fenced)
        ));
        let leave = outcome(Value::Array(vec![
            text("leave"),
            Value::Int(7),
            Value::Int(3),
        ]));
        assert_eq!(
            leave.ok(),
            Some(Outcome::Leave {
                previous: 7,
                read_count: 3
            })
        );
    }
}
