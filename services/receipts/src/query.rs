//! Reading the read state: the counts the edge's HTTP API and resumes show.

use std::collections::HashMap;

use chat_schemas::{RoomId, UserId};
use redis::aio::ConnectionManager;
use redis::RedisError;

use crate::keys::ReadKeys;

/// Redis could not answer.
#[derive(Debug, thiserror::Error)]
#[error("cannot read unread counts: {0}")]
pub struct QueryError(#[from] RedisError);

/// Read-only access to unread sets and counts.
#[derive(Clone)]
pub struct UnreadCounts {
    redis: ConnectionManager,
    keys: ReadKeys,
}

impl UnreadCounts {
    /// Reads under `keys`.
    pub fn new(redis: ConnectionManager, keys: ReadKeys) -> Self {
        Self { redis, keys }
    }

    /// `unreadCount` of each message `seqs` of `room`, in one round trip; 0 for messages with
    /// no set (read by everyone, deleted, or past the retention).
    pub async fn of_messages(&self, room: &RoomId, seqs: &[u64]) -> Result<Vec<u64>, QueryError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for seq in seqs {
            pipe.cmd("SCARD").arg(self.keys.unread(room, *seq));
        }
        Ok(pipe.query_async(&mut self.redis.clone()).await?)
    }

    /// Who has not read message `seq` of `room`, sorted.
    pub async fn readers_missing(
        &self,
        room: &RoomId,
        seq: u64,
    ) -> Result<Vec<String>, QueryError> {
        let mut users: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.unread(room, seq))
            .query_async(&mut self.redis.clone())
            .await?;
        users.sort();
        Ok(users)
    }

    /// `user`'s unread count per room (rooms without unread messages are absent).
    pub async fn of_user(&self, user: &UserId) -> Result<HashMap<RoomId, u64>, QueryError> {
        let raw: HashMap<String, u64> = redis::cmd("HGETALL")
            .arg(self.keys.counts(user))
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(raw
            .into_iter()
            .filter_map(|(room, count)| Some((room.parse().ok()?, count)))
            .collect())
    }

    /// `user`'s total badge: unread messages over all their rooms.
    pub async fn total(&self, user: &UserId) -> Result<u64, QueryError> {
        Ok(self.of_user(user).await?.values().sum())
    }

    /// Whether anyone has anything unread in `room` (the seed's quick check).
    pub async fn room_has_unread(&self, room: &RoomId) -> Result<bool, QueryError> {
        let exists: bool = redis::cmd("EXISTS")
            .arg(self.keys.tracked(room))
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(exists)
    }
}
