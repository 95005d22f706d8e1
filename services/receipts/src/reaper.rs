//! Presence of dead edges: an edge refreshes its heartbeat key every few seconds; when the key
//! has expired, the edge died without saying goodbye (kill -9, lost host), and the reaper
//! appends an OUT for each of its users in this worker's rooms, so they stop counting as
//! present and later messages count as unread for them.

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::Context;
use chat_platform::append;
use chat_platform::redis_connection::RedisConnection;
use chat_schemas::{encode, ChatEvent, Envelope, EventLog, RoomId, UserId};
use futures::StreamExt;

use crate::partition::partition_of;
use chat_read_state::ReadKeys;

/// Finds dead edges and appends OUT events for their users.
pub struct Reaper {
    pub(crate) redis: RedisConnection,
    pub(crate) keys: ReadKeys,
    pub(crate) jetstream: Context,
    pub(crate) log: EventLog,
    pub(crate) partition: u32,
    pub(crate) partitions: u32,
}

/// One failure of a reaping pass; the next pass tries again.
#[derive(Debug, thiserror::Error)]
pub enum ReapError {
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Some OUT events of a dead edge were not stored; the others were, and the next pass
    /// appends the rest (their deduplication ids make the repeated ones no-ops).
    #[error("{failed} OUT not stored ({appended} were), the first because: {first}")]
    Append {
        /// OUT events stored in this pass (not counting those a previous pass stored).
        appended: usize,
        /// OUT events not stored.
        failed: usize,
        /// What the first failure was.
        first: String,
    },
}

impl Reaper {
    /// One pass over every dead edge: returns how many OUT events it newly stored. An edge whose
    /// reaping fails is logged and left to the next pass, and does not keep the other edges
    /// from being reaped; what it stored stays stored.
    pub async fn reap(&mut self) -> Result<usize, ReapError> {
        let edges: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.edges())
            .query_async(&mut self.redis)
            .await?;
        if edges.is_empty() {
            return Ok(0);
        }
        let checks = edges
            .iter()
            .map(|edge| {
                let key = self.keys.edge_alive(edge);
                let mut exists = redis::cmd("EXISTS");
                exists.arg(&key);
                (key, exists)
            })
            .collect();
        let alive: Vec<bool> = self
            .redis
            .pipeline(checks)
            .await?
            .iter()
            .map(redis::from_redis_value_ref)
            .collect::<Result<_, _>>()
            .map_err(redis::RedisError::from)?;
        let mut appended = 0;
        for (edge, alive) in edges.iter().zip(alive) {
            if alive {
                continue;
            }
            match self.reap_edge(edge).await {
                Ok(count) => appended += count,
                Err(error) => {
                    if let ReapError::Append {
                        appended: count, ..
                    } = &error
                    {
                        appended += count;
                    }
                    tracing::warn!(%error, edge, "reaping a dead edge failed; the next pass goes on");
                }
            }
        }
        Ok(appended)
    }

    /// Appends OUT for every entry of `edge` in this worker's rooms, with a bounded number
    /// awaiting their ack ([`append::append_batch`]), and forgets the edge once it has none.
    async fn reap_edge(&mut self, edge: &str) -> Result<usize, ReapError> {
        let entries: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.edge_presence(edge))
            .query_async(&mut self.redis)
            .await?;
        if entries.is_empty() {
            redis::cmd("SREM")
                .arg(self.keys.edges())
                .arg(edge)
                .query_async::<i64>(&mut self.redis)
                .await?;
            return Ok(0);
        }
        let mut batch = Vec::new();
        for entry in &entries {
            let Some((room, user)) = parse_entry(entry) else {
                continue;
            };
            if partition_of(&room, self.partitions) != self.partition {
                continue;
            }
            let envelope = Envelope::new(
                room,
                user.clone(),
                ChatEvent::Out {
                    user_id: user,
                    edge: Some(edge.to_owned()),
                },
            );
            match encode(&envelope) {
                Ok(payload) => batch.push((
                    (),
                    self.log.room_subject(&room),
                    PublishMessage::build()
                        .payload(payload.into())
                        .message_id(format!("reap:{edge}:{entry}")),
                )),
                Err(error) => tracing::warn!(%error, entry, "cannot encode an OUT; skipped"),
            }
        }
        let (mut appended, mut failed, mut first) = (0, 0, None);
        let mut stored = append::append_batch(&self.jetstream, batch);
        while let Some(((), outcome)) = stored.next().await {
            match outcome {
                Ok(ack) if !ack.duplicate => appended += 1,
                Ok(_) => {}
                Err(error) => {
                    failed += 1;
                    first.get_or_insert_with(|| error.to_string());
                }
            }
        }
        if appended > 0 {
            tracing::info!(
                edge,
                appended,
                "edge heartbeat expired: its users left its rooms"
            );
        }
        match first {
            None => Ok(appended),
            Some(first) => Err(ReapError::Append {
                appended,
                failed,
                first,
            }),
        }
    }
}

/// `"{room} {user}"` as written by `apply.lua`.
fn parse_entry(entry: &str) -> Option<(RoomId, UserId)> {
    let (room, user) = entry.split_once(' ')?;
    Some((room.parse().ok()?, UserId::parse(user).ok()?))
}
