//! Presence of dead edges: an edge refreshes its heartbeat key every few seconds; when the key
//! has expired, the edge died without saying goodbye (kill -9, lost host), and the reaper
//! appends an OUT for each of its users in this worker's rooms, so they stop counting as
//! present and later messages count as unread for them.

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::Context;
use chat_schemas::{encode, ChatEvent, Envelope, EventLog, RoomId, UserId};
use redis::aio::ConnectionManager;

use crate::keys::ReadKeys;
use crate::partition::partition_of;

/// Finds dead edges and appends OUT events for their users.
pub struct Reaper {
    pub(crate) redis: ConnectionManager,
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
    /// The log did not store an OUT.
    #[error("cannot append OUT: {0}")]
    Append(String),
}

impl Reaper {
    /// One pass: returns how many OUT events it appended.
    pub async fn reap(&mut self) -> Result<usize, ReapError> {
        let edges: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.edges())
            .query_async(&mut self.redis)
            .await?;
        if edges.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for edge in &edges {
            pipe.cmd("EXISTS").arg(self.keys.edge_alive(edge));
        }
        let alive: Vec<bool> = pipe.query_async(&mut self.redis).await?;
        let mut appended = 0;
        for (edge, alive) in edges.iter().zip(alive) {
            if !alive {
                appended += self.reap_edge(edge).await?;
            }
        }
        Ok(appended)
    }

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
        let mut acks = Vec::new();
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
            let payload = encode(&envelope).map_err(|e| ReapError::Append(e.to_string()))?;
            let publish = PublishMessage::build()
                .payload(payload.into())
                .message_id(format!("reap:{edge}:{entry}"));
            let ack = self
                .jetstream
                .send_publish(self.log.room_subject(&room), publish)
                .await
                .map_err(|e| ReapError::Append(e.to_string()))?;
            acks.push(ack);
        }
        let appended = acks.len();
        for ack in acks {
            ack.await.map_err(|e| ReapError::Append(e.to_string()))?;
        }
        if appended > 0 {
            tracing::info!(
                edge,
                appended,
                "edge heartbeat expired: its users left its rooms"
            );
        }
        Ok(appended)
    }
}

/// `"{room} {user}"` as written by `apply.lua`.
fn parse_entry(entry: &str) -> Option<(RoomId, UserId)> {
    let (room, user) = entry.split_once(' ')?;
    Some((room.parse().ok()?, UserId::parse(user).ok()?))
}
