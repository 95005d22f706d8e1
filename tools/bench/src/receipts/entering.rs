//! Scenario 2: entering a room with a backlog, through the worker and as a raw pipeline.

use std::time::{Duration, Instant};

use anyhow::ensure;
use chat_read_state::ReadKeys;
use chat_schemas::{RoomId, UserId};
use receipts::state::Fence;
use receipts::{LoggedEvent, Outcome, ReadState};

use super::bench::Bench;
use super::{Options, EDGE, SMALL_ROOM, UNREAD_PAGE};

/// Entering a room with a backlog, `repeats` times.
pub(super) struct Entering {
    /// Whether the member who enters is the only one absent (entering then forgets every
    /// unread entry) or four others stay absent (the entries stay).
    pub(super) sole_absent: bool,
    /// Messages the INFO marks read.
    pub(super) read: u64,
    /// The INFO through `ReadState::apply`, sorted.
    pub(super) receipts: Vec<Duration>,
    /// The raw pipeline, sorted.
    pub(super) raw: Vec<Duration>,
}

/// Times, in fresh rooms of 10, the single INFO of a member who missed `--backlog` CHATs, and
/// the raw pipeline of what the script does for it on a room set up the same way.
pub(super) async fn measure_entering(
    bench: &mut Bench,
    options: &Options,
    sole_absent: bool,
) -> anyhow::Result<Entering> {
    let scope = bench.scope("entering");
    let present = if sole_absent {
        SMALL_ROOM - 1
    } else {
        SMALL_ROOM / 2
    };
    let backlog = options.backlog as u64;
    let mut receipts = Vec::with_capacity(options.repeats);
    let mut raw = Vec::with_capacity(options.repeats);
    for _ in 0..options.repeats {
        let members = bench.members(SMALL_ROOM)?;
        let late = &members[SMALL_ROOM - 1];

        let fence = bench.fence(&scope).await?;
        let mut state = bench.state(&scope);
        let (room, _, last) =
            backlog_room(bench, &mut state, &fence, &members, present, options).await?;
        let enter = bench.entered(room, late);
        let started = Instant::now();
        let outcome = state
            .apply(std::slice::from_ref(&enter), Some(&fence), 0)
            .await?;
        receipts.push(started.elapsed());
        ensure!(
            matches!(outcome.as_slice(), [Outcome::Info { read_count, last_read, .. }]
                if *read_count == backlog && last_read.map(|m| m.sequence()) == Some(last)),
            "entering gave {outcome:?}, expected {backlog} messages read up to {last}"
        );
        bench.clear(&scope).await?;

        // The same room again, entered with the script's commands as one plain pipeline; the
        // values the script reads before it writes (position, chats, the lowest position) are
        // known here and passed in.
        let fence = bench.fence(&scope).await?;
        let mut state = bench.state(&scope);
        let (room, created, _) =
            backlog_room(bench, &mut state, &fence, &members, present, options).await?;
        let all = ReadKeys::new(scope.as_str());
        let keys = all.room(&room);
        let seq = bench.next_seq();
        let lowest = if sole_absent {
            "inf".to_owned()
        } else {
            created.to_string()
        };
        let mut pipe = redis::pipe();
        pipe.cmd("SADD").arg(all.edges()).arg(EDGE).ignore();
        pipe.cmd("SADD")
            .arg(all.edge_presence(EDGE))
            .arg(format!("{room} {late}"))
            .ignore();
        pipe.cmd("HSET")
            .arg(&keys.presence)
            .arg(late.as_str())
            .arg(EDGE)
            .ignore();
        pipe.cmd("ZSCORE").arg(&keys.positions).arg(late.as_str());
        pipe.cmd("HGET").arg(&keys.bases).arg(late.as_str());
        pipe.cmd("HGET").arg(&keys.room).arg("chats");
        pipe.cmd("ZREVRANGEBYSCORE")
            .arg(&keys.unread)
            .arg("+inf")
            .arg(format!("({created}"))
            .arg("LIMIT")
            .arg(0)
            .arg(UNREAD_PAGE);
        pipe.cmd("ZADD")
            .arg(&keys.positions)
            .arg("inf")
            .arg(late.as_str())
            .ignore();
        pipe.cmd("HSET")
            .arg(&keys.bases)
            .arg(late.as_str())
            .arg(backlog)
            .ignore();
        pipe.cmd("ZRANGE")
            .arg(&keys.positions)
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .ignore();
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&keys.unread)
            .arg("-inf")
            .arg(&lowest);
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
            .arg(format!("info {} {backlog} {backlog} {created}", seq - 1))
            .ignore();
        let mut redis = bench.redis.clone();
        let started = Instant::now();
        let (position, base, chats, page, removed): EnterReads =
            pipe.query_async(&mut redis).await?;
        raw.push(started.elapsed());
        let forgotten = if sole_absent { backlog } else { 0 };
        ensure!(
            position == Some(created)
                && base == Some(0)
                && chats == Some(backlog)
                && page.len() == UNREAD_PAGE.min(options.backlog)
                && removed == forgotten,
            "the raw baseline read position {position:?}, base {base:?}, chats {chats:?}, \
             {} unread entries, forgot {removed} (expected {forgotten})",
            page.len()
        );
        bench.clear(&scope).await?;
    }
    receipts.sort_unstable();
    raw.sort_unstable();
    Ok(Entering {
        sole_absent,
        read: backlog,
        receipts,
        raw,
    })
}

/// What the raw INFO pipeline reads back, to check it did the script's work: the member's
/// position and base, the room's CHAT count, the newest page of unread entries, and how many
/// entries it forgot.
type EnterReads = (Option<u64>, Option<u64>, Option<u64>, Vec<String>, u64);

/// A fresh room of 10 whose first `present` members are present and send `--backlog` CHATs
/// while the others are away; returns the room, its creation sequence and the last CHAT's.
async fn backlog_room(
    bench: &mut Bench,
    state: &mut ReadState,
    fence: &Fence,
    members: &[UserId],
    present: usize,
    options: &Options,
) -> anyhow::Result<(RoomId, u64, u64)> {
    let (room, created) = bench
        .room_with_presence(state, fence, members, present)
        .await?;
    let chats: Vec<LoggedEvent> = (0..options.backlog)
        .map(|_| {
            let sender = bench.rng.below(present);
            bench.chat(room, &members[sender])
        })
        .collect();
    bench.apply_all(state, &chats, fence).await?;
    let last = chats.last().map_or(0, |e| e.seq);
    Ok((room, created, last))
}
