//! What the coordinator and its worker processes tell each other, one JSON object per line:
//! the coordinator writes a [`Plan`], the worker connects and answers [`Ready`], the coordinator
//! writes [`Go`], the worker runs the load and answers [`Report`], then exits.
//!
//! Times cross process boundaries as nanoseconds of `CLOCK_REALTIME`: every process reads that
//! clock once at start and counts on from it with its monotonic clock ([`Clock`]), so timestamps
//! of different processes on this machine compare, and none jumps during a run.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::schedule::due_at;
use tokio::time::Instant;

/// What a worker connects to and which rooms it plays.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The edge or plain NATS.
    pub target: Target,
    /// Global index of the worker's first room.
    pub first_room: usize,
    /// Per room of the worker: the edge's room id, or the NATS subject.
    pub rooms: Vec<String>,
    /// Members (connections) per room.
    pub room_size: usize,
    /// Connections being opened at once.
    pub connect_concurrency: usize,
    /// Longest time one connection may take to be ready.
    pub connect_timeout_ms: u64,
}

/// Where the load goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Target {
    /// STOMP over WebSocket to one edge.
    Edge {
        /// The edge's HTTP address.
        addr: SocketAddr,
        /// Loopback address the worker's sockets bind to before connecting.
        source_ip: IpAddr,
        /// HS256 secret to mint user tokens with.
        secret: String,
        /// STOMP heart-beat interval the clients offer and ask for, 0 for none.
        heart_beat_ms: u64,
        /// Whether each connection also subscribes to its user's room-list feed.
        feeds: bool,
    },
    /// Core NATS publish/subscribe, one client connection per simulated user.
    Raw {
        /// The NATS server.
        url: String,
    },
}

/// A worker's connections are open and subscribed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ready {
    /// Connections ready.
    pub established: usize,
    /// Connections that failed.
    pub failed: usize,
    /// Distinct failure reasons with how often each happened.
    pub errors: Vec<(String, usize)>,
    /// Seconds the worker took to open them.
    pub seconds: f64,
    /// Time each ready connection took (TCP, upgrade, CONNECT, SUBSCRIBE), histogram buckets
    /// in microseconds.
    pub latency_us: Vec<(u64, u64)>,
}

/// Start sending.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Go {
    /// When the first message is due, realtime nanoseconds.
    pub start_ns: u64,
    /// Messages sent before the measured window.
    pub warmup_ms: u64,
    /// Length of the measured window.
    pub duration_ms: u64,
    /// How long to keep receiving after the last send.
    pub drain_ms: u64,
    /// Messages per second, all workers together.
    pub rate: f64,
    /// Rooms of all workers together.
    pub total_rooms: usize,
    /// Members of each room that send (the first ones); the others only read.
    pub senders: usize,
    /// Characters of content per message (at least the timestamp).
    pub payload_bytes: usize,
    /// Whether messages carry a `clientMessageId` (the edge then checks it for an earlier copy).
    pub client_message_id: bool,
}

impl Go {
    /// The measured window: messages sent in `[start, end)` realtime nanoseconds count.
    pub fn window(&self) -> (u64, u64) {
        let start = self.start_ns + self.warmup_ms * 1_000_000;
        (start, start + self.duration_ms * 1_000_000)
    }

    /// Whether message `index` of the schedule is measured: due in the window, as the senders
    /// count it. Receivers judge by the schedule too, not by when the message was sent: a sender
    /// running late sends the last messages of the window after its end, and those must still
    /// count as delivered.
    pub fn measures(&self, index: u64) -> bool {
        let due = due_at(self.rate, index);
        due >= Duration::from_millis(self.warmup_ms) && due < self.sending()
    }

    /// How long sending lasts, warm-up included.
    pub fn sending(&self) -> Duration {
        Duration::from_millis(self.warmup_ms + self.duration_ms)
    }
}

/// What a worker saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Connections still open at the end.
    pub held: usize,
    /// Connections the other side closed or broke during the run.
    pub dropped: usize,
    /// Distinct reasons of drops, send failures and errors, with counts.
    pub errors: Vec<(String, usize)>,
    /// Messages handed to a connection in the measured window.
    pub sent: u64,
    /// Messages not sent because their connection was gone or busy (measured window).
    pub skipped: u64,
    /// Deliveries of messages sent in the measured window.
    pub delivered: u64,
    /// Deliveries of other messages (warm-up, or not ours).
    pub delivered_outside: u64,
    /// Send-to-receive latencies of `delivered` to the other members of the room, as
    /// histogram buckets in microseconds.
    pub latency_us: Vec<(u64, u64)>,
    /// The same for the copies delivered back to their senders.
    pub own_latency_us: Vec<(u64, u64)>,
    /// Room-list feed entries of CHATs sent in the measured window (with `feeds`).
    pub feed_entries: u64,
    /// Send-to-receive latencies of those entries, histogram buckets in microseconds.
    pub feed_latency_us: Vec<(u64, u64)>,
}

/// Realtime nanoseconds, counted on monotonically from one reading at start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    at: Instant,
    realtime_ns: u64,
}

impl Clock {
    /// Reads the realtime clock now.
    pub fn new() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            at: Instant::now(),
            realtime_ns: u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Realtime nanoseconds now.
    pub fn now_ns(&self) -> u64 {
        self.realtime_ns + u64::try_from(self.at.elapsed().as_nanos()).unwrap_or(u64::MAX / 2)
    }

    /// The monotonic instant of realtime nanoseconds `ns` (not before this clock's start).
    pub fn instant(&self, ns: u64) -> Instant {
        self.at + Duration::from_nanos(ns.saturating_sub(self.realtime_ns))
    }
}

/// Counts distinct error reasons, keeping a bounded number of them.
#[derive(Debug, Default)]
pub struct ErrorTally(Vec<(String, usize)>);

impl ErrorTally {
    /// Distinct reasons kept; later new ones count as "other".
    const MAX: usize = 16;

    /// Counts one occurrence of `reason`.
    pub fn add(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        let reason = if self.0.len() >= Self::MAX && !self.0.iter().any(|(r, _)| *r == reason) {
            "other".to_owned()
        } else {
            reason
        };
        match self.0.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.0.push((reason, 1)),
        }
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: &[(String, usize)]) {
        for (reason, n) in other {
            for _ in 0..*n {
                self.add(reason.clone());
            }
        }
    }

    /// The reasons and counts.
    pub fn into_vec(self) -> Vec<(String, usize)> {
        self.0
    }
}

/// The name of simulated user number `index`: `u0`, `u1`, ...
pub fn user_name(index: usize) -> String {
    format!("u{index}")
}

/// The content of message `index` sent at `sent_ns`, padded with `x` to `bytes` characters:
/// `"<sent_ns>:<index>:xxxx"`.
pub fn content(sent_ns: u64, index: u64, bytes: usize) -> String {
    let mut content = format!("{sent_ns}:{index}:");
    let pad = bytes.saturating_sub(content.len());
    content.extend(std::iter::repeat_n('x', pad));
    content
}

/// What a delivered event's `content` ([`content`]) says about the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// When it was sent, realtime nanoseconds.
    pub sent_ns: u64,
    /// Its index in the schedule, which says whether it counts ([`Go::measures`]).
    pub index: u64,
    /// Whether the user it was delivered to sent it.
    pub own: bool,
}

/// The [`Stamp`] of a JSON event whose `content` [`content`] made, for its recipient `me`.
pub fn stamp(json: &[u8], me: &str) -> Option<Stamp> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Event<'a> {
        #[serde(borrow)]
        content: Option<&'a str>,
        #[serde(borrow)]
        sender_id: Option<&'a str>,
    }
    let event: Event<'_> = serde_json::from_slice(json).ok()?;
    let mut fields = event.content?.split(':');
    let sent_ns = fields.next()?.parse().ok()?;
    let index = fields.next()?.parse().ok()?;
    Some(Stamp {
        sent_ns,
        index,
        own: event.sender_id == Some(me),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_carries_the_send_time() {
        let text = content(1_700_000_000_123_456_789, 42, 64);
        assert_eq!(text.len(), 64);
        assert!(text.starts_with("1700000000123456789:42:xx"));
        let event = serde_json::json!({"type": "CHAT", "senderId": "u7", "content": text});
        let event = event.to_string();
        let sent = |own| Stamp {
            sent_ns: 1_700_000_000_123_456_789,
            index: 42,
            own,
        };
        assert_eq!(stamp(event.as_bytes(), "u8"), Some(sent(false)));
        assert_eq!(stamp(event.as_bytes(), "u7"), Some(sent(true)));
        assert_eq!(stamp(br#"{"type":"INVITE"}"#, "u7"), None);
        assert_eq!(content(5, 1, 0), "5:1:");
    }

    #[test]
    fn error_tally_stays_bounded() {
        let mut tally = ErrorTally::default();
        for i in 0..40 {
            tally.add(format!("reason {}", i % 20));
        }
        let reasons = tally.into_vec();
        assert_eq!(reasons.len(), ErrorTally::MAX + 1);
        assert_eq!(reasons.iter().map(|(_, n)| n).sum::<usize>(), 40);
        assert!(reasons.contains(&("other".to_owned(), 8)));
    }
}
