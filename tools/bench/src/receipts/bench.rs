//! The bench's own view of Redis: the connection and key prefix of the run, the made-up log
//! (rooms, members, events with growing sequences) and what it reads back from Redis.

use anyhow::Context;
use chat_platform::redis_connection::RedisConnection;
use chat_read_state::{ReadKeys, RoomKeys};
use chat_schemas::{ChatEvent, Envelope, RoomId, RoomKind, UserId};
use receipts::state::Fence;
use receipts::{LoggedEvent, Outcome, ReadState};

use super::usage::{RedisStats, Usage};
use super::{CONSUMER, EDGE, HOLDER, KEY_CHUNK};

/// The connection, the run's key prefix and the log being made up.
pub(super) struct Bench {
    /// The Redis under test (a single server).
    pub(super) redis: RedisConnection,
    /// `bench-<id>:` under the deployment's prefix; everything written is under it.
    pub(super) prefix: String,
    /// The last stream sequence handed out: sequences only grow, as in the log.
    pub(super) seq: u64,
    /// Rooms made so far, so that user ids never repeat within a run.
    pub(super) room_no: usize,
    /// Picks the senders.
    pub(super) rng: Rng,
    /// Events per `ReadState::apply`.
    pub(super) batch: usize,
}

impl Bench {
    /// A key prefix of its own for one measurement, under the run's.
    pub(super) fn scope(&self, name: &str) -> String {
        format!("{}{name}:", self.prefix)
    }

    /// A fresh read state under `scope`: no room held in memory yet.
    pub(super) fn state(&self, scope: &str) -> ReadState {
        ReadState::new(self.redis.clone(), ReadKeys::new(scope))
    }

    /// Takes the bench consumer's lease under `scope` (plain `SET`: nobody else competes for
    /// it) and returns the fence the worker would write with, epoch 1. Set again after each
    /// clear of the scope, which deletes it.
    pub(super) async fn fence(&self, scope: &str) -> anyhow::Result<Fence> {
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
    pub(super) fn members(&mut self, n: usize) -> anyhow::Result<Vec<UserId>> {
        self.room_no += 1;
        (0..n)
            .map(|i| {
                let id = format!("user{:06}.{i:04}", self.room_no);
                UserId::parse(&id).with_context(|| format!("user id {id}"))
            })
            .collect()
    }

    /// The next stream sequence, for events the raw baselines write without an envelope.
    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The next event of the log: sequences only grow.
    pub(super) fn event(&mut self, room: RoomId, actor: &UserId, event: ChatEvent) -> LoggedEvent {
        LoggedEvent {
            seq: self.next_seq(),
            envelope: Envelope::new(room, actor.clone(), event),
        }
    }

    /// A GROUP room created with every one of `members`, all of them absent.
    pub(super) fn created(&mut self, room: RoomId, members: &[UserId]) -> LoggedEvent {
        let event = ChatEvent::RoomCreated {
            kind: RoomKind::Group,
            name: Some("bench".to_owned()),
            members: members.to_vec(),
        };
        self.event(room, &members[0], event)
    }

    /// `user` opens the room on the bench edge, as an edge writes it.
    pub(super) fn entered(&mut self, room: RoomId, user: &UserId) -> LoggedEvent {
        let event = ChatEvent::Info {
            user_id: user.clone(),
            read_count: 0,
            last_read_message_id: None,
            edge: Some(EDGE.to_owned()),
        };
        self.event(room, user, event)
    }

    /// `user` closes the room on the bench edge.
    pub(super) fn exited(&mut self, room: RoomId, user: &UserId) -> LoggedEvent {
        let event = ChatEvent::Out {
            user_id: user.clone(),
            edge: Some(EDGE.to_owned()),
        };
        self.event(room, user, event)
    }

    /// A CHAT from `sender`.
    pub(super) fn chat(&mut self, room: RoomId, sender: &UserId) -> LoggedEvent {
        let event = ChatEvent::Chat {
            content: format!("benchmark message {}", self.seq + 1),
            client_message_id: None,
            reply_to: None,
            mentions: Vec::new(),
        };
        self.event(room, sender, event)
    }

    /// Applies `events` as the worker does: in batches, fenced, each batch then marked
    /// published (its recorded outcomes deleted, the progress written).
    pub(super) async fn apply_all(
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
    pub(super) async fn room_with_presence(
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
    pub(super) async fn keys(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
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
    pub(super) async fn clear(&self, prefix: &str) -> anyhow::Result<usize> {
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
    pub(super) async fn info(&self, section: &str) -> anyhow::Result<String> {
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut self.redis.clone())
            .await
            .with_context(|| format!("INFO {section}"))
    }

    /// `used_memory` of `INFO memory`.
    pub(super) async fn used_memory(&self) -> anyhow::Result<i64> {
        let info = self.info("memory").await?;
        field(&info, "used_memory")
            .context("INFO memory has no used_memory")?
            .parse()
            .context("used_memory is not a number")
    }

    /// `redis_version` of `INFO server`.
    pub(super) async fn redis_version(&self) -> anyhow::Result<String> {
        let info = self.info("server").await?;
        Ok(field(&info, "redis_version")
            .unwrap_or("unknown")
            .to_owned())
    }

    /// `appendonly` and `appendfsync`, for the record.
    pub(super) async fn persistence(&self) -> anyhow::Result<String> {
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
    pub(super) async fn stats(&self) -> anyhow::Result<RedisStats> {
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
    pub(super) async fn usage(&self, scope: &str) -> anyhow::Result<Usage> {
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
    pub(super) async fn encodings(
        &self,
        keys: &RoomKeys,
    ) -> anyhow::Result<Vec<(&'static str, String)>> {
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
pub(super) async fn mark_published(
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
pub(super) fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The kind of a key under `scope`: `rs:{room}:positions` gives `positions`, `rs:edge:{e}`
/// gives `edge`, `receipts-lease:{c}` gives `receipts-lease`.
pub(super) fn kind(scope: &str, key: &str) -> String {
    let rest = key.strip_prefix(scope).unwrap_or(key);
    let rest = rest.strip_prefix("rs:").unwrap_or(rest);
    if rest.starts_with('{') {
        if let Some((_, name)) = rest.split_once("}:") {
            return name.to_owned();
        }
    }
    rest.split(':').next().unwrap_or(rest).to_owned()
}

/// A small deterministic generator (xorshift64*) for the senders.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    /// Uniform enough in `0..n`.
    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
        usize::try_from(value % n as u64).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn senders_stay_in_range() {
        let mut rng = Rng(1);
        assert!((0..1_000).all(|_| rng.below(7) < 7));
    }
}
