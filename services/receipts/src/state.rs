//! Applying the log to the read state: one `apply.lua` call per room of a batch with the
//! room's events in log order, the whole batch in one pipelined round trip, each call atomic
//! and each event applied at most once per room sequence. Each
//! applied event's outcome is recorded until [`ReadState::published`] marks it published, so a
//! redelivery after a crash publishes exactly what the first application would have. Every
//! write is fenced by the holder's epoch, room by room.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use chat_platform::redis_connection::RedisConnection;
use chat_schemas::{ChatEvent, Envelope, MessageId, RoomId, UserId};
use redis::{RedisError, Value};

use crate::predict;
use crate::reply::{self, Applied, Kind, Loaded};
use crate::room_counts::{RoomCache, RoomCounts};
use chat_read_state::{ReadKeys, RoomKeys};

/// The script that applies a run of one room's events.
const APPLY: &str = include_str!("apply.lua");

/// The script that loads (and fences) a room for the in-memory counts.
const LOAD: &str = include_str!("load.lua");

/// The script that marks a room's published outcomes.
const PUBLISHED: &str = include_str!("published.lua");

/// Records a partition's progress while its lease holds this holder.
const PROGRESS: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
return 1";

/// How long a batch waits for a Redis Cluster replica to confirm it.
const REPLICA_WAIT_MS: u64 = 1_000;

/// Redis refused or lost a batch; nothing is half-applied per event, and applying again is safe.
#[derive(Debug, thiserror::Error)]
pub enum ReadStateError {
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    /// A script answered something this build does not understand.
    #[error("unexpected answer from a read-state script: {0}")]
    Answer(String),
    /// A holder with a newer epoch has written a room of the batch, or the lease no longer
    /// holds this worker: nothing was written, and this worker must stop applying.
    #[error("the partition lease is no longer held by this worker")]
    Fenced,
}

/// Who may write the read state: the partition lease with its holder's token, and the epoch
/// handed out with it. A room refuses writes from an epoch older than the newest that wrote
/// it, and the progress refuses anyone but the lease holder; so a worker that lost its lease
/// (a stall longer than the lease, Redis restarted without the key) can never write a room
/// after the next holder touched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease key.
    pub key: String,
    /// The holder's token stored in it.
    pub holder: String,
    /// The epoch this holder writes with; newer holders have larger ones.
    pub epoch: u64,
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
        /// Every member with their unread count in the room, for the room-list feeds (empty
        /// when the event is applied silently: nobody hears it).
        members: Vec<(UserId, u64)>,
        /// Every member's `mentionCount` that is not 0, for the feeds likewise.
        mentions: Vec<(UserId, u64)>,
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
    redis: RedisConnection,
    keys: ReadKeys,
    apply: redis::Script,
    load: redis::Script,
    published: redis::Script,
    progress: redis::Script,
    rooms: RoomCache,
    /// The answers [`ReadState::predict`] told for the batch being applied, by sequence, to
    /// check against Redis's.
    predicted: HashMap<u64, Applied>,
    /// How many predictions Redis contradicted since this worker started.
    mispredicted: u64,
}

impl ReadState {
    /// Writes under `keys`.
    pub fn new(redis: RedisConnection, keys: ReadKeys) -> Self {
        Self {
            redis,
            keys,
            apply: redis::Script::new(APPLY),
            load: redis::Script::new(LOAD),
            published: redis::Script::new(PUBLISHED),
            progress: redis::Script::new(PROGRESS),
            rooms: RoomCache::default(),
            predicted: HashMap::new(),
            mispredicted: 0,
        }
    }

    /// Forgets the rooms held in memory: a worker that takes a lease loads them again, fenced
    /// with its new epoch.
    pub fn forget_rooms(&mut self) {
        self.rooms.clear();
        self.predicted.clear();
    }

    /// What applying `events` will give clients, told from the rooms in memory before Redis
    /// is asked (`predict.rs`), so their views can be published while Redis applies them; the
    /// next [`ReadState::apply`] checks each against Redis's answer. Only for a batch of CHATs
    /// of rooms held in memory, each published (after `silent_until`) and applied for the
    /// first time, and whose mention counts are known; `None` otherwise, and then the views
    /// wait for Redis.
    pub fn predict(&mut self, events: &[LoggedEvent], silent_until: u64) -> Option<Vec<Outcome>> {
        self.predicted.clear();
        let mut rooms: HashMap<RoomId, RoomCounts> = HashMap::new();
        let mut told = HashMap::with_capacity(events.len());
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let ChatEvent::Chat { mentions, .. } = &event.envelope.event else {
                return None;
            };
            if event.seq <= silent_until {
                return None;
            }
            let id = event.envelope.room_id;
            let room = match rooms.entry(id) {
                Entry::Occupied(held) => held.into_mut(),
                Entry::Vacant(free) => free.insert(self.rooms.get(&id)?.clone()),
            };
            let applied = predict::chat(room, event.seq, &event.envelope.actor, mentions)?;
            outcomes.push(Outcome::Chat {
                previous: applied.previous,
                unread: applied.count,
                members: room.unread_counts(),
                mentions: applied.mentions.clone(),
            });
            told.insert(event.seq, applied);
        }
        self.predicted = told;
        Some(outcomes)
    }

    /// How many of [`ReadState::predict`]'s answers Redis contradicted: a defect, logged as
    /// an error when found.
    pub fn mispredicted(&self) -> u64 {
        self.mispredicted
    }

    /// Applies `events` in order in one round trip. With a `fence` (a worker), each write is
    /// refused once a newer holder wrote the room ([`ReadStateError::Fenced`]) and the outcome
    /// of every event after `silent_until` is recorded until [`ReadState::published`]; without
    /// one (the rebuild, which holds every lease itself) nothing is fenced or recorded.
    pub async fn apply(
        &mut self,
        events: &[LoggedEvent],
        fence: Option<&Fence>,
        silent_until: u64,
    ) -> Result<Vec<Outcome>, ReadStateError> {
        let mut result = self.try_apply(events, fence, silent_until).await;
        if is_no_script(&result) {
            self.load_scripts().await?;
            result = self.try_apply(events, fence, silent_until).await;
        }
        if result.is_ok() && fence.is_some() {
            if let Err(error) = self.replicated().await {
                result = Err(error);
            }
        }
        if result.is_err() {
            for event in events {
                self.rooms.forget(&event.envelope.room_id);
            }
        }
        result
    }

    /// Waits, on a Redis Cluster, until a replica has the batch: published and acked events
    /// must survive a failover of their room's primary, or the room would silently miss them
    /// (its `applied` going back while the partition's progress does not). A primary without a
    /// live replica answers after [`REPLICA_WAIT_MS`]; the batch goes on, with that risk logged.
    /// A failed wait (a primary lost meanwhile) fails the batch: it is applied again.
    async fn replicated(&mut self) -> Result<(), ReadStateError> {
        if self.redis.replicated(REPLICA_WAIT_MS).await? < 1 {
            tracing::warn!(
                "a Redis primary has no replica with this batch; its failover now would lose it"
            );
        }
        Ok(())
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
        let epoch = fence.map_or(0, |f| f.epoch);
        self.load_rooms(events, epoch).await?;

        let (entered, exited) = edge_presence(events);
        let mut before = Vec::new();
        for (edge, entry) in &entered {
            let mut add = redis::cmd("SADD");
            add.arg(self.keys.edges()).arg(edge);
            before.push((self.keys.edges(), add));
            let index = self.keys.edge_presence(edge);
            let mut add = redis::cmd("SADD");
            add.arg(&index).arg(entry);
            before.push((index, add));
        }
        let runs = room_runs(events);
        let mut scripts = Vec::with_capacity(runs.len());
        for run in &runs {
            let room = self.keys.room(&events[run[0]].envelope.room_id);
            let mut call = redis::cmd("EVALSHA");
            call.arg(self.apply.get_hash()).arg(8);
            room_keys(&mut call, &room);
            call.arg(epoch);
            for &i in run {
                let event = &events[i];
                let record = fence.is_some() && event.seq > silent_until;
                call.arg(event.seq).arg(if record { "1" } else { "0" });
                operation(&event.envelope, &mut call);
            }
            scripts.push((room.room, call));
        }
        let mut after = Vec::new();
        for (edge, entry) in &exited {
            let index = self.keys.edge_presence(edge);
            let mut remove = redis::cmd("SREM");
            remove.arg(&index).arg(entry);
            after.push((index, remove));
        }
        let replies = self.in_order(before, scripts, after).await?;
        if replies.len() != runs.len() {
            return Err(ReadStateError::Answer(format!(
                "{} replies to {} rooms",
                replies.len(),
                runs.len()
            )));
        }
        let mut outcomes = vec![Outcome::Nothing; events.len()];
        for (run, reply) in runs.iter().zip(replies) {
            let applied = reply::applied_run(reply)?;
            if applied.len() != run.len() {
                return Err(ReadStateError::Answer(format!(
                    "{} replies to a room's {} events",
                    applied.len(),
                    run.len()
                )));
            }
            for (&i, applied) in run.iter().zip(applied) {
                let event = &events[i];
                // A told event's view is out already: its outcome needs no members' counts.
                let told = self.check_prediction(event, &applied);
                let publish = fence.is_some() && event.seq > silent_until && !told;
                outcomes[i] = self.outcome(event, applied, publish)?;
            }
        }
        Ok(outcomes)
    }

    /// Runs `before`, then `scripts`, then `after`, and returns the scripts' replies. One round
    /// trip on a single Redis, where a pipeline keeps its order; three on a cluster, where
    /// commands of different slots go to different nodes concurrently.
    async fn in_order(
        &mut self,
        before: Vec<(String, redis::Cmd)>,
        scripts: Vec<(String, redis::Cmd)>,
        after: Vec<(String, redis::Cmd)>,
    ) -> Result<Vec<Value>, ReadStateError> {
        if !self.redis.is_cluster() {
            let skip = before.len();
            let count = scripts.len();
            let all = before.into_iter().chain(scripts).chain(after).collect();
            let replies = self.redis.pipeline(all).await?;
            return Ok(replies.into_iter().skip(skip).take(count).collect());
        }
        if !before.is_empty() {
            self.redis.pipeline(before).await?;
        }
        let replies = self.redis.pipeline(scripts).await?;
        if !after.is_empty() {
            self.redis.pipeline(after).await?;
        }
        Ok(replies)
    }

    /// Loads the rooms of `events` not held in memory, in one round trip, fencing each with
    /// `epoch`; outcomes recorded and not yet published are undone, so the copy is the room as
    /// it was before them (they come again, in order, and move it forward).
    async fn load_rooms(
        &mut self,
        events: &[LoggedEvent],
        epoch: u64,
    ) -> Result<(), ReadStateError> {
        let mut missing: Vec<RoomId> = Vec::new();
        for event in events {
            let room = event.envelope.room_id;
            if !self.rooms.contains(&room) && !missing.contains(&room) {
                missing.push(room);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let mut loads = Vec::with_capacity(missing.len());
        for room in &missing {
            let keys = self.keys.room(room);
            let mut call = redis::cmd("EVALSHA");
            call.arg(self.load.get_hash())
                .arg(5)
                .arg(&keys.room)
                .arg(&keys.positions)
                .arg(&keys.bases)
                .arg(&keys.outcomes)
                .arg(&keys.fence)
                .arg(epoch);
            loads.push((keys.room, call));
        }
        let replies = self.redis.pipeline(loads).await?;
        for (room, reply) in missing.into_iter().zip(replies) {
            let Loaded {
                mut counts,
                recorded,
            } = reply::loaded(reply)?;
            let recorded: BTreeMap<u64, Applied> = recorded.into_iter().collect();
            if let Some(first) = recorded.values().next() {
                // The mention counts before the undone outcomes are not known.
                counts.shown = first.previous;
                counts.mentions = None;
            }
            for applied in recorded.into_values().rev() {
                let before = applied.chats - u64::from(applied.kind == Kind::Chat);
                counts.undo(&applied.changes, before);
            }
            self.rooms.insert(room, counts);
        }
        Ok(())
    }

    /// Compares what Redis answered for `event` with what [`ReadState::predict`] told, when
    /// it told anything (clients may already have the told one); whether it did.
    fn check_prediction(&mut self, event: &LoggedEvent, applied: &Applied) -> bool {
        let Some(told) = self.predicted.remove(&event.seq) else {
            return false;
        };
        if told != *applied {
            self.mispredicted += 1;
            metrics::counter!("chat_receipts_mispredicted_total").increment(1);
            tracing::error!(
                seq = event.seq,
                room = %event.envelope.room_id,
                ?told,
                ?applied,
                "a view published from memory differs from what Redis applied"
            );
        }
        true
    }

    /// Moves the room's copy over `applied` (Redis's answer for `event`) and says what
    /// clients hear.
    fn outcome(
        &mut self,
        event: &LoggedEvent,
        applied: Applied,
        publish: bool,
    ) -> Result<Outcome, ReadStateError> {
        let counts = self
            .rooms
            .get_mut(&event.envelope.room_id)
            .ok_or_else(|| ReadStateError::Answer("a room was not loaded".into()))?;
        if applied.kind != Kind::Nothing {
            counts.apply(&applied.changes, applied.chats);
        }
        predict::follow(counts, event.seq, &event.envelope.event, &applied);
        let (previous, count) = (applied.previous, applied.count);
        Ok(match applied.kind {
            Kind::Nothing => Outcome::Nothing,
            Kind::Chat => Outcome::Chat {
                previous,
                unread: count,
                members: if publish {
                    counts.unread_counts()
                } else {
                    Vec::new()
                },
                mentions: if publish {
                    applied.mentions
                } else {
                    Vec::new()
                },
            },
            Kind::Shown => Outcome::Shown { previous },
            Kind::Leave => Outcome::Leave {
                previous,
                read_count: count,
            },
            Kind::Info => Outcome::Info {
                previous,
                read_count: count,
                last_read: applied
                    .last_read
                    .and_then(|seq| MessageId::from_sequence(seq).ok()),
            },
            Kind::Out => Outcome::Out { previous },
        })
    }

    /// Marks `events` (applied, then published) as published: their recorded outcomes are
    /// deleted, so a redelivery publishes nothing again; and records `last` as the progress of
    /// `consumer`. Each room and the progress are fenced; after publishing and before the ack.
    pub async fn published(
        &mut self,
        events: &[LoggedEvent],
        fence: &Fence,
        consumer: &str,
        last: u64,
    ) -> Result<(), ReadStateError> {
        let mut result = self.try_published(events, fence, consumer, last).await;
        if is_no_script(&result) {
            self.load_scripts().await?;
            result = self.try_published(events, fence, consumer, last).await;
        }
        result
    }

    async fn try_published(
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
        let mut marks = Vec::with_capacity(upto.len() + 1);
        for (room, seq) in upto {
            let keys = self.keys.room(room);
            let mut call = redis::cmd("EVALSHA");
            call.arg(self.published.get_hash())
                .arg(2)
                .arg(&keys.fence)
                .arg(&keys.outcomes)
                .arg(fence.epoch)
                .arg(seq);
            marks.push((keys.fence, call));
        }
        let mut call = redis::cmd("EVALSHA");
        call.arg(self.progress.get_hash())
            .arg(2)
            .arg(&fence.key)
            .arg(self.keys.progress(consumer))
            .arg(&fence.holder)
            .arg(last);
        marks.push((fence.key.clone(), call));
        let marked = self.redis.pipeline(marks).await?;
        if marked.iter().all(|m| *m == Value::Int(1)) {
            Ok(())
        } else {
            Err(ReadStateError::Fenced)
        }
    }

    /// Loads every script into Redis (after a restart or a failover it has none).
    async fn load_scripts(&mut self) -> Result<(), RedisError> {
        for script in [APPLY, LOAD, PUBLISHED, PROGRESS] {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script)
                .query_async::<String>(&mut self.redis)
                .await?;
        }
        Ok(())
    }
}

/// Whether Redis answered that it does not know a script.
fn is_no_script<T>(result: &Result<T, ReadStateError>) -> bool {
    matches!(result, Err(ReadStateError::Redis(e))
        if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
}

/// The eight keys `apply.lua` takes.
fn room_keys(call: &mut redis::Cmd, keys: &RoomKeys) {
    call.arg(&keys.room)
        .arg(&keys.positions)
        .arg(&keys.bases)
        .arg(&keys.unread)
        .arg(&keys.presence)
        .arg(&keys.outcomes)
        .arg(&keys.fence)
        .arg(&keys.mentions);
}

/// An edge and one of its `"{room} {user}"` presence entries.
type EdgeEntry = (String, String);

/// The reaper's index of who is present through which edge, as the batch leaves it: entries
/// whose last presence event in the batch is an INFO are added before the batch is applied,
/// those whose last is an OUT removed after it. An entry left over by a crash in between only
/// makes the reaper append an OUT that changes nothing; none goes missing.
fn edge_presence(events: &[LoggedEvent]) -> (Vec<EdgeEntry>, Vec<EdgeEntry>) {
    let mut last: HashMap<(String, String), bool> = HashMap::new();
    for event in events {
        let (user, edge, entered) = match &event.envelope.event {
            ChatEvent::Info { user_id, edge, .. } => (user_id, edge, true),
            ChatEvent::Out { user_id, edge } => (user_id, edge, false),
            _ => continue,
        };
        let edge = edge.clone().unwrap_or_default();
        let entry = format!("{} {}", event.envelope.room_id, user.as_str());
        last.insert((edge, entry), entered);
    }
    let (entered, exited): (Vec<_>, Vec<_>) = last.into_iter().partition(|(_, entered)| *entered);
    let pairs = |v: Vec<((String, String), bool)>| v.into_iter().map(|(pair, _)| pair).collect();
    (pairs(entered), pairs(exited))
}

/// The batch's events by room: for each room, the indexes of its events in log order.
fn room_runs(events: &[LoggedEvent]) -> Vec<Vec<usize>> {
    let mut runs: Vec<Vec<usize>> = Vec::new();
    let mut of_room: HashMap<&RoomId, usize> = HashMap::new();
    for (i, event) in events.iter().enumerate() {
        let run = *of_room.entry(&event.envelope.room_id).or_insert_with(|| {
            runs.push(Vec::new());
            runs.len() - 1
        });
        runs[run].push(i);
    }
    runs
}

/// The script's operation for one event: its name, how many arguments follow, and them.
fn operation(envelope: &Envelope, call: &mut redis::Cmd) {
    match &envelope.event {
        ChatEvent::Chat { mentions, .. } => {
            call.arg("chat")
                .arg(1 + mentions.len())
                .arg(envelope.actor.as_str());
            for user in mentions {
                call.arg(user.as_str());
            }
        }
        ChatEvent::RoomCreated { members: users, .. } | ChatEvent::Invite { user_ids: users } => {
            call.arg("members").arg(users.len());
            for user in users {
                call.arg(user.as_str());
            }
        }
        ChatEvent::Delete { message_ids } => {
            call.arg("delete").arg(message_ids.len());
            for id in message_ids {
                call.arg(id.sequence());
            }
        }
        ChatEvent::Leave { user_id, .. } => {
            call.arg("leave").arg(1).arg(user_id.as_str());
        }
        ChatEvent::Info { user_id, edge, .. } => {
            call.arg("enter")
                .arg(2)
                .arg(user_id.as_str())
                .arg(edge.as_deref().unwrap_or_default());
        }
        ChatEvent::Out { user_id, edge } => {
            call.arg("exit")
                .arg(2)
                .arg(user_id.as_str())
                .arg(edge.as_deref().unwrap_or_default());
        }
        ChatEvent::Reaction { .. } | ChatEvent::Edit { .. } => {
            call.arg("show").arg(0);
        }
        ChatEvent::Unknown => {
            call.arg("none").arg(0);
        }
    }
}
