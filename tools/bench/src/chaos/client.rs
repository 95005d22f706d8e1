//! The simulated app users of a chaos run: each one STOMP connection, subscribed to its rooms,
//! sending a CHAT with a `receipt` and a unique `clientMessageId` at a steady pace, and
//! behaving like a correct client when its edge goes away: reconnect to the next edge,
//! resubscribe with `since` = the last message id it saw, resend every SEND without a RECEIPT
//! with its same `clientMessageId`. Everything it sees goes into the shared [`Record`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use edge::stomp::{Command, Frame, Parsed, Parser};
use futures::SinkExt;
use serde::Deserialize;
use tokio::time::{interval, sleep, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::load::edge_load::{self, token, Endpoint};

/// Longest wait for the WebSocket and CONNECTED.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Heart-beats offered and asked for: the edge closes silent clients, and a client that hears
/// nothing for three intervals takes the connection as dead.
const HEART_BEAT: Duration = Duration::from_secs(5);

/// Most SENDs of one user waiting for their RECEIPT: like an app's outbox, a user sends nothing
/// new while that many are unanswered, and a resend after reconnecting stays within the edge's
/// SEND burst (40).
const OUTBOX: usize = 10;

/// Pause before reconnecting, so a dead edge is not hammered.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// One simulated user.
#[derive(Debug, Clone)]
pub struct User {
    /// Index in [`Record::received`] and elsewhere.
    pub index: usize,
    /// The user id.
    pub name: String,
    /// Room indexes the user is in and subscribes to.
    pub rooms: Vec<usize>,
    /// The edge (index into the edge list) it connects to first.
    pub home: usize,
}

/// One CHAT a user sent (perhaps several times, always with the same `clientMessageId`).
#[derive(Debug, Clone)]
pub struct Sent {
    /// The sender's index.
    pub user: usize,
    /// The room's index.
    pub room: usize,
    /// The sender's running number of this message.
    pub seq: u64,
    /// Its `clientMessageId`, unique in the run.
    pub client_message_id: String,
    /// The JSON body of the SEND.
    pub body: String,
    /// When the first RECEIPT for it came.
    pub acked_at: Option<Instant>,
    /// The ERROR that refused it for good, if any.
    pub refused: Option<String>,
    /// The fault window it was sent in.
    pub window: usize,
}

/// Longest gaps between RECEIPTs and between live CHAT deliveries of one user in the current
/// window: what that user's app would have noticed.
#[derive(Debug, Clone, Copy)]
pub struct Gaps {
    /// Last RECEIPT of a SEND.
    pub last_receipt: Instant,
    /// Longest time without a RECEIPT.
    pub receipt: Duration,
    /// Last live CHAT delivered.
    pub last_delivery: Instant,
    /// Longest time without a live CHAT delivery.
    pub delivery: Duration,
}

impl Gaps {
    /// Gaps measured from `now` on.
    pub fn new(now: Instant) -> Self {
        Self {
            last_receipt: now,
            receipt: Duration::ZERO,
            last_delivery: now,
            delivery: Duration::ZERO,
        }
    }

    /// The gaps as they stand `now`, the one still open included.
    pub fn until(&self, now: Instant) -> (Duration, Duration) {
        (
            self.receipt.max(now - self.last_receipt),
            self.delivery.max(now - self.last_delivery),
        )
    }
}

/// What every user saw and did.
#[derive(Debug)]
pub struct Record {
    /// Every CHAT sent, by send id.
    pub sent: Vec<Sent>,
    /// Per user and room: the CHAT message ids delivered, in arrival order, duplicates kept.
    pub received: HashMap<(usize, usize), Vec<u64>>,
    /// The current fault window.
    pub window: usize,
    /// Gaps of the current window, by user.
    pub gaps: Vec<Gaps>,
    /// Connections (re)established, by user.
    pub connects: Vec<u32>,
    /// Why connections ended, with counts.
    pub drops: HashMap<String, usize>,
}

/// What the users share with the driver.
pub struct Run {
    /// The edges' HTTP base URLs.
    pub edges: Vec<SocketAddr>,
    /// The token secret.
    pub secret: String,
    /// Room ids by index.
    pub rooms: Vec<String>,
    /// Per room: the id of its creation INVITE, where every subscription starts.
    pub origins: Vec<u64>,
    /// Time between two CHATs of one user.
    pub interval: Duration,
    /// Whether users send now (the driver pauses them to check).
    pub sending: AtomicBool,
    /// The run's record.
    pub record: Mutex<Record>,
    /// Tag that makes contents unique across runs.
    pub tag: String,
}

impl Run {
    /// The record, locked.
    pub fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Record {
    /// An empty record for `users` users.
    pub fn new(users: usize) -> Self {
        Self {
            sent: Vec::new(),
            received: HashMap::new(),
            window: 0,
            gaps: vec![Gaps::new(Instant::now()); users],
            connects: vec![0; users],
            drops: HashMap::new(),
        }
    }
}

/// The fields of a MESSAGE body the run looks at.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    message_id: Option<String>,
}

/// Plays `user` until `stop`: connects, and reconnects to the next edge whenever the
/// connection ends.
pub async fn play(run: Arc<Run>, user: User, stop: CancellationToken) {
    let mut state = State {
        edge: user.home,
        since: user.rooms.iter().map(|&room| run.origins[room]).collect(),
        pending: VecDeque::new(),
        seq: 0,
        next_room: 0,
    };
    loop {
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = session(&run, &user, &mut state) => outcome,
        };
        let reason = match outcome {
            Ok(()) => "closed by the edge".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        *run.record().drops.entry(short(&reason)).or_default() += 1;
        state.edge = (state.edge + 1) % run.edges.len();
        tokio::select! {
            () = stop.cancelled() => return,
            () = sleep(RECONNECT_PAUSE) => {}
        }
    }
}

/// A reason without the numbers that make every occurrence different.
fn short(reason: &str) -> String {
    reason
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .take(120)
        .collect()
}

/// What a user keeps across connections.
struct State {
    /// The edge it uses now.
    edge: usize,
    /// Per room of the user (same order as `User::rooms`): the last CHAT id seen.
    since: Vec<u64>,
    /// Send ids without a RECEIPT yet, in send order.
    pending: VecDeque<usize>,
    /// The user's last message number.
    seq: u64,
    /// Which of its rooms the next CHAT goes to.
    next_room: usize,
}

/// One connection: CONNECT, SUBSCRIBE to every room with `since`, resend what has no RECEIPT,
/// then send on the beat and take in frames until the connection ends.
async fn session(run: &Run, user: &User, state: &mut State) -> anyhow::Result<()> {
    let endpoint = Endpoint {
        addr: run.edges[state.edge],
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        secret: run.secret.clone(),
        heart_beat: Some(HEART_BEAT),
        feeds: false,
    };
    let mut ws = timeout(CONNECT_TIMEOUT, edge_load::handshake(&endpoint))
        .await
        .map_err(|_| anyhow!("websocket: timed out"))??;
    let beats = HEART_BEAT.as_millis();
    let connect = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("heart-beat", format!("{beats},{beats}"))
        .with_header(
            "Authorization",
            format!("Bearer {}", token(&run.secret, &user.name)?),
        );
    edge_load::write(&mut ws, connect).await?;
    let mut parser = Parser::default();
    let mut items = Vec::new();
    timeout(CONNECT_TIMEOUT, async {
        loop {
            let bytes = edge_load::read(&mut ws)
                .await?
                .ok_or_else(|| anyhow!("closed before CONNECTED"))?;
            parser.feed(&bytes, &mut items)?;
            for item in items.drain(..) {
                if let Parsed::Frame(frame) = item {
                    match frame.command {
                        Command::Connected => return Ok(()),
                        Command::Error => {
                            bail!("ERROR {}", frame.header("message").unwrap_or_default())
                        }
                        _ => {}
                    }
                }
            }
        }
    })
    .await
    .map_err(|_| anyhow!("CONNECTED: timed out"))??;
    run.record().connects[user.index] += 1;

    for (k, &room) in user.rooms.iter().enumerate() {
        let subscribe = Frame::new(Command::Subscribe)
            .with_header("id", k.to_string())
            .with_header("destination", format!("/sub/rooms/{}", run.rooms[room]))
            .with_header("since", state.since[k].to_string())
            .with_header("receipt", format!("sub-{k}"));
        edge_load::write(&mut ws, subscribe).await?;
    }
    let resend: Vec<usize> = state.pending.iter().copied().collect();
    for id in resend {
        let frame = send_frame(run, id);
        edge_load::write(&mut ws, frame).await?;
    }

    let mut beat = interval(run.interval);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    let mut said = Instant::now();
    loop {
        tokio::select! {
            data = edge_load::read(&mut ws) => {
                let Some(bytes) = data? else { return Ok(()) };
                heard = Instant::now();
                parser.feed(&bytes, &mut items).context("bad frame from the edge")?;
                for item in items.drain(..) {
                    if let Parsed::Frame(frame) = item {
                        take(run, user, state, &frame)?;
                    }
                }
            }
            _ = beat.tick() => {
                if heard.elapsed() > 3 * HEART_BEAT {
                    bail!("the edge went silent");
                }
                if run.sending.load(Ordering::Relaxed) && state.pending.len() < OUTBOX {
                    let id = new_message(run, user, state);
                    timeout(CONNECT_TIMEOUT, edge_load::write(&mut ws, send_frame(run, id)))
                        .await
                        .map_err(|_| anyhow!("SEND: the edge does not read"))??;
                    said = Instant::now();
                } else if said.elapsed() > HEART_BEAT {
                    ws.send(Message::Text("\n".into())).await?;
                    said = Instant::now();
                }
            }
        }
    }
}

/// Records a new CHAT of `user` to its next room and returns its send id.
fn new_message(run: &Run, user: &User, state: &mut State) -> usize {
    state.seq += 1;
    let k = state.next_room;
    state.next_room = (k + 1) % user.rooms.len();
    let client_message_id = format!("{}-{}", user.name, state.seq);
    let body = serde_json::json!({
        "content": format!("chaos {} from {} #{}", run.tag, user.name, state.seq),
        "clientMessageId": client_message_id,
    })
    .to_string();
    let mut record = run.record();
    let id = record.sent.len();
    let window = record.window;
    record.sent.push(Sent {
        user: user.index,
        room: user.rooms[k],
        seq: state.seq,
        client_message_id,
        body,
        acked_at: None,
        refused: None,
        window,
    });
    state.pending.push_back(id);
    id
}

/// The SEND frame of send id `id`, its receipt id naming it.
fn send_frame(run: &Run, id: usize) -> Frame {
    let record = run.record();
    let sent = &record.sent[id];
    Frame::new(Command::Send)
        .with_header(
            "destination",
            format!("/pub/rooms/{}/messages", run.rooms[sent.room]),
        )
        .with_header("content-type", "application/json")
        .with_header("receipt", format!("m-{id}"))
        .with_body(sent.body.clone())
}

/// Takes in one frame from the edge: a RECEIPT acknowledges a SEND, a MESSAGE with a CHAT is a
/// live delivery, an ERROR ends the connection (and refuses its SEND for good unless it is
/// `UNAVAILABLE`).
fn take(run: &Run, user: &User, state: &mut State, frame: &Frame) -> anyhow::Result<()> {
    let now = Instant::now();
    match frame.command {
        Command::Receipt => {
            let id = frame
                .header("receipt-id")
                .and_then(|r| r.strip_prefix("m-"))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(id) = id {
                state.pending.retain(|&p| p != id);
                let mut record = run.record();
                let gaps = &mut record.gaps[user.index];
                gaps.receipt = gaps.receipt.max(now - gaps.last_receipt);
                gaps.last_receipt = now;
                if let Some(sent) = record.sent.get_mut(id) {
                    sent.acked_at.get_or_insert(now);
                }
            }
        }
        Command::Message => {
            let k = frame
                .header("subscription")
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|&k| k < user.rooms.len())
                .ok_or_else(|| anyhow!("MESSAGE for an unknown subscription"))?;
            let event: Event =
                serde_json::from_slice(&frame.body).context("MESSAGE body is not an event")?;
            if event.kind == "CHAT" {
                let id = event
                    .message_id
                    .and_then(|id| id.parse::<u64>().ok())
                    .ok_or_else(|| anyhow!("CHAT without a messageId"))?;
                state.since[k] = state.since[k].max(id);
                let mut record = run.record();
                record
                    .received
                    .entry((user.index, user.rooms[k]))
                    .or_default()
                    .push(id);
                let gaps = &mut record.gaps[user.index];
                gaps.delivery = gaps.delivery.max(now - gaps.last_delivery);
                gaps.last_delivery = now;
            }
        }
        Command::Error => {
            let message = frame.header("message").unwrap_or_default().to_owned();
            let id = frame
                .header("receipt-id")
                .and_then(|r| r.strip_prefix("m-"))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(id) = id {
                if !message.starts_with("UNAVAILABLE") {
                    state.pending.retain(|&p| p != id);
                    if let Some(sent) = run.record().sent.get_mut(id) {
                        sent.refused = Some(message.clone());
                    }
                }
            }
            bail!("ERROR {message}");
        }
        _ => {}
    }
    Ok(())
}

/// Whether any user still waits for a RECEIPT.
pub fn unacknowledged(record: &Record) -> usize {
    record
        .sent
        .iter()
        .filter(|s| s.acked_at.is_none() && s.refused.is_none())
        .count()
}
