//! Which `clientMessageId`s each sender has used in a room, as of the log, so that a CHAT with a
//! new id is stored without a Cassandra read.
//!
//! A resend must get the message its id first produced, even after JetStream's deduplication
//! window: the projection's `client_messages` table answers that. Reading it for every CHAT costs
//! a Cassandra round trip, and reads arriving every few milliseconds keep Cassandra's request
//! threads spinning (docs/benchmarks.md). Instead, the first CHAT with an id from a sender in a
//! room loads that sender's ids there (one partition read) and holds their fingerprints; the
//! membership follower (see [`crate::membership`]) adds every id it reads in the log after that.
//! An id missing from a held set was never used, so nothing is read; an id found in it is looked
//! up in Cassandra as before, for the message it produced.
//!
//! A load holds every id the projector had applied when it started, plus the follower's recent
//! ids after that position; a projection further behind than the recent list, or a sender with
//! more ids than [`LOAD_LIMIT`], is not held (such a CHAT reads Cassandra, as before). An id
//! stored through another edge moments ago and not yet read by this edge's follower is refused
//! by the log's deduplication window, as it was while the projection lagged.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chat_schemas::{RoomId, UserId};

use crate::store::{Store, StoreError};

/// Most ids read for one sender in one room; a sender with more is not held.
const LOAD_LIMIT: usize = 4_096;

/// Most fingerprints held in all (8 bytes each, plus the sets' overhead): about 32 MB.
const HELD_IDS: usize = 1_000_000;

/// Most ids kept in the follower's recent list, for bringing fresh loads up to date: a minute
/// of CHATs with ids at 1,000 a second.
const RECENT_IDS: usize = 65_536;

/// A sender in a room.
type SenderKey = (RoomId, String);

/// A 64-bit fingerprint of an id: equal ids have equal fingerprints, so a missing fingerprint
/// means a missing id. A rare collision only costs a Cassandra read.
fn fingerprint(id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

/// One sender's ids in one room.
struct Held {
    ids: HashSet<u64>,
    /// When it was last asked about, for evicting the least recently used.
    used: u64,
}

/// What the loads and the follower have built.
struct Known {
    held: HashMap<SenderKey, Held>,
    /// Fingerprints in `held`, all senders together.
    held_ids: usize,
    /// Every id the follower read after `complete_after`, in log order.
    recent: VecDeque<(u64, SenderKey, u64)>,
    complete_after: u64,
    clock: u64,
}

impl Known {
    fn new(complete_after: u64) -> Self {
        Self {
            held: HashMap::new(),
            held_ids: 0,
            recent: VecDeque::new(),
            complete_after,
            clock: 0,
        }
    }

    /// Whether a held sender has used the id; `None` when the sender is not held.
    fn used(&mut self, key: &SenderKey, id: u64) -> Option<bool> {
        self.clock += 1;
        let now = self.clock;
        let held = self.held.get_mut(key)?;
        held.used = now;
        Some(held.ids.contains(&id))
    }

    /// Holds a sender's ids as loaded when the projection had applied `as_of`, brought up to
    /// date with the recent ids; false (nothing held) when ids after `as_of` may have been
    /// dropped from the recent list.
    fn hold(&mut self, key: SenderKey, mut ids: HashSet<u64>, as_of: u64) -> bool {
        if as_of < self.complete_after {
            return false;
        }
        ids.extend(
            self.recent
                .iter()
                .filter(|(seq, k, _)| *seq > as_of && *k == key)
                .map(|(_, _, id)| *id),
        );
        self.clock += 1;
        let used = self.clock;
        self.held_ids += ids.len();
        if let Some(earlier) = self.held.insert(key, Held { ids, used }) {
            self.held_ids -= earlier.ids.len();
        }
        self.evict();
        true
    }

    /// Applies one id the follower read.
    fn record(&mut self, seq: u64, key: SenderKey, id: u64) {
        if let Some(held) = self.held.get_mut(&key) {
            if held.ids.insert(id) {
                self.held_ids += 1;
            }
        }
        self.recent.push_back((seq, key, id));
        while self.recent.len() > RECENT_IDS {
            if let Some((dropped, _, _)) = self.recent.pop_front() {
                self.complete_after = dropped;
            }
        }
        self.evict();
    }

    /// While more than [`HELD_IDS`] fingerprints are held, drops the least recently used
    /// eighth of the senders.
    fn evict(&mut self) {
        while self.held_ids > HELD_IDS {
            let mut by_use: Vec<(u64, SenderKey)> =
                self.held.iter().map(|(k, h)| (h.used, k.clone())).collect();
            by_use.sort_unstable_by_key(|(used, _)| *used);
            let drop = (by_use.len() / 8).max(1);
            for (_, key) in by_use.into_iter().take(drop) {
                if let Some(held) = self.held.remove(&key) {
                    self.held_ids -= held.ids.len();
                }
            }
        }
    }
}

/// The `clientMessageId`s this edge knows to be used, for skipping the Cassandra read of new
/// ones.
pub struct ClientMessageIds {
    known: Mutex<Known>,
    store: Arc<Store>,
    projector: String,
}

impl ClientMessageIds {
    /// Knows nothing yet; the follower reads every event after the stream sequence `start`.
    pub fn new(store: Arc<Store>, projector: &str, start: u64) -> Self {
        Self {
            known: Mutex::new(Known::new(start)),
            store,
            projector: projector.to_owned(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// False only when `sender` has certainly never used `id` in `room`; true when it may have
    /// (then the projection says which message it produced). An error when the sender's ids
    /// had to be loaded and Cassandra did not answer: the lookup would fail too.
    pub async fn maybe_used(
        &self,
        room: RoomId,
        sender: &UserId,
        id: &str,
    ) -> Result<bool, StoreError> {
        let key = (room, sender.as_str().to_owned());
        let id = fingerprint(id);
        if let Some(used) = self.lock().used(&key, id) {
            return Ok(used);
        }
        let as_of = self.store.applied_seq(&self.projector).await?;
        let limit = i32::try_from(LOAD_LIMIT + 1).unwrap_or(i32::MAX);
        let ids = self.store.client_message_ids(room, sender, limit).await?;
        if ids.len() > LOAD_LIMIT {
            return Ok(true);
        }
        let ids: HashSet<u64> = ids.iter().map(|id| fingerprint(id)).collect();
        let mut known = self.lock();
        Ok(!known.hold(key.clone(), ids, as_of) || known.used(&key, id) != Some(false))
    }

    /// Notes that the CHAT at stream sequence `seq` used `id`: called by the follower for
    /// every CHAT with one, in log order.
    pub fn record(&self, seq: u64, room: RoomId, sender: &UserId, id: &str) {
        self.lock()
            .record(seq, (room, sender.as_str().to_owned()), fingerprint(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(room: RoomId, sender: &str) -> SenderKey {
        (room, sender.to_owned())
    }

    fn ids(ids: &[&str]) -> HashSet<u64> {
        ids.iter().map(|id| fingerprint(id)).collect()
    }

    #[test]
    fn a_held_sender_answers_from_memory() {
        let mut known = Known::new(0);
        let room = RoomId::random();
        assert_eq!(known.used(&key(room, "a"), fingerprint("x")), None);
        assert!(known.hold(key(room, "a"), ids(&["x"]), 0));
        assert_eq!(known.used(&key(room, "a"), fingerprint("x")), Some(true));
        assert_eq!(known.used(&key(room, "a"), fingerprint("y")), Some(false));
        assert_eq!(known.used(&key(room, "b"), fingerprint("x")), None);
    }

    #[test]
    fn the_follower_adds_ids_to_held_senders() {
        let mut known = Known::new(0);
        let room = RoomId::random();
        known.hold(key(room, "a"), ids(&[]), 0);
        known.record(1, key(room, "a"), fingerprint("new"));
        known.record(2, key(room, "b"), fingerprint("other"));
        assert_eq!(known.used(&key(room, "a"), fingerprint("new")), Some(true));
        assert_eq!(known.used(&key(room, "b"), fingerprint("other")), None);
        assert_eq!(known.held_ids, 1);
    }

    #[test]
    fn a_load_gets_the_ids_the_projection_had_not_applied() {
        let mut known = Known::new(0);
        let room = RoomId::random();
        known.record(5, key(room, "a"), fingerprint("applied"));
        known.record(6, key(room, "a"), fingerprint("pending"));
        known.record(7, key(room, "b"), fingerprint("someone else's"));
        // The projection had applied up to 5, so its rows hold "applied" only.
        assert!(known.hold(key(room, "a"), ids(&["applied"]), 5));
        assert_eq!(
            known.used(&key(room, "a"), fingerprint("pending")),
            Some(true)
        );
        assert_eq!(
            known.used(&key(room, "a"), fingerprint("someone else's")),
            Some(false)
        );
    }

    #[test]
    fn a_load_older_than_the_recent_list_is_not_held() {
        let mut known = Known::new(100);
        let room = RoomId::random();
        assert!(!known.hold(key(room, "a"), ids(&["x"]), 99));
        assert_eq!(known.used(&key(room, "a"), fingerprint("x")), None);
        for seq in 101..=(RECENT_IDS as u64 + 103) {
            known.record(seq, key(room, "b"), seq);
        }
        assert_eq!(known.recent.len(), RECENT_IDS);
        assert_eq!(known.complete_after, 103);
        assert!(!known.hold(key(room, "a"), ids(&["x"]), 102));
        assert!(known.hold(key(room, "a"), ids(&["x"]), 103));
    }

    #[test]
    fn the_least_recently_used_senders_make_way() {
        let mut known = Known::new(0);
        let room = RoomId::random();
        let many: HashSet<u64> = (0..HELD_IDS as u64 / 4).collect();
        for sender in ["a", "b", "c", "d"] {
            assert!(known.hold(key(room, sender), many.clone(), 0));
        }
        assert_eq!(known.used(&key(room, "a"), 0), Some(true));
        assert!(known.hold(key(room, "e"), ids(&["x"]), 0));
        assert!(known.held_ids <= HELD_IDS);
        assert!(
            known.held.contains_key(&key(room, "a")),
            "recently used stays"
        );
        assert!(!known.held.contains_key(&key(room, "b")), "least used goes");
        assert!(known.held.contains_key(&key(room, "e")));
    }
}
