//! Where the read state lives in Redis. Every key starts with the deployment's prefix, then
//! `rs:` for state that a rebuild recreates from the log. The part in braces is the key's hash
//! tag: every key of one room shares the room id, so one script call touches one hash slot and
//! the state works on a Redis Cluster as on a single Redis.
//!
//! | Key | Type | Holds |
//! |---|---|---|
//! | `rs:{room}:room` | hash | `applied` / `shown`: the last applied / published sequence; `chats`: CHATs ever recorded; `m:{user}`: the member's `mentionCount`, unread CHATs that mention them (absent when 0) |
//! | `rs:{room}:positions` | sorted set | member -> read position: the sequence they have read up to, `inf` while present |
//! | `rs:{room}:bases` | hash | member -> `chats` not counted as unread for them (their count is `chats - base` while absent) |
//! | `rs:{room}:unread` | sorted set | `"{seq} {sender}"` of each CHAT someone may not have read (score: seq); forgotten once every position passed it |
//! | `rs:{room}:mentions` | sorted set | `"{seq} {user} {user}..."` of each CHAT that mentioned members who had not read it (score: seq), so a DELETE can take it off their counts; forgotten once every position passed it |
//! | `rs:{room}:presence` | hash | member -> the edges where they have the room open, space-separated |
//! | `rs:{room}:outcomes` | hash | sequence -> what an applied event published (MessagePack), kept until the worker marks it published |
//! | `receipts-fence:{room}` | string | the newest fencing epoch that wrote the room (not state: a rebuild keeps it) |
//! | `rs:edge:{edge}` | set | `"{room} {user}"` entries present through that edge |
//! | `rs:edges` | set | edges that hold presence |
//! | `rs:progress:{consumer}` | string | the last sequence a worker partition applied and published |
//! | `edge-alive:{edge}` | string | an edge's heartbeat, expiring when it stops |
//! | `receipts-lease:{consumer}` | string | which worker process owns a partition |
//! | `receipts-epoch` | string | fencing epochs handed out with the leases, one more per holder |

use chat_schemas::RoomId;

/// The key names of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadKeys {
    prefix: String,
}

/// The keys of one room, in the order the scripts take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomKeys {
    /// Sequences and the CHAT count.
    pub room: String,
    /// Read positions.
    pub positions: String,
    /// Count bases.
    pub bases: String,
    /// CHATs someone may not have read.
    pub unread: String,
    /// CHATs that mentioned members who had not read them.
    pub mentions: String,
    /// Edges per present member.
    pub presence: String,
    /// Outcomes not yet published.
    pub outcomes: String,
    /// The newest fencing epoch that wrote the room.
    pub fence: String,
}

impl ReadKeys {
    /// Keys under `prefix` (the `[redis] key_prefix` setting).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix itself, for other keys of the deployment.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The pattern of every key a rebuild recreates.
    pub fn state_pattern(&self) -> String {
        format!("{}rs:*", self.prefix)
    }

    /// Every key of `room`.
    pub fn room(&self, room: &RoomId) -> RoomKeys {
        let key = |name: &str| format!("{}rs:{{{room}}}:{name}", self.prefix);
        RoomKeys {
            room: key("room"),
            positions: key("positions"),
            bases: key("bases"),
            unread: key("unread"),
            mentions: key("mentions"),
            presence: key("presence"),
            outcomes: key("outcomes"),
            fence: format!("{}receipts-fence:{{{room}}}", self.prefix),
        }
    }

    /// `"{room} {user}"` entries present through `edge`.
    pub fn edge_presence(&self, edge: &str) -> String {
        format!("{}rs:edge:{{{edge}}}", self.prefix)
    }

    /// Edges that hold presence.
    pub fn edges(&self) -> String {
        format!("{}rs:edges", self.prefix)
    }

    /// The last sequence the worker consumer `consumer` applied and published (same hash slot
    /// as its lease, so one script checks the lease and writes it).
    pub fn progress(&self, consumer: &str) -> String {
        format!("{}rs:progress:{{{consumer}}}", self.prefix)
    }

    /// An edge's heartbeat.
    pub fn edge_alive(&self, edge: &str) -> String {
        format!("{}edge-alive:{edge}", self.prefix)
    }

    /// Who owns the worker partition whose consumer is `consumer`.
    pub fn lease(&self, consumer: &str) -> String {
        format!("{}receipts-lease:{{{consumer}}}", self.prefix)
    }

    /// The fencing epochs handed out with every partition's lease.
    pub fn epochs(&self) -> String {
        format!("{}receipts-epoch", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis Cluster hashes only the part between the first `{` and the next `}`.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').map_or(0, |i| i + 1);
        let close = key[open..].find('}').map_or(key.len(), |i| open + i);
        &key[open..close]
    }

    #[test]
    fn a_rooms_keys_share_one_hash_slot_and_a_lease_shares_its_progress_slot() {
        let keys = ReadKeys::new("p:");
        let room = RoomId::random();
        let r = keys.room(&room);
        let id = room.to_string();
        for key in [
            &r.room,
            &r.positions,
            &r.bases,
            &r.unread,
            &r.presence,
            &r.outcomes,
            &r.fence,
        ] {
            assert_eq!(hash_tag(key), id, "{key}");
        }
        let consumer = "receipts-0-of-1";
        assert_eq!(hash_tag(&keys.lease(consumer)), consumer);
        assert_eq!(hash_tag(&keys.progress(consumer)), consumer);
        assert!(keys.room(&room).room.starts_with("p:rs:"));
    }
}
