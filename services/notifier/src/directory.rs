//! What the notifier reads from Cassandra: a room's title, a user's device tokens and mutes
//! (written by the edge's push-token and mute API), and the removal of a dead token.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chat_platform::connect;
use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

/// A Cassandra read or write failed.
#[derive(Debug, thiserror::Error)]
#[error("Cassandra: {0}")]
pub struct DirectoryError(String);

fn error(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError(e.to_string())
}

/// Prepared statements over the keyspace.
pub struct Directory {
    session: Arc<Session>,
    room: PreparedStatement,
    user_rooms: PreparedStatement,
    tokens: PreparedStatement,
    muted: PreparedStatement,
    delete_token: PreparedStatement,
    delete_owner: PreparedStatement,
}

impl Directory {
    /// Prepares every statement against `keyspace`. All but the lightweight transaction are
    /// idempotent and marked so: one unanswered for `cassandra.speculative_after_ms` is sent to
    /// another replica as well.
    pub async fn prepare(session: Arc<Session>, keyspace: &str) -> Result<Self, DirectoryError> {
        let mut statements = connect::prepare_all(
            &session,
            [
                format!("SELECT kind, name FROM {keyspace}.rooms WHERE room_id = ?"),
                format!("SELECT room_id FROM {keyspace}.user_rooms WHERE user_id = ?"),
                format!(
                    "SELECT user_id, device_token FROM {keyspace}.push_tokens WHERE user_id IN ?"
                ),
                format!(
                    "SELECT user_id, muted FROM {keyspace}.room_mutes \
                     WHERE user_id IN ? AND room_id = ?"
                ),
                format!(
                    "DELETE FROM {keyspace}.push_tokens WHERE user_id = ? AND device_token = ?"
                ),
                format!(
                    "DELETE FROM {keyspace}.push_token_owners WHERE device_token = ? \
                     IF user_id = ?"
                ),
            ],
        )
        .await
        .map_err(error)?;
        for statement in &mut statements {
            statement.set_is_idempotent(true);
        }
        let [room, user_rooms, tokens, muted, delete_token, mut delete_owner] = statements;
        // A lightweight transaction: a second attempt could answer "not applied" for the
        // first one's success.
        delete_owner.set_is_idempotent(false);
        Ok(Self {
            room,
            user_rooms,
            tokens,
            muted,
            delete_token,
            delete_owner,
            session,
        })
    }

    async fn select<T>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Vec<T>, DirectoryError>
    where
        T: for<'f> DeserializeRow<'f, 'f>,
    {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(error)?
            .into_rows_result()
            .map_err(error)?
            .rows::<T>()
            .map_err(error)?
            .collect::<Result<_, _>>()
            .map_err(error)
    }

    /// The room's kind (`DIRECT` or `GROUP`) and name, if the projection has it.
    pub async fn room(
        &self,
        room: Uuid,
    ) -> Result<Option<(Option<String>, Option<String>)>, DirectoryError> {
        let rows: Vec<(Option<String>, Option<String>)> = self.select(&self.room, (room,)).await?;
        Ok(rows.into_iter().next())
    }

    /// The rooms `user` is or was a member of: their badge counts over these.
    pub async fn user_rooms(&self, user: &str) -> Result<Vec<Uuid>, DirectoryError> {
        let rows: Vec<(Uuid,)> = self.select(&self.user_rooms, (user,)).await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Every device token of each of `users`, in one query (users without tokens are absent).
    pub async fn tokens(
        &self,
        users: &[String],
    ) -> Result<HashMap<String, Vec<String>>, DirectoryError> {
        let rows: Vec<(String, String)> = self.select(&self.tokens, (users,)).await?;
        let mut tokens: HashMap<String, Vec<String>> = HashMap::new();
        for (user, token) in rows {
            tokens.entry(user).or_default().push(token);
        }
        Ok(tokens)
    }

    /// Which of `users` muted `room`, in one query.
    pub async fn muted(
        &self,
        users: &[String],
        room: Uuid,
    ) -> Result<HashSet<String>, DirectoryError> {
        let rows: Vec<(String, Option<bool>)> = self.select(&self.muted, (users, room)).await?;
        Ok(rows
            .into_iter()
            .filter(|(_, muted)| muted.unwrap_or(false))
            .map(|(user, _)| user)
            .collect())
    }

    /// Removes a token FCM called dead from `user` (and its owner entry, if still theirs).
    pub async fn forget_token(&self, user: &str, token: &str) -> Result<(), DirectoryError> {
        self.session
            .execute_unpaged(&self.delete_token, (user, token))
            .await
            .map_err(error)?;
        self.session
            .execute_unpaged(&self.delete_owner, (token, user))
            .await
            .map_err(error)?;
        Ok(())
    }
}
