//! Scenario 1: CHAT throughput of the worker's way against raw pipelined commands, and where
//! the time goes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use chat_read_state::{ReadKeys, RoomKeys};
use chat_schemas::UserId;
use receipts::room_counts::{Member, Position, RoomCounts};
use receipts::state::Fence;
use receipts::{LoggedEvent, Outcome, ReadState};

use super::bench::{mark_published, Bench};
use super::usage::{RedisStats, Usage};
use super::EMPTY_SCRIPT;

/// One timed way of applying the same CHATs.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Timing {
    /// Wall time of the applies (or raw pipelines) alone.
    pub(super) elapsed: Duration,
    /// What Redis spent meanwhile.
    pub(super) redis: RedisStats,
    /// Wall time of marking the batches published (fenced runs only).
    pub(super) marking: Duration,
}

/// Throughput of one room size.
pub(super) struct Throughput {
    /// Members of the room.
    pub(super) members: usize,
    /// CHATs applied.
    pub(super) events: usize,
    /// Through `ReadState::apply` with the fence, as the worker.
    pub(super) fenced: Timing,
    /// Through `ReadState::apply` without it: no outcome recorded, no feed counts.
    pub(super) unfenced: Timing,
    /// The plain pipelined commands.
    pub(super) raw: Timing,
    /// `EMPTY_SCRIPT` called as `apply.lua` is, once per batch, with the same keys and
    /// arguments.
    pub(super) floor: Timing,
    /// `RoomCounts::unread_counts` of the room alone, for every CHAT.
    pub(super) feed_counts: Duration,
    /// Freeing what it made, batch by batch (the worker does once a batch is published).
    pub(super) feed_counts_freed: Duration,
    /// The fenced room's state after its CHATs.
    pub(super) state: RoomState,
}

/// A room's state in Redis after its CHATs.
pub(super) struct RoomState {
    /// `MEMORY USAGE` by kind of key.
    pub(super) usage: Usage,
    /// Entries left in the room's unread set.
    pub(super) unread: u64,
    /// Members present.
    pub(super) present: usize,
}

/// Applies the same CHATs three ways, each in a room of its own set up alike (half of the
/// `size` members present): the worker's way (fenced), without the fence, and as raw
/// pipelined commands; and a script that does nothing, called as `apply.lua` is, and the feed
/// counts alone. They take turns batch by batch, so that whatever else the shared machine does
/// meanwhile slows all of them alike.
pub(super) async fn measure_throughput(
    bench: &mut Bench,
    size: usize,
    events: usize,
) -> anyhow::Result<Throughput> {
    let scope = bench.scope(&format!("throughput{size}"));
    let unfenced_scope = bench.scope(&format!("throughput{size}-unfenced"));
    let raw_scope = bench.scope(&format!("throughput{size}-raw"));
    let members = bench.members(size)?;
    let present = size / 2;
    let senders: Vec<usize> = (0..events).map(|_| bench.rng.below(size)).collect();
    // Members absent from the room, the sender aside, have not read a CHAT.
    let expected = |sender: usize| (size - present - usize::from(sender >= present)) as u64;

    // The worker's way: fenced, outcomes recorded, feed counts computed, batches marked.
    let fence = bench.fence(&scope).await?;
    let mut state = bench.state(&scope);
    let (room, _) = bench
        .room_with_presence(&mut state, &fence, &members, present)
        .await?;
    let chats: Vec<LoggedEvent> = senders
        .iter()
        .map(|&sender| bench.chat(room, &members[sender]))
        .collect();
    // The rebuild's way: set up by the worker's, then nothing recorded, no feed counts.
    let unfenced_fence = bench.fence(&unfenced_scope).await?;
    let mut unfenced_state = bench.state(&unfenced_scope);
    let (unfenced_room, _) = bench
        .room_with_presence(&mut unfenced_state, &unfenced_fence, &members, present)
        .await?;
    let unfenced_chats: Vec<LoggedEvent> = senders
        .iter()
        .map(|&sender| bench.chat(unfenced_room, &members[sender]))
        .collect();
    // The raw commands, on a room set up by the worker's way too.
    let raw_fence = bench.fence(&raw_scope).await?;
    let mut raw_state = bench.state(&raw_scope);
    let (raw_room, _) = bench
        .room_with_presence(&mut raw_state, &raw_fence, &members, present)
        .await?;
    let seqs: Vec<u64> = senders.iter().map(|_| bench.next_seq()).collect();
    let mut raw_room = RawRoom::new(
        ReadKeys::new(raw_scope.as_str()).room(&raw_room),
        &members,
        present,
    );

    let empty: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(EMPTY_SCRIPT)
        .query_async(&mut bench.redis.clone())
        .await
        .context("SCRIPT LOAD")?;

    let mut feeds = FeedCounts::new(&members, present);
    let (mut feed_counts, mut feed_counts_freed) = (Duration::ZERO, Duration::ZERO);
    let mut sent = vec![0_u64; size];
    let mut last_counts = Vec::new();
    let (mut fenced, mut unfenced, mut raw, mut floor) = (
        Timing::default(),
        Timing::default(),
        Timing::default(),
        Timing::default(),
    );
    let batches = chats
        .chunks(bench.batch)
        .zip(unfenced_chats.chunks(bench.batch))
        .zip(senders.chunks(bench.batch).zip(seqs.chunks(bench.batch)));
    for ((batch, unfenced_batch), (senders, seqs)) in batches {
        let (outcomes, timing) = timed_apply(bench, &mut state, batch, Some(&fence)).await?;
        fenced = fenced.plus(timing);
        for (outcome, &sender) in outcomes.iter().zip(senders) {
            sent[sender] += 1;
            let Outcome::Chat {
                unread, members: m, ..
            } = outcome
            else {
                anyhow::bail!("a CHAT gave {outcome:?}");
            };
            ensure!(
                *unread == expected(sender) && m.len() == size,
                "a CHAT left {unread} unread with {} feed counts, expected {} and {size}",
                m.len(),
                expected(sender)
            );
        }
        if let Some(Outcome::Chat { members: m, .. }) = outcomes.into_iter().last() {
            last_counts = m;
        }

        let (outcomes, timing) =
            timed_apply(bench, &mut unfenced_state, unfenced_batch, None).await?;
        unfenced = unfenced.plus(timing);
        for (outcome, &sender) in outcomes.iter().zip(senders) {
            ensure!(
                matches!(outcome, Outcome::Chat { unread, members, .. }
                    if *unread == expected(sender) && members.is_empty()),
                "an unfenced CHAT gave {outcome:?}"
            );
        }

        raw = raw.plus(raw_room.chats(bench, senders, seqs).await?);
        floor = floor.plus(raw_room.empty_scripts(bench, &empty, senders, seqs).await?);
        let (made, freed) = feeds.time(senders.len());
        feed_counts += made;
        feed_counts_freed += freed;
    }
    // Every feed count after the last CHAT: 0 while present, else the CHATs others sent.
    let index: HashMap<&UserId, usize> = members.iter().enumerate().map(|(i, u)| (u, i)).collect();
    ensure!(
        last_counts.len() == size,
        "the last CHAT had no feed counts"
    );
    for (user, count) in &last_counts {
        let i = *index.get(user).context("a feed count for a stranger")?;
        let want = if i < present {
            0
        } else {
            events as u64 - sent[i]
        };
        ensure!(*count == want, "{user} has {count} unread, expected {want}");
    }
    let usage = bench.usage(&scope).await?;
    let unread: u64 = redis::cmd("ZCARD")
        .arg(ReadKeys::new(scope.as_str()).room(&room).unread)
        .query_async(&mut bench.redis.clone())
        .await
        .context("ZCARD")?;
    for scope in [&scope, &unfenced_scope, &raw_scope] {
        bench.clear(scope).await?;
    }
    Ok(Throughput {
        members: size,
        events,
        fenced,
        unfenced,
        raw,
        floor,
        feed_counts,
        feed_counts_freed,
        state: RoomState {
            usage,
            unread,
            present,
        },
    })
}

impl Timing {
    /// Both runs together.
    pub(super) fn plus(self, other: Timing) -> Timing {
        Timing {
            elapsed: self.elapsed + other.elapsed,
            redis: self.redis.plus(other.redis),
            marking: self.marking + other.marking,
        }
    }

    /// µs per CHAT of the applies.
    pub(super) fn per_event_us(&self, events: usize) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / events.max(1) as f64
    }
}

/// Applies one batch, timing the apply alone and reading Redis's counters around it; with a
/// fence, then marks it published (timed apart), as the worker does after publishing.
async fn timed_apply(
    bench: &Bench,
    state: &mut ReadState,
    batch: &[LoggedEvent],
    fence: Option<&Fence>,
) -> anyhow::Result<(Vec<Outcome>, Timing)> {
    let before = bench.stats().await?;
    let started = Instant::now();
    let outcomes = state.apply(batch, fence, 0).await?;
    let elapsed = started.elapsed();
    let redis = bench.stats().await?.since(before);
    let mut marking = Duration::ZERO;
    if let Some(fence) = fence {
        let started = Instant::now();
        mark_published(state, batch, fence).await?;
        marking = started.elapsed();
    }
    Ok((
        outcomes,
        Timing {
            elapsed,
            redis,
            marking,
        },
    ))
}

/// The raw baseline's room: the worker's keys, written with plain commands.
struct RawRoom {
    /// The room's keys.
    keys: RoomKeys,
    /// Member ids, the first `present` of them present.
    members: Vec<String>,
    /// How many are present.
    present: usize,
    /// CHATs written so far (the `chats` field the script would read).
    chats: u64,
}

impl RawRoom {
    /// A room set up already (created, `present` members entered) under `keys`.
    fn new(keys: RoomKeys, members: &[UserId], present: usize) -> Self {
        Self {
            keys,
            members: members.iter().map(|u| u.as_str().to_owned()).collect(),
            present,
            chats: 0,
        }
    }

    /// Pipelines, in one round trip, the commands the CHATs of `senders` at `seqs` need in
    /// this representation, without the script's checks (epoch, applied sequence) and with no
    /// Lua: the chats counter, the sender's position, the count of positions below the
    /// message (its `unreadCount`), an absent sender's base, the unread entry, applied/shown,
    /// and the recorded outcome (a string of about the script's size). Checks every count.
    async fn chats(
        &mut self,
        bench: &Bench,
        senders: &[usize],
        seqs: &[u64],
    ) -> anyhow::Result<Timing> {
        let keys = &self.keys;
        let absent = (self.members.len() - self.present) as u64;
        let mut pipe = redis::pipe();
        for (&sender, &seq) in senders.iter().zip(seqs) {
            self.chats += 1;
            let user = self.members[sender].as_str();
            let unread = absent - u64::from(sender >= self.present);
            pipe.cmd("HINCRBY")
                .arg(&keys.room)
                .arg("chats")
                .arg(1)
                .ignore();
            pipe.cmd("ZSCORE").arg(&keys.positions).arg(user).ignore();
            pipe.cmd("ZCOUNT")
                .arg(&keys.positions)
                .arg("-inf")
                .arg(format!("({seq}"));
            if sender >= self.present {
                pipe.cmd("HINCRBY")
                    .arg(&keys.bases)
                    .arg(user)
                    .arg(1)
                    .ignore();
            }
            pipe.cmd("ZADD")
                .arg(&keys.unread)
                .arg(seq)
                .arg(format!("{seq} {user}"))
                .ignore();
            pipe.cmd("HSET")
                .arg(&keys.room)
                .arg("applied")
                .arg(seq)
                .arg("shown")
                .arg(seq)
                .ignore();
            pipe.cmd("HSET")
                .arg(&keys.outcomes)
                .arg(seq)
                .arg(format!("chat {} {} {unread}", seq - 1, self.chats))
                .ignore();
        }
        let mut redis = bench.redis.clone();
        let before = bench.stats().await?;
        let started = Instant::now();
        let counts: Vec<u64> = pipe.query_async(&mut redis).await?;
        let elapsed = started.elapsed();
        let stats = bench.stats().await?.since(before);
        ensure!(
            counts.len() == senders.len() && counts.iter().all(|&c| c == absent),
            "the raw ZCOUNTs gave {counts:?}, expected {} times {absent}",
            senders.len()
        );
        Ok(Timing {
            elapsed,
            redis: stats,
            marking: Duration::ZERO,
        })
    }

    /// Calls the script `sha` (one that does nothing) once for the batch, with the keys and
    /// arguments `apply.lua` gets for these CHATs of one room: what Redis spends on calling a
    /// script at all.
    async fn empty_scripts(
        &self,
        bench: &Bench,
        sha: &str,
        senders: &[usize],
        seqs: &[u64],
    ) -> anyhow::Result<Timing> {
        let keys = &self.keys;
        let mut call = redis::cmd("EVALSHA");
        call.arg(sha)
            .arg(7)
            .arg(&keys.room)
            .arg(&keys.positions)
            .arg(&keys.bases)
            .arg(&keys.unread)
            .arg(&keys.presence)
            .arg(&keys.outcomes)
            .arg(&keys.fence)
            .arg(1);
        for (&sender, &seq) in senders.iter().zip(seqs) {
            call.arg(seq)
                .arg("1")
                .arg("chat")
                .arg(1)
                .arg(&self.members[sender]);
        }
        let mut pipe = redis::pipe();
        pipe.add_command(call);
        let mut redis = bench.redis.clone();
        let before = bench.stats().await?;
        let started = Instant::now();
        let answers: Vec<i64> = pipe.query_async(&mut redis).await?;
        let elapsed = started.elapsed();
        let stats = bench.stats().await?.since(before);
        ensure!(
            answers.len() == 1,
            "the empty script answered {} times, expected once",
            answers.len()
        );
        Ok(Timing {
            elapsed,
            redis: stats,
            marking: Duration::ZERO,
        })
    }
}

/// What the worker computes per CHAT for the room-list feeds, alone: the unread count of every
/// member of the room, from its copy in memory (`RoomCounts::unread_counts`).
struct FeedCounts(RoomCounts);

impl FeedCounts {
    /// A room of `members`, the first `present` of them present, the others with everything
    /// unread.
    fn new(members: &[UserId], present: usize) -> Self {
        let mut room = RoomCounts::default();
        for (i, user) in members.iter().enumerate() {
            let position = if i < present {
                Position::Present
            } else {
                Position::ReadUpTo(1)
            };
            room.members
                .insert(user.clone(), Member { position, base: 0 });
        }
        Self(room)
    }

    /// The counts of `chats` CHATs, held together as a batch's outcomes are: the time to make
    /// them (inside `ReadState::apply`) and to free them (later, once published).
    fn time(&mut self, chats: usize) -> (Duration, Duration) {
        let started = Instant::now();
        let mut batch = Vec::with_capacity(chats);
        for _ in 0..chats {
            self.0.chats += 1;
            batch.push(self.0.unread_counts());
        }
        let made = started.elapsed();
        let started = Instant::now();
        drop(std::hint::black_box(batch));
        (made, started.elapsed())
    }
}
