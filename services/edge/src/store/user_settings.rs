//! User settings the edge reads **and writes** itself: push tokens and room mutes.
//!
//! These are not chat events: they never go through the log, the projector does not know them,
//! and a replay does not rebuild them. The edge writes the tables `push_tokens`,
//! `push_token_owners` and `room_mutes` directly (their layout is documented in
//! `chat_schemas::cql`), and the notifier reads them with its own CQL.
//!
//! A token belongs to one user at a time. `push_token_owners` names that user and changes only
//! through lightweight transactions, so concurrent registrations of one token are ordered: each
//! registrant learns the previous owner from its own compare-and-set and removes the token from
//! that owner's `push_tokens` partition, and a registrant that finds, after writing its row, that
//! someone else claimed the token since, removes its own row again. The token therefore ends up
//! with its last registrant only (see `docs/api.md`).

use std::collections::HashSet;
use std::sync::Arc;

use chat_platform::connect;
use chat_schemas::{RoomId, Timestamp, UserId};
use scylla::client::session::Session;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;
use scylla::value::{CqlTimestamp, CqlValue, Row};
use uuid::Uuid;

use super::{select, store_error, StoreError};

/// How often a registration retries claiming a token whose owner keeps changing under it.
const MAX_CLAIM_ATTEMPTS: usize = 20;

/// One of a user's device tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushToken {
    /// The token the device's push service issued.
    pub token: String,
    /// `android`, `ios` or `web`.
    pub platform: String,
    /// When the token was last registered, Unix millis.
    pub updated_at: i64,
}

/// Prepared statements over the user-settings tables of one keyspace.
pub struct UserSettings {
    session: Arc<Session>,
    tokens_of: PreparedStatement,
    token_of: PreparedStatement,
    put_token: PreparedStatement,
    drop_token: PreparedStatement,
    claim: PreparedStatement,
    owner: PreparedStatement,
    release: PreparedStatement,
    mutes_of: PreparedStatement,
    mute_of: PreparedStatement,
    mute: PreparedStatement,
    unmute: PreparedStatement,
}

impl UserSettings {
    /// Prepares every statement against `keyspace`.
    pub async fn prepare(session: Arc<Session>, keyspace: &str) -> Result<Self, StoreError> {
        let [tokens_of, token_of, put_token, drop_token, claim, mut owner, release, mutes_of, mute_of, mute, unmute] =
            connect::prepare_all(
                &session,
                [
                    format!(
                        "SELECT device_token, platform, updated_at FROM {keyspace}.push_tokens \
                         WHERE user_id = ?"
                    ),
                    format!(
                        "SELECT device_token FROM {keyspace}.push_tokens \
                         WHERE user_id = ? AND device_token = ?"
                    ),
                    format!(
                        "INSERT INTO {keyspace}.push_tokens \
                         (user_id, device_token, platform, updated_at) VALUES (?, ?, ?, ?)"
                    ),
                    format!(
                        "DELETE FROM {keyspace}.push_tokens WHERE user_id = ? AND device_token = ?"
                    ),
                    format!(
                        "UPDATE {keyspace}.push_token_owners SET user_id = ? \
                         WHERE device_token = ? IF user_id = ?"
                    ),
                    format!(
                        "SELECT user_id FROM {keyspace}.push_token_owners WHERE device_token = ?"
                    ),
                    format!(
                        "DELETE FROM {keyspace}.push_token_owners WHERE device_token = ? \
                         IF user_id = ?"
                    ),
                    format!("SELECT room_id, muted FROM {keyspace}.room_mutes WHERE user_id = ?"),
                    format!(
                        "SELECT muted FROM {keyspace}.room_mutes WHERE user_id = ? AND room_id = ?"
                    ),
                    format!(
                        "INSERT INTO {keyspace}.room_mutes (user_id, room_id, muted) \
                         VALUES (?, ?, true)"
                    ),
                    format!("DELETE FROM {keyspace}.room_mutes WHERE user_id = ? AND room_id = ?"),
                ],
            )
            .await
            .map_err(store_error)?;
        // A Paxos read: it sees every claim that completed before it, and none half-applied.
        owner.set_consistency(Consistency::LocalSerial);
        Ok(Self {
            tokens_of,
            token_of,
            put_token,
            drop_token,
            claim,
            owner,
            release,
            mutes_of,
            mute_of,
            mute,
            unmute,
            session,
        })
    }

    /// Runs a write.
    async fn execute(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    /// Runs a conditional write on `push_token_owners`: whether it applied, and the owner the
    /// row had when it did not.
    async fn conditional(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<(bool, Option<String>), StoreError> {
        let rows = self
            .session
            .execute_unpaged(statement, values)
            .await
            .map_err(store_error)?
            .into_rows_result()
            .map_err(store_error)?;
        let specs = rows.column_specs();
        let applied_at = specs.get_by_name("[applied]").map(|(i, _)| i);
        let owner_at = specs.get_by_name("user_id").map(|(i, _)| i);
        let row: Row = rows
            .maybe_first_row()
            .map_err(store_error)?
            .ok_or_else(|| StoreError("a conditional write answered no row".to_owned()))?;
        let column = |at: Option<usize>| at.and_then(|i| row.columns.get(i).cloned().flatten());
        let applied = column(applied_at)
            .and_then(|v| v.as_boolean())
            .ok_or_else(|| StoreError("a conditional write answered no [applied]".to_owned()))?;
        Ok((applied, column(owner_at).and_then(CqlValue::into_string)))
    }

    /// `user`'s push tokens, most recently registered first.
    pub async fn push_tokens(&self, user: &UserId) -> Result<Vec<PushToken>, StoreError> {
        let rows: Vec<(String, Option<String>, Option<CqlTimestamp>)> =
            select(&self.session, &self.tokens_of, (user.as_str(),)).await?;
        let mut tokens: Vec<PushToken> = rows
            .into_iter()
            .map(|(token, platform, updated_at)| PushToken {
                token,
                platform: platform.unwrap_or_default(),
                updated_at: updated_at.map_or(0, |t| t.0),
            })
            .collect();
        tokens.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then_with(|| a.token.cmp(&b.token))
        });
        Ok(tokens)
    }

    /// Registers `token` for `user` (again), taking it from any other user, and keeps at most
    /// `max_tokens` tokens for `user` by dropping the least recently registered others.
    ///
    /// `updated_at` is now, or just after the user's newest token when the clock is behind it,
    /// so the user's tokens are strictly ordered by registration.
    pub async fn register_push_token(
        &self,
        user: &UserId,
        token: &str,
        platform: &str,
        max_tokens: usize,
    ) -> Result<PushToken, StoreError> {
        let before = self.push_tokens(user).await?;
        let updated_at = before
            .iter()
            .map(|t| t.updated_at.saturating_add(1))
            .fold(Timestamp::now().millis(), i64::max);
        let previous = self.claim(user, token).await?;
        if let Some(previous) = previous.filter(|p| p != user.as_str()) {
            self.execute(&self.drop_token, (previous.as_str(), token))
                .await?;
        }
        self.execute(
            &self.put_token,
            (user.as_str(), token, platform, CqlTimestamp(updated_at)),
        )
        .await?;
        // Someone may have claimed the token after us and removed our row before we wrote it.
        let owner: Vec<(Option<String>,)> = select(&self.session, &self.owner, (token,)).await?;
        let owner = owner.into_iter().next().and_then(|(owner,)| owner);
        if owner.as_deref() != Some(user.as_str()) {
            self.execute(&self.drop_token, (user.as_str(), token))
                .await?;
        }
        self.keep_newest(user, token, max_tokens).await?;
        Ok(PushToken {
            token: token.to_owned(),
            platform: platform.to_owned(),
            updated_at,
        })
    }

    /// Makes `user` the owner of `token`; returns the previous owner, if any.
    async fn claim(&self, user: &UserId, token: &str) -> Result<Option<String>, StoreError> {
        let mut expected: Option<String> = None;
        for _ in 0..MAX_CLAIM_ATTEMPTS {
            let (applied, current) = self
                .conditional(&self.claim, (user.as_str(), token, expected.as_deref()))
                .await?;
            if applied {
                return Ok(expected);
            }
            if current.as_deref() == Some(user.as_str()) {
                return Ok(current);
            }
            expected = current;
        }
        Err(StoreError(format!(
            "the owner of a push token changed {MAX_CLAIM_ATTEMPTS} times in a row"
        )))
    }

    /// Drops `user`'s least recently registered tokens beyond `max_tokens`, never `keep`.
    async fn keep_newest(
        &self,
        user: &UserId,
        keep: &str,
        max_tokens: usize,
    ) -> Result<(), StoreError> {
        let tokens = self.push_tokens(user).await?;
        let others = tokens.iter().filter(|t| t.token != keep);
        for old in others.skip(max_tokens.saturating_sub(1)) {
            self.remove(user, &old.token).await?;
        }
        Ok(())
    }

    /// Removes `token` from `user`'s tokens, and its ownership if `user` still holds it.
    async fn remove(&self, user: &UserId, token: &str) -> Result<(), StoreError> {
        self.execute(&self.drop_token, (user.as_str(), token))
            .await?;
        self.conditional(&self.release, (token, user.as_str()))
            .await?;
        Ok(())
    }

    /// Removes one of `user`'s own tokens; `false` when `user` has no such token.
    pub async fn remove_push_token(&self, user: &UserId, token: &str) -> Result<bool, StoreError> {
        let rows: Vec<(String,)> =
            select(&self.session, &self.token_of, (user.as_str(), token)).await?;
        if rows.is_empty() {
            return Ok(false);
        }
        self.remove(user, token).await?;
        Ok(true)
    }

    /// Mutes or unmutes `room` for `user`.
    pub async fn set_muted(
        &self,
        user: &UserId,
        room: RoomId,
        muted: bool,
    ) -> Result<(), StoreError> {
        let statement = if muted { &self.mute } else { &self.unmute };
        self.execute(statement, (user.as_str(), room.as_uuid()))
            .await
    }

    /// The rooms `user` muted, in one partition read.
    pub async fn muted_rooms(&self, user: &UserId) -> Result<HashSet<RoomId>, StoreError> {
        let rows: Vec<(Uuid, Option<bool>)> =
            select(&self.session, &self.mutes_of, (user.as_str(),)).await?;
        Ok(rows
            .into_iter()
            .filter(|(_, muted)| *muted == Some(true))
            .map(|(room, _)| RoomId::from(room))
            .collect())
    }

    /// Whether `user` muted `room`.
    pub async fn is_muted(&self, user: &UserId, room: RoomId) -> Result<bool, StoreError> {
        let rows: Vec<(Option<bool>,)> = select(
            &self.session,
            &self.mute_of,
            (user.as_str(), room.as_uuid()),
        )
        .await?;
        Ok(rows.first().is_some_and(|(muted,)| *muted == Some(true)))
    }
}
