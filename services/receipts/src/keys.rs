//! Where the read state lives in Redis. `apply.lua` builds the same names; every key starts with
//! the deployment's prefix, then `rs:` for state that a rebuild recreates from the log.
//!
//! | Key | Type | Holds |
//! |---|---|---|
//! | `rs:unread:{room}:{messageId}` | set | members who have not read the message (its size is `unreadCount`) |
//! | `rs:pending:{room}:{user}` | sorted set | the messages of the room `user` has not read |
//! | `rs:counts:{user}` | hash | room -> how many messages of it `user` has not read |
//! | `rs:tracked:{room}` | sorted set | the room's messages that have an unread set (retention) |
//! | `rs:members:{room}` | set | the room's members, as of the applied log |
//! | `rs:inroom:{room}` | set | members with the room open on at least one edge |
//! | `rs:present:{room}:{user}` | set | the edges where `user` has the room open |
//! | `rs:edge:{edge}` | set | `"{room} {user}"` entries present through that edge |
//! | `rs:edges` | set | edges that hold presence |
//! | `rs:applied:{room}` / `rs:shown:{room}` | string | the room's last applied / published sequence |
//! | `rs:outcomes:{room}` | hash | sequence -> what an applied event published (MessagePack), kept until the worker marks it published |
//! | `rs:progress:{consumer}` | string | the last sequence a worker partition applied and published |
//! | `edge-alive:{edge}` | string | an edge's heartbeat, expiring when it stops |
//! | `receipts-lease:{consumer}` | string | which worker process owns a partition |

use chat_schemas::{RoomId, UserId};

/// The key names of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadKeys {
    prefix: String,
}

impl ReadKeys {
    /// Keys under `prefix` (the `[redis] key_prefix` setting).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix itself, as `apply.lua` receives it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The pattern of every key a rebuild recreates.
    pub fn state_pattern(&self) -> String {
        format!("{}rs:*", self.prefix)
    }

    /// Members who have not read message `seq` of `room`.
    pub fn unread(&self, room: &RoomId, seq: u64) -> String {
        format!("{}rs:unread:{room}:{seq}", self.prefix)
    }

    /// The last sequence of `room` the worker applied: a message's unread set is final once
    /// this reaches it.
    pub fn applied(&self, room: &RoomId) -> String {
        format!("{}rs:applied:{room}", self.prefix)
    }

    /// Room -> unread messages of `user`.
    pub fn counts(&self, user: &UserId) -> String {
        format!("{}rs:counts:{user}", self.prefix)
    }

    /// The room's messages that still have an unread set.
    pub fn tracked(&self, room: &RoomId) -> String {
        format!("{}rs:tracked:{room}", self.prefix)
    }

    /// Members present in the room.
    pub fn in_room(&self, room: &RoomId) -> String {
        format!("{}rs:inroom:{room}", self.prefix)
    }

    /// `"{room} {user}"` entries present through `edge`.
    pub fn edge_presence(&self, edge: &str) -> String {
        format!("{}rs:edge:{edge}", self.prefix)
    }

    /// Edges that hold presence.
    pub fn edges(&self) -> String {
        format!("{}rs:edges", self.prefix)
    }

    /// The last sequence the worker consumer `consumer` applied and published.
    pub fn progress(&self, consumer: &str) -> String {
        format!("{}rs:progress:{consumer}", self.prefix)
    }

    /// An edge's heartbeat.
    pub fn edge_alive(&self, edge: &str) -> String {
        format!("{}edge-alive:{edge}", self.prefix)
    }

    /// Who owns the worker partition whose consumer is `consumer`.
    pub fn lease(&self, consumer: &str) -> String {
        format!("{}receipts-lease:{consumer}", self.prefix)
    }
}
