//! Names in NATS: the subjects events are published on and the JetStream stream that stores them.

use std::time::Duration;

use async_nats::jetstream::stream;

use crate::ids::{RoomId, UserId};

/// The stream and subject names of one deployment.
///
/// Production uses the stream `CHAT` and no prefix; tests give each run its own stream and prefix
/// so they can share one NATS server without seeing each other's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    stream: String,
    prefix: String,
    replicas: usize,
}

impl EventLog {
    /// How long JetStream remembers a deduplication id: a publish retried within this window is
    /// stored once.
    pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);

    /// Header of a view event: its stream sequence, which is its `messageId`.
    pub const SEQUENCE_HEADER: &'static str = "Chat-Sequence";

    /// Header of a view event: the sequence of the room's previous view event, 0 when unknown.
    pub const PREVIOUS_HEADER: &'static str = "Chat-Previous";

    /// Header of a LEAVE view event: who left (their subscriptions end with it).
    pub const LEAVER_HEADER: &'static str = "Chat-Leaver";

    /// Header of a view event, only while the receipts worker's `hop_timing` is on: when the
    /// event was stored, read, applied and published, in microseconds since the Unix epoch,
    /// space-separated. For `bench load`, which times each hop of a CHAT with it.
    pub const HOP_TIMES_HEADER: &'static str = "Chat-Hop-Times";

    /// Header of a feed event (`chat.user.{userId}`): its `messageId`.
    pub const MESSAGE_ID_HEADER: &'static str = "Chat-Message-Id";

    /// Header of a feed event: its room, so an edge can drop a repeated entry without parsing
    /// the body.
    pub const ROOM_HEADER: &'static str = "Chat-Room";

    /// Header of a typing signal: the typist, so an edge skips their own subscriptions
    /// without parsing the body.
    pub const TYPIST_HEADER: &'static str = "Chat-Typist";

    /// Largest event the stream accepts, in bytes; comfortably above the largest valid message.
    pub const MAX_EVENT_BYTES: i32 = 256 * 1024;

    /// A log in `stream`, with every subject starting with `prefix` (empty, or ending in `.`).
    pub fn new(stream: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            prefix: prefix.into(),
            replicas: 1,
        }
    }

    /// The same log, its stream kept on `replicas` servers of a NATS cluster (1 by default), so
    /// it survives the loss of a server when that is 3.
    pub fn with_replicas(self, replicas: usize) -> Self {
        Self { replicas, ..self }
    }

    /// On how many servers the stream keeps its events.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// The JetStream stream that holds the log.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// The key-value bucket holding the projector leases of this deployment (one key per
    /// projector name), named after the stream so every deployment (and test) has its own.
    pub fn lease_bucket(&self) -> String {
        format!("{}_LEASES", self.stream)
    }

    /// `chat.room.{roomId}`: where every stored event of a room is published.
    pub fn room_subject(&self, room: &RoomId) -> String {
        format!("{}chat.room.{room}", self.prefix)
    }

    /// `chat.view.room.{roomId}`: a room's stored events as clients see them, in log order,
    /// published by the receipts worker once it has applied them (so CHAT carries its
    /// `unreadCount` and presence becomes INFO/OUT). Headers: [`EventLog::SEQUENCE_HEADER`],
    /// [`EventLog::PREVIOUS_HEADER`] (the room's previous published event; a different value
    /// than what a subscriber saw last means it missed something) and, on a LEAVE,
    /// [`EventLog::LEAVER_HEADER`].
    pub fn view_room_subject(&self, room: &RoomId) -> String {
        format!("{}chat.view.room.{room}", self.prefix)
    }

    /// `chat.typing.room.{roomId}`: who is typing in a room, published by the edge the typist
    /// is connected to and read by every edge with subscriptions to the room. Live only: never
    /// stored, never replayed.
    pub fn typing_subject(&self, room: &RoomId) -> String {
        format!("{}chat.typing.room.{room}", self.prefix)
    }

    /// `chat.room.*`: every room's events, as stored by the stream.
    pub fn all_rooms(&self) -> String {
        format!("{}chat.room.*", self.prefix)
    }

    /// `chat.user.{userId}`: a user's room-list feed.
    ///
    /// `.` separates subject tokens in NATS, so a `.` in a user id is written as `%2E`
    /// (user ids never contain `%`, so the mapping is one-to-one).
    pub fn user_subject(&self, user: &UserId) -> String {
        format!(
            "{}chat.user.{}",
            self.prefix,
            user.as_str().replace('.', "%2E")
        )
    }

    /// `chat.progress.{projector}`: where a projector announces, after each batch, the highest
    /// stream sequence it has applied (a decimal string), so writers can wait to read their writes.
    pub fn progress_subject(&self, projector: &str) -> String {
        format!("{}chat.progress.{projector}", self.prefix)
    }

    /// `chat.progress.{projector}.awaited`: where a writer says, as a decimal string, the stream
    /// sequence it waits for the projector to apply, so a projector gathering a batch applies
    /// it at once instead of waiting for more events.
    pub fn awaited_subject(&self, projector: &str) -> String {
        format!("{}chat.progress.{projector}.awaited", self.prefix)
    }

    /// The room id in a subject produced by [`EventLog::room_subject`], if it is one.
    pub fn room_of_subject(&self, subject: &str) -> Option<RoomId> {
        subject
            .strip_prefix(&self.prefix)?
            .strip_prefix("chat.room.")?
            .parse()
            .ok()
    }

    /// The stream definition: every room event, kept forever on disk, since the log is the
    /// source of truth that all projections are rebuilt from.
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            description: Some("Chat event log: the source of truth for every room".to_owned()),
            subjects: vec![self.all_rooms()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::New,
            duplicate_window: Self::DUPLICATE_WINDOW,
            max_message_size: Self::MAX_EVENT_BYTES,
            allow_direct: true,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_carry_the_prefix_and_escape_dots() {
        let log = EventLog::new("CHAT_T1", "t1.");
        let room = RoomId::random();
        let user = UserId::parse("alice.kim@x").expect("valid");
        assert_eq!(log.room_subject(&room), format!("t1.chat.room.{room}"));
        assert_eq!(log.user_subject(&user), "t1.chat.user.alice%2Ekim@x");
        assert_eq!(log.room_of_subject(&log.room_subject(&room)), Some(room));
        assert_eq!(log.room_of_subject("chat.room.x"), None);
        assert_eq!(log.stream_config().subjects, vec!["t1.chat.room.*"]);
        assert_eq!(log.lease_bucket(), "CHAT_T1_LEASES");
        assert_eq!(log.stream_config().num_replicas, 1);
        assert_eq!(log.clone().with_replicas(3).stream_config().num_replicas, 3);
        assert_eq!(
            log.view_room_subject(&room),
            format!("t1.chat.view.room.{room}")
        );
        assert_eq!(
            log.typing_subject(&room),
            format!("t1.chat.typing.room.{room}")
        );
    }
}
