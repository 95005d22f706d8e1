//! Reads of the Cassandra projections, with statements prepared once at start, and (in
//! [`user_settings`]) the user settings the edge writes itself.

pub mod user_settings;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chat_platform::connect;
use chat_schemas::{RoomId, RoomKind, UserId};
use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use self::user_settings::UserSettings;

/// A Cassandra request failed.
#[derive(Debug, thiserror::Error)]
#[error("Cassandra request failed: {0}")]
pub struct StoreError(String);

fn store_error(error: impl std::fmt::Display) -> StoreError {
    StoreError(error.to_string())
}

/// A room as the projector last wrote it.
#[derive(Debug, Clone)]
pub struct Room {
    /// The room.
    pub id: RoomId,
    /// Direct or group.
    pub kind: RoomKind,
    /// Group name.
    pub name: Option<String>,
    /// Current members.
    pub members: BTreeSet<String>,
    /// Time of the latest activity, Unix millis.
    pub updated_at: i64,
    /// The latest CHAT, a deleted one as its tombstone.
    pub last_message: Option<Message>,
}

impl Room {
    /// Whether `user` is a current member.
    pub fn has_member(&self, user: &UserId) -> bool {
        self.members.contains(user.as_str())
    }
}

/// A history entry: a CHAT, or an INVITE or LEAVE system entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its log sequence.
    pub id: i64,
    /// Its room.
    pub room_id: RoomId,
    /// `CHAT`, `INVITE` or `LEAVE`.
    pub kind: String,
    /// Sender, inviter or leaver.
    pub sender_id: Option<String>,
    /// Text of a CHAT that is not deleted.
    pub content: Option<String>,
    /// Users an INVITE or LEAVE concerns.
    pub user_ids: Vec<String>,
    /// Deleted for everyone.
    pub deleted: bool,
    /// Unix millis.
    pub sent_at: i64,
    /// The sender's id for the message, if they gave one.
    pub client_message_id: Option<String>,
    /// The CHAT a reply quotes, as it was when the reply was sent.
    pub reply: Option<StoredQuote>,
    /// Who a CHAT mentions.
    pub mentions: Vec<String>,
    /// When a CHAT was last edited (Unix millis).
    pub edited_at: Option<i64>,
    /// Its reactions: `"{userId} {emoji}"` to the sequence of the REACTION that added it.
    pub reactions: BTreeMap<String, i64>,
}

/// A reply's quote as the projector stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredQuote {
    /// The quoted CHAT.
    pub message_id: i64,
    /// Who wrote it.
    pub sender_id: String,
    /// Its content then, at most 100 characters.
    pub content: String,
}

impl Message {
    /// Whether `user` has reacted with `emoji`.
    pub fn has_reaction(&self, user: &UserId, emoji: &str) -> bool {
        self.reactions.contains_key(&reaction_key(user, emoji))
    }
}

/// The key of one reaction in `messages.reactions`: user ids hold no space, so the first space
/// ends the user.
pub fn reaction_key(user: &UserId, emoji: &str) -> String {
    format!("{user} {emoji}")
}

type MessageRow = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<String>>,
    Option<bool>,
    Option<CqlTimestamp>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<Vec<String>>,
    Option<CqlTimestamp>,
    Option<BTreeMap<String, i64>>,
);

type RoomRow = (
    Option<String>,
    Option<String>,
    Option<BTreeSet<String>>,
    Option<CqlTimestamp>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<bool>,
    Option<CqlTimestamp>,
);

/// Prepared reads of one keyspace.
pub struct Store {
    session: Arc<Session>,
    room: PreparedStatement,
    user_rooms: PreparedStatement,
    buckets_before: PreparedStatement,
    bucket_of: PreparedStatement,
    page: PreparedStatement,
    page_after: PreparedStatement,
    all_buckets: PreparedStatement,
    message: PreparedStatement,
    client_message: PreparedStatement,
    client_message_ids: PreparedStatement,
    progress: PreparedStatement,
    user_settings: UserSettings,
}

const MESSAGE_COLUMNS: &str = "message_id, kind, sender_id, content, user_ids, deleted, sent_at, \
     client_message_id, reply_to_id, reply_sender_id, reply_content, mentions, edited_at, reactions";

impl Store {
    /// Prepares every read against `keyspace`, marked idempotent: a read unanswered for
    /// `cassandra.speculative_after_ms` is sent to another replica as well.
    pub async fn prepare(session: Arc<Session>, keyspace: &str) -> Result<Self, StoreError> {
        let reads = connect::prepare_all(
            &session,
            [
                format!(
                    "SELECT kind, name, members, updated_at, last_message_id, last_sender_id, \
                     last_content, last_deleted, last_sent_at FROM {keyspace}.rooms \
                     WHERE room_id = ?"
                ),
                format!("SELECT room_id FROM {keyspace}.user_rooms WHERE user_id = ?"),
                format!(
                    "SELECT first_message_id, bucket FROM {keyspace}.room_buckets \
                     WHERE room_id = ? AND first_message_id < ? LIMIT ?"
                ),
                format!(
                    "SELECT bucket FROM {keyspace}.room_buckets \
                     WHERE room_id = ? AND first_message_id <= ? LIMIT 1"
                ),
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM {keyspace}.messages \
                     WHERE room_id = ? AND bucket = ? AND message_id < ? LIMIT ?"
                ),
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM {keyspace}.messages \
                     WHERE room_id = ? AND bucket = ? AND message_id > ? \
                     ORDER BY message_id ASC LIMIT ?"
                ),
                format!(
                    "SELECT first_message_id, bucket FROM {keyspace}.room_buckets \
                     WHERE room_id = ?"
                ),
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM {keyspace}.messages \
                     WHERE room_id = ? AND bucket = ? AND message_id = ?"
                ),
                format!(
                    "SELECT message_id FROM {keyspace}.client_messages \
                     WHERE room_id = ? AND sender_id = ? AND client_message_id = ?"
                ),
                format!(
                    "SELECT client_message_id FROM {keyspace}.client_messages \
                     WHERE room_id = ? AND sender_id = ? LIMIT ?"
                ),
                format!(
                    "SELECT applied_seq FROM {keyspace}.projector_progress WHERE projector = ?"
                ),
            ],
        );
        let (mut reads, user_settings) = tokio::try_join!(
            async { reads.await.map_err(store_error) },
            UserSettings::prepare(session.clone(), keyspace),
        )?;
        for read in &mut reads {
            read.set_is_idempotent(true);
        }
        let [room, user_rooms, buckets_before, bucket_of, page, page_after, all_buckets, message, client_message, client_message_ids, progress] =
            reads;
        Ok(Self {
            room,
            user_rooms,
            buckets_before,
            bucket_of,
            page,
            page_after,
            all_buckets,
            message,
            client_message,
            client_message_ids,
            progress,
            user_settings,
            session,
        })
    }

    /// Push tokens and room mutes: the user settings the edge reads and writes itself.
    pub fn user_settings(&self) -> &UserSettings {
        &self.user_settings
    }

    /// Every row a prepared read returns.
    async fn select<T>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'f> DeserializeRow<'f, 'f>,
    {
        select(&self.session, statement, values).await
    }

    /// The first row a prepared read returns, if any.
    async fn select_one<T>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Option<T>, StoreError>
    where
        T: for<'f> DeserializeRow<'f, 'f>,
    {
        Ok(self.select(statement, values).await?.into_iter().next())
    }

    /// History entries from a prepared page read.
    async fn entries(
        &self,
        room: RoomId,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Vec<Message>, StoreError> {
        let rows: Vec<MessageRow> = self.select(statement, values).await?;
        Ok(rows
            .into_iter()
            .map(|row| message_from_row(room, row))
            .collect())
    }

    /// The room, or `None` when it does not exist.
    pub async fn room(&self, id: RoomId) -> Result<Option<Room>, StoreError> {
        let Some(row) = self
            .select_one::<RoomRow>(&self.room, (id.as_uuid(),))
            .await?
        else {
            return Ok(None);
        };
        let (
            kind,
            name,
            members,
            updated_at,
            last_id,
            last_sender,
            last_content,
            last_deleted,
            last_sent_at,
        ) = row;
        let kind = match kind.as_deref() {
            Some("DIRECT") => RoomKind::Direct,
            Some("GROUP") => RoomKind::Group,
            _ => return Ok(None),
        };
        let last_message = last_id.map(|message_id| Message {
            id: message_id,
            room_id: id,
            kind: "CHAT".to_owned(),
            sender_id: last_sender,
            content: last_content,
            user_ids: Vec::new(),
            deleted: last_deleted.unwrap_or(false),
            sent_at: last_sent_at.map_or(0, |t| t.0),
            client_message_id: None,
            reply: None,
            mentions: Vec::new(),
            edited_at: None,
            reactions: BTreeMap::new(),
        });
        Ok(Some(Room {
            id,
            kind,
            name,
            members: members.unwrap_or_default(),
            updated_at: updated_at.map_or(0, |t| t.0),
            last_message,
        }))
    }

    /// The ids of the rooms `user` is a member of.
    pub async fn user_room_ids(&self, user: &UserId) -> Result<Vec<RoomId>, StoreError> {
        let rows: Vec<(Uuid,)> = self.select(&self.user_rooms, (user.as_str(),)).await?;
        Ok(rows.into_iter().map(|(id,)| RoomId::from(id)).collect())
    }

    /// Up to `limit` history entries older than `before` (all when `None`), newest first,
    /// walking the room's time buckets from the one holding `before` backwards.
    pub async fn history(
        &self,
        room: RoomId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        const BUCKETS_PER_READ: i32 = 16;
        let before = before.unwrap_or(i64::MAX);
        let mut messages = Vec::with_capacity(limit);
        let mut bucket_cursor = before;
        while messages.len() < limit {
            let buckets: Vec<(i64, i32)> = self
                .select(
                    &self.buckets_before,
                    (room.as_uuid(), bucket_cursor, BUCKETS_PER_READ),
                )
                .await?;
            for &(first_id, bucket) in &buckets {
                let remaining = i32::try_from(limit - messages.len()).unwrap_or(i32::MAX);
                let page = (room.as_uuid(), bucket, before, remaining);
                messages.extend(self.entries(room, &self.page, page).await?);
                bucket_cursor = first_id;
                if messages.len() >= limit {
                    break;
                }
            }
            if buckets.len() < BUCKETS_PER_READ as usize {
                break;
            }
        }
        Ok(messages)
    }

    /// Up to `limit` history entries newer than `after`, oldest first: resuming a client from
    /// the projection when the log no longer holds the events.
    pub async fn history_after(
        &self,
        room: RoomId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let buckets: Vec<(i64, i32)> = self.select(&self.all_buckets, (room.as_uuid(),)).await?;
        // Newest first; keep the bucket holding `after` and every newer one, then go oldest first.
        let holding = buckets.iter().position(|&(first, _)| first <= after);
        let newer = holding.map_or(buckets.len(), |i| i + 1);
        let mut messages = Vec::new();
        for &(_, bucket) in buckets[..newer].iter().rev() {
            let remaining = i32::try_from(limit - messages.len()).unwrap_or(i32::MAX);
            let page = (room.as_uuid(), bucket, after, remaining);
            messages.extend(self.entries(room, &self.page_after, page).await?);
            if messages.len() >= limit {
                break;
            }
        }
        Ok(messages)
    }

    /// One history entry by id.
    pub async fn message(&self, room: RoomId, id: i64) -> Result<Option<Message>, StoreError> {
        let bucket: Option<(i32,)> = self
            .select_one(&self.bucket_of, (room.as_uuid(), id))
            .await?;
        let Some((bucket,)) = bucket else {
            return Ok(None);
        };
        let row: Option<MessageRow> = self
            .select_one(&self.message, (room.as_uuid(), bucket, id))
            .await?;
        Ok(row.map(|row| message_from_row(room, row)))
    }

    /// The message a sender's `clientMessageId` produced in a room, if any.
    pub async fn client_message(
        &self,
        room: RoomId,
        sender: &UserId,
        client_message_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(Option<i64>,)> = self
            .select_one(
                &self.client_message,
                (room.as_uuid(), sender.as_str(), client_message_id),
            )
            .await?;
        Ok(row.and_then(|(id,)| id))
    }

    /// Up to `limit` of the `clientMessageId`s a sender has used in a room (one partition).
    pub async fn client_message_ids(
        &self,
        room: RoomId,
        sender: &UserId,
        limit: i32,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = self
            .select(
                &self.client_message_ids,
                (room.as_uuid(), sender.as_str(), limit),
            )
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The highest log sequence the projector has applied (0 before its first batch).
    pub async fn applied_seq(&self, projector: &str) -> Result<u64, StoreError> {
        let row: Option<(Option<i64>,)> = self.select_one(&self.progress, (projector,)).await?;
        Ok(row
            .and_then(|(seq,)| seq)
            .and_then(|seq| u64::try_from(seq).ok())
            .unwrap_or(0))
    }
}

/// Every row a prepared read returns.
async fn select<T>(
    session: &Session,
    statement: &PreparedStatement,
    values: impl SerializeRow,
) -> Result<Vec<T>, StoreError>
where
    T: for<'f> DeserializeRow<'f, 'f>,
{
    session
        .execute_unpaged(statement, values)
        .await
        .map_err(store_error)?
        .into_rows_result()
        .map_err(store_error)?
        .rows::<T>()
        .map_err(store_error)?
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

fn message_from_row(room: RoomId, row: MessageRow) -> Message {
    let (id, kind, sender_id, content, user_ids, deleted, sent_at, client_message_id) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
    let (mentions, edited_at, reactions) = (row.11, row.12, row.13);
    let reply = match (row.8, row.9, row.10) {
        (Some(message_id), Some(sender_id), Some(content)) => Some(StoredQuote {
            message_id,
            sender_id,
            content,
        }),
        _ => None,
    };
    let deleted = deleted.unwrap_or(false);
    Message {
        id,
        room_id: room,
        kind: kind.unwrap_or_default(),
        sender_id,
        content: if deleted { None } else { content },
        user_ids: user_ids.unwrap_or_default(),
        deleted,
        sent_at: sent_at.map_or(0, |t| t.0),
        client_message_id,
        reply,
        mentions: mentions.unwrap_or_default(),
        edited_at: edited_at.map(|t| t.0),
        reactions: if deleted {
            BTreeMap::new()
        } else {
            reactions.unwrap_or_default()
        },
    }
}
