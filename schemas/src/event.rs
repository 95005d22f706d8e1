//! The events of the chat log: one [`Envelope`] around one [`ChatEvent`].

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{MessageId, RoomId, UserId};

/// The schema version written into every new envelope.
///
/// Fields are only ever added (with defaults), never renamed or retyped; a change that cannot be
/// expressed that way bumps this number so consumers can tell old events from new ones.
pub const SCHEMA_VERSION: u16 = 1;

/// Milliseconds since the Unix epoch, UTC: the time an edge accepted an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(&self) -> i64 {
        self.0
    }
}

/// Whether a room is the one 1:1 room of a pair or a named group; its schema is the `type` of a
/// room in the HTTP API's OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RoomKind {
    /// The single room shared by exactly two users.
    Direct,
    /// A named room of any number of members up to the configured cap.
    Group,
}

/// What every event in the log carries besides its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Schema version of the writer, [`SCHEMA_VERSION`] for new events.
    pub v: u16,
    /// Unique id of this event; also its JetStream deduplication id.
    pub event_id: Uuid,
    /// The room the event belongs to.
    pub room_id: RoomId,
    /// The user whose action produced the event.
    pub actor: UserId,
    /// When the edge accepted the event.
    pub at: Timestamp,
    /// What happened.
    pub event: ChatEvent,
}

impl Envelope {
    /// A new envelope at the current schema version with a fresh event id.
    pub fn new(room_id: RoomId, actor: UserId, event: ChatEvent) -> Self {
        Self {
            v: SCHEMA_VERSION,
            event_id: Uuid::new_v4(),
            room_id,
            actor,
            at: Timestamp::now(),
            event,
        }
    }
}

/// A CHAT quoted by a reply: taken when the reply is sent, so every reader of the log shows the
/// same quote without looking the message up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The CHAT answered.
    pub message_id: MessageId,
    /// Who wrote it.
    pub sender_id: UserId,
    /// Its content then, cut to [`Quote::MAX_CHARS`] characters.
    pub content: String,
}

impl Quote {
    /// How much of the quoted content a reply carries, in characters.
    pub const MAX_CHARS: usize = 100;

    /// A quote of `content` (cut to [`Quote::MAX_CHARS`] characters) by `sender_id`.
    pub fn new(message_id: MessageId, sender_id: UserId, content: &str) -> Self {
        Self {
            message_id,
            sender_id,
            content: content.chars().take(Self::MAX_CHARS).collect(),
        }
    }
}

/// Everything that can happen in a room: its lifecycle, the six client-visible types of the
/// original design, and reactions and edits.
///
/// Encoded with the variant name in a `type` field and named fields, so adding a field with a
/// default, or a new variant, never breaks an older reader: unknown fields are ignored and unknown
/// types decode as [`ChatEvent::Unknown`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChatEvent {
    /// The room came into being with its first members (the creator included).
    RoomCreated {
        /// Direct or group.
        kind: RoomKind,
        /// The group's name; none for a direct room.
        #[serde(default)]
        name: Option<String>,
        /// Every first member, the creator included.
        members: Vec<UserId>,
    },
    /// A chat message (CHAT).
    Chat {
        /// The text as the sender wrote it.
        content: String,
        /// The sender's own id for the message, which makes resending it idempotent.
        #[serde(default)]
        client_message_id: Option<String>,
        /// The CHAT of the same room this one answers, as it was when the reply was sent.
        #[serde(default)]
        reply_to: Option<Quote>,
        /// Members the sender mentioned, distinct: each gets a push even in a muted room, and
        /// counts it in their `mentionCount` until they read it.
        #[serde(default)]
        mentions: Vec<UserId>,
    },
    /// A user opened the room screen on an edge (a room subscription there): written by that
    /// edge so that presence takes its place in the room's order. The receipts worker turns the
    /// user's first presence into the client-visible INFO and computes what it marked read.
    Info {
        /// Who entered.
        user_id: UserId,
        /// Not written by edges; the receipts worker computes it when the event is applied.
        #[serde(default)]
        read_count: u64,
        /// Not written by edges; the receipts worker computes it when the event is applied.
        #[serde(default)]
        last_read_message_id: Option<MessageId>,
        /// The edge whose connections hold the user's subscriptions; a user is in the room
        /// while any edge holds one.
        #[serde(default)]
        edge: Option<String>,
    },
    /// A user's last room subscription on an edge ended, or that edge died (OUT once no edge
    /// holds one).
    Out {
        /// Who left the screen.
        user_id: UserId,
        /// The edge the user left, as in [`ChatEvent::Info`].
        #[serde(default)]
        edge: Option<String>,
    },
    /// Members invited users into the room (INVITE); also a returning member of a direct room.
    Invite {
        /// Who joined.
        user_ids: Vec<UserId>,
    },
    /// A member quit the room (LEAVE).
    Leave {
        /// Who quit.
        user_id: UserId,
        /// How many messages were marked read by leaving.
        #[serde(default)]
        read_count: u64,
    },
    /// Messages were deleted for everyone (DELETE).
    Delete {
        /// The deleted messages.
        message_ids: Vec<MessageId>,
    },
    /// A member added or removed their reaction (one emoji) to a CHAT (REACTION). Changes no
    /// unread count and sends no push.
    Reaction {
        /// The CHAT reacted to.
        target_id: MessageId,
        /// Who reacted; the same as the envelope's actor.
        user_id: UserId,
        /// One grapheme cluster, at most 16 bytes URL-encoded.
        emoji: String,
        /// Added (`true`) or taken back (`false`).
        added: bool,
    },
    /// The sender changed a CHAT's content (EDIT); its time is the envelope's `at`. Changes no
    /// unread count and sends no push.
    Edit {
        /// The CHAT edited.
        target_id: MessageId,
        /// Its new content.
        content: String,
    },
    /// A type written by a newer schema that this build does not know; consumers skip it.
    #[serde(other)]
    Unknown,
}

impl ChatEvent {
    /// The wire name of the type, as clients see it in `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::RoomCreated { .. } => "ROOM_CREATED",
            Self::Chat { .. } => "CHAT",
            Self::Info { .. } => "INFO",
            Self::Out { .. } => "OUT",
            Self::Invite { .. } => "INVITE",
            Self::Leave { .. } => "LEAVE",
            Self::Delete { .. } => "DELETE",
            Self::Reaction { .. } => "REACTION",
            Self::Edit { .. } => "EDIT",
            Self::Unknown => "UNKNOWN",
        }
    }
}
