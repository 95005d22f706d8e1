//! This edge's share of presence: which users have a room open here.
//!
//! A user is in a room while any of their connections, on any edge, holds a room subscription.
//! Each edge counts its own subscriptions per (room, user) and, when a count leaves or reaches
//! zero, appends an INFO or OUT event naming itself to the room's log, so presence takes its
//! place in the room's order and the receipts worker applies it like any other event. The
//! appends are driven by the difference between what is here and what was announced, so a
//! burst of changes coalesces, nothing queues without bound, and a failed append is retried. A
//! burst of any size (19,000 connections closing at once) goes out with a bounded number of
//! appends awaiting their ack ([`append::append_batch`]), so it never blocks the edge's writes.
//!
//! The edge also refreshes a heartbeat key in Redis; when it stops (kill -9), the key expires and
//! the receipts worker appends OUT for the edge's users. If the edge finds its own key expired
//! while it was alive (a stall, or Redis lost it), it announces all its presence again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::Context;
use chat_platform::append;
use chat_platform::backoff::Backoff;
use chat_platform::redis_connection::RedisConnection;
use chat_read_state::ReadKeys;
use chat_schemas::{encode, ChatEvent, Envelope, EventLog, RoomId, UserId};
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

type Key = (RoomId, UserId);

#[derive(Default)]
struct State {
    /// Room subscriptions held on this edge per (room, user).
    local: HashMap<Key, usize>,
    /// Pairs whose INFO was stored and no OUT since.
    announced: HashSet<Key>,
    /// Pairs whose local state may differ from what was announced.
    dirty: HashSet<Key>,
}

/// This edge's presence and its heartbeat.
pub struct Presence {
    edge: String,
    state: Mutex<State>,
    wake: Notify,
    stored: Notify,
    jetstream: Context,
    log: EventLog,
    redis: RedisConnection,
    keys: ReadKeys,
    ttl: Duration,
    stop: CancellationToken,
}

/// The heartbeat could not be written at start.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the presence heartbeat to Redis: {0}")]
pub struct HeartbeatError(#[from] redis::RedisError);

impl Presence {
    /// Writes the first heartbeat and starts announcing presence and renewing the heartbeat
    /// every `every` (the key lives `ttl`), until [`Presence::finish`].
    pub async fn start(
        jetstream: Context,
        log: EventLog,
        redis: RedisConnection,
        keys: ReadKeys,
        every: Duration,
        ttl: Duration,
    ) -> Result<Arc<Self>, HeartbeatError> {
        let stop = CancellationToken::new();
        let presence = Arc::new(Self {
            edge: uuid::Uuid::new_v4().simple().to_string(),
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            stored: Notify::new(),
            jetstream,
            log,
            redis,
            keys,
            ttl,
            stop: stop.clone(),
        });
        presence.beat().await?;
        tokio::spawn(presence.clone().announce(stop.clone()));
        tokio::spawn(presence.clone().heartbeat(every, stop));
        Ok(presence)
    }

    /// This edge's id in presence events and its heartbeat key.
    pub fn edge_id(&self) -> &str {
        &self.edge
    }

    /// A room subscription of `user` started on this edge.
    pub fn enter(&self, room: RoomId, user: UserId) {
        let mut state = self.lock();
        let key = (room, user);
        *state.local.entry(key.clone()).or_insert(0) += 1;
        state.dirty.insert(key);
        drop(state);
        self.wake.notify_one();
    }

    /// Waits up to `within` until what this edge announced for `user` in `room` matches its
    /// subscriptions, so that a SUBSCRIBE or UNSUBSCRIBE is in the room's order before its
    /// RECEIPT: every message sent afterwards counts the user as present, or absent.
    pub async fn settled(&self, room: RoomId, user: UserId, within: Duration) {
        let key = (room, user);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let stored = self.stored.notified();
            tokio::pin!(stored);
            stored.as_mut().enable();
            {
                let state = self.lock();
                if state.announced.contains(&key) == state.local.contains_key(&key) {
                    return;
                }
            }
            if tokio::time::timeout_at(deadline, stored).await.is_err() {
                tracing::warn!(room = %key.0, "presence not stored in time; going on");
                return;
            }
        }
    }

    /// A room subscription of `user` ended on this edge.
    pub fn exit(&self, room: RoomId, user: UserId) {
        let mut state = self.lock();
        let key = (room, user);
        if let Some(count) = state.local.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                state.local.remove(&key);
            }
        }
        state.dirty.insert(key);
        drop(state);
        self.wake.notify_one();
    }

    /// On shutdown, after every connection closed: waits up to `grace` for the last OUT events
    /// to be stored, then removes the heartbeat and stops (what is left, the reaper cleans up).
    pub async fn finish(&self, grace: Duration) {
        self.settle(grace).await;
        self.stop.cancel();
    }

    async fn settle(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            let settled = {
                let state = self.lock();
                state.dirty.is_empty() && state.announced.is_empty()
            };
            if settled {
                let removed: redis::RedisResult<i64> = redis::cmd("DEL")
                    .arg(self.keys.edge_alive(&self.edge))
                    .query_async(&mut self.redis.clone())
                    .await;
                if let Err(error) = removed {
                    tracing::warn!(%error, "cannot remove the presence heartbeat");
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!("presence not fully announced at shutdown; the reaper will end it");
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refreshes the heartbeat; true when it had expired meanwhile.
    async fn beat(&self) -> Result<bool, redis::RedisError> {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let previous: Option<String> = redis::cmd("SET")
            .arg(self.keys.edge_alive(&self.edge))
            .arg("alive")
            .arg("PX")
            .arg(ttl_ms)
            .arg("GET")
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(previous.is_none())
    }

    async fn heartbeat(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match self.beat().await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::warn!(edge = %self.edge, "presence heartbeat had expired; announcing again");
                    let mut state = self.lock();
                    state.announced.clear();
                    let local: Vec<Key> = state.local.keys().cloned().collect();
                    state.dirty.extend(local);
                    drop(state);
                    self.wake.notify_one();
                }
                Err(error) => tracing::warn!(%error, "cannot renew the presence heartbeat"),
            }
        }
    }

    /// Appends INFO/OUT for every pair whose local state differs from what was announced.
    async fn announce(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Backoff::default();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
            }
            let work: Vec<(Key, bool)> = {
                let mut state = self.lock();
                let dirty: Vec<Key> = state.dirty.drain().collect();
                dirty
                    .into_iter()
                    .filter_map(|key| {
                        let want = state.local.contains_key(&key);
                        (want != state.announced.contains(&key)).then_some((key, want))
                    })
                    .collect()
            };
            let failed = self.append_all(&work).await;
            self.stored.notify_waiters();
            if failed {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
                self.wake.notify_one();
            } else {
                backoff.reset();
            }
        }
    }

    /// Appends the events of `work`, at most [`append::MAX_IN_FLIGHT`] awaiting their ack at
    /// once, and records each as it is stored; true when some failed (they are marked dirty
    /// again). A pair appears once in `work`, so the order of its appends does not matter.
    async fn append_all(&self, work: &[(Key, bool)]) -> bool {
        let mut failed = false;
        let mut batch = Vec::with_capacity(work.len());
        for (index, (key, want)) in work.iter().enumerate() {
            let (room, user) = key;
            let event = if *want {
                ChatEvent::Info {
                    user_id: user.clone(),
                    read_count: 0,
                    last_read_message_id: None,
                    edge: Some(self.edge.clone()),
                }
            } else {
                ChatEvent::Out {
                    user_id: user.clone(),
                    edge: Some(self.edge.clone()),
                }
            };
            match encode(&Envelope::new(*room, user.clone(), event)) {
                Ok(payload) => batch.push((
                    index,
                    self.log.room_subject(room),
                    PublishMessage::build().payload(payload.into()),
                )),
                Err(error) => {
                    tracing::warn!(%error, %room, "cannot encode presence; retrying");
                    self.lock().dirty.insert(key.clone());
                    failed = true;
                }
            }
        }
        let mut stored = append::append_batch(&self.jetstream, batch);
        while let Some((index, outcome)) = stored.next().await {
            let (key, want) = &work[index];
            let mut state = self.lock();
            match outcome {
                Ok(_) if *want => {
                    state.announced.insert(key.clone());
                }
                Ok(_) => {
                    state.announced.remove(key);
                }
                Err(error) => {
                    tracing::warn!(%error, room = %key.0, "cannot append presence; retrying");
                    state.dirty.insert(key.clone());
                    failed = true;
                }
            }
            drop(state);
            self.stored.notify_waiters();
        }
        failed
    }
}
