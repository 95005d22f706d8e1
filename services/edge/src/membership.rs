//! Who is in which room, kept current from the log, so that SEND and room SUBSCRIBE go on while
//! Cassandra is down.
//!
//! The log is the source of truth for membership. Each edge follows it: one ordered consumer
//! reads every room event stored after the edge started, and the membership changes among them
//! (room creations, INVITE, LEAVE) update the rooms this edge holds in memory and are kept in a
//! bounded list of recent changes. A room not held yet is loaded from the Cassandra projection
//! and brought up to date with the recent changes the projection had not applied; when
//! Cassandra cannot answer, the room is rebuilt from its own events in the log instead.
//!
//! A refusal is checked against the room's latest stored event: while the follower has not
//! reached it, the answer waits for it, so a user just invited through another edge is never
//! refused. An acceptance can lag a LEAVE stored through another edge by the follower's delay
//! (milliseconds): the log is the order, and such a message lands right after the LEAVE.
//!
//! The same follower tells [`ClientMessageIds`] every `clientMessageId` it reads.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use chat_platform::backoff::Backoff;
use chat_platform::watermark;
use chat_schemas::{decode, ChatEvent, EventLog, RoomId, UserId};
use futures::StreamExt;
use tokio::sync::watch;

use crate::client_ids::ClientMessageIds;
use crate::store::Store;

/// Most membership changes kept for bringing freshly loaded rooms up to date. Changes are rare
/// (creations, invites, leaves); a room loaded from a projection further behind than this is
/// answered without being kept.
const RECENT_CHANGES: usize = 65_536;

/// Longest a refusal waits for the follower to reach the room's latest event.
const FOLLOWER_WAIT: Duration = Duration::from_secs(2);

/// Longest a rebuild of one room from the log may take.
const LOG_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a user stands in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The room does not exist.
    NoSuchRoom,
    /// The user is a current member.
    Member,
    /// The room exists; the user is not in it.
    NotMember,
}

/// Neither the projection nor the log could say who is in a room.
#[derive(Debug, thiserror::Error)]
#[error("room membership unavailable: {0}")]
pub struct MembershipError(String);

/// One membership change of the log.
#[derive(Debug, Clone)]
enum Change {
    /// The room came into being with these members.
    Created(Vec<String>),
    /// These users joined.
    Joined(Vec<String>),
    /// This user left.
    Left(String),
}

impl Change {
    /// The membership change an event makes, if any.
    fn of(event: &ChatEvent) -> Option<Self> {
        let names = |users: &[UserId]| users.iter().map(|u| u.as_str().to_owned()).collect();
        match event {
            ChatEvent::RoomCreated { members, .. } => Some(Self::Created(names(members))),
            ChatEvent::Invite { user_ids } => Some(Self::Joined(names(user_ids))),
            ChatEvent::Leave { user_id, .. } => Some(Self::Left(user_id.as_str().to_owned())),
            _ => None,
        }
    }

    /// Applies the change to a room's members (`None`: the room does not exist yet).
    fn apply(&self, members: &mut Option<HashSet<String>>) {
        match (self, members) {
            (Self::Created(users), members) => *members = Some(users.iter().cloned().collect()),
            (Self::Joined(users), Some(members)) => members.extend(users.iter().cloned()),
            (Self::Left(user), Some(members)) => {
                members.remove(user);
            }
            (_, None) => {}
        }
    }
}

/// A room held in memory.
struct Held {
    members: HashSet<String>,
    /// When it was last asked about, for evicting the least recently used.
    used: u64,
}

/// What the follower has built.
struct Rooms {
    held: HashMap<RoomId, Held>,
    /// Membership changes in log order: every one stored after `complete_after`.
    recent: VecDeque<(u64, RoomId, Change)>,
    complete_after: u64,
    clock: u64,
}

impl Rooms {
    /// The standing of `user` in a held room.
    fn held_standing(&mut self, room: &RoomId, user: &str) -> Option<Standing> {
        self.clock += 1;
        let now = self.clock;
        let held = self.held.get_mut(room)?;
        held.used = now;
        Some(if held.members.contains(user) {
            Standing::Member
        } else {
            Standing::NotMember
        })
    }

    /// Brings `members`, which include every change of `room` up to `as_of`, up to date with
    /// the recent changes and holds the room; false (nothing held) when changes after `as_of`
    /// may have been dropped from the recent list.
    fn hold(
        &mut self,
        room: RoomId,
        mut members: Option<HashSet<String>>,
        as_of: u64,
        capacity: usize,
    ) -> Option<Option<HashSet<String>>> {
        if as_of < self.complete_after {
            return None;
        }
        for (_, _, change) in self
            .recent
            .iter()
            .filter(|(seq, r, _)| *r == room && *seq > as_of)
        {
            change.apply(&mut members);
        }
        if let Some(members) = &members {
            self.insert(room, members.clone(), capacity);
        }
        Some(members)
    }

    fn insert(&mut self, room: RoomId, members: HashSet<String>, capacity: usize) {
        if self.held.len() >= capacity && !self.held.contains_key(&room) {
            self.evict(capacity);
        }
        self.clock += 1;
        let used = self.clock;
        self.held.insert(room, Held { members, used });
    }

    /// Drops the least recently used eighth of the held rooms.
    fn evict(&mut self, capacity: usize) {
        let mut by_use: Vec<(u64, RoomId)> = self.held.iter().map(|(r, h)| (h.used, *r)).collect();
        by_use.sort_unstable_by_key(|(used, _)| *used);
        let drop = (capacity / 8).max(1);
        for (_, room) in by_use.into_iter().take(drop) {
            self.held.remove(&room);
        }
    }

    /// Applies one change the follower read.
    fn record(&mut self, seq: u64, room: RoomId, change: Change, capacity: usize) {
        if let Some(held) = self.held.get_mut(&room) {
            let mut members = Some(std::mem::take(&mut held.members));
            change.apply(&mut members);
            held.members = members.unwrap_or_default();
        } else if let Change::Created(users) = &change {
            self.insert(room, users.iter().cloned().collect(), capacity);
        }
        self.recent.push_back((seq, room, change));
        while self.recent.len() > RECENT_CHANGES {
            if let Some((dropped, _, _)) = self.recent.pop_front() {
                self.complete_after = dropped;
            }
        }
    }
}

/// Room membership as of the log, for this edge's checks.
pub struct Membership {
    rooms: Mutex<Rooms>,
    /// The last stream sequence the follower read.
    followed: watch::Sender<u64>,
    /// The CHAT ids the follower reads, for SEND's idempotence.
    client_ids: Arc<ClientMessageIds>,
    stream: Stream,
    log: EventLog,
    store: Arc<Store>,
    projector: String,
    capacity: usize,
}

impl Membership {
    /// Starts following the log from its current end, holding at most `capacity` rooms and
    /// feeding [`Self::client_message_ids`].
    pub async fn follow(
        stream: Stream,
        log: EventLog,
        store: Arc<Store>,
        projector: &str,
        capacity: usize,
    ) -> Result<Arc<Self>, MembershipError> {
        let mut info_stream = stream.clone();
        let start = info_stream
            .info()
            .await
            .map_err(|e| MembershipError(e.to_string()))?
            .state
            .last_sequence;
        let (followed, _) = watch::channel(start);
        let membership = Arc::new(Self {
            rooms: Mutex::new(Rooms {
                held: HashMap::new(),
                recent: VecDeque::new(),
                complete_after: start,
                clock: 0,
            }),
            followed,
            client_ids: Arc::new(ClientMessageIds::new(store.clone(), projector, start)),
            stream,
            log,
            store,
            projector: projector.to_owned(),
            capacity: capacity.max(1),
        });
        tokio::spawn(follow(Arc::downgrade(&membership), start));
        Ok(membership)
    }

    /// The `clientMessageId`s used so far, as this follower read them.
    pub fn client_message_ids(&self) -> Arc<ClientMessageIds> {
        self.client_ids.clone()
    }

    /// Where `user` stands in `room`, as of the log.
    pub async fn standing(&self, room: RoomId, user: &UserId) -> Result<Standing, MembershipError> {
        let standing = self.current(room, user).await?;
        if standing == Standing::Member {
            return Ok(standing);
        }
        let last = self.last_sequence(room).await?;
        if *self.followed.borrow() >= last {
            return Ok(standing);
        }
        let mut followed = self.followed.subscribe();
        let reached = tokio::time::timeout(FOLLOWER_WAIT, followed.wait_for(|seq| *seq >= last))
            .await
            .is_ok_and(|waited| waited.is_ok());
        if !reached {
            return Err(MembershipError(format!(
                "the log follower has not reached sequence {last}"
            )));
        }
        self.current(room, user).await
    }

    fn lock(&self) -> MutexGuard<'_, Rooms> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The standing as this edge knows it now: held, else loaded from the projection, else
    /// rebuilt from the log.
    async fn current(&self, room: RoomId, user: &UserId) -> Result<Standing, MembershipError> {
        if let Some(standing) = self.lock().held_standing(&room, user.as_str()) {
            return Ok(standing);
        }
        let members = match self.load_projected(room).await {
            Ok(members) => members,
            Err(error) => {
                tracing::warn!(%error, %room, "membership from the log: the projection is unavailable");
                self.load_from_log(room).await?
            }
        };
        Ok(match members {
            None => Standing::NoSuchRoom,
            Some(members) if members.contains(user.as_str()) => Standing::Member,
            Some(_) => Standing::NotMember,
        })
    }

    /// The room's members from Cassandra, brought up to date with the recent changes.
    async fn load_projected(
        &self,
        room: RoomId,
    ) -> Result<Option<HashSet<String>>, crate::store::StoreError> {
        let applied = self.store.applied_seq(&self.projector).await?;
        let members = self
            .store
            .room(room)
            .await?
            .map(|r| r.members.into_iter().collect::<HashSet<String>>());
        let mut rooms = self.lock();
        if let Some(held) = rooms.held.get(&room) {
            return Ok(Some(held.members.clone()));
        }
        Ok(rooms
            .hold(room, members.clone(), applied, self.capacity)
            .unwrap_or(members))
    }

    /// The room's members rebuilt from its events in the log.
    async fn load_from_log(
        &self,
        room: RoomId,
    ) -> Result<Option<HashSet<String>>, MembershipError> {
        let followed = *self.followed.borrow();
        let last = self.last_sequence(room).await?;
        if last == 0 {
            return Ok(None);
        }
        let members = tokio::time::timeout(LOG_READ_TIMEOUT, self.read_room(room, last))
            .await
            .map_err(|_| {
                MembershipError(format!("reading room {room} from the log timed out"))
            })??;
        let mut rooms = self.lock();
        if let Some(held) = rooms.held.get(&room) {
            return Ok(Some(held.members.clone()));
        }
        Ok(rooms
            .hold(room, members.clone(), last.max(followed), self.capacity)
            .unwrap_or(members))
    }

    /// Applies the membership changes of `room`'s events up to `last`.
    async fn read_room(
        &self,
        room: RoomId,
        last: u64,
    ) -> Result<Option<HashSet<String>>, MembershipError> {
        let error = |e: &dyn std::fmt::Display| MembershipError(format!("room {room}: {e}"));
        let consumer = self
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.log.room_subject(&room),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| error(&e))?;
        let mut messages = consumer.messages().await.map_err(|e| error(&e))?;
        let mut members = None;
        let mut first = true;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| error(&e))?;
            let seq = message.info().map_err(|e| error(&e))?.stream_sequence;
            if let Ok(envelope) = decode(&message.payload) {
                let change = Change::of(&envelope.event);
                if first && !matches!(change, Some(Change::Created(_))) {
                    return Err(error(&"its creation is past the log's retention"));
                }
                first = false;
                if let Some(change) = change {
                    change.apply(&mut members);
                }
            }
            if seq >= last {
                return Ok(members);
            }
        }
        Err(error(&"the log ended early"))
    }

    /// The sequence of the room's latest stored event, 0 when it has none. Asked of the
    /// stream's leader: a direct get may be answered by a replica still catching up.
    async fn last_sequence(&self, room: RoomId) -> Result<u64, MembershipError> {
        match self
            .stream
            .get_last_raw_message_by_subject(&self.log.room_subject(&room))
            .await
        {
            Ok(message) => Ok(message.sequence),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(MembershipError(e.to_string())),
        }
    }
}

/// Reads every room event after `start` and records the membership changes and CHAT ids, until the
/// [`Membership`] is dropped; a failed read starts again after the last event read.
async fn follow(membership: Weak<Membership>, start: u64) {
    let mut after = start;
    let mut backoff = Backoff::default();
    loop {
        let Some(strong) = membership.upgrade() else {
            return;
        };
        let (stream, filter) = (strong.stream.clone(), strong.log.all_rooms());
        drop(strong);
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: filter,
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ..Default::default()
            })
            .await;
        let messages = match consumer {
            Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match messages {
            Ok(mut messages) => {
                while let Some(message) = messages.next().await {
                    let Some(strong) = membership.upgrade() else {
                        return;
                    };
                    let message = match message {
                        Ok(message) => message,
                        Err(error) => {
                            tracing::warn!(%error, "membership follower: reading the log failed");
                            break;
                        }
                    };
                    let Ok(seq) = message.info().map(|info| info.stream_sequence) else {
                        continue;
                    };
                    if let Ok(envelope) = decode(&message.payload) {
                        if let Some(change) = Change::of(&envelope.event) {
                            strong
                                .lock()
                                .record(seq, envelope.room_id, change, strong.capacity);
                        }
                        if let ChatEvent::Chat {
                            client_message_id: Some(id),
                            ..
                        } = &envelope.event
                        {
                            strong
                                .client_ids
                                .record(seq, envelope.room_id, &envelope.actor, id);
                        }
                    }
                    after = seq;
                    watermark::raise(&strong.followed, seq);
                    backoff.reset();
                }
            }
            Err(error) => tracing::warn!(%error, "membership follower: cannot read the log"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms(complete_after: u64) -> Rooms {
        Rooms {
            held: HashMap::new(),
            recent: VecDeque::new(),
            complete_after,
            clock: 0,
        }
    }

    fn set(users: &[&str]) -> HashSet<String> {
        users.iter().map(|u| (*u).to_owned()).collect()
    }

    #[test]
    fn a_created_room_is_held_and_follows_invites_and_leaves() {
        let mut r = rooms(0);
        let room = RoomId::random();
        r.record(1, room, Change::Created(vec!["a".into(), "b".into()]), 10);
        r.record(2, room, Change::Joined(vec!["c".into()]), 10);
        r.record(3, room, Change::Left("a".into()), 10);
        assert_eq!(r.held_standing(&room, "a"), Some(Standing::NotMember));
        assert_eq!(r.held_standing(&room, "c"), Some(Standing::Member));
        assert_eq!(r.held_standing(&RoomId::random(), "c"), None);
    }

    #[test]
    fn a_loaded_room_replays_only_the_changes_after_its_position() {
        let mut r = rooms(0);
        let room = RoomId::random();
        r.record(5, room, Change::Joined(vec!["c".into()]), 10);
        r.record(7, room, Change::Left("b".into()), 10);
        // The projection had applied up to 5: c is in, b not yet gone.
        let held = r.hold(room, Some(set(&["a", "b", "c"])), 5, 10);
        assert_eq!(held, Some(Some(set(&["a", "c"]))));
        assert_eq!(r.held_standing(&room, "b"), Some(Standing::NotMember));
    }

    #[test]
    fn a_load_older_than_the_recent_changes_is_not_held() {
        let mut r = rooms(100);
        let room = RoomId::random();
        assert_eq!(r.hold(room, Some(set(&["a"])), 99, 10), None);
        assert_eq!(r.held_standing(&room, "a"), None);
        assert!(r.hold(room, Some(set(&["a"])), 100, 10).is_some());
        assert_eq!(r.held_standing(&room, "a"), Some(Standing::Member));
    }

    #[test]
    fn the_least_recently_used_rooms_make_way() {
        let mut r = rooms(0);
        let rooms_ids: Vec<RoomId> = (0..8).map(|_| RoomId::random()).collect();
        for (i, room) in rooms_ids.iter().enumerate() {
            r.record(i as u64 + 1, *room, Change::Created(vec!["a".into()]), 8);
        }
        assert_eq!(r.held_standing(&rooms_ids[0], "a"), Some(Standing::Member));
        r.record(9, RoomId::random(), Change::Created(vec!["a".into()]), 8);
        assert_eq!(r.held.len(), 8);
        assert!(r.held.contains_key(&rooms_ids[0]), "recently used stays");
        assert!(
            !r.held.contains_key(&rooms_ids[1]),
            "least recently used goes"
        );
    }

    #[test]
    fn the_recent_list_is_bounded_and_says_from_where_it_is_complete() {
        let mut r = rooms(0);
        let room = RoomId::random();
        for seq in 1..=(RECENT_CHANGES as u64 + 3) {
            r.record(seq, room, Change::Left("x".into()), 4);
        }
        assert_eq!(r.recent.len(), RECENT_CHANGES);
        assert_eq!(r.complete_after, 3);
    }
}
