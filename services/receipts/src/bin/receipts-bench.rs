//! `receipts-bench`: what the receipts worker's read state costs in Redis, each figure beside a
//! raw Redis baseline measured in the same run, against the running Redis.
//!
//! ```text
//! receipts-bench [--events-small N] [--events-large N] [--batch B] [--backlog M]
//!                [--repeats R] [--rooms R] [--unread-rooms R] [--max-tracked T]
//! ```
//!
//! Run it from the workspace root with the servers up (`scripts/servers up`):
//!
//! ```text
//! cargo build --release -p receipts --bin receipts-bench
//! target/release/receipts-bench
//! ```
//!
//! 1. **Throughput**: a room of 10 members (`--events-small` CHATs, 20,000) and one of 1,000
//!    (`--events-large`, 2,000); half of the members are present (entered with INFO on one
//!    edge), senders are random members. The CHATs go through `ReadState::apply` in batches of
//!    `--batch` (256), one pipelined round trip each, as the worker applies them. Baseline: the
//!    same unread bookkeeping as plain pipelined commands, no Lua (per CHAT one `SADD` of the
//!    absent members, per absent member `ZADD` pending and `HINCRBY` count, then `SCARD`), and
//!    once more with the per-member count reads (`HGET`) the script returns for the room-list
//!    feeds. Also printed: the memory the room's state holds at the end, per unread entry.
//! 2. **Entering a room with a backlog**: in a room of 10, one member misses `--backlog` (1,000)
//!    CHATs, then enters: the latency of that single INFO applied alone, `--repeats` (5) times
//!    with fresh rooms, once with four other members absent too (the unread sets stay) and once
//!    as the only absent member (every set empties). Baseline: one pipeline of 1,000 `SREM` and
//!    a `DEL`.
//! 3. **Memory**: `MEMORY USAGE` (exact, `SAMPLES 0`) of every key written, by kind of key, and
//!    the change of `INFO memory` `used_memory` (which also counts the keyspace's own hash
//!    table): per room of 10 members with nobody present and no unread message (`--rooms`
//!    rooms, 10,000) and per present member; then per unread entry (one member in one
//!    message's unread set, with its pending entry and count) in rooms of 10 where one present
//!    member sends and 1 or 9 members are absent, at two depths: 100 unread messages per room
//!    (`--unread-rooms` rooms, 200) and `max_tracked` of them (a tenth as many rooms). The two
//!    set sizes split the cost into a part per message and a part per entry.
//!
//! Settings load as for the worker (`config/default.toml`, `CHAT_CONFIG`, `CHAT_*`); the
//! retention is `[receipts] max_tracked_messages` unless `--max-tracked` says otherwise.
//! Everything is written under a throwaway key prefix `bench-<id>:`, deleted again at the end.
//! User ids are 15 characters (`user000001.0000`); memory grows with their length.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use chat_platform::connect;
use chat_schemas::{ChatEvent, Envelope, RoomId, RoomKind, UserId};
use receipts::{LoggedEvent, Outcome, ReadKeys, ReadState, Settings};
use redis::aio::ConnectionManager;
use redis::Value;
use uuid::Uuid;

const USAGE: &str = "usage: receipts-bench [--events-small N] [--events-large N] [--batch B] \
                     [--backlog M]\n                      [--repeats R] [--rooms R] \
                     [--unread-rooms R] [--max-tracked T]";

/// The edge every bench presence is on.
const EDGE: &str = "bench-edge";

/// Members of the small rooms (throughput, entering, memory).
const SMALL_ROOM: usize = 10;

/// Members of the large throughput room.
const LARGE_ROOM: usize = 1_000;

/// Unread messages per room in the shallow memory scenario.
const SHALLOW_DEPTH: usize = 100;

/// Members absent from the rooms of the unread memory scenarios: the two sizes of unread sets
/// that split the cost into a part per message and a part per entry.
const ABSENT: [usize; 2] = [1, SMALL_ROOM - 1];

/// Members present in each room of the presence memory scenario.
const PRESENT_PER_ROOM: usize = 5;

/// Keys per `DEL` or per `MEMORY USAGE` pipeline.
const KEY_CHUNK: usize = 1_000;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Options {
    events_small: usize,
    events_large: usize,
    batch: usize,
    backlog: usize,
    repeats: usize,
    rooms: usize,
    unread_rooms: usize,
    max_tracked: Option<usize>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        events_small: 20_000,
        events_large: 2_000,
        batch: 256,
        backlog: 1_000,
        repeats: 5,
        rooms: 10_000,
        unread_rooms: 200,
        max_tracked: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse::<usize>()
            .map_err(|_| format!("{flag}: not a positive number"))?;
        if value == 0 {
            return Err(format!("{flag}: must be positive"));
        }
        match flag.as_str() {
            "--events-small" => options.events_small = value,
            "--events-large" => options.events_large = value,
            "--batch" => options.batch = value,
            "--backlog" => options.backlog = value,
            "--repeats" => options.repeats = value,
            "--rooms" => options.rooms = value,
            "--unread-rooms" => options.unread_rooms = value,
            "--max-tracked" => options.max_tracked = Some(value),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let options = match parse(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let settings = Settings::load().context("loading settings")?;
    let redis = connect::redis(&settings.redis).await?;
    let id = &Uuid::new_v4().simple().to_string()[..8];
    let mut bench = Bench {
        redis,
        prefix: format!("{}bench-{id}:", settings.redis.key_prefix),
        seq: 0,
        room_no: 0,
        rng: Rng(0x9E37_79B9_7F4A_7C15),
        batch: options.batch,
        max_tracked: options
            .max_tracked
            .unwrap_or(settings.receipts.max_tracked_messages),
    };
    let outcome = run(&mut bench, &options).await;
    let prefix = bench.prefix.clone();
    if let Err(e) = bench.clear(&prefix).await {
        eprintln!("cleanup: cannot delete the keys under {prefix}: {e:#}");
    }
    let results = outcome?;
    print_results(&bench, &options, &results);
    Ok(())
}

/// Everything measured.
struct Results {
    version: String,
    throughput: Vec<Throughput>,
    entering: Vec<Entering>,
    rooms: RoomMemory,
    unread: Vec<UnreadMemory>,
}

async fn run(bench: &mut Bench, options: &Options) -> anyhow::Result<Results> {
    let version = bench.redis_version().await?;
    let mut throughput = Vec::new();
    for (members, events) in [
        (SMALL_ROOM, options.events_small),
        (LARGE_ROOM, options.events_large),
    ] {
        eprintln!("throughput: {events} CHATs in a room of {members}");
        throughput.push(measure_throughput(bench, members, events).await?);
    }
    let mut entering = Vec::new();
    for sole_absent in [false, true] {
        eprintln!("entering a room with {} unread messages", options.backlog);
        entering.push(measure_entering(bench, options, sole_absent).await?);
    }
    eprintln!("memory: {} rooms", options.rooms);
    let rooms = measure_rooms(bench, options.rooms).await?;
    let mut unread = Vec::new();
    let deep = bench.max_tracked;
    for (rooms, depth) in [
        (options.unread_rooms, SHALLOW_DEPTH.min(deep)),
        ((options.unread_rooms / 10).max(1), deep),
    ] {
        for absent in ABSENT {
            eprintln!("memory: {rooms} rooms with {depth} unread messages, {absent} absent");
            unread.push(measure_unread(bench, rooms, depth, absent).await?);
        }
    }
    Ok(Results {
        version,
        throughput,
        entering,
        rooms,
        unread,
    })
}

/// The connection, the run's key prefix and the log being made up.
struct Bench {
    redis: ConnectionManager,
    prefix: String,
    seq: u64,
    room_no: usize,
    rng: Rng,
    batch: usize,
    max_tracked: usize,
}

impl Bench {
    /// A key prefix of its own for one measurement, under the run's.
    fn scope(&self, name: &str) -> String {
        format!("{}{name}:", self.prefix)
    }

    fn state(&self, scope: &str) -> ReadState {
        ReadState::new(self.redis.clone(), ReadKeys::new(scope), self.max_tracked)
    }

    /// `n` members of a fresh room; user ids never repeat within a run.
    fn members(&mut self, n: usize) -> anyhow::Result<Vec<UserId>> {
        self.room_no += 1;
        (0..n)
            .map(|i| {
                let id = format!("user{:06}.{i:04}", self.room_no);
                UserId::parse(&id).with_context(|| format!("user id {id}"))
            })
            .collect()
    }

    /// The next event of the log: sequences only grow.
    fn event(&mut self, room: RoomId, actor: &UserId, event: ChatEvent) -> LoggedEvent {
        self.seq += 1;
        LoggedEvent {
            seq: self.seq,
            envelope: Envelope::new(room, actor.clone(), event),
        }
    }

    fn created(&mut self, room: RoomId, members: &[UserId]) -> LoggedEvent {
        let event = ChatEvent::RoomCreated {
            kind: RoomKind::Group,
            name: Some("bench".to_owned()),
            members: members.to_vec(),
        };
        self.event(room, &members[0], event)
    }

    fn entered(&mut self, room: RoomId, user: &UserId) -> LoggedEvent {
        let event = ChatEvent::Info {
            user_id: user.clone(),
            read_count: 0,
            last_read_message_id: None,
            edge: Some(EDGE.to_owned()),
        };
        self.event(room, user, event)
    }

    fn chat(&mut self, room: RoomId, sender: &UserId) -> LoggedEvent {
        let event = ChatEvent::Chat {
            content: format!("benchmark message {}", self.seq + 1),
            client_message_id: None,
        };
        self.event(room, sender, event)
    }

    /// Applies `events` in batches, as the worker does.
    async fn apply_all(
        &self,
        state: &mut ReadState,
        events: &[LoggedEvent],
    ) -> anyhow::Result<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(events.len());
        for batch in events.chunks(self.batch) {
            outcomes.extend(state.apply(batch, None, 0).await?);
        }
        Ok(outcomes)
    }

    /// Every key under `prefix`.
    async fn keys(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut redis = self.redis.clone();
        let mut keys = Vec::new();
        let mut cursor = 0_u64;
        loop {
            let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(KEY_CHUNK)
                .query_async(&mut redis)
                .await
                .context("SCAN")?;
            keys.extend(found);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// Deletes every key under `prefix`; returns how many there were.
    async fn clear(&self, prefix: &str) -> anyhow::Result<usize> {
        let keys = self.keys(prefix).await?;
        let mut redis = self.redis.clone();
        for chunk in keys.chunks(KEY_CHUNK) {
            redis::cmd("DEL")
                .arg(chunk)
                .query_async::<u64>(&mut redis)
                .await
                .context("DEL")?;
        }
        Ok(keys.len())
    }

    /// `used_memory` of `INFO memory`.
    async fn used_memory(&self) -> anyhow::Result<i64> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.redis.clone())
            .await
            .context("INFO memory")?;
        info.lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .context("INFO memory has no used_memory")?
            .trim()
            .parse()
            .context("used_memory is not a number")
    }

    async fn redis_version(&self) -> anyhow::Result<String> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.redis.clone())
            .await
            .context("INFO server")?;
        Ok(info
            .lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_owned())
    }

    /// `MEMORY USAGE` of every key under `scope`, summed by kind (`unread`, `pending`, ...).
    async fn usage(&self, scope: &str) -> anyhow::Result<Usage> {
        let keys = self.keys(scope).await?;
        let mut redis = self.redis.clone();
        let mut usage = Usage::default();
        for chunk in keys.chunks(KEY_CHUNK) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.cmd("MEMORY")
                    .arg("USAGE")
                    .arg(key)
                    .arg("SAMPLES")
                    .arg(0);
            }
            let sizes: Vec<Option<i64>> =
                pipe.query_async(&mut redis).await.context("MEMORY USAGE")?;
            for (key, size) in chunk.iter().zip(sizes) {
                let entry = usage.0.entry(kind(scope, key)).or_default();
                entry.0 += 1;
                entry.1 += size.unwrap_or(0);
            }
        }
        Ok(usage)
    }

    /// `OBJECT ENCODING` of `key`.
    async fn encoding(&self, key: &str) -> anyhow::Result<String> {
        let encoding: Option<String> = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(key)
            .query_async(&mut self.redis.clone())
            .await
            .context("OBJECT ENCODING")?;
        Ok(encoding.unwrap_or_else(|| "(none)".to_owned()))
    }
}

/// The kind of a state key: `prefix rs:{kind}:...` gives `kind`.
fn kind(scope: &str, key: &str) -> String {
    let rest = key.strip_prefix(scope).unwrap_or(key);
    let rest = rest.strip_prefix("rs:").unwrap_or(rest);
    rest.split(':').next().unwrap_or(rest).to_owned()
}

/// Bytes by kind of key: kind -> (keys, bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Usage(BTreeMap<String, (i64, i64)>);

impl Usage {
    fn total(&self) -> i64 {
        self.0.values().map(|(_, bytes)| bytes).sum()
    }

    /// What `self` holds beyond `before`, kind by kind.
    fn minus(&self, before: &Usage) -> Usage {
        let mut delta = self.clone();
        for (kind, (keys, bytes)) in &before.0 {
            let entry = delta.0.entry(kind.clone()).or_default();
            entry.0 -= keys;
            entry.1 -= bytes;
        }
        delta.0.retain(|_, (keys, bytes)| *keys != 0 || *bytes != 0);
        delta
    }
}

/// A small deterministic generator (xorshift64*) for the senders.
struct Rng(u64);

impl Rng {
    /// Uniform enough in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
        usize::try_from(value % n as u64).unwrap_or(0)
    }
}

/// Throughput of one room size.
struct Throughput {
    members: usize,
    events: usize,
    receipts_per_s: f64,
    raw_per_s: f64,
    raw_reply_per_s: f64,
    /// Unread entries held at the end, within the retention.
    entries: u64,
    /// `MEMORY USAGE` of the room's whole state at the end.
    usage: i64,
    /// `used_memory` growth from before the room was created to the end.
    info: i64,
}

async fn measure_throughput(
    bench: &mut Bench,
    size: usize,
    events: usize,
) -> anyhow::Result<Throughput> {
    let scope = bench.scope(&format!("throughput{size}"));
    let mut state = bench.state(&scope);
    let room = RoomId::random();
    let members = bench.members(size)?;
    let present = size / 2;
    let before = bench.used_memory().await?;
    let mut setup = vec![bench.created(room, &members)];
    for user in &members[..present] {
        setup.push(bench.entered(room, user));
    }
    bench.apply_all(&mut state, &setup).await?;
    let senders: Vec<usize> = (0..events).map(|_| bench.rng.below(size)).collect();
    let chats: Vec<LoggedEvent> = senders
        .iter()
        .map(|&sender| bench.chat(room, &members[sender]))
        .collect();
    // Members absent from the room, the sender aside, have not read a CHAT.
    let expected = |sender: usize| (size - present - usize::from(sender >= present)) as u64;

    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(events);
    for batch in chats.chunks(bench.batch) {
        outcomes.extend(state.apply(batch, None, 0).await?);
    }
    let receipts_per_s = per_second(events, started.elapsed());
    for (outcome, &sender) in outcomes.iter().zip(&senders) {
        let Outcome::Chat {
            unread, members: m, ..
        } = outcome
        else {
            anyhow::bail!("a CHAT gave {outcome:?}");
        };
        ensure!(
            *unread == expected(sender) && m.len() == size,
            "a CHAT left {unread} unread with {} members, expected {} and {size}",
            m.len(),
            expected(sender)
        );
    }
    // The state left: the newest `max_tracked` messages keep their unread sets.
    let info = bench.used_memory().await? - before;
    let usage = bench.usage(&scope).await?.total();
    let entries = outcomes
        .iter()
        .rev()
        .take(bench.max_tracked)
        .map(|o| match o {
            Outcome::Chat { unread, .. } => *unread,
            _ => 0,
        })
        .sum();
    bench.clear(&scope).await?;

    let seqs: Vec<u64> = chats.iter().map(|e| e.seq).collect();
    let raw = RawRoom::new(&scope, room, &members, present);
    let mut per_s = [0.0; 2];
    for (slot, reply_counts) in per_s.iter_mut().zip([false, true]) {
        let elapsed = raw
            .chats(bench, &senders, &seqs, reply_counts, expected)
            .await?;
        *slot = per_second(events, elapsed);
        bench.clear(&scope).await?;
    }
    Ok(Throughput {
        members: size,
        events,
        receipts_per_s,
        raw_per_s: per_s[0],
        raw_reply_per_s: per_s[1],
        entries,
        usage,
        info,
    })
}

/// The raw baseline's keys for one room, named like the worker's.
struct RawRoom {
    room: String,
    scope: String,
    members: Vec<String>,
    pending: Vec<String>,
    counts: Vec<String>,
    present: usize,
}

impl RawRoom {
    fn new(scope: &str, room: RoomId, members: &[UserId], present: usize) -> Self {
        let members: Vec<String> = members.iter().map(|u| u.as_str().to_owned()).collect();
        Self {
            pending: members
                .iter()
                .map(|u| format!("{scope}raw:pending:{room}:{u}"))
                .collect(),
            counts: members
                .iter()
                .map(|u| format!("{scope}raw:counts:{u}"))
                .collect(),
            room: room.to_string(),
            scope: scope.to_owned(),
            members,
            present,
        }
    }

    fn unread(&self, seq: u64) -> String {
        format!("{}raw:unread:{}:{seq}", self.scope, self.room)
    }

    /// Pipelines the unread bookkeeping of one CHAT per sender, in batches; with
    /// `reply_counts`, also reads every member's count as the script's reply does.
    async fn chats(
        &self,
        bench: &Bench,
        senders: &[usize],
        seqs: &[u64],
        reply_counts: bool,
        expected: impl Fn(usize) -> u64,
    ) -> anyhow::Result<Duration> {
        let mut redis = bench.redis.clone();
        let stride = 1 + if reply_counts { self.members.len() } else { 0 };
        let started = Instant::now();
        for (senders, seqs) in senders.chunks(bench.batch).zip(seqs.chunks(bench.batch)) {
            let mut pipe = redis::pipe();
            for (&sender, &seq) in senders.iter().zip(seqs) {
                let unread = self.unread(seq);
                let absent = (self.present..self.members.len()).filter(|&u| u != sender);
                let mut sadd = redis::cmd("SADD");
                sadd.arg(&unread);
                for u in absent.clone() {
                    sadd.arg(&self.members[u]);
                }
                if absent.clone().next().is_some() {
                    pipe.add_command(sadd).ignore();
                }
                for u in absent {
                    pipe.cmd("ZADD")
                        .arg(&self.pending[u])
                        .arg(seq)
                        .arg(seq)
                        .ignore();
                    pipe.cmd("HINCRBY")
                        .arg(&self.counts[u])
                        .arg(&self.room)
                        .arg(1)
                        .ignore();
                }
                pipe.cmd("SCARD").arg(&unread);
                if reply_counts {
                    for counts in &self.counts {
                        pipe.cmd("HGET").arg(counts).arg(&self.room);
                    }
                }
            }
            let replies: Vec<Value> = pipe.query_async(&mut redis).await?;
            ensure!(
                replies.len() == senders.len() * stride,
                "the raw pipeline answered {} replies, expected {}",
                replies.len(),
                senders.len() * stride
            );
            for (reply, &sender) in replies.iter().step_by(stride).zip(senders) {
                let scard = match reply {
                    Value::Int(n) => u64::try_from(*n).unwrap_or(0),
                    _ => 0,
                };
                ensure!(scard == expected(sender), "raw SCARD gave {scard}");
            }
        }
        Ok(started.elapsed())
    }
}

/// Entering a room with a backlog, `repeats` times.
struct Entering {
    sole_absent: bool,
    read: u64,
    receipts: Vec<Duration>,
    raw: Vec<Duration>,
}

async fn measure_entering(
    bench: &mut Bench,
    options: &Options,
    sole_absent: bool,
) -> anyhow::Result<Entering> {
    let scope = bench.scope("entering");
    let mut state = bench.state(&scope);
    let present = if sole_absent {
        SMALL_ROOM - 1
    } else {
        SMALL_ROOM / 2
    };
    let expected = options.backlog.min(bench.max_tracked) as u64;
    let mut receipts = Vec::with_capacity(options.repeats);
    let mut raw = Vec::with_capacity(options.repeats);
    for _ in 0..options.repeats {
        let room = RoomId::random();
        let members = bench.members(SMALL_ROOM)?;
        let late = &members[SMALL_ROOM - 1];
        let mut setup = vec![bench.created(room, &members)];
        for user in &members[..present] {
            setup.push(bench.entered(room, user));
        }
        for _ in 0..options.backlog {
            let sender = bench.rng.below(present);
            setup.push(bench.chat(room, &members[sender]));
        }
        let seqs: Vec<u64> = setup[1 + present..].iter().map(|e| e.seq).collect();
        bench.apply_all(&mut state, &setup).await?;

        let enter = bench.entered(room, late);
        let started = Instant::now();
        let outcome = state.apply(std::slice::from_ref(&enter), None, 0).await?;
        receipts.push(started.elapsed());
        ensure!(
            matches!(outcome.as_slice(), [Outcome::Info { read_count, .. }] if *read_count == expected),
            "entering gave {outcome:?}, expected {expected} messages read"
        );
        bench.clear(&scope).await?;

        // The same sets, written directly, then emptied of the late member.
        let raw_room = RawRoom::new(&scope, room, &members, present);
        let mut redis = bench.redis.clone();
        let late = SMALL_ROOM - 1;
        for chunk in seqs.chunks(bench.batch) {
            let mut pipe = redis::pipe();
            for &seq in chunk {
                pipe.cmd("SADD")
                    .arg(raw_room.unread(seq))
                    .arg(&raw_room.members[present..])
                    .ignore();
                pipe.cmd("ZADD")
                    .arg(&raw_room.pending[late])
                    .arg(seq)
                    .arg(seq)
                    .ignore();
            }
            pipe.query_async::<()>(&mut redis).await?;
        }
        let started = Instant::now();
        let mut pipe = redis::pipe();
        for &seq in &seqs {
            pipe.cmd("SREM")
                .arg(raw_room.unread(seq))
                .arg(&raw_room.members[late]);
        }
        pipe.cmd("DEL").arg(&raw_room.pending[late]);
        let removed: Vec<u64> = pipe.query_async(&mut redis).await?;
        raw.push(started.elapsed());
        ensure!(
            removed.iter().sum::<u64>() == seqs.len() as u64 + 1,
            "the raw baseline removed {} entries",
            removed.iter().sum::<u64>()
        );
        bench.clear(&scope).await?;
    }
    receipts.sort_unstable();
    raw.sort_unstable();
    Ok(Entering {
        sole_absent,
        read: expected,
        receipts,
        raw,
    })
}

/// Memory of rooms without unread messages.
struct RoomMemory {
    rooms: usize,
    empty: Usage,
    empty_info: i64,
    presence: Usage,
    presence_info: i64,
}

async fn measure_rooms(bench: &mut Bench, rooms: usize) -> anyhow::Result<RoomMemory> {
    let scope = bench.scope("rooms");
    let mut state = bench.state(&scope);
    let mut created = Vec::with_capacity(rooms);
    let mut entered = Vec::with_capacity(rooms * PRESENT_PER_ROOM);
    for _ in 0..rooms {
        let room = RoomId::random();
        let members = bench.members(SMALL_ROOM)?;
        created.push(bench.created(room, &members));
        for user in &members[..PRESENT_PER_ROOM] {
            entered.push(bench.entered(room, user));
        }
    }
    let before = bench.used_memory().await?;
    bench.apply_all(&mut state, &created).await?;
    let after_created = bench.used_memory().await?;
    let empty = bench.usage(&scope).await?;
    bench.apply_all(&mut state, &entered).await?;
    let after_entered = bench.used_memory().await?;
    let presence = bench.usage(&scope).await?.minus(&empty);
    bench.clear(&scope).await?;
    Ok(RoomMemory {
        rooms,
        empty,
        empty_info: after_created - before,
        presence,
        presence_info: after_entered - after_created,
    })
}

/// Memory of unread entries at one depth.
struct UnreadMemory {
    rooms: usize,
    depth: usize,
    absent: usize,
    entries: u64,
    usage: Usage,
    info: i64,
    encodings: Vec<(&'static str, String)>,
}

impl UnreadMemory {
    fn messages(&self) -> f64 {
        (self.rooms * self.depth) as f64
    }

    fn per_entry(&self, bytes: i64) -> f64 {
        bytes as f64 / self.entries.max(1) as f64
    }
}

async fn measure_unread(
    bench: &mut Bench,
    rooms: usize,
    depth: usize,
    absent: usize,
) -> anyhow::Result<UnreadMemory> {
    let scope = bench.scope(&format!("unread{depth}-{absent}"));
    let present = SMALL_ROOM - absent;
    let mut state = bench.state(&scope);
    let mut setup = Vec::with_capacity(rooms * (1 + present));
    let mut chats = Vec::with_capacity(rooms * depth);
    let mut sample = None;
    for _ in 0..rooms {
        let room = RoomId::random();
        let members = bench.members(SMALL_ROOM)?;
        setup.push(bench.created(room, &members));
        for user in &members[..present] {
            setup.push(bench.entered(room, user));
        }
        for _ in 0..depth {
            chats.push(bench.chat(room, &members[0]));
        }
        sample.get_or_insert((room, members[SMALL_ROOM - 1].clone()));
    }
    bench.apply_all(&mut state, &setup).await?;
    let before = bench.used_memory().await?;
    let base = bench.usage(&scope).await?;
    let outcomes = bench.apply_all(&mut state, &chats).await?;
    let after = bench.used_memory().await?;
    let usage = bench.usage(&scope).await?.minus(&base);
    let entries: u64 = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Chat { unread, .. } => *unread,
            _ => 0,
        })
        .sum();
    let expected = (rooms * depth * absent) as u64;
    ensure!(
        entries == expected,
        "{entries} unread entries, expected {expected}"
    );

    let mut encodings = Vec::new();
    if let Some((room, absent)) = sample {
        let keys = ReadKeys::new(scope.to_string());
        let first = chats.first().map_or(0, |e| e.seq);
        let pending = format!("{scope}rs:pending:{room}:{absent}");
        for (name, key) in [
            ("unread set", keys.unread(&room, first)),
            ("pending zset", pending),
            ("tracked zset", keys.tracked(&room)),
            ("counts hash", keys.counts(&absent)),
        ] {
            encodings.push((name, bench.encoding(&key).await?));
        }
    }
    bench.clear(&scope).await?;
    Ok(UnreadMemory {
        rooms,
        depth,
        absent,
        entries,
        usage,
        info: after - before,
        encodings,
    })
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The middle element of a sorted, non-empty slice (the upper one of an even count).
fn median(sorted: &[Duration]) -> Duration {
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn print_results(bench: &Bench, options: &Options, r: &Results) {
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    println!(
        "receipts-bench: Redis {}, batch {}, max_tracked {}, key prefix {}",
        r.version, options.batch, bench.max_tracked, bench.prefix
    );
    println!();
    println!("(1) CHAT throughput, half of the members present, random senders");
    println!("| room          | CHATs  | receipts (Lua) | raw pipeline | raw + member counts | receipts / raw |");
    println!("|---------------|-------:|---------------:|-------------:|--------------------:|---------------:|");
    for t in &r.throughput {
        println!(
            "| {:>5} members | {:>6} | {:>8.0} ev/s  | {:>7.0} ev/s | {:>9.0} ev/s      | {:>14.2} |",
            t.members,
            t.events,
            t.receipts_per_s,
            t.raw_per_s,
            t.raw_reply_per_s,
            t.receipts_per_s / t.raw_per_s.max(1e-9)
        );
    }
    for t in &r.throughput {
        let entries = t.entries.max(1) as f64;
        println!(
            "  {} members, state at the end: {} unread entries in the newest {} messages, \
             {:.1} B per entry (MEMORY USAGE of the whole room), {:.1} B (used_memory delta)",
            t.members,
            t.entries,
            t.events.min(bench.max_tracked),
            t.usage as f64 / entries,
            t.info as f64 / entries
        );
    }
    println!();
    println!(
        "(2) entering a room of {SMALL_ROOM} with {} unread messages ({} read), {} times: \
         min / median / max",
        options.backlog,
        r.entering.first().map_or(0, |e| e.read),
        options.repeats
    );
    let raw = format!("raw: {} SREM + DEL", options.backlog);
    println!("| case                              | receipts (one INFO)       | {raw:<25} |");
    println!("|-----------------------------------|---------------------------|---------------------------|");
    for e in &r.entering {
        let case = if e.sole_absent {
            "only absent member (sets emptied)"
        } else {
            "4 others absent too (sets stay)"
        };
        let span = |d: &[Duration]| {
            format!(
                "{:.2} / {:.2} / {:.2} ms",
                ms(d.first().copied().unwrap_or_default()),
                ms(median(d)),
                ms(d.last().copied().unwrap_or_default())
            )
        };
        println!(
            "| {case:<33} | {:>25} | {:>25} |",
            span(&e.receipts),
            span(&e.raw)
        );
    }
    println!();
    let m = &r.rooms;
    let rooms = m.rooms as f64;
    println!(
        "(3) memory per room of {SMALL_ROOM} members, no unread message ({} rooms)",
        m.rooms
    );
    println!("| what                                   | MEMORY USAGE   | used_memory delta |");
    println!("|----------------------------------------|---------------:|------------------:|");
    println!(
        "| room, nobody present                   | {:>8.0} B     | {:>10.0} B      |",
        m.empty.total() as f64 / rooms,
        m.empty_info as f64 / rooms
    );
    let present = rooms * PRESENT_PER_ROOM as f64;
    println!(
        "| + per present member ({PRESENT_PER_ROOM} per room)      | {:>8.0} B     | {:>10.0} B      |",
        m.presence.total() as f64 / present,
        m.presence_info as f64 / present
    );
    for (kind, (keys, bytes)) in &m.empty.0 {
        println!(
            "|   {:<36} | {:>8.0} B     |                   |",
            format!("{kind} ({keys} keys)"),
            *bytes as f64 / rooms
        );
    }
    for (kind, (keys, bytes)) in m.presence.0.iter().filter(|(_, (keys, _))| *keys > 0) {
        println!(
            "|   {:<36} | {:>8.0} B     |                   |",
            format!("presence: {kind} ({keys} keys)"),
            *bytes as f64 / present
        );
    }
    println!();
    println!("(4) memory per unread entry, rooms of {SMALL_ROOM}, one present member sends");
    println!("| rooms x unread messages | absent | entries   | MEMORY USAGE / entry | used_memory delta / entry | MEMORY USAGE / message |");
    println!("|-------------------------|-------:|----------:|---------------------:|--------------------------:|-----------------------:|");
    for u in &r.unread {
        println!(
            "| {:>23} | {:>6} | {:>9} | {:>14.1} B      | {:>18.1} B      | {:>16.0} B     |",
            format!("{} x {}", u.rooms, u.depth),
            u.absent,
            u.entries,
            u.per_entry(u.usage.total()),
            u.per_entry(u.info),
            u.usage.total() as f64 / u.messages()
        );
    }
    for pair in r.unread.chunks(2) {
        let [few, many] = pair else { continue };
        let split = |few_bytes: i64, many_bytes: i64| {
            let per_message = |u: &UnreadMemory, bytes: i64| bytes as f64 / u.messages();
            let entry = (per_message(many, many_bytes) - per_message(few, few_bytes))
                / (many.absent - few.absent) as f64;
            (
                per_message(few, few_bytes) - entry * few.absent as f64,
                entry,
            )
        };
        let (usage_message, usage_entry) = split(few.usage.total(), many.usage.total());
        let (info_message, info_entry) = split(few.info, many.info);
        println!(
            "  depth {}: {usage_message:.0} B per message + {usage_entry:.1} B per entry \
             (MEMORY USAGE; used_memory: {info_message:.0} B + {info_entry:.1} B)",
            many.depth
        );
        let parts: Vec<String> = many
            .usage
            .0
            .iter()
            .map(|(kind, (_, bytes))| format!("{kind} {:.1}", many.per_entry(*bytes)))
            .collect();
        let encodings: Vec<String> = many
            .encodings
            .iter()
            .map(|(name, encoding)| format!("{name} {encoding}"))
            .collect();
        println!(
            "    {} absent, bytes per entry by key: {}; encodings: {}",
            many.absent,
            parts.join(", "),
            encodings.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_with_defaults() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let defaults = parse(&args(""));
        assert_eq!(
            defaults.map(|o| (o.events_small, o.batch)),
            Ok((20_000, 256))
        );
        let options = parse(&args("--events-large 50 --backlog 10 --max-tracked 20"));
        assert_eq!(
            options.map(|o| (o.events_large, o.backlog, o.max_tracked)),
            Ok((50, 10, Some(20)))
        );
        assert!(parse(&args("--repeats 0")).is_err());
        assert!(parse(&args("--batch")).is_err());
        assert!(parse(&args("--fast 1")).is_err());
    }

    #[test]
    fn keys_are_grouped_by_kind() {
        assert_eq!(kind("p:", "p:rs:unread:room:12"), "unread");
        assert_eq!(kind("p:", "p:rs:edges"), "edges");
        assert_eq!(kind("p:", "p:raw:counts:u"), "raw");
        let mut before = Usage::default();
        before.0.insert("members".to_owned(), (1, 100));
        let mut after = before.clone();
        after.0.insert("inroom".to_owned(), (1, 60));
        assert_eq!(after.minus(&before).total(), 60);
        assert_eq!(after.minus(&before).0.len(), 1);
    }

    #[test]
    fn senders_stay_in_range_and_medians_pick_the_middle() {
        let mut rng = Rng(1);
        assert!((0..1_000).all(|_| rng.below(7) < 7));
        let sorted: Vec<Duration> = (1..=5).map(Duration::from_millis).collect();
        assert_eq!(median(&sorted), Duration::from_millis(3));
        assert_eq!(median(&[]), Duration::ZERO);
    }
}
