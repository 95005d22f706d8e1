//! What the planner knows about rooms: each room's newest bucket start and latest CHAT, loaded
//! from Cassandra on first touch and kept up to date in memory as events are planned, so that
//! planning an ordinary event reads nothing.
//!
//! Facts are answered *as of just before the event*, also when the event is a redelivery of one
//! the cache has already moved past: a bucket start newer than the event is never used for it
//! (the bucket is then read from `room_buckets` at the event's position), which keeps the plan
//! of every event the same however often it is applied.

use std::collections::HashMap;

use futures::stream::{self, StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::plan::{BucketStart, Needs, Plan, RoomFacts};
use crate::store::{Store, StoreError};

/// A room as far as planning is concerned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RoomState {
    latest_bucket: Option<BucketStart>,
    last_message_id: Option<i64>,
}

/// The state of recently touched rooms, bounded in size.
pub(crate) struct RoomCache {
    rooms: HashMap<Uuid, RoomState>,
    capacity: usize,
}

/// Bucket starts planned in the current batch, not yet in Cassandra, oldest first per room.
pub(crate) type PendingBuckets = HashMap<Uuid, Vec<BucketStart>>;

impl RoomCache {
    /// An empty cache that holds at most `capacity` rooms between batches.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            rooms: HashMap::new(),
            capacity,
        }
    }

    /// Forgets everything, e.g. after a failed read left a batch half planned.
    pub(crate) fn clear(&mut self) {
        self.rooms.clear();
    }

    /// Loads the rooms not cached yet, `max_in_flight` at a time. Called before planning a batch;
    /// the cache is emptied first when over capacity (never mid-batch, where it holds planned
    /// state Cassandra does not have yet).
    pub(crate) async fn preload(
        &mut self,
        rooms: impl IntoIterator<Item = Uuid>,
        store: &Store,
        max_in_flight: usize,
    ) -> Result<(), StoreError> {
        if self.rooms.len() > self.capacity {
            tracing::debug!(rooms = self.rooms.len(), "room cache full; emptied");
            self.rooms.clear();
        }
        let mut missing: Vec<Uuid> = rooms
            .into_iter()
            .filter(|room| !self.rooms.contains_key(room))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let loaded: Vec<(Uuid, RoomState)> = stream::iter(missing)
            .map(|room| async move {
                let (latest_bucket, last_message_id) =
                    futures::try_join!(store.latest_bucket(room), store.last_message_id(room))?;
                Ok::<_, StoreError>((
                    room,
                    RoomState {
                        latest_bucket,
                        last_message_id,
                    },
                ))
            })
            .buffer_unordered(max_in_flight.max(1))
            .try_collect()
            .await?;
        self.rooms.extend(loaded);
        Ok(())
    }

    /// The facts `needs` asks for about `room`, just before the event at `seq`.
    pub(crate) async fn facts(
        &mut self,
        room: Uuid,
        seq: i64,
        needs: &Needs,
        pending: &PendingBuckets,
        store: &Store,
    ) -> Result<RoomFacts, StoreError> {
        let state = self.state(room, store).await?;
        let pending = pending.get(&room).map(Vec::as_slice).unwrap_or_default();
        let mut facts = RoomFacts::default();
        if needs.bucket_before {
            facts.bucket_before = bucket_at(room, seq - 1, state, pending, store).await?;
        }
        if needs.last_message_id {
            facts.last_message_id = state.last_message_id;
        }
        for &message_id in &needs.message_buckets {
            if let Some(bucket) = bucket_at(room, message_id, state, pending, store).await? {
                facts.message_buckets.push((message_id, bucket));
            }
        }
        Ok(facts)
    }

    /// Takes in what planning an event of `room` changed.
    pub(crate) fn record(&mut self, room: Uuid, plan: &Plan) {
        let state = self.rooms.entry(room).or_default();
        if let Some(start) = plan.new_bucket {
            let newer = state
                .latest_bucket
                .is_none_or(|latest| start.first_message_id > latest.first_message_id);
            if newer {
                state.latest_bucket = Some(start);
            }
        }
        if let Some(id) = plan.last_message_id {
            state.last_message_id = state.last_message_id.max(Some(id));
        }
    }

    async fn state(&mut self, room: Uuid, store: &Store) -> Result<RoomState, StoreError> {
        if let Some(state) = self.rooms.get(&room) {
            return Ok(*state);
        }
        let state = RoomState {
            latest_bucket: store.latest_bucket(room).await?,
            last_message_id: store.last_message_id(room).await?,
        };
        self.rooms.insert(room, state);
        Ok(state)
    }
}

/// The bucket holding message `id`: the newest bucket start at or before it, from this batch's
/// planned starts, else the cached newest start, else (for an id older than both) Cassandra.
///
/// Starts planned earlier in the batch come first because the cached newest start may lie
/// beyond `id` when a batch is redelivered; starts in Cassandra older than the batch's own are
/// complete, since every earlier batch was written before this one was fetched.
async fn bucket_at(
    room: Uuid,
    id: i64,
    state: RoomState,
    pending: &[BucketStart],
    store: &Store,
) -> Result<Option<i32>, StoreError> {
    if let Some(start) = pending.iter().rev().find(|s| s.first_message_id <= id) {
        return Ok(Some(start.bucket));
    }
    match state.latest_bucket {
        None => Ok(None),
        Some(latest) if latest.first_message_id <= id => Ok(Some(latest.bucket)),
        Some(_) => Ok(store.bucket_at(room, id).await?.map(|s| s.bucket)),
    }
}
