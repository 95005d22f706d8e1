//! The projections in Cassandra: one prepared statement per kind of [`Write`], each stamped
//! `USING TIMESTAMP` with the stream sequence of its event, and the reads the planner needs.

use std::sync::Arc;

use chat_platform::connect;
use chat_schemas::cql::{self, InvalidKeyspace};
use futures::stream::{self, StreamExt};
use scylla::client::session::Session;
use scylla::errors::{ExecutionError, IntoRowsResultError, MaybeFirstRowError, PrepareError};
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use crate::batches;
use crate::plan::{BucketStart, Op, Write};

/// The values of one statement, of whichever shape its statement takes.
type BoundValues<'w> = Box<dyn SerializeRow + Send + Sync + 'w>;

/// Cassandra refused or failed a statement.
///
/// The driver's errors are boxed: they are large, and results carrying them are everywhere.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The keyspace name is not a plain CQL name.
    #[error(transparent)]
    Keyspace(#[from] InvalidKeyspace),
    /// A statement could not be prepared.
    #[error("cannot prepare statement: {0}")]
    Prepare(Box<PrepareError>),
    /// A statement failed.
    #[error("statement failed: {0}")]
    Execute(Box<ExecutionError>),
    /// A read returned something other than rows.
    #[error("unexpected result: {0}")]
    Rows(Box<IntoRowsResultError>),
    /// A read returned rows of an unexpected shape.
    #[error("unexpected row: {0}")]
    Row(Box<MaybeFirstRowError>),
}

macro_rules! boxed_from {
    ($($error:ty => $variant:ident),* $(,)?) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                Self::$variant(Box::new(error))
            }
        }
    )*};
}

boxed_from! {
    PrepareError => Prepare,
    ExecutionError => Execute,
    IntoRowsResultError => Rows,
    MaybeFirstRowError => Row,
}

/// The prepared statements of one keyspace on one session.
pub struct Store {
    session: Arc<Session>,
    create_room: PreparedStatement,
    joined: PreparedStatement,
    left: PreparedStatement,
    message: PreparedStatement,
    bucket_start: PreparedStatement,
    last_message: PreparedStatement,
    members_added: PreparedStatement,
    member_removed: PreparedStatement,
    message_deleted: PreparedStatement,
    last_deleted: PreparedStatement,
    event_seq: PreparedStatement,
    client_message: PreparedStatement,
    reaction_added: PreparedStatement,
    reaction_removed: PreparedStatement,
    edited: PreparedStatement,
    last_edited: PreparedStatement,
    progress: PreparedStatement,
    applied_seq: PreparedStatement,
    latest_bucket: PreparedStatement,
    bucket_at: PreparedStatement,
    last_message_id: PreparedStatement,
}

impl Store {
    /// Prepares every statement against `keyspace`, whose tables must exist.
    pub async fn prepare(session: Arc<Session>, keyspace: &str) -> Result<Self, StoreError> {
        cql::validate_keyspace(keyspace)?;
        let ks = keyspace;
        let mut statements = connect::prepare_all(
            &session,
            [
                format!(
                    "INSERT INTO {ks}.rooms (room_id, kind, name, created_by, created_at, members, \
                    last_event_seq, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
                ),
                format!(
                    "INSERT INTO {ks}.user_rooms (user_id, room_id, joined_at) VALUES (?, ?, ?) \
                    USING TIMESTAMP ?"
                ),
                format!(
                    "DELETE FROM {ks}.user_rooms USING TIMESTAMP ? WHERE user_id = ? AND room_id = ?"
                ),
                format!(
                    "INSERT INTO {ks}.messages (room_id, bucket, message_id, kind, sender_id, content, \
                    user_ids, deleted, sent_at, client_message_id, reply_to_id, reply_sender_id, \
                    reply_content, mentions) \
                    VALUES (?, ?, ?, ?, ?, ?, ?, false, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
                ),
                format!(
                    "INSERT INTO {ks}.room_buckets (room_id, first_message_id, bucket) \
                    VALUES (?, ?, ?) USING TIMESTAMP ?"
                ),
                format!(
                    "UPDATE {ks}.rooms USING TIMESTAMP ? SET last_event_seq = ?, updated_at = ?, \
                    last_message_id = ?, last_sender_id = ?, last_content = ?, last_deleted = false, \
                    last_sent_at = ? WHERE room_id = ?"
                ),
                format!(
                    "UPDATE {ks}.rooms USING TIMESTAMP ? SET members = members + ?, \
                    last_event_seq = ?, updated_at = ? WHERE room_id = ?"
                ),
                format!(
                    "UPDATE {ks}.rooms USING TIMESTAMP ? SET members = members - ?, \
                    last_event_seq = ?, updated_at = ? WHERE room_id = ?"
                ),
                format!(
                    "UPDATE {ks}.messages USING TIMESTAMP ? SET deleted = true, content = null \
                    WHERE room_id = ? AND bucket = ? AND message_id = ?"
                ),
                format!(
                    "UPDATE {ks}.rooms USING TIMESTAMP ? SET last_deleted = true, last_content = null, \
                    last_event_seq = ? WHERE room_id = ?"
                ),
                format!(
                    "UPDATE {ks}.rooms USING TIMESTAMP ? SET last_event_seq = ? WHERE room_id = ?"
                ),
                format!(
                    "INSERT INTO {ks}.client_messages (room_id, sender_id, client_message_id, \
                    message_id) VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
                ),
                format!(
                    "UPDATE {ks}.messages USING TIMESTAMP ? SET reactions[?] = ? \
                    WHERE room_id = ? AND bucket = ? AND message_id = ?"
                ),
                format!(
                    "DELETE reactions[?] FROM {ks}.messages USING TIMESTAMP ? \
                    WHERE room_id = ? AND bucket = ? AND message_id = ?"
                ),
                format!(
                    "UPDATE {ks}.messages USING TIMESTAMP ? SET content = ?, edited_at = ? \
                    WHERE room_id = ? AND bucket = ? AND message_id = ?"
                ),
                format!(
                    "UPDATE {ks}.rooms USING TIMESTAMP ? SET last_content = ?, last_event_seq = ? \
                    WHERE room_id = ?"
                ),
                format!(
                    "INSERT INTO {ks}.projector_progress (projector, applied_seq) VALUES (?, ?) \
                    USING TIMESTAMP ?"
                ),
                format!(
                    "SELECT applied_seq FROM {ks}.projector_progress WHERE projector = ?"
                ),
                format!(
                    "SELECT first_message_id, bucket FROM {ks}.room_buckets WHERE room_id = ? LIMIT 1"
                ),
                format!(
                    "SELECT first_message_id, bucket FROM {ks}.room_buckets \
                    WHERE room_id = ? AND first_message_id <= ? LIMIT 1"
                ),
                format!(
                    "SELECT last_message_id FROM {ks}.rooms WHERE room_id = ?"
                ),
            ],
        )
        .await?;
        for statement in &mut statements {
            statement.set_is_idempotent(true);
        }
        let [create_room, joined, left, message, bucket_start, last_message, members_added, member_removed, message_deleted, last_deleted, event_seq, client_message, reaction_added, reaction_removed, edited, last_edited, progress, applied_seq, latest_bucket, bucket_at, last_message_id] =
            statements;
        Ok(Self {
            create_room,
            joined,
            left,
            message,
            bucket_start,
            last_message,
            members_added,
            member_removed,
            message_deleted,
            last_deleted,
            event_seq,
            client_message,
            reaction_added,
            reaction_removed,
            edited,
            last_edited,
            progress,
            applied_seq,
            latest_bucket,
            bucket_at,
            last_message_id,
            session,
        })
    }

    /// The statement of `write` and its values, borrowed from it.
    fn bind<'w>(&self, write: &'w Write) -> (&PreparedStatement, BoundValues<'w>) {
        let Write { room, seq, ref op } = *write;
        let ts = |millis: i64| CqlTimestamp(millis);
        match op {
            Op::CreateRoom {
                kind,
                name,
                created_by,
                created_at,
                members,
            } => {
                let values = (
                    room,
                    *kind,
                    name,
                    created_by,
                    ts(*created_at),
                    members,
                    seq,
                    ts(*created_at),
                    seq,
                );
                (&self.create_room, Box::new(values))
            }
            Op::Joined { user, at } => (&self.joined, Box::new((user, room, ts(*at), seq))),
            Op::Left { user } => (&self.left, Box::new((seq, user, room))),
            Op::Message {
                bucket,
                kind,
                sender,
                content,
                user_ids,
                sent_at,
                client_message_id,
                reply,
                mentions,
            } => {
                let values = (
                    room,
                    *bucket,
                    seq,
                    kind.as_str(),
                    sender,
                    content,
                    user_ids,
                    ts(*sent_at),
                    client_message_id,
                    reply.as_ref().map(|r| r.message_id),
                    reply.as_ref().map(|r| r.sender.as_str()),
                    reply.as_ref().map(|r| r.content.as_str()),
                    mentions,
                    seq,
                );
                (&self.message, Box::new(values))
            }
            Op::BucketStart { bucket } => (&self.bucket_start, Box::new((room, seq, *bucket, seq))),
            Op::LastMessage {
                sender,
                content,
                at,
            } => {
                let values = (seq, seq, ts(*at), seq, sender, content, ts(*at), room);
                (&self.last_message, Box::new(values))
            }
            Op::MembersAdded { users, at } => (
                &self.members_added,
                Box::new((seq, users, seq, ts(*at), room)),
            ),
            Op::MemberRemoved { user, at } => (
                &self.member_removed,
                Box::new((seq, std::slice::from_ref(user), seq, ts(*at), room)),
            ),
            Op::MessageDeleted { bucket, message_id } => (
                &self.message_deleted,
                Box::new((seq, room, *bucket, *message_id)),
            ),
            Op::LastDeleted => (&self.last_deleted, Box::new((seq, seq, room))),
            Op::EventSeq => (&self.event_seq, Box::new((seq, seq, room))),
            Op::Reacted {
                bucket,
                message_id,
                key,
                added: true,
            } => (
                &self.reaction_added,
                Box::new((seq, key, seq, room, *bucket, *message_id)),
            ),
            Op::Reacted {
                bucket,
                message_id,
                key,
                added: false,
            } => (
                &self.reaction_removed,
                Box::new((key, seq, room, *bucket, *message_id)),
            ),
            Op::Edited {
                bucket,
                message_id,
                content,
                at,
            } => (
                &self.edited,
                Box::new((seq, content, ts(*at), room, *bucket, *message_id)),
            ),
            Op::LastEdited { content } => (&self.last_edited, Box::new((seq, content, seq, room))),
            Op::ClientMessage {
                sender,
                client_message_id,
            } => (
                &self.client_message,
                Box::new((room, sender, client_message_id, seq, seq)),
            ),
        }
    }

    /// Applies one group of writes ([`batches::group`]) in one request: an UNLOGGED BATCH, or a
    /// plain statement for a group of one. Applying it again changes nothing.
    pub async fn execute_group(&self, writes: &[Write]) -> Result<(), StoreError> {
        if let [write] = writes {
            let (statement, values) = self.bind(write);
            self.session.execute_unpaged(statement, values).await?;
            return Ok(());
        }
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(writes.len());
        for write in writes {
            let (statement, bound) = self.bind(write);
            batch.append_statement(statement.clone());
            values.push(bound);
        }
        self.session.batch(&batch, values).await?;
        Ok(())
    }

    /// Applies `writes` in groups ([`batches::group`]), at most `max_in_flight` requests at a
    /// time, and returns the groups that failed, each with its error, for a retry.
    pub async fn execute_all(
        &self,
        writes: Vec<Write>,
        max_in_flight: usize,
    ) -> Vec<(Vec<Write>, StoreError)> {
        stream::iter(batches::group(writes))
            .map(|group| async move {
                let result = self.execute_group(&group).await;
                result.err().map(|error| (group, error))
            })
            .buffer_unordered(max_in_flight.max(1))
            .filter_map(|failed| async move { failed })
            .collect()
            .await
    }

    /// Records that `projector` has applied the log up to `applied_seq`; an older record never
    /// overwrites a newer one.
    pub async fn write_progress(
        &self,
        projector: &str,
        applied_seq: i64,
    ) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.progress, (projector, applied_seq, applied_seq))
            .await?;
        Ok(())
    }

    /// How far `projector` has applied the log into this keyspace (0 before its first batch).
    pub async fn applied_seq(&self, projector: &str) -> Result<u64, StoreError> {
        let result = self
            .session
            .execute_unpaged(&self.applied_seq, (projector,))
            .await?;
        let row = result
            .into_rows_result()?
            .maybe_first_row::<(Option<i64>,)>()?;
        Ok(row
            .and_then(|(seq,)| seq)
            .and_then(|seq| u64::try_from(seq).ok())
            .unwrap_or(0))
    }

    /// The room's newest bucket start.
    pub async fn latest_bucket(&self, room: Uuid) -> Result<Option<BucketStart>, StoreError> {
        let result = self
            .session
            .execute_unpaged(&self.latest_bucket, (room,))
            .await?;
        bucket_row(result)
    }

    /// The start of the bucket that holds `message_id`: the newest start at or before it.
    pub async fn bucket_at(
        &self,
        room: Uuid,
        message_id: i64,
    ) -> Result<Option<BucketStart>, StoreError> {
        let result = self
            .session
            .execute_unpaged(&self.bucket_at, (room, message_id))
            .await?;
        bucket_row(result)
    }

    /// The room's latest CHAT as recorded in `rooms`.
    pub async fn last_message_id(&self, room: Uuid) -> Result<Option<i64>, StoreError> {
        let result = self
            .session
            .execute_unpaged(&self.last_message_id, (room,))
            .await?;
        let row = result
            .into_rows_result()?
            .maybe_first_row::<(Option<i64>,)>()?;
        Ok(row.and_then(|(id,)| id))
    }
}

fn bucket_row(
    result: scylla::response::query_result::QueryResult,
) -> Result<Option<BucketStart>, StoreError> {
    let row = result.into_rows_result()?.maybe_first_row::<(i64, i32)>()?;
    Ok(row.map(|(first_message_id, bucket)| BucketStart {
        first_message_id,
        bucket,
    }))
}
