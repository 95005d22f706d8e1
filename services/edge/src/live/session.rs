//! One STOMP session: what each client frame does, and how hub deliveries become MESSAGE frames.
//! No I/O here: frames to send are pushed onto `out`, the connection writes them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chat_schemas::{MessageId, RoomId, UserId};
use serde_json::json;

use super::hub::{ConnId, Delivery, Mailbox};
use super::rate::RateLimit;
use super::typing::{TypingBody, Typist};
use crate::app::AppState;
use crate::error::ApiError;
use crate::events::RoomEvent;
use crate::rooms::{require_member, store_chat, ChatRequest};
use crate::stomp::{negotiate_heart_beat, Command, Frame, FrameError};

/// Subprotocol versions the edge speaks; it always answers as 1.2.
const VERSION: &str = "1.2";

/// The code of an ERROR whose cause may pass: the log or a store did not answer in time. For a
/// SEND it means the message may or may not be stored.
pub const UNAVAILABLE: &str = "UNAVAILABLE";

/// Longest a room SUBSCRIBE or UNSUBSCRIBE waits for the user's presence to be stored before
/// it answers.
const PRESENCE_WAIT: Duration = Duration::from_secs(2);

/// A failure that ends the connection with an ERROR frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StompError {
    /// Stable code, as in `docs/protocol.md`.
    pub code: &'static str,
    /// Explanation.
    pub message: String,
    /// The offending frame's `receipt` header.
    pub receipt: Option<String>,
}

impl StompError {
    /// An error with a code and a message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            receipt: None,
        }
    }

    /// The ERROR frame for this error.
    pub fn frame(&self) -> Frame {
        let body = json!({"error": {"code": self.code, "message": self.message}}).to_string();
        let mut frame = Frame::new(Command::Error)
            .with_header("message", format!("{}: {}", self.code, self.message));
        if let Some(receipt) = &self.receipt {
            frame = frame.with_header("receipt-id", receipt.as_str());
        }
        frame
            .with_header("content-type", "application/json")
            .with_body(body)
    }
}

impl From<ApiError> for StompError {
    fn from(error: ApiError) -> Self {
        Self::new(error.code, error.message)
    }
}

impl From<FrameError> for StompError {
    fn from(error: FrameError) -> Self {
        let code = match error {
            FrameError::FrameTooLarge { .. } | FrameError::BodyTooLarge { .. } => "FRAME_TOO_LARGE",
            _ => "MALFORMED_FRAME",
        };
        Self::new(code, error.to_string())
    }
}

/// Whether the connection goes on after a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// A valid SEND: the connection runs it (in order with other SENDs) while it keeps reading
    /// and delivering, then answers its receipt.
    Send(SendJob),
    /// DISCONNECT: finish the SENDs already accepted, answer this receipt, then close.
    Disconnect(Option<String>),
}

/// A SEND that passed every check that needs no server, waiting to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendJob {
    room: RoomId,
    request: ChatRequest,
    receipt: Option<String>,
}

/// What storing a SEND yields: the RECEIPT to answer (if one was asked for), or the error that
/// ends the connection.
pub type SendOutcome = Result<Option<String>, StompError>;

/// What a subscription delivers.
#[derive(Debug)]
enum Target {
    /// A room's stored events, `delivered` being the last sequence sent.
    Room { room: RoomId, delivered: u64 },
    /// The user's room-list feed, with the last entry delivered per room: a receipts worker
    /// that died after publishing may publish an entry again, and a feed entry must never show
    /// twice. One entry per room that fed this subscription, so at most the rooms the user is
    /// (or was, during the subscription) a member of.
    User { delivered: HashMap<RoomId, u64> },
}

#[derive(Debug)]
struct Subscription {
    destination: String,
    target: Target,
}

/// The state of one STOMP connection.
pub struct Session {
    state: Arc<AppState>,
    conn: ConnId,
    mailbox: Mailbox,
    user: Option<UserId>,
    subscriptions: HashMap<String, Subscription>,
    rate: RateLimit,
    heart_beats: (Option<Duration>, Option<Duration>),
    /// The user's typing signals, from CONNECT on.
    typist: Option<Typist>,
    /// TYPING MESSAGEs delivered: their `message-id` is `typing-{n}`, never a stored event's.
    typing_delivered: u64,
}

impl Session {
    /// A session that has not seen CONNECT yet.
    pub fn new(state: Arc<AppState>, conn: ConnId, mailbox: Mailbox) -> Self {
        let rate = RateLimit::new(state.edge.send_rate_per_second, state.edge.send_burst);
        Self {
            state,
            conn,
            mailbox,
            user: None,
            subscriptions: HashMap::new(),
            rate,
            heart_beats: (None, None),
            typist: None,
            typing_delivered: 0,
        }
    }

    /// Whether CONNECT succeeded.
    pub fn is_connected(&self) -> bool {
        self.user.is_some()
    }

    /// Negotiated `(server sends every, server expects every)`.
    pub fn heart_beats(&self) -> (Option<Duration>, Option<Duration>) {
        self.heart_beats
    }

    /// Handles one client frame.
    pub async fn handle(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Result<Flow, StompError> {
        crate::observe::frame_received(frame.command);
        let receipt = frame.header("receipt").map(str::to_owned);
        let result = self.dispatch(&frame, out).await;
        let flow = result.map_err(|mut e| {
            e.receipt = receipt.clone();
            e
        })?;
        Ok(match flow {
            Flow::Send(job) => Flow::Send(SendJob { receipt, ..job }),
            Flow::Disconnect(_) => Flow::Disconnect(receipt),
            Flow::Continue => {
                let connecting = matches!(frame.command, Command::Connect | Command::Stomp);
                if let (Some(receipt), false) = (receipt, connecting) {
                    out.push(Frame::receipt(&receipt));
                }
                Flow::Continue
            }
        })
    }

    /// Stores a SEND through the same checks as the HTTP API; the future owns what it needs, so
    /// the connection can go on reading and delivering while it runs. The RECEIPT stands on
    /// JetStream's durable ack: the message is in the log, and live delivery and history
    /// follow from there (history without waiting for the projector, so SENDs go on while
    /// Cassandra is down).
    pub fn start_send(
        &self,
        job: SendJob,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = SendOutcome> + Send>> {
        let state = self.state.clone();
        let user = self.user.clone();
        Box::pin(async move {
            let user = user.ok_or_else(|| StompError::new("PROTOCOL_ERROR", "not connected"))?;
            let began = std::time::Instant::now();
            store_chat(&state, &user, job.room, job.request)
                .await
                .map_err(|e| StompError {
                    receipt: job.receipt.clone(),
                    ..StompError::from(e)
                })?;
            crate::observe::send_acked(began.elapsed());
            Ok(job.receipt)
        })
    }

    async fn dispatch(&mut self, frame: &Frame, out: &mut Vec<Frame>) -> Result<Flow, StompError> {
        match (frame.command, &self.user) {
            (Command::Connect | Command::Stomp, None) => self.connect(frame, out),
            (Command::Connect | Command::Stomp, Some(_)) => {
                Err(StompError::new("PROTOCOL_ERROR", "already connected"))
            }
            (_, None) => Err(StompError::new(
                "PROTOCOL_ERROR",
                "the first frame must be CONNECT",
            )),
            (Command::Subscribe, Some(user)) => {
                let user = user.clone();
                self.subscribe(&user, frame, out).await
            }
            (Command::Unsubscribe, Some(_)) => self.unsubscribe(frame).await,
            (Command::Send, Some(user)) => {
                let destination = required(frame, "destination")?;
                match typing_room(destination) {
                    Some(room) => {
                        let user = user.clone();
                        self.typing(&user, room, frame).await
                    }
                    None => self.send(frame),
                }
            }
            (Command::Disconnect, Some(_)) => Ok(Flow::Disconnect(None)),
            (command, Some(_)) => Err(StompError::new(
                "PROTOCOL_ERROR",
                format!("{command} is not supported"),
            )),
        }
    }

    fn connect(&mut self, frame: &Frame, out: &mut Vec<Frame>) -> Result<Flow, StompError> {
        let authorization = frame
            .header("Authorization")
            .or_else(|| frame.header("authorization"));
        let user = self
            .state
            .auth
            .verify_header(authorization)
            .map_err(ApiError::from)?;
        let server = (self.state.edge.heart_beat_ms, self.state.edge.heart_beat_ms);
        self.heart_beats = negotiate_heart_beat(frame.header("heart-beat"), server)?;
        out.push(
            Frame::connected(VERSION, server, Some(user.as_str()))
                .with_header("server", concat!("chat-edge/", env!("CARGO_PKG_VERSION")))
                .with_header("session", self.conn.to_string()),
        );
        self.typist = Some(Typist::new(self.state.hub.clone(), user.clone()));
        self.user = Some(user);
        Ok(Flow::Continue)
    }

    async fn subscribe(
        &mut self,
        user: &UserId,
        frame: &Frame,
        out: &mut Vec<Frame>,
    ) -> Result<Flow, StompError> {
        let id = required(frame, "id")?.to_owned();
        let destination = required(frame, "destination")?.to_owned();
        if frame.header("ack").is_some_and(|ack| ack != "auto") {
            return Err(StompError::new(
                "PROTOCOL_ERROR",
                "only ack:auto is supported",
            ));
        }
        if self.subscriptions.contains_key(&id) {
            return Err(StompError::new(
                "PROTOCOL_ERROR",
                format!("subscription id {id:?} is already in use"),
            ));
        }
        if self.subscriptions.len() >= self.state.edge.max_subscriptions {
            return Err(StompError::new(
                "TOO_MANY_SUBSCRIPTIONS",
                format!(
                    "at most {} subscriptions per connection",
                    self.state.edge.max_subscriptions
                ),
            ));
        }
        if let Some(raw) = destination.strip_prefix("/sub/rooms/") {
            let room: RoomId = raw
                .parse()
                .map_err(|_| StompError::from(ApiError::room_not_found()))?;
            self.subscribe_room(user, id, destination, room, frame.header("since"), out)
                .await
        } else if let Some(raw) = destination.strip_prefix("/sub/users/") {
            if raw != user.as_str() {
                return Err(StompError::new(
                    "FORBIDDEN",
                    "you can only subscribe to your own feed",
                ));
            }
            self.state
                .hub
                .listen_user(user.clone(), self.conn, &self.mailbox)
                .await
                .map_err(|e| StompError::new(UNAVAILABLE, e.to_string()))?;
            crate::observe::subscriptions(1.0);
            self.subscriptions.insert(
                id,
                Subscription {
                    destination,
                    target: Target::User {
                        delivered: HashMap::new(),
                    },
                },
            );
            Ok(Flow::Continue)
        } else {
            Err(unknown_destination(&destination))
        }
    }

    async fn subscribe_room(
        &mut self,
        user: &UserId,
        id: String,
        destination: String,
        room: RoomId,
        since: Option<&str>,
        out: &mut Vec<Frame>,
    ) -> Result<Flow, StompError> {
        require_member(&self.state, room, user).await?;
        let since = match since {
            None => None,
            Some(raw) => {
                let unknown = || {
                    StompError::new(
                        "UNKNOWN_SINCE",
                        format!("{raw:?} is not a message of this room"),
                    )
                };
                let id: MessageId = raw.parse().map_err(|_| unknown())?;
                if !self
                    .state
                    .catch_up
                    .is_room_event(room, id.sequence())
                    .await
                    .map_err(unavailable)?
                {
                    return Err(unknown());
                }
                Some(id.sequence())
            }
        };
        self.state
            .hub
            .listen_room(room, self.conn, &self.mailbox)
            .await
            .map_err(unavailable)?;
        let last = match self.state.writer.last_sequence(room).await {
            Ok(last) => last,
            Err(e) => {
                self.state.hub.unlisten_room(&room, self.conn);
                return Err(unavailable(e));
            }
        };
        crate::observe::subscriptions(1.0);
        self.subscriptions.insert(
            id.clone(),
            Subscription {
                destination,
                target: Target::Room {
                    room,
                    delivered: since.unwrap_or(last),
                },
            },
        );
        self.state.presence.enter(room, user.clone());
        self.state
            .presence
            .settled(room, user.clone(), PRESENCE_WAIT)
            .await;
        if since.is_some() {
            self.catch_up(&id, last, out).await?;
        }
        Ok(Flow::Continue)
    }

    async fn unsubscribe(&mut self, frame: &Frame) -> Result<Flow, StompError> {
        let id = required(frame, "id")?;
        if let Some(subscription) = self.subscriptions.remove(id) {
            let room = match subscription.target {
                Target::Room { room, .. } => Some(room),
                Target::User { .. } => None,
            };
            self.release(subscription);
            if let (Some(room), Some(user)) = (room, &self.user) {
                self.state
                    .presence
                    .settled(room, user.clone(), PRESENCE_WAIT)
                    .await;
            }
        }
        Ok(Flow::Continue)
    }

    fn send(&mut self, frame: &Frame) -> Result<Flow, StompError> {
        let destination = required(frame, "destination")?;
        let room = destination
            .strip_prefix("/pub/rooms/")
            .and_then(|rest| rest.strip_suffix("/messages"))
            .ok_or_else(|| unknown_destination(destination))?;
        let room: RoomId = room
            .parse()
            .map_err(|_| StompError::from(ApiError::room_not_found()))?;
        if !self.rate.take() {
            return Err(StompError::new(
                "RATE_LIMITED",
                format!(
                    "more than {} messages per second",
                    self.state.edge.send_rate_per_second
                ),
            ));
        }
        let request: ChatRequest = serde_json::from_slice(&frame.body)
            .map_err(|e| StompError::new("BAD_REQUEST", format!("body: {e}")))?;
        Ok(Flow::Send(SendJob {
            room,
            request,
            receipt: None,
        }))
    }

    /// A SEND to `/pub/rooms/{roomId}/typing` by a member: passed on to the room's other
    /// subscribers (`docs/protocol.md`, "Typing"); a malformed body or a non-member is an ERROR,
    /// one signal too many a second is dropped silently.
    async fn typing(
        &mut self,
        user: &UserId,
        raw_room: &str,
        frame: &Frame,
    ) -> Result<Flow, StompError> {
        let room: RoomId = raw_room
            .parse()
            .map_err(|_| StompError::from(ApiError::room_not_found()))?;
        let body: TypingBody = serde_json::from_slice(&frame.body).map_err(|e| {
            StompError::new(
                "BAD_REQUEST",
                format!("body: {e}; expected {{\"typing\":true}} or {{\"typing\":false}}"),
            )
        })?;
        require_member(&self.state, room, user).await?;
        if let Some(typist) = &mut self.typist {
            typist.signal(room, body.typing).await;
        }
        Ok(Flow::Continue)
    }

    /// Turns a hub delivery into MESSAGE frames for every matching subscription.
    pub async fn deliver(
        &mut self,
        delivery: Delivery,
        out: &mut Vec<Frame>,
    ) -> Result<(), StompError> {
        match delivery {
            Delivery::User {
                message_id,
                body,
                position,
            } => {
                for (id, subscription) in &mut self.subscriptions {
                    let Target::User { delivered } = &mut subscription.target else {
                        continue;
                    };
                    if let Some((room, seq)) = position {
                        let last = delivered.entry(room).or_default();
                        if seq <= *last {
                            continue;
                        }
                        *last = seq;
                    }
                    out.push(message(&subscription.destination, id, &message_id, &body));
                }
                Ok(())
            }
            Delivery::Typing { room, typist, body } => {
                if self.user.as_ref() == Some(&typist) {
                    return Ok(());
                }
                for (id, subscription) in &self.subscriptions {
                    if matches!(subscription.target, Target::Room { room: r, .. } if r == room) {
                        self.typing_delivered += 1;
                        let message_id = format!("typing-{}", self.typing_delivered);
                        out.push(message(&subscription.destination, id, &message_id, &body));
                    }
                }
                Ok(())
            }
            Delivery::Room { room, event } => {
                let ids: Vec<String> = self
                    .subscriptions
                    .iter()
                    .filter(|(_, s)| matches!(s.target, Target::Room { room: r, .. } if r == room))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in ids {
                    self.deliver_room_event(&id, &event, out).await?;
                }
                Ok(())
            }
        }
    }

    async fn deliver_room_event(
        &mut self,
        id: &str,
        event: &RoomEvent,
        out: &mut Vec<Frame>,
    ) -> Result<(), StompError> {
        let Some(Target::Room { delivered, .. }) = self.subscriptions.get(id).map(|s| &s.target)
        else {
            return Ok(());
        };
        if event.seq <= *delivered {
            return Ok(());
        }
        if event.previous > *delivered {
            self.catch_up(id, event.previous, out).await?;
        }
        self.emit(id, event, out);
        Ok(())
    }

    /// Sends every stored event of the subscription's room after what it delivered, up to
    /// `until`.
    async fn catch_up(
        &mut self,
        id: &str,
        until: u64,
        out: &mut Vec<Frame>,
    ) -> Result<(), StompError> {
        loop {
            let Some(Target::Room { room, delivered }) =
                self.subscriptions.get(id).map(|s| &s.target)
            else {
                return Ok(());
            };
            let (room, delivered) = (*room, *delivered);
            match self.state.catch_up.next(room, delivered, until).await {
                Ok(Some(event)) => self.emit(id, &event, out),
                Ok(None) => return Ok(()),
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    /// Sends one room event on one subscription; the subscriber's own LEAVE ends it.
    fn emit(&mut self, id: &str, event: &RoomEvent, out: &mut Vec<Frame>) {
        let Some(subscription) = self.subscriptions.get_mut(id) else {
            return;
        };
        if let Target::Room { delivered, .. } = &mut subscription.target {
            *delivered = event.seq;
        }
        crate::observe::delivered();
        out.push(message(
            &subscription.destination,
            id,
            &event.seq.to_string(),
            &event.body,
        ));
        if event.leaver.is_some() && event.leaver == self.user {
            if let Some(subscription) = self.subscriptions.remove(id) {
                self.release(subscription);
            }
        }
    }

    fn release(&mut self, subscription: Subscription) {
        crate::observe::subscriptions(-1.0);
        match subscription.target {
            Target::Room { room, .. } => {
                self.state.hub.unlisten_room(&room, self.conn);
                if let Some(user) = &self.user {
                    self.state.presence.exit(room, user.clone());
                }
                let still_open = self
                    .subscriptions
                    .values()
                    .any(|s| matches!(s.target, Target::Room { room: r, .. } if r == room));
                if let (Some(typist), false) = (&mut self.typist, still_open) {
                    typist.stop(room);
                }
            }
            Target::User { .. } => {
                if let Some(user) = &self.user {
                    self.state.hub.unlisten_user(user, self.conn);
                }
            }
        }
    }

    /// Ends every subscription; call when the connection closes.
    pub fn close(&mut self) {
        for (_, subscription) in std::mem::take(&mut self.subscriptions) {
            self.release(subscription);
        }
        if let Some(typist) = &mut self.typist {
            typist.stop_all();
        }
    }
}

fn message(destination: &str, subscription: &str, message_id: &str, body: &str) -> Frame {
    Frame::message(
        destination,
        subscription,
        message_id,
        Some("application/json"),
        body.as_bytes().to_vec(),
    )
}

/// The room of a typing destination, `/pub/rooms/{roomId}/typing`.
fn typing_room(destination: &str) -> Option<&str> {
    destination
        .strip_prefix("/pub/rooms/")?
        .strip_suffix("/typing")
}

fn required<'a>(frame: &'a Frame, name: &str) -> Result<&'a str, StompError> {
    frame.header(name).ok_or_else(|| {
        StompError::new(
            "MISSING_HEADER",
            format!("{} needs a {name} header", frame.command),
        )
    })
}

fn unknown_destination(destination: &str) -> StompError {
    StompError::new(
        "UNKNOWN_DESTINATION",
        format!("no such destination {destination:?}"),
    )
}

fn unavailable(error: impl std::fmt::Display) -> StompError {
    tracing::error!(%error, "live delivery failed");
    StompError::new(UNAVAILABLE, "the event log is unavailable, retry later")
}
