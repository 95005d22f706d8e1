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

mod bench;
mod entering;
mod memory;
mod report;
mod throughput;
mod usage;

use anyhow::{ensure, Context};
use chat_platform::connect;
use receipts::Settings;

use crate::harness::{cli, env};
use bench::{Bench, Rng};
use entering::{measure_entering, Entering};
use memory::{measure_messages, measure_rooms, MessageMemory, RoomMemory};
use report::print_results;
use throughput::{measure_throughput, Throughput};

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
    for pair in cli::numeric_flags(args) {
        let (flag, value) = pair?;
        if value == 0 {
            return Err(format!("{flag}: must be positive"));
        }
        match flag {
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

/// Runs `bench receipts` with the arguments after the subcommand.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    match cli::options(args, USAGE, parse) {
        Some(options) => env::runtime(measure(options))?,
        None => Ok(()),
    }
}

/// Runs every scenario, then deletes the run's keys whatever happened.
async fn measure(options: Options) -> anyhow::Result<()> {
    let settings = Settings::load().context("loading settings")?;
    let redis = connect::redis(&settings.redis).await?;
    // SCAN, INFO and MEMORY answer for one node, and the raw pipelines mix slots.
    ensure!(
        !redis.is_cluster(),
        "bench receipts measures a single Redis: unset [redis] nodes (CHAT_REDIS__NODES)"
    );
    let id = env::run_id(8);
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
}
