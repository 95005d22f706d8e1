//! Reading the read state: the counts the edge's HTTP API, resumes and the notifier show, all
//! derived from read positions (`docs/receipts.md`). Each script reads one room's keys, so it
//! runs in one hash slot.

use std::collections::HashMap;
use std::sync::Arc;

use chat_platform::redis_connection::RedisConnection;
use chat_schemas::{RoomId, UserId};
use redis::RedisError;

use crate::keys::ReadKeys;

/// `unreadCount` of messages: the members whose position is below the message, but its
/// sender; 0 for a message every position passed or that was deleted (it has no entry). A
/// message the worker has not applied yet (past the room's `applied`: the worker may have
/// published its view already, docs/receipts.md "Views from memory") has no entry either, and
/// counts as applying it will count it. KEYS: room, positions, unread. ARGV: sequence and
/// sender of each message.
const MESSAGE_COUNTS: &str = r"
local applied = tonumber(redis.call('HGET', KEYS[1], 'applied') or '0')
local counts = {}
for i = 1, #ARGV, 2 do
  local s, sender = ARGV[i], ARGV[i + 1]
  local count = 0
  if tonumber(s) > applied or redis.call('ZRANGEBYSCORE', KEYS[3], s, s)[1] then
    count = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. s)
    local sp = redis.call('ZSCORE', KEYS[2], sender)
    if sp and sp ~= 'inf' and tonumber(sp) < tonumber(s) then
      count = count - 1
    end
  end
  counts[#counts + 1] = count
end
return counts";

/// The members who have not read a message (its unread set). With `ARGV[2]` = 1, `false` (nil)
/// while the worker has not applied the message yet, so that the notifier waits for a final
/// set in one round trip per try. KEYS: room, positions, unread. ARGV: the sequence, 0 or 1.
const MISSING: &str = r"
local s = ARGV[1]
if ARGV[2] == '1' and tonumber(redis.call('HGET', KEYS[1], 'applied') or '0') < tonumber(s) then
  return false
end
local entry = redis.call('ZRANGEBYSCORE', KEYS[3], s, s)[1]
if not entry then
  return {}
end
local sender = string.match(entry, '^%d+ (.*)$')
local out = {}
for _, u in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. s)) do
  if u ~= sender then
    out[#out + 1] = u
  end
end
return out";

/// One member's unread count in a room (CHATs beyond their base while absent, 0 while present
/// or not a member) and their mention count (unread CHATs that mention them, kept by
/// `apply.lua` in the room hash). KEYS: room, positions, bases. ARGV: the user.
const ROOM_COUNT: &str = r"
local p = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not p or p == 'inf' then
  return {0, 0}
end
local counts = redis.call('HMGET', KEYS[1], 'chats', 'm:' .. ARGV[1])
local base = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
return {tonumber(counts[1] or '0') - base, tonumber(counts[2] or '0')}";

/// Whether any absent member has anything unread. KEYS: room, positions, bases.
const ANY_UNREAD: &str = r"
local chats = tonumber(redis.call('HGET', KEYS[1], 'chats') or '0')
for _, u in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(inf')) do
  if chats > tonumber(redis.call('HGET', KEYS[3], u) or '0') then
    return 1
  end
end
return 0";

/// Who has the room open now, and through which event of the room's log that holds: the
/// receipts worker changes both in the same script, so one read sees them agree. KEYS: room,
/// presence.
const PRESENT: &str = r"
return {redis.call('HGET', KEYS[1], 'applied') or '0', redis.call('HKEYS', KEYS[2])}";

/// The members who have a room open, as of an event of its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// Sorted by byte order.
    pub users: Vec<String>,
    /// The sequence of the room's last event the worker applied: INFO and OUT after it change
    /// `users`, those up to it are in it already.
    pub as_of: u64,
}

/// A member's counts in one room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberCounts {
    /// Messages they have not read (`unreadCount`).
    pub unread: u64,
    /// Of those, the CHATs that mention them (`mentionCount`).
    pub mentions: u64,
}

/// Redis could not answer.
#[derive(Debug, thiserror::Error)]
#[error("cannot read unread counts: {0}")]
pub struct QueryError(#[from] RedisError);

/// The read scripts, hashed once.
struct Scripts {
    message_counts: redis::Script,
    missing: redis::Script,
    room_count: redis::Script,
    any_unread: redis::Script,
    present: redis::Script,
}

/// Read-only access to unread counts and sets.
#[derive(Clone)]
pub struct UnreadCounts {
    redis: RedisConnection,
    keys: ReadKeys,
    scripts: Arc<Scripts>,
}

impl UnreadCounts {
    /// Reads under `keys`.
    pub fn new(redis: RedisConnection, keys: ReadKeys) -> Self {
        let scripts = Scripts {
            message_counts: redis::Script::new(MESSAGE_COUNTS),
            missing: redis::Script::new(MISSING),
            room_count: redis::Script::new(ROOM_COUNT),
            any_unread: redis::Script::new(ANY_UNREAD),
            present: redis::Script::new(PRESENT),
        };
        Self {
            redis,
            keys,
            scripts: Arc::new(scripts),
        }
    }

    /// `unreadCount` of each of `messages` of `room` (a CHAT's sequence and sender), in one
    /// call; 0 for messages read by everyone or deleted.
    pub async fn of_messages(
        &self,
        room: &RoomId,
        messages: &[(u64, &str)],
    ) -> Result<Vec<u64>, QueryError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.keys.room(room);
        let mut call = self.scripts.message_counts.prepare_invoke();
        call.key(&keys.room).key(&keys.positions).key(&keys.unread);
        for (seq, sender) in messages {
            call.arg(*seq).arg(*sender);
        }
        Ok(call.invoke_async(&mut self.redis.clone()).await?)
    }

    /// Who has not read message `seq` of `room`, sorted.
    pub async fn readers_missing(
        &self,
        room: &RoomId,
        seq: u64,
    ) -> Result<Vec<String>, QueryError> {
        Ok(self.missing(room, seq, false).await?.unwrap_or_default())
    }

    /// Who has not read message `seq` of `room`, sorted, once the worker has applied it (its
    /// unread set is final then); `None` while it has not.
    pub async fn readers_missing_once_applied(
        &self,
        room: &RoomId,
        seq: u64,
    ) -> Result<Option<Vec<String>>, QueryError> {
        self.missing(room, seq, true).await
    }

    /// The unread set of message `seq`, sorted; `None` if `once_applied` and the worker has not
    /// applied it yet.
    async fn missing(
        &self,
        room: &RoomId,
        seq: u64,
        once_applied: bool,
    ) -> Result<Option<Vec<String>>, QueryError> {
        let keys = self.keys.room(room);
        let users: Option<Vec<String>> = self
            .scripts
            .missing
            .key(&keys.room)
            .key(&keys.positions)
            .key(&keys.unread)
            .arg(seq)
            .arg(u8::from(once_applied))
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(users.map(|mut users| {
            users.sort();
            users
        }))
    }

    /// `user`'s counts in each of `rooms` (rooms where both are 0 are absent), in one round
    /// trip.
    pub async fn of_user(
        &self,
        user: &UserId,
        rooms: &[RoomId],
    ) -> Result<HashMap<RoomId, MemberCounts>, QueryError> {
        if rooms.is_empty() {
            return Ok(HashMap::new());
        }
        let reads = |rooms: &[RoomId]| {
            rooms
                .iter()
                .map(|room| {
                    let keys = self.keys.room(room);
                    let mut call = redis::cmd("EVALSHA");
                    call.arg(self.scripts.room_count.get_hash())
                        .arg(3)
                        .arg(&keys.room)
                        .arg(&keys.positions)
                        .arg(&keys.bases)
                        .arg(user.as_str());
                    (keys.room, call)
                })
                .collect::<Vec<_>>()
        };
        let replies = match self.redis.pipeline(reads(rooms)).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(ROOM_COUNT)
                    .query_async::<String>(&mut self.redis.clone())
                    .await?;
                self.redis.pipeline(reads(rooms)).await?
            }
            other => other?,
        };
        let counts: Vec<(u64, u64)> = replies
            .iter()
            .map(redis::from_redis_value_ref)
            .collect::<Result<_, _>>()
            .map_err(redis::RedisError::from)?;
        Ok(rooms
            .iter()
            .zip(counts)
            .filter(|(_, counts)| *counts != (0, 0))
            .map(|(room, (unread, mentions))| (*room, MemberCounts { unread, mentions }))
            .collect())
    }

    /// `user`'s total badge: unread messages over `rooms`, their rooms.
    pub async fn total(&self, user: &UserId, rooms: &[RoomId]) -> Result<u64, QueryError> {
        Ok(self
            .of_user(user, rooms)
            .await?
            .values()
            .map(|counts| counts.unread)
            .sum())
    }

    /// Whether anyone has anything unread in `room` (the seed's quick check).
    pub async fn room_has_unread(&self, room: &RoomId) -> Result<bool, QueryError> {
        let keys = self.keys.room(room);
        let any: i64 = self
            .scripts
            .any_unread
            .key(&keys.room)
            .key(&keys.positions)
            .key(&keys.bases)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(any == 1)
    }

    /// Who has `room` open now, on any edge, and as of which event of its log.
    pub async fn present(&self, room: &RoomId) -> Result<Present, QueryError> {
        let keys = self.keys.room(room);
        let (as_of, mut users): (u64, Vec<String>) = self
            .scripts
            .present
            .key(&keys.room)
            .key(&keys.presence)
            .invoke_async(&mut self.redis.clone())
            .await?;
        users.sort();
        Ok(Present { users, as_of })
    }
}
