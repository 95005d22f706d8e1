//! `bench receipts`: what the receipts worker's read state costs in Redis, each figure beside
//! a raw Redis baseline measured in the same run, against the running Redis.
//!
//! ```text
//! bench receipts [--events-small N] [--events-large N] [--events-huge N] [--batch B]
//!                 [--backlog M] [--repeats R] [--rooms R] [--unread-rooms R]
//! ```
//!
//! Run it from the workspace root with Redis up (`scripts/servers up redis`):
//!
//! ```text
//! cargo build --release -p bench
//! target/release/bench receipts
//! ```
//!
//! Every event goes through `ReadState::apply(batch, Some(&fence), 0)` as the worker applies
//! it: fenced with an epoch, each outcome recorded, every CHAT's room-list feed counts computed,
//! and each batch then marked published (`ReadState::published`), as the worker does after
//! publishing it. The fence's lease key is set under the bench's own prefix.
//!
//! 1. **Throughput**: a room of 10 members (`--events-small` CHATs, 20,000), one of 1,000
//!    (`--events-large`, 5,000) and one of 10,000 (`--events-huge`, 1,000); half of the members
//!    are present (entered with INFO on one edge), senders are random members. The CHATs go
//!    through `ReadState::apply` in batches of `--batch` (256), one pipelined round trip each;
//!    only the applies are timed (marking published is timed apart). Baseline: the commands the
//!    representation needs per CHAT as plain pipelined commands, no Lua, on a room set up the
//!    same way (`HINCRBY` chats, `ZSCORE` of the sender, `ZCOUNT` of the positions below the
//!    message, `HINCRBY` of an absent sender's base, `ZADD` of the unread entry, `HSET` of
//!    applied/shown, `HSET` of an outcome). Where the time goes: the same CHATs applied without a
//!    fence (no outcome recorded, no feed counts), a script that does nothing called as
//!    `apply.lua` is (once per batch, with the batch's CHATs as arguments: the cost of calling
//!    Lua at all), Redis's main-thread CPU and the time spent
//!    in `EVALSHA` (`INFO cpu`, `INFO commandstats`) around each batch, and the feed counts alone
//!    (`RoomCounts::unread_counts` of the room, timed in this process). Each way has a room of
//!    its own and they take turns batch by batch. Also printed: the room's state at the end, per
//!    member and per unread message.
//! 2. **Entering a room with a backlog**: in a room of 10, one member misses `--backlog` (1,000)
//!    CHATs, then enters: the latency of that single INFO applied alone, `--repeats` (100) times
//!    with fresh rooms, once with four other members absent too (the unread entries stay) and
//!    once as the only absent member (entering forgets all of them). Baseline: the commands the
//!    script runs for it, as one plain pipeline on a room set up the same way.
//! 3. **Memory per room and member**: `MEMORY USAGE` (exact, `SAMPLES 0`) of every key written,
//!    by kind of key, and the change of `INFO memory` `used_memory` (which also counts the
//!    keyspace's own hash table), for rooms of 10, 100, 1,000 and 10,000 members with nothing
//!    unread (`--rooms` rooms of 10, and as many members in total at each size), first with
//!    nobody present, then with half of each room present.
//! 4. **Memory per message**: rooms of 10 in which one present member sends and 1 or 9 members
//!    are absent, 100 unread messages per room (`--unread-rooms` rooms, 200) and 1,000 (a tenth
//!    as many rooms): per message while someone has not read it (the two absent counts show
//!    that it does not grow with the readers missing), per outcome recorded before it is marked
//!    published, and per message once every absent member has entered and left again.
//!
//! Settings load as for the worker (`config/default.toml`, `CHAT_CONFIG`, `CHAT_*`); it needs a
//! single Redis (`[redis] url`), not a cluster: it reads one server's `INFO`. Everything is
//! written under a throwaway key prefix `bench-<id>:`, deleted again at the end (also after a
//! failure, `^C` or `kill`). User ids are 15 characters (`user000001.0000`); memory grows with
//! their length.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use chat_platform::connect;
use chat_platform::redis_connection::RedisConnection;
use chat_schemas::{ChatEvent, Envelope, RoomId, RoomKind, UserId};
use receipts::keys::RoomKeys;
use receipts::room_counts::{Member, Position, RoomCounts};
use receipts::state::Fence;
use receipts::{LoggedEvent, Outcome, ReadKeys, ReadState, Settings};
use uuid::Uuid;

/// Printed for `--help` and after a bad argument.
pub const USAGE: &str = "usage: bench receipts [--events-small N] [--events-large N] \
                     [--events-huge N] [--batch B]\n                      [--backlog M] \
                     [--repeats R] [--rooms R] [--unread-rooms R]";

/// The edge every bench presence is on.
const EDGE: &str = "bench-edge";

/// The consumer whose lease fences the bench's writes and whose progress they record.
const CONSUMER: &str = "bench";

/// The lease holder's token: the fence's `holder`.
const HOLDER: &str = "bench";

/// Members of the small rooms (throughput, entering, memory per message).
const SMALL_ROOM: usize = 10;

/// Members of the large throughput room (the issue's room of 1,000).
const LARGE_ROOM: usize = 1_000;

/// Members of the largest throughput room (the issue's rooms of up to 10,000).
const HUGE_ROOM: usize = 10_000;

/// Room sizes of the memory-per-member scenario: both sides of Redis's small-encoding
/// thresholds (128 entries per hash and sorted set by default).
const MEMORY_ROOM_SIZES: [usize; 4] = [SMALL_ROOM, 100, LARGE_ROOM, HUGE_ROOM];

/// Unread messages per room in the shallow memory scenario (below the 128-entry threshold).
const SHALLOW_DEPTH: usize = 100;

/// Unread messages per room in the deep memory scenario (above it).
const DEEP_DEPTH: usize = 1_000;

/// Members absent from the rooms of the per-message scenario: if a message cost something per
/// reader missing, the two would differ.
const ABSENT: [usize; 2] = [1, SMALL_ROOM - 1];

/// Entries per page when the script looks for the newest unread message (`apply.lua`).
const UNREAD_PAGE: usize = 64;

/// The kinds of key a room has whatever its members: its hash (sequences, CHAT count) and its
/// fencing epoch.
const ROOM_KINDS: [&str; 2] = ["room", "receipts-fence"];

/// Every kind of key the read state of rooms takes (not the lease or the progress).
const STATE_KINDS: [&str; 9] = [
    "room",
    "receipts-fence",
    "positions",
    "bases",
    "unread",
    "presence",
    "outcomes",
    "edge",
    "edges",
];

/// A script that does nothing: what calling one costs, the floor under `apply.lua`.
const EMPTY_SCRIPT: &str = "return 0";

/// Keys per `DEL` or per `MEMORY USAGE` pipeline.
const KEY_CHUNK: usize = 1_000;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Options {
    /// CHATs in the room of 10.
    events_small: usize,
    /// CHATs in the room of 1,000.
    events_large: usize,
    /// CHATs in the room of 10,000.
    events_huge: usize,
    /// Events per `ReadState::apply`, as the worker's `batch_size`.
    batch: usize,
    /// Unread messages of the member who then enters.
    backlog: usize,
    /// Fresh rooms for each entering case.
    repeats: usize,
    /// Rooms of 10 in the per-member memory scenario (bigger rooms: as many members in total).
    rooms: usize,
    /// Rooms with 100 unread messages in the per-message memory scenario.
    unread_rooms: usize,
}

/// Reads the flags; every value is a positive number.
fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        events_small: 20_000,
        events_large: 5_000,
        events_huge: 1_000,
        batch: 256,
        backlog: 1_000,
        repeats: 100,
        rooms: 10_000,
        unread_rooms: 200,
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
            "--events-huge" => options.events_huge = value,
            "--batch" => options.batch = value,
            "--backlog" => options.backlog = value,
            "--repeats" => options.repeats = value,
            "--rooms" => options.rooms = value,
            "--unread-rooms" => options.unread_rooms = value,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

/// Runs the subcommand with the arguments after its name.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(measure(args))
}

/// Runs every scenario, then deletes the run's keys whatever happened.
async fn measure(args: &[String]) -> anyhow::Result<()> {
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
    // SCAN, INFO and MEMORY answer for one node, and the raw pipelines mix slots.
    ensure!(
        !redis.is_cluster(),
        "bench receipts measures a single Redis: unset [redis] nodes (CHAT_REDIS__NODES)"
    );
    let id = &Uuid::new_v4().simple().to_string()[..8];
    let mut bench = Bench {
        redis,
        prefix: format!("{}bench-{id}:", settings.redis.key_prefix),
        seq: 0,
        room_no: 0,
        rng: Rng(0x9E37_79B9_7F4A_7C15),
        batch: options.batch,
    };
    let outcome = tokio::select! {
        outcome = run(&mut bench, &options) => outcome,
        signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    let prefix = bench.prefix.clone();
    if let Err(e) = bench.clear(&prefix).await {
        eprintln!("cleanup: cannot delete the keys under {prefix}: {e:#}");
    }
    let results = outcome?;
    print_results(&bench, &options, &results);
    Ok(())
}

/// Waits for `^C` or `kill`, so that an interrupted run still deletes its keys.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut interrupt), Ok(mut terminate)) => tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        },
        _ => std::future::pending().await,
    }
}

/// Everything measured.
struct Results {
    /// `redis_version` of `INFO server`.
    version: String,
    /// `appendonly` / `appendfsync`: persistence costs the throughput.
    persistence: String,
    /// One per room size.
    throughput: Vec<Throughput>,
    /// Others absent too, then the only absent member.
    entering: Vec<Entering>,
    /// One per room size.
    rooms: Vec<RoomMemory>,
    /// Per depth and absent count.
    messages: Vec<MessageMemory>,
}

/// The scenarios in order, each under a scope of its own.
async fn run(bench: &mut Bench, options: &Options) -> anyhow::Result<Results> {
    let version = bench.redis_version().await?;
    let persistence = bench.persistence().await?;
    let mut throughput = Vec::new();
    for (members, events) in [
        (SMALL_ROOM, options.events_small),
        (LARGE_ROOM, options.events_large),
        (HUGE_ROOM, options.events_huge),
    ] {
        eprintln!("throughput: {events} CHATs in a room of {members}");
        throughput.push(measure_throughput(bench, members, events).await?);
    }
    let mut entering = Vec::new();
    for sole_absent in [false, true] {
        eprintln!(
            "entering a room with {} unread messages, {} times",
            options.backlog, options.repeats
        );
        entering.push(measure_entering(bench, options, sole_absent).await?);
    }
    let mut rooms = Vec::new();
    for size in MEMORY_ROOM_SIZES {
        let count = (options.rooms * SMALL_ROOM / size).max(1);
        eprintln!("memory: {count} rooms of {size}");
        rooms.push(measure_rooms(bench, size, count).await?);
    }
    let mut messages = Vec::new();
    for (rooms, depth) in [
        (options.unread_rooms, SHALLOW_DEPTH),
        ((options.unread_rooms / 10).max(1), DEEP_DEPTH),
    ] {
        for absent in ABSENT {
            eprintln!("memory: {rooms} rooms with {depth} unread messages, {absent} absent");
            messages.push(measure_messages(bench, rooms, depth, absent).await?);
        }
    }
    Ok(Results {
        version,
        persistence,
        throughput,
        entering,
        rooms,
        messages,
    })
}

/// The connection, the run's key prefix and the log being made up.
struct Bench {
    /// The Redis under test (a single server).
    redis: RedisConnection,
    /// `bench-<id>:` under the deployment's prefix; everything written is under it.
    prefix: String,
    /// The last stream sequence handed out: sequences only grow, as in the log.
    seq: u64,
    /// Rooms made so far, so that user ids never repeat within a run.
    room_no: usize,
    /// Picks the senders.
    rng: Rng,
    /// Events per `ReadState::apply`.
    batch: usize,
}

impl Bench {
    /// A key prefix of its own for one measurement, under the run's.
    fn scope(&self, name: &str) -> String {
        format!("{}{name}:", self.prefix)
    }

    /// A fresh read state under `scope`: no room held in memory yet.
    fn state(&self, scope: &str) -> ReadState {
        ReadState::new(self.redis.clone(), ReadKeys::new(scope))
    }

    /// Takes the bench consumer's lease under `scope` (plain `SET`: nobody else competes for
    /// it) and returns the fence the worker would write with, epoch 1. Set again after each
    /// clear of the scope, which deletes it.
    async fn fence(&self, scope: &str) -> anyhow::Result<Fence> {
        let key = ReadKeys::new(scope).lease(CONSUMER);
        redis::cmd("SET")
            .arg(&key)
            .arg(HOLDER)
            .query_async::<()>(&mut self.redis.clone())
            .await
            .context("SET of the bench lease")?;
        Ok(Fence {
            key,
            holder: HOLDER.into(),
            epoch: 1,
        })
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

    /// The next stream sequence, for events the raw baselines write without an envelope.
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The next event of the log: sequences only grow.
    fn event(&mut self, room: RoomId, actor: &UserId, event: ChatEvent) -> LoggedEvent {
        LoggedEvent {
            seq: self.next_seq(),
            envelope: Envelope::new(room, actor.clone(), event),
        }
    }

    /// A GROUP room created with every one of `members`, all of them absent.
    fn created(&mut self, room: RoomId, members: &[UserId]) -> LoggedEvent {
        let event = ChatEvent::RoomCreated {
            kind: RoomKind::Group,
            name: Some("bench".to_owned()),
            members: members.to_vec(),
        };
        self.event(room, &members[0], event)
    }

    /// `user` opens the room on the bench edge, as an edge writes it.
    fn entered(&mut self, room: RoomId, user: &UserId) -> LoggedEvent {
        let event = ChatEvent::Info {
            user_id: user.clone(),
            read_count: 0,
            last_read_message_id: None,
            edge: Some(EDGE.to_owned()),
        };
        self.event(room, user, event)
    }

    /// `user` closes the room on the bench edge.
    fn exited(&mut self, room: RoomId, user: &UserId) -> LoggedEvent {
        let event = ChatEvent::Out {
            user_id: user.clone(),
            edge: Some(EDGE.to_owned()),
        };
        self.event(room, user, event)
    }

    /// A CHAT from `sender`.
    fn chat(&mut self, room: RoomId, sender: &UserId) -> LoggedEvent {
        let event = ChatEvent::Chat {
            content: format!("benchmark message {}", self.seq + 1),
            client_message_id: None,
        };
        self.event(room, sender, event)
    }

    /// Applies `events` as the worker does: in batches, fenced, each batch then marked
    /// published (its recorded outcomes deleted, the progress written).
    async fn apply_all(
        &self,
        state: &mut ReadState,
        events: &[LoggedEvent],
        fence: &Fence,
    ) -> anyhow::Result<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(events.len());
        for batch in events.chunks(self.batch) {
            outcomes.extend(state.apply(batch, Some(fence), 0).await?);
            mark_published(state, batch, fence).await?;
        }
        Ok(outcomes)
    }

    /// A fresh room of `members` in which the first `present` have entered, applied through
    /// `state`; returns the room and the sequence of its creation (the absent members' read
    /// position).
    async fn room_with_presence(
        &mut self,
        state: &mut ReadState,
        fence: &Fence,
        members: &[UserId],
        present: usize,
    ) -> anyhow::Result<(RoomId, u64)> {
        let room = RoomId::random();
        let mut setup = vec![self.created(room, members)];
        for user in &members[..present] {
            setup.push(self.entered(room, user));
        }
        self.apply_all(state, &setup, fence).await?;
        Ok((room, setup[0].seq))
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

    /// One section of `INFO`, as text.
    async fn info(&self, section: &str) -> anyhow::Result<String> {
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut self.redis.clone())
            .await
            .with_context(|| format!("INFO {section}"))
    }

    /// `used_memory` of `INFO memory`.
    async fn used_memory(&self) -> anyhow::Result<i64> {
        let info = self.info("memory").await?;
        field(&info, "used_memory")
            .context("INFO memory has no used_memory")?
            .parse()
            .context("used_memory is not a number")
    }

    /// `redis_version` of `INFO server`.
    async fn redis_version(&self) -> anyhow::Result<String> {
        let info = self.info("server").await?;
        Ok(field(&info, "redis_version")
            .unwrap_or("unknown")
            .to_owned())
    }

    /// `appendonly` and `appendfsync`, for the record.
    async fn persistence(&self) -> anyhow::Result<String> {
        let mut redis = self.redis.clone();
        let mut settings = Vec::new();
        for name in ["appendonly", "appendfsync"] {
            let pair: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut redis)
                .await
                .context("CONFIG GET")?;
            settings.push(format!(
                "{name} {}",
                pair.get(1).map_or("?", String::as_str)
            ));
        }
        Ok(settings.join(", "))
    }

    /// Redis's main-thread CPU and its `EVALSHA` totals so far, to tell the script's time from
    /// the rest (commands a script calls are counted in `EVALSHA`'s time too).
    async fn stats(&self) -> anyhow::Result<RedisStats> {
        let info = self.info("cpu").await?;
        let cpu = ["used_cpu_sys_main_thread", "used_cpu_user_main_thread"]
            .iter()
            .map(|name| field(&info, name).and_then(|v| v.parse::<f64>().ok()))
            .sum::<Option<f64>>()
            .context("INFO cpu has no main-thread CPU")?;
        let commands = self.info("commandstats").await?;
        let usec = field(&commands, "cmdstat_evalsha").map_or(0, |stat| {
            stat.split(',')
                .find_map(|kv| kv.strip_prefix("usec")?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        });
        Ok(RedisStats {
            cpu_us: cpu * 1e6,
            script_us: usec,
        })
    }

    /// `MEMORY USAGE` of every key under `scope`, summed by kind (`positions`, `unread`, ...).
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

    /// `OBJECT ENCODING` of each of a room's keys Redis picks an encoding for by size.
    async fn encodings(&self, keys: &RoomKeys) -> anyhow::Result<Vec<(&'static str, String)>> {
        let mut redis = self.redis.clone();
        let mut encodings = Vec::new();
        for (name, key) in [
            ("room", &keys.room),
            ("positions", &keys.positions),
            ("bases", &keys.bases),
            ("unread", &keys.unread),
            ("presence", &keys.presence),
        ] {
            let encoding: Option<String> = redis::cmd("OBJECT")
                .arg("ENCODING")
                .arg(key)
                .query_async(&mut redis)
                .await
                .context("OBJECT ENCODING")?;
            encodings.push((name, encoding.unwrap_or_else(|| "(none)".to_owned())));
        }
        Ok(encodings)
    }
}

/// Marks `batch` published as the worker does after publishing it: deletes its recorded
/// outcomes and writes the bench consumer's progress.
async fn mark_published(
    state: &mut ReadState,
    batch: &[LoggedEvent],
    fence: &Fence,
) -> anyhow::Result<()> {
    let last = batch.last().map_or(0, |e| e.seq);
    state
        .published(batch, fence, CONSUMER, last)
        .await
        .context("marking a batch published (ReadState::published)")
}

/// The value of `name:` in an `INFO` answer.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The kind of a key under `scope`: `rs:{room}:positions` gives `positions`, `rs:edge:{e}`
/// gives `edge`, `receipts-lease:{c}` gives `receipts-lease`.
fn kind(scope: &str, key: &str) -> String {
    let rest = key.strip_prefix(scope).unwrap_or(key);
    let rest = rest.strip_prefix("rs:").unwrap_or(rest);
    if rest.starts_with('{') {
        if let Some((_, name)) = rest.split_once("}:") {
            return name.to_owned();
        }
    }
    rest.split(':').next().unwrap_or(rest).to_owned()
}

/// Bytes by kind of key: kind -> (keys, bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Usage(BTreeMap<String, (i64, i64)>);

impl Usage {
    /// Every kind together.
    fn total(&self) -> i64 {
        self.0.values().map(|(_, bytes)| bytes).sum()
    }

    /// The bytes of the named kinds.
    fn of(&self, kinds: &[&str]) -> i64 {
        kinds
            .iter()
            .filter_map(|k| self.0.get(*k))
            .map(|(_, bytes)| bytes)
            .sum()
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

    /// `kind keys bytes/unit` for every kind, to show where the bytes are.
    fn by_kind(&self, unit: f64) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(kind, (keys, bytes))| {
                format!("{kind} ({keys} keys) {:.1}", *bytes as f64 / unit)
            })
            .collect();
        parts.join(", ")
    }
}

/// Redis's own counters at one moment, or their growth over a phase.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct RedisStats {
    /// Main-thread CPU (user + system), µs: everything Redis serialises.
    cpu_us: f64,
    /// Time inside `EVALSHA`, µs: running the script and the commands it calls.
    script_us: u64,
}

impl RedisStats {
    /// Growth from `before` to `self`.
    fn since(self, before: RedisStats) -> RedisStats {
        RedisStats {
            cpu_us: self.cpu_us - before.cpu_us,
            script_us: self.script_us.saturating_sub(before.script_us),
        }
    }

    /// Both phases together.
    fn plus(self, other: RedisStats) -> RedisStats {
        RedisStats {
            cpu_us: self.cpu_us + other.cpu_us,
            script_us: self.script_us + other.script_us,
        }
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

/// One timed way of applying the same CHATs.
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    /// Wall time of the applies (or raw pipelines) alone.
    elapsed: Duration,
    /// What Redis spent meanwhile.
    redis: RedisStats,
    /// Wall time of marking the batches published (fenced runs only).
    marking: Duration,
}

/// Throughput of one room size.
struct Throughput {
    /// Members of the room.
    members: usize,
    /// CHATs applied.
    events: usize,
    /// Through `ReadState::apply` with the fence, as the worker.
    fenced: Timing,
    /// Through `ReadState::apply` without it: no outcome recorded, no feed counts.
    unfenced: Timing,
    /// The plain pipelined commands.
    raw: Timing,
    /// `EMPTY_SCRIPT` called as `apply.lua` is, once per batch, with the same keys and
    /// arguments.
    floor: Timing,
    /// `RoomCounts::unread_counts` of the room alone, for every CHAT.
    feed_counts: Duration,
    /// Freeing what it made, batch by batch (the worker does once a batch is published).
    feed_counts_freed: Duration,
    /// The fenced room's state after its CHATs.
    state: RoomState,
}

/// A room's state in Redis after its CHATs.
struct RoomState {
    /// `MEMORY USAGE` by kind of key.
    usage: Usage,
    /// Entries left in the room's unread set.
    unread: u64,
    /// Members present.
    present: usize,
}

/// Applies the same CHATs three ways, each in a room of its own set up alike (half of the
/// `size` members present): the worker's way (fenced), without the fence, and as raw
/// pipelined commands; and a script that does nothing, called as `apply.lua` is, and the feed
/// counts alone. They take turns batch by batch, so that whatever else the shared machine does
/// meanwhile slows all of them alike.
async fn measure_throughput(
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
    fn plus(self, other: Timing) -> Timing {
        Timing {
            elapsed: self.elapsed + other.elapsed,
            redis: self.redis.plus(other.redis),
            marking: self.marking + other.marking,
        }
    }

    /// µs per CHAT of the applies.
    fn per_event_us(&self, events: usize) -> f64 {
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

/// Entering a room with a backlog, `repeats` times.
struct Entering {
    /// Whether the member who enters is the only one absent (entering then forgets every
    /// unread entry) or four others stay absent (the entries stay).
    sole_absent: bool,
    /// Messages the INFO marks read.
    read: u64,
    /// The INFO through `ReadState::apply`, sorted.
    receipts: Vec<Duration>,
    /// The raw pipeline, sorted.
    raw: Vec<Duration>,
}

/// Times, in fresh rooms of 10, the single INFO of a member who missed `--backlog` CHATs, and
/// the raw pipeline of what the script does for it on a room set up the same way.
async fn measure_entering(
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

/// Memory of rooms of one size without unread messages.
struct RoomMemory {
    /// Members per room.
    size: usize,
    /// Rooms measured.
    rooms: usize,
    /// Members present in each room in the second step.
    present: usize,
    /// The rooms with every member absent.
    absent: Usage,
    /// `used_memory` growth for them.
    absent_info: i64,
    /// What the presence of half of the members added.
    presence: Usage,
    /// `used_memory` growth for it.
    presence_info: i64,
    /// Encodings of one room's keys once half are present.
    encodings: Vec<(&'static str, String)>,
}

impl RoomMemory {
    /// Members over all rooms.
    fn members(&self) -> f64 {
        (self.rooms * self.size) as f64
    }

    /// Present members over all rooms.
    fn present_members(&self) -> f64 {
        (self.rooms * self.present) as f64
    }
}

/// Creates `rooms` rooms of `size` with nobody present, then lets half of each room in,
/// measuring both steps.
async fn measure_rooms(bench: &mut Bench, size: usize, rooms: usize) -> anyhow::Result<RoomMemory> {
    let scope = bench.scope(&format!("rooms{size}"));
    let fence = bench.fence(&scope).await?;
    let mut state = bench.state(&scope);
    let present = size / 2;
    let mut created = Vec::with_capacity(rooms);
    let mut entered = Vec::with_capacity(rooms * present);
    let mut sample = None;
    for _ in 0..rooms {
        let room = RoomId::random();
        let members = bench.members(size)?;
        created.push(bench.created(room, &members));
        for user in &members[..present] {
            entered.push(bench.entered(room, user));
        }
        sample.get_or_insert(room);
    }
    let base = bench.usage(&scope).await?;
    let before = bench.used_memory().await?;
    bench.apply_all(&mut state, &created, &fence).await?;
    let after_created = bench.used_memory().await?;
    let absent = bench.usage(&scope).await?.minus(&base);
    bench.apply_all(&mut state, &entered, &fence).await?;
    let after_entered = bench.used_memory().await?;
    let presence = bench.usage(&scope).await?.minus(&base).minus(&absent);
    let mut encodings = Vec::new();
    if let Some(room) = sample {
        encodings = bench
            .encodings(&ReadKeys::new(scope.as_str()).room(&room))
            .await?;
    }
    bench.clear(&scope).await?;
    Ok(RoomMemory {
        size,
        rooms,
        present,
        absent,
        absent_info: after_created - before,
        presence,
        presence_info: after_entered - after_created,
        encodings,
    })
}

/// Memory of unread messages at one depth.
struct MessageMemory {
    /// Rooms measured.
    rooms: usize,
    /// Unread messages per room.
    depth: usize,
    /// Members absent from each room: the readers each message is missing.
    absent: usize,
    /// What the CHATs added while their outcomes were recorded, not yet marked published.
    recorded: Usage,
    /// What they added once marked: while the absent members have not read them.
    unread: Usage,
    /// `used_memory` growth for that.
    unread_info: i64,
    /// What is left once every absent member entered and left again (read everything).
    read: Usage,
    /// `used_memory` growth for that, from before the CHATs.
    read_info: i64,
    /// Encodings of one room's keys while its messages are unread.
    encodings: Vec<(&'static str, String)>,
}

impl MessageMemory {
    /// Messages over all rooms.
    fn messages(&self) -> f64 {
        (self.rooms * self.depth) as f64
    }
}

/// In `rooms` rooms of 10 where `absent` members are away, one present member sends `depth`
/// CHATs; measures them recorded, then marked published, then after everyone has read them.
async fn measure_messages(
    bench: &mut Bench,
    rooms: usize,
    depth: usize,
    absent: usize,
) -> anyhow::Result<MessageMemory> {
    let scope = bench.scope(&format!("messages{depth}-{absent}"));
    let present = SMALL_ROOM - absent;
    let fence = bench.fence(&scope).await?;
    let mut state = bench.state(&scope);
    let mut setup = Vec::with_capacity(rooms * (1 + present));
    let mut chats = Vec::with_capacity(rooms * depth);
    let mut reads = Vec::with_capacity(rooms * absent * 2);
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
        for user in &members[present..] {
            reads.push(bench.entered(room, user));
            reads.push(bench.exited(room, user));
        }
        sample.get_or_insert(room);
    }
    bench.apply_all(&mut state, &setup, &fence).await?;
    let before = bench.used_memory().await?;
    let base = bench.usage(&scope).await?;
    let mut entries = 0;
    for batch in chats.chunks(bench.batch) {
        for outcome in state.apply(batch, Some(&fence), 0).await? {
            match outcome {
                Outcome::Chat { unread, .. } => entries += unread,
                other => anyhow::bail!("a CHAT gave {other:?}"),
            }
        }
    }
    let expected = (rooms * depth * absent) as u64;
    ensure!(
        entries == expected,
        "{entries} unread in all, expected {expected}"
    );
    let recorded = bench.usage(&scope).await?.minus(&base);
    mark_published(&mut state, &chats, &fence).await?;
    let unread_info = bench.used_memory().await? - before;
    let unread = bench.usage(&scope).await?.minus(&base);
    let mut encodings = Vec::new();
    if let Some(room) = sample {
        encodings = bench
            .encodings(&ReadKeys::new(scope.as_str()).room(&room))
            .await?;
    }
    for outcome in bench.apply_all(&mut state, &reads, &fence).await? {
        ensure!(
            matches!(outcome, Outcome::Info { read_count, .. } if read_count == depth as u64)
                || matches!(outcome, Outcome::Out { .. }),
            "reading gave {outcome:?}, expected {depth} messages read"
        );
    }
    let read_info = bench.used_memory().await? - before;
    let read = bench.usage(&scope).await?.minus(&base);
    bench.clear(&scope).await?;
    Ok(MessageMemory {
        rooms,
        depth,
        absent,
        recorded,
        unread,
        unread_info,
        read,
        read_info,
        encodings,
    })
}

/// Events per second.
fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The middle element of a sorted, non-empty slice (the upper one of an even count).
fn median(sorted: &[Duration]) -> Duration {
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// The element below which `p` (0..=1) of a sorted slice lies (nearest rank).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len().max(1)) - 1)
        .copied()
        .unwrap_or_default()
}

/// Prints every table in the form `docs/benchmarks.md` quotes.
fn print_results(bench: &Bench, options: &Options, r: &Results) {
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    println!(
        "receipts-bench: Redis {} ({}), batch {}, key prefix {}",
        r.version, r.persistence, options.batch, bench.prefix
    );
    println!();
    println!("(1) CHAT throughput, half of the members present, random senders");
    println!("| room           | CHATs  | receipts (fenced) | raw pipeline | receipts / raw | receipts unfenced |");
    println!("|----------------|-------:|------------------:|-------------:|---------------:|------------------:|");
    for t in &r.throughput {
        let fenced = per_second(t.events, t.fenced.elapsed);
        let raw = per_second(t.events, t.raw.elapsed);
        println!(
            "| {:>6} members | {:>6} | {:>10.0} ev/s   | {:>7.0} ev/s | {:>14.2} | {:>10.0} ev/s   |",
            t.members,
            t.events,
            fenced,
            raw,
            fenced / raw.max(1e-9),
            per_second(t.events, t.unfenced.elapsed)
        );
    }
    println!();
    println!("    where the time goes, µs per CHAT");
    println!("| room           | receipts wall | Redis CPU | in EVALSHA | feed counts (Rust) | freeing them | unfenced wall | unfenced Redis CPU | raw wall | raw Redis CPU | empty script wall | its Redis CPU | in EVALSHA | marking published |");
    println!("|----------------|--------------:|----------:|-----------:|-------------------:|-------------:|--------------:|-------------------:|---------:|--------------:|------------------:|--------------:|-----------:|------------------:|");
    for t in &r.throughput {
        let per = |us: f64| us / t.events.max(1) as f64;
        println!(
            "| {:>6} members | {:>13.1} | {:>9.1} | {:>10.1} | {:>18.1} | {:>12.1} | {:>13.1} | {:>18.1} | {:>8.1} | {:>13.1} | {:>17.1} | {:>13.1} | {:>10.1} | {:>17.1} |",
            t.members,
            t.fenced.per_event_us(t.events),
            per(t.fenced.redis.cpu_us),
            per(t.fenced.redis.script_us as f64),
            t.feed_counts.as_secs_f64() * 1e6 / t.events.max(1) as f64,
            t.feed_counts_freed.as_secs_f64() * 1e6 / t.events.max(1) as f64,
            t.unfenced.per_event_us(t.events),
            per(t.unfenced.redis.cpu_us),
            t.raw.per_event_us(t.events),
            per(t.raw.redis.cpu_us),
            t.floor.per_event_us(t.events),
            per(t.floor.redis.cpu_us),
            per(t.floor.redis.script_us as f64),
            t.fenced.marking.as_secs_f64() * 1e6 / t.events.max(1) as f64
        );
    }
    println!();
    println!("    the room's state after its CHATs (outcomes marked published)");
    for t in &r.throughput {
        let s = &t.state;
        let members = t.members as f64;
        println!(
            "  {} members: {:.0} B in all (MEMORY USAGE); per member {:.1} B (positions + \
             bases), per present member +{:.1} B (presence + edge); per unread message {:.1} B \
             ({} entries); per room {} B (room hash + fence), outcomes left {} B",
            t.members,
            s.usage.of(&STATE_KINDS) as f64,
            s.usage.of(&["positions", "bases"]) as f64 / members,
            s.usage.of(&["presence", "edge"]) as f64 / s.present.max(1) as f64,
            s.usage.of(&["unread"]) as f64 / s.unread.max(1) as f64,
            s.unread,
            s.usage.of(&ROOM_KINDS),
            s.usage.of(&["outcomes"])
        );
    }
    println!();
    println!(
        "(2) entering a room of {SMALL_ROOM} with {} unread messages ({} read), {} times: \
         min / median / p99 / max",
        options.backlog,
        r.entering.first().map_or(0, |e| e.read),
        options.repeats
    );
    println!("| case                                  | receipts (one INFO)              | raw pipeline                     | median receipts / raw |");
    println!("|---------------------------------------|----------------------------------|----------------------------------|----------------------:|");
    for e in &r.entering {
        let case = if e.sole_absent {
            "only absent member (entries forgotten)"
        } else {
            "4 others absent too (entries stay)"
        };
        let span = |d: &[Duration]| {
            format!(
                "{:.3} / {:.3} / {:.3} / {:.3} ms",
                ms(d.first().copied().unwrap_or_default()),
                ms(median(d)),
                ms(percentile(d, 0.99)),
                ms(d.last().copied().unwrap_or_default())
            )
        };
        println!(
            "| {case:<37} | {:>32} | {:>32} | {:>21.2} |",
            span(&e.receipts),
            span(&e.raw),
            ms(median(&e.receipts)) / ms(median(&e.raw)).max(1e-9)
        );
    }
    println!();
    println!("(3) memory per room and per member, nothing unread, then half of each room present");
    println!("| members per room | rooms  | per room (room hash + fence) | per member, absent (positions + bases) | used_memory / member | per present member, + | used_memory / present member, + |");
    println!("|-----------------:|-------:|-----------------------------:|---------------------------------------:|---------------------:|----------------------:|--------------------------------:|");
    for m in &r.rooms {
        println!(
            "| {:>16} | {:>6} | {:>24.0} B   | {:>34.1} B   | {:>16.1} B   | {:>17.1} B   | {:>28.1} B   |",
            m.size,
            m.rooms,
            m.absent.of(&ROOM_KINDS) as f64 / m.rooms as f64,
            m.absent.of(&["positions", "bases"]) as f64 / m.members(),
            m.absent_info as f64 / m.members(),
            m.presence.total() as f64 / m.present_members(),
            m.presence_info as f64 / m.present_members()
        );
    }
    for m in &r.rooms {
        let encodings: Vec<String> = m
            .encodings
            .iter()
            .map(|(name, encoding)| format!("{name} {encoding}"))
            .collect();
        println!(
            "  rooms of {}: absent, per member: {}; present, per present member: {}; \
             encodings: {}",
            m.size,
            m.absent.by_kind(m.members()),
            m.presence.by_kind(m.present_members()),
            encodings.join(", ")
        );
    }
    println!();
    println!("(4) memory per message, rooms of {SMALL_ROOM}, one present member sends");
    println!("| rooms x messages | absent | while unread: MEMORY USAGE / message | used_memory / message | recorded outcome / CHAT, until marked | after everyone read: MEMORY USAGE / message | used_memory / message |");
    println!("|------------------|-------:|-------------------------------------:|----------------------:|--------------------------------------:|--------------------------------------------:|----------------------:|");
    for u in &r.messages {
        let n = u.messages();
        println!(
            "| {:>16} | {:>6} | {:>32.1} B   | {:>17.1} B   | {:>33.1} B   | {:>39.1} B   | {:>17.1} B   |",
            format!("{} x {}", u.rooms, u.depth),
            u.absent,
            u.unread.total() as f64 / n,
            u.unread_info as f64 / n,
            u.recorded.of(&["outcomes"]) as f64 / n,
            u.read.total() as f64 / n,
            u.read_info as f64 / n
        );
    }
    for u in &r.messages {
        let encodings: Vec<String> = u
            .encodings
            .iter()
            .map(|(name, encoding)| format!("{name} {encoding}"))
            .collect();
        println!(
            "  {} x {}, {} absent: while unread, per message: {}; after: {}; encodings: {}",
            u.rooms,
            u.depth,
            u.absent,
            u.unread.by_kind(u.messages()),
            u.read.by_kind(u.messages()),
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
            defaults.map(|o| (o.events_small, o.events_huge, o.batch, o.repeats)),
            Ok((20_000, 1_000, 256, 100))
        );
        let options = parse(&args("--events-large 50 --backlog 10 --events-huge 20"));
        assert_eq!(
            options.map(|o| (o.events_large, o.backlog, o.events_huge)),
            Ok((50, 10, 20))
        );
        assert!(parse(&args("--repeats 0")).is_err());
        assert!(parse(&args("--batch")).is_err());
        assert!(parse(&args("--max-tracked 20")).is_err());
    }

    #[test]
    fn keys_are_grouped_by_kind() {
        let keys = ReadKeys::new("p:");
        let room = keys.room(&RoomId::random());
        assert_eq!(kind("p:", &room.positions), "positions");
        assert_eq!(kind("p:", &room.unread), "unread");
        assert_eq!(kind("p:", &keys.edge_presence(EDGE)), "edge");
        assert_eq!(kind("p:", &keys.edges()), "edges");
        assert_eq!(kind("p:", &keys.progress(CONSUMER)), "progress");
        assert_eq!(kind("p:", &keys.lease(CONSUMER)), "receipts-lease");
        assert_eq!(kind("p:", &room.fence), "receipts-fence");
        assert_eq!(kind("p:", &room.room), "room");
        let mut before = Usage::default();
        before.0.insert("positions".to_owned(), (1, 100));
        let mut after = before.clone();
        after.0.insert("presence".to_owned(), (1, 60));
        assert_eq!(after.minus(&before).total(), 60);
        assert_eq!(after.minus(&before).0.len(), 1);
        assert_eq!(after.of(&["positions", "unread"]), 100);
    }

    #[test]
    fn info_fields_are_found_by_exact_name() {
        let info = "# CPU\r\nused_cpu_sys:1.5\r\nused_cpu_sys_main_thread:0.25\r\n";
        assert_eq!(field(info, "used_cpu_sys"), Some("1.5"));
        assert_eq!(field(info, "used_cpu_sys_main_thread"), Some("0.25"));
        assert_eq!(field(info, "used_cpu_user"), None);
    }

    #[test]
    fn senders_stay_in_range_and_percentiles_pick_by_rank() {
        let mut rng = Rng(1);
        assert!((0..1_000).all(|_| rng.below(7) < 7));
        let sorted: Vec<Duration> = (1..=5).map(Duration::from_millis).collect();
        assert_eq!(median(&sorted), Duration::from_millis(3));
        assert_eq!(median(&[]), Duration::ZERO);
        let hundred: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&hundred, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(5));
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
    }
}
