//! `bench worker`: one process of simulated users, driven by the coordinator over stdin and
//! stdout (see [`super::wire`]). Single-threaded: the coordinator starts as many workers as the
//! connection count and the per-process file limit ask for.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::{anyhow, Context};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::edge_load::{self, Endpoint};
use super::raw_load;
use super::schedule::Schedule;
use super::wire::{self, user_name, Clock, ErrorTally, Go, Plan, Ready, Report, Target};
use crate::harness::stats::Latencies;

/// How a connection ended.
#[derive(Debug)]
pub enum Outcome {
    /// Still open when the run stopped.
    Held,
    /// Closed or broken before, and why.
    Dropped(String),
}

/// What every connection of the worker shares: the clock, the run's timing, the tallies.
pub struct Shared {
    clock: Clock,
    go: OnceLock<Go>,
    tally: Mutex<Tally>,
}

#[derive(Default)]
struct Tally {
    latencies: Latencies,
    own_latencies: Latencies,
    delivered: u64,
    outside: u64,
    feed_latencies: Latencies,
    feed_entries: u64,
}

impl Shared {
    fn new() -> Self {
        Self {
            clock: Clock::new(),
            go: OnceLock::new(),
            tally: Mutex::new(Tally::default()),
        }
    }

    /// The content of message `index`, stamped now.
    pub fn content(&self, index: u64) -> String {
        let bytes = self.go.get().map_or(0, |go| go.payload_bytes);
        wire::content(self.clock.now_ns(), index, bytes)
    }

    /// The `clientMessageId` of message `index` from `user`, when the run uses them.
    pub fn client_message_id(&self, user: &str, index: u64) -> Option<String> {
        let wanted = self.go.get().is_some_and(|go| go.client_message_id);
        wanted.then(|| format!("{user}-{index}"))
    }

    /// Counts an event (JSON with a stamped `content`) delivered to user `me`, timing it when
    /// it was due in the measured window ([`Go::measures`]).
    pub fn received(&self, body: &[u8], me: &str) {
        let now = self.clock.now_ns();
        let stamp = wire::stamp(body, me);
        let go = self.go.get();
        let mut tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        match (stamp, go) {
            (Some(stamp), Some(go)) if go.measures(stamp.index) => {
                let us = now.saturating_sub(stamp.sent_ns) / 1000;
                if stamp.own {
                    tally.own_latencies.record(us);
                } else {
                    tally.latencies.record(us);
                }
                tally.delivered += 1;
            }
            _ => tally.outside += 1,
        }
    }

    /// Counts a room-list feed entry (a CHAT's JSON with its stamped `content`, or an INVITE
    /// without one), timing it when its CHAT was due in the measured window.
    pub fn feed_entry(&self, body: &[u8]) {
        let now = self.clock.now_ns();
        let stamp = wire::stamp(body, "");
        if let (Some(stamp), Some(go)) = (stamp, self.go.get()) {
            if go.measures(stamp.index) {
                let mut tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
                tally
                    .feed_latencies
                    .record(now.saturating_sub(stamp.sent_ns) / 1000);
                tally.feed_entries += 1;
            }
        }
    }
}

/// How the schedule reaches one simulated user.
enum Sender {
    Edge(mpsc::Sender<u64>),
    Raw(async_nats::Client),
}

/// One simulated user with an open connection.
struct User {
    name: String,
    subject: String,
    sender: Sender,
    task: JoinHandle<Outcome>,
}

/// Runs a worker on the process's stdin and stdout.
pub fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let plan: Plan = receive(&mut lines).await?;
    let (go_tx, go_rx) = oneshot::channel();
    tokio::spawn(async move {
        // The coordinator keeps stdin open until it has the report: its end (the coordinator
        // died, or gave up) ends this worker at once, whatever it is doing.
        let go = receive::<Go>(&mut lines).await;
        let ok = go.is_ok();
        let _ = go_tx.send(go);
        while ok && matches!(lines.next_line().await, Ok(Some(_))) {}
        std::process::exit(1);
    });
    let shared = Arc::new(Shared::new());
    let stop = CancellationToken::new();
    let (users, ready) = connect_all(&plan, &shared, &stop).await;
    say(&ready)?;
    let go = go_rx.await??;
    let _ = shared.go.set(go);
    let report = drive(&plan, go, users, &shared, &stop).await;
    say(&report)
}

async fn receive<T: DeserializeOwned>(lines: &mut Lines<BufReader<Stdin>>) -> anyhow::Result<T> {
    let line = lines
        .next_line()
        .await?
        .ok_or_else(|| anyhow!("the coordinator went away"))?;
    serde_json::from_str(&line).context("message from the coordinator")
}

fn say<T: Serialize>(message: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(message)?);
    Ok(())
}

/// Opens every user's connection, `connect_concurrency` at a time.
async fn connect_all(
    plan: &Plan,
    shared: &Arc<Shared>,
    stop: &CancellationToken,
) -> (Vec<Option<User>>, Ready) {
    let started = Instant::now();
    let count = plan.rooms.len() * plan.room_size;
    let limit = Duration::from_millis(plan.connect_timeout_ms);
    let mut users: Vec<Option<User>> = (0..count).map(|_| None).collect();
    let mut errors = ErrorTally::default();
    let mut opened = futures::stream::iter(0..count)
        .map(|local| async move {
            let began = Instant::now();
            let result = timeout(limit, open(plan, local, shared.clone(), stop.clone())).await;
            let result = result.unwrap_or_else(|_| Err(anyhow!("timed out")));
            (local, result, began.elapsed())
        })
        .buffer_unordered(plan.connect_concurrency.max(1));
    let mut established = 0;
    let mut latencies = Latencies::default();
    while let Some((local, result, took)) = opened.next().await {
        match result {
            Ok(user) => {
                users[local] = Some(user);
                established += 1;
                latencies.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
            }
            Err(e) => errors.add(format!("{e:#}")),
        }
    }
    let ready = Ready {
        established,
        failed: count - established,
        errors: errors.into_vec(),
        seconds: started.elapsed().as_secs_f64(),
        latency_us: latencies.buckets(),
    };
    (users, ready)
}

/// Opens the connection of the worker's user number `local`.
async fn open(
    plan: &Plan,
    local: usize,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> anyhow::Result<User> {
    let room = &plan.rooms[local / plan.room_size];
    let name = user_name(plan.first_room * plan.room_size + local);
    match &plan.target {
        Target::Edge {
            addr,
            source_ip,
            secret,
            heart_beat_ms,
            feeds,
        } => {
            let endpoint = Endpoint {
                addr: *addr,
                source_ip: *source_ip,
                secret: secret.clone(),
                heart_beat: (*heart_beat_ms > 0).then(|| Duration::from_millis(*heart_beat_ms)),
                feeds: *feeds,
            };
            let (tx, task) = edge_load::open(&endpoint, &name, room, shared, stop).await?;
            Ok(User {
                name,
                subject: room.clone(),
                sender: Sender::Edge(tx),
                task,
            })
        }
        Target::Raw { url } => {
            let limit = Duration::from_millis(plan.connect_timeout_ms);
            let (client, task) = raw_load::open(url, &name, room, limit, shared, stop).await?;
            Ok(User {
                name,
                subject: room.clone(),
                sender: Sender::Raw(client),
                task,
            })
        }
    }
}

/// Sends this worker's share of the schedule, waits for the last deliveries, stops every
/// connection and reports.
async fn drive(
    plan: &Plan,
    go: Go,
    users: Vec<Option<User>>,
    shared: &Shared,
    stop: &CancellationToken,
) -> Report {
    let schedule = Schedule::new(
        go.rate,
        go.total_rooms,
        go.senders,
        go.sending().as_secs_f64(),
    );
    let start = shared.clock.instant(go.start_ns);
    let mut report = Report::default();
    let mut errors = ErrorTally::default();
    for i in schedule.messages_of(plan.first_room..plan.first_room + plan.rooms.len()) {
        let due = schedule.due(i);
        sleep_until(start + due).await;
        let local = (schedule.room(i) - plan.first_room) * plan.room_size + schedule.member(i);
        let sent = match &users[local] {
            None => Err("connection never opened".to_owned()),
            Some(user) => send(user, i, shared).await,
        };
        match (sent, go.measures(i)) {
            (Ok(()), true) => report.sent += 1,
            (Err(e), true) => {
                report.skipped += 1;
                errors.add(format!("not sent: {e}"));
            }
            (_, false) => {}
        }
    }
    sleep_until(start + go.sending() + Duration::from_millis(go.drain_ms)).await;
    stop.cancel();

    for user in users.into_iter().flatten() {
        let outcome = match user.task.await {
            Ok(Outcome::Held) => match &user.sender {
                Sender::Raw(client)
                    if client.connection_state() != async_nats::connection::State::Connected =>
                {
                    Outcome::Dropped("nats client disconnected".into())
                }
                _ => Outcome::Held,
            },
            Ok(dropped) => dropped,
            Err(e) => Outcome::Dropped(format!("connection task failed: {e}")),
        };
        match outcome {
            Outcome::Held => report.held += 1,
            Outcome::Dropped(reason) => {
                report.dropped += 1;
                errors.add(reason);
            }
        }
    }
    let tally = shared.tally.lock().unwrap_or_else(PoisonError::into_inner);
    report.delivered = tally.delivered;
    report.delivered_outside = tally.outside;
    report.latency_us = tally.latencies.buckets();
    report.own_latency_us = tally.own_latencies.buckets();
    report.feed_entries = tally.feed_entries;
    report.feed_latency_us = tally.feed_latencies.buckets();
    report.errors = errors.into_vec();
    report
}

/// Hands message `index` to `user`'s connection.
async fn send(user: &User, index: u64, shared: &Shared) -> Result<(), String> {
    match &user.sender {
        Sender::Edge(tx) => tx.try_send(index).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "connection busy".to_owned(),
            mpsc::error::TrySendError::Closed(_) => "connection gone".to_owned(),
        }),
        Sender::Raw(client) => {
            let publish = raw_load::publish(client, &user.subject, &user.name, index, shared);
            match timeout(Duration::from_secs(1), publish).await {
                Ok(result) => result.map_err(|e| format!("{e:#}")),
                Err(_) => Err("publish timed out".to_owned()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run whose measured window is the second `[1 s, 2 s)` after the epoch.
    fn go() -> Go {
        Go {
            start_ns: 0,
            warmup_ms: 1_000,
            duration_ms: 1_000,
            drain_ms: 0,
            rate: 1.0,
            total_rooms: 1,
            senders: 1,
            payload_bytes: 64,
            client_message_id: false,
        }
    }

    /// Message `index` of the schedule (one a second), sent at `sent_ns`.
    fn chat(index: u64, sent_ns: u64) -> Vec<u8> {
        let content = wire::content(sent_ns, index, 64);
        serde_json::json!({"type": "CHAT", "senderId": "u1", "content": content})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn feed_entries_are_counted_apart_and_only_from_the_window() {
        let shared = Shared::new();
        assert!(shared.go.set(go()).is_ok());
        shared.feed_entry(&chat(1, 1_500_000_000));
        shared.feed_entry(&chat(1, 2_000_000_000));
        shared.feed_entry(&chat(0, 500_000_000));
        shared.feed_entry(&chat(2, 2_000_000_000));
        shared.feed_entry(br#"{"type":"INVITE","roomId":"r"}"#);
        shared.received(&chat(1, 1_500_000_000), "u2");
        shared.received(&chat(1, 2_100_000_000), "u2");
        shared.received(&chat(2, 1_900_000_000), "u2");
        let tally = shared.tally.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(
            tally.feed_entries, 2,
            "the two of message 1, due inside the window, one sent late"
        );
        assert_eq!(
            tally
                .feed_latencies
                .buckets()
                .iter()
                .map(|(_, n)| n)
                .sum::<u64>(),
            2
        );
        assert_eq!(
            (tally.delivered, tally.outside),
            (2, 1),
            "room deliveries apart, judged by the schedule like the senders' count"
        );
    }
}
