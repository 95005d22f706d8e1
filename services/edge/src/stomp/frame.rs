//! What a STOMP 1.2 frame is: its command, its ordered headers and its body, plus the
//! constructors for the frames the server sends and the heart-beat negotiation.
//!
//! Kept free of bytes-on-the-wire concerns (see `parse` and `encode`) so that command handling
//! works on plain values.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::FrameError;

/// The command of a frame: the first line of every frame.
///
/// A closed enum rather than a string so that a frame that passed the parser can only name a
/// command the spec defines, and command handling can `match` exhaustively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Client: opens a session (STOMP 1.0 style; headers are not escaped).
    Connect,
    /// Client: opens a session (STOMP 1.1+ style, distinguishable from HTTP).
    Stomp,
    /// Client: sends a message to a destination.
    Send,
    /// Client: subscribes to a destination.
    Subscribe,
    /// Client: ends a subscription.
    Unsubscribe,
    /// Client: acknowledges a message.
    Ack,
    /// Client: rejects a message.
    Nack,
    /// Client: starts a transaction.
    Begin,
    /// Client: commits a transaction.
    Commit,
    /// Client: rolls back a transaction.
    Abort,
    /// Client: ends the session.
    Disconnect,
    /// Server: the session is open (headers are not escaped).
    Connected,
    /// Server: a message delivered to a subscription.
    Message,
    /// Server: confirms a client frame that asked for a receipt.
    Receipt,
    /// Server: something went wrong; the connection closes after it.
    Error,
}

impl Command {
    /// Every command, client ones first: lets tests and generators cover the whole enum.
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Connected,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// The longest command name (`UNSUBSCRIBE`), so the parser can reject a runaway first line
    /// after a few bytes instead of buffering it.
    pub const MAX_LEN: usize = 11;

    /// The command as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Connected => "CONNECTED",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Whether a client sends this command (as opposed to the server), so the connection
    /// handler can refuse server frames coming from a client.
    pub fn is_client(self) -> bool {
        !matches!(
            self,
            Command::Connected | Command::Message | Command::Receipt | Command::Error
        )
    }

    /// Whether header names and values of this command use the `\r \n \c \\` escapes.
    ///
    /// The spec exempts CONNECT and CONNECTED to stay compatible with STOMP 1.0, which had no
    /// escaping: their headers are taken and written verbatim.
    pub fn escapes_headers(self) -> bool {
        !matches!(self, Command::Connect | Command::Connected)
    }

    /// Whether the spec lets this command carry a body: only SEND, MESSAGE and ERROR may.
    pub fn allows_body(self) -> bool {
        matches!(self, Command::Send | Command::Message | Command::Error)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = FrameError;

    /// Exact, case-sensitive match, as the spec's grammar requires.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Command::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| FrameError::UnknownCommand(s.to_owned()))
    }
}

/// One STOMP frame, as parsed from a client or to be encoded for one.
///
/// Headers are kept in order and with repeats because STOMP 1.2 says that when a header is
/// repeated only the first occurrence counts, yet the others must survive when a frame is
/// relayed; `header` applies the first-wins rule. Header names and values are stored
/// unescaped (the wire escaping lives in `parse` and `encode` only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame's command.
    pub command: Command,
    /// Headers in wire order, repeats included; look them up with [`Frame::header`].
    pub headers: Vec<(String, String)>,
    /// The body, arbitrary bytes (it may hold NULs when a `content-length` frames it).
    pub body: Vec<u8>,
}

impl Frame {
    /// A frame with no headers and no body, to be filled with the `with_*` builders.
    pub fn new(command: Command) -> Self {
        Self {
            command,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Appends a header (after any existing one of the same name, which therefore still wins).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The value of the FIRST header called `name` (case-sensitive, as in the spec), because
    /// STOMP 1.2 says a repeated header's first occurrence is the one that counts.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A CONNECTED frame answering a successful CONNECT/STOMP.
    ///
    /// `heart_beat` is the server's own `(sx, sy)` in milliseconds (what it can send, what it
    /// wants to receive), written as the `heart-beat` header as the spec asks; `user` goes in
    /// a `user-name` header (the name Spring and others use) so the client learns who it is.
    pub fn connected(version: &str, heart_beat: (u64, u64), user: Option<&str>) -> Self {
        let mut frame = Frame::new(Command::Connected)
            .with_header("version", version)
            .with_header("heart-beat", format!("{},{}", heart_beat.0, heart_beat.1));
        if let Some(user) = user {
            frame = frame.with_header("user-name", user);
        }
        frame
    }

    /// A MESSAGE frame delivering `body` to subscription `subscription`: carries the three
    /// headers the spec makes mandatory (`destination`, `message-id`, `subscription`) and a
    /// `content-type` when known; `content-length` is added by the encoder.
    pub fn message(
        destination: &str,
        subscription: &str,
        message_id: &str,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> Self {
        let mut frame = Frame::new(Command::Message)
            .with_header("destination", destination)
            .with_header("message-id", message_id)
            .with_header("subscription", subscription);
        if let Some(content_type) = content_type {
            frame = frame.with_header("content-type", content_type);
        }
        frame.with_body(body)
    }

    /// A RECEIPT frame confirming the client frame whose `receipt` header was `receipt_id`.
    pub fn receipt(receipt_id: &str) -> Self {
        Frame::new(Command::Receipt).with_header("receipt-id", receipt_id)
    }

    /// An ERROR frame: `message` is the short description (e.g. a [`FrameError`]'s text),
    /// `receipt_id` echoes the offending frame's `receipt` header when it had one, and
    /// `details` is an optional longer plain-text body.
    pub fn error(message: &str, receipt_id: Option<&str>, details: impl Into<Vec<u8>>) -> Self {
        let mut frame = Frame::new(Command::Error).with_header("message", message);
        if let Some(receipt_id) = receipt_id {
            frame = frame.with_header("receipt-id", receipt_id);
        }
        let details = details.into();
        if !details.is_empty() {
            frame = frame.with_header("content-type", "text/plain");
        }
        frame.with_body(details)
    }
}

/// Parses a `heart-beat` header value `"x,y"` (two non-negative decimal integers, in
/// milliseconds) into `(x, y)`.
///
/// Separate from [`negotiate_heart_beat`] so a client-side caller could read a CONNECTED
/// frame's header too.
pub fn parse_heart_beat(value: &str) -> Result<(u64, u64), FrameError> {
    let invalid = || FrameError::InvalidHeartBeat(value.to_owned());
    let (x, y) = value.split_once(',').ok_or_else(invalid)?;
    Ok((
        parse_millis(x).ok_or_else(invalid)?,
        parse_millis(y).ok_or_else(invalid)?,
    ))
}

/// Digits only: no sign, no spaces, as the spec's grammar; `None` on anything else or overflow.
fn parse_millis(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Negotiates heart-beating for a new session, per STOMP 1.2 §Heart-beating.
///
/// `client_header` is the CONNECT frame's `heart-beat` header (`cx,cy`; absent means `0,0`);
/// `server` is the server's own `(sx, sy)` in milliseconds. Returns
/// `(server_sends_every, server_expects_every)`:
/// - the server sends a heart-beat every `max(sx, cy)` ms, unless `sx` or `cy` is 0;
/// - the server expects something from the client every `max(cx, sy)` ms, unless `cx` or `sy`
///   is 0.
///
/// `None` means no heart-beat in that direction. A malformed header is an error, because the
/// spec gives no sensible default for it.
pub fn negotiate_heart_beat(
    client_header: Option<&str>,
    server: (u64, u64),
) -> Result<(Option<Duration>, Option<Duration>), FrameError> {
    let (cx, cy) = match client_header {
        Some(value) => parse_heart_beat(value)?,
        None => (0, 0),
    };
    let (sx, sy) = server;
    let interval = |a: u64, b: u64| (a != 0 && b != 0).then(|| Duration::from_millis(a.max(b)));
    Ok((interval(sx, cy), interval(cx, sy)))
}
