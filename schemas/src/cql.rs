//! The Cassandra schema: one keyspace, its tables, created idempotently.
//!
//! Most tables are projections of the event log and can be rebuilt by replaying it into a fresh
//! keyspace, which is why the keyspace name is a parameter rather than a constant.
//!
//! Three tables are **user settings**, not projections: the edge writes them directly when a
//! client calls the API (they are not chat events, so they never go through the log), and a
//! replay does not recreate them — copy them when moving to a replayed keyspace.
//!
//! - `push_tokens (user_id, device_token) -> platform, updated_at`: a user's device tokens, one
//!   partition per user (`platform` is `android`, `ios` or `web`; `updated_at` is when the token
//!   was last registered). The notifier reads a user's tokens with
//!   `SELECT device_token, platform FROM push_tokens WHERE user_id = ?`.
//! - `push_token_owners (device_token) -> user_id`: which user a token belongs to, so that a token
//!   registered by another user moves to them. Written **only** with lightweight transactions
//!   (conditional statements), so never write it with a plain `INSERT`/`UPDATE`/`DELETE`.
//! - `room_mutes (user_id, room_id) -> muted`: a room is muted for a user when the row exists
//!   with `muted = true`; unmuting deletes the row. The notifier asks
//!   `SELECT muted FROM room_mutes WHERE user_id = ? AND room_id = ?`.
//!
//! Removing a token (what the notifier does when FCM reports it unregistered) is two statements:
//! `DELETE FROM push_tokens WHERE user_id = ? AND device_token = ?`, then
//! `DELETE FROM push_token_owners WHERE device_token = ? IF user_id = ?` (conditional, so a token
//! that has meanwhile moved to another user keeps its new owner).
//!
//! The column is `device_token`, not `token`: `token` is a CQL keyword (the `token()`
//! function) and would have to be quoted in every statement.

/// The keyspace production uses.
pub const DEFAULT_KEYSPACE: &str = "chat";

/// A keyspace name Cassandra would reject, or one that could smuggle CQL into a statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid keyspace name {0:?}: use 1-48 characters of [a-z0-9_], starting with a letter")]
pub struct InvalidKeyspace(pub String);

/// Checks that `name` is a plain, unquoted Cassandra keyspace name.
pub fn validate_keyspace(name: &str) -> Result<(), InvalidKeyspace> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if starts_with_letter && rest_ok && name.len() <= 48 {
        Ok(())
    } else {
        Err(InvalidKeyspace(name.to_owned()))
    }
}

/// The statements that create `keyspace` and all its tables, and add the columns a table made
/// by an earlier release lacks; each is safe to run again.
///
/// The keyspace keeps `replication_factor` copies of every row in `datacenter`
/// (`NetworkTopologyStrategy`, which, unlike `SimpleStrategy`, places them on distinct racks and
/// lets `LOCAL_QUORUM` and `LOCAL_SERIAL` count replicas per datacenter). An existing keyspace
/// keeps its replication: changing it is an `ALTER KEYSPACE` followed by a repair.
pub fn schema(
    keyspace: &str,
    datacenter: &str,
    replication_factor: u8,
) -> Result<Vec<String>, InvalidKeyspace> {
    validate_keyspace(keyspace)?;
    // A CQL string literal: a quote is written twice.
    let datacenter = datacenter.replace('\'', "''");
    let mut statements = vec![format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
         {{'class': 'NetworkTopologyStrategy', '{datacenter}': {replication_factor}}}"
    )];
    statements.extend(TABLES.iter().map(|t| t.replace("{ks}", keyspace)));
    statements.extend(ADDED_COLUMNS.iter().map(|(table, column, kind)| {
        format!("ALTER TABLE {keyspace}.{table} ADD IF NOT EXISTS {column} {kind}")
    }));
    Ok(statements)
}

/// Table definitions; `{ks}` stands for the keyspace.
const TABLES: &[&str] = &[
    // One row per room: what GET /api/rooms/{id} and the room list show. `last_*` describe the
    // latest CHAT (a deleted one as its tombstone), `last_event_seq` the latest stored event.
    "CREATE TABLE IF NOT EXISTS {ks}.rooms (
        room_id uuid PRIMARY KEY,
        kind text,
        name text,
        created_by text,
        created_at timestamp,
        members set<text>,
        last_event_seq bigint,
        updated_at timestamp,
        last_message_id bigint,
        last_sender_id text,
        last_content text,
        last_deleted boolean,
        last_sent_at timestamp
    )",
    // A user's rooms: the partition read for their room list.
    "CREATE TABLE IF NOT EXISTS {ks}.user_rooms (
        user_id text,
        room_id uuid,
        joined_at timestamp,
        PRIMARY KEY (user_id, room_id)
    )",
    // Messages and system entries, one partition per room and time bucket, newest first, so a
    // history page is one partition read. A reply keeps its quote (`reply_*`, as sent); an edit
    // replaces `content` and sets `edited_at`; `reactions` maps "{userId} {emoji}" to the
    // sequence of the REACTION that added it, one cell per pair, so adding and taking back are
    // ordered by their write timestamps like every other cell. `user_ids` is frozen (one cell): the elements of a
    // non-frozen list are keyed by write-time UUIDs, so writing a row again would repeat them,
    // and the projector re-applies events.
    "CREATE TABLE IF NOT EXISTS {ks}.messages (
        room_id uuid,
        bucket int,
        message_id bigint,
        kind text,
        sender_id text,
        content text,
        user_ids frozen<list<text>>,
        deleted boolean,
        sent_at timestamp,
        client_message_id text,
        reply_to_id bigint,
        reply_sender_id text,
        reply_content text,
        mentions frozen<list<text>>,
        edited_at timestamp,
        reactions map<text, bigint>,
        PRIMARY KEY ((room_id, bucket), message_id)
    ) WITH CLUSTERING ORDER BY (message_id DESC)",
    // Which buckets a room has, keyed by the first message id in each: finds the bucket of any
    // message id and the next older bucket without scanning empty ones.
    "CREATE TABLE IF NOT EXISTS {ks}.room_buckets (
        room_id uuid,
        first_message_id bigint,
        bucket int,
        PRIMARY KEY (room_id, first_message_id)
    ) WITH CLUSTERING ORDER BY (first_message_id DESC)",
    // The message a (sender, clientMessageId) produced: idempotent resends past JetStream's
    // deduplication window.
    "CREATE TABLE IF NOT EXISTS {ks}.client_messages (
        room_id uuid,
        sender_id text,
        client_message_id text,
        message_id bigint,
        PRIMARY KEY ((room_id, sender_id), client_message_id)
    )",
    // How far each projector has applied the log: read-your-writes waits on this.
    "CREATE TABLE IF NOT EXISTS {ks}.projector_progress (
        projector text PRIMARY KEY,
        applied_seq bigint
    )",
    // User settings (see the module documentation): written by the edge, not by the projector.
    // A user's push tokens, one partition per user: what the notifier sends to.
    "CREATE TABLE IF NOT EXISTS {ks}.push_tokens (
        user_id text,
        device_token text,
        platform text,
        updated_at timestamp,
        PRIMARY KEY (user_id, device_token)
    )",
    // The one user a push token belongs to; changed only with lightweight transactions.
    "CREATE TABLE IF NOT EXISTS {ks}.push_token_owners (
        device_token text PRIMARY KEY,
        user_id text
    )",
    // The rooms a user muted: a row with `muted = true`; unmuting deletes it.
    "CREATE TABLE IF NOT EXISTS {ks}.room_mutes (
        user_id text,
        room_id uuid,
        muted boolean,
        PRIMARY KEY (user_id, room_id)
    )",
];

/// Columns added to tables after their first release, as `(table, column, type)`: a keyspace
/// created before them gets them from [`schema`] too (`ALTER TABLE ... ADD IF NOT EXISTS`).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("messages", "reply_to_id", "bigint"),
    ("messages", "reply_sender_id", "text"),
    ("messages", "reply_content", "text"),
    ("messages", "mentions", "frozen<list<text>>"),
    ("messages", "edited_at", "timestamp"),
    ("messages", "reactions", "map<text, bigint>"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_names_are_checked_before_use() {
        assert!(validate_keyspace("chat").is_ok());
        assert!(validate_keyspace("t_0a1b").is_ok());
        assert!(validate_keyspace("").is_err());
        assert!(validate_keyspace("1chat").is_err());
        assert!(validate_keyspace("chat; DROP KEYSPACE x").is_err());
        assert!(validate_keyspace(&"a".repeat(49)).is_err());
    }

    #[test]
    fn schema_targets_the_given_keyspace() {
        let statements = schema("t_x", "datacenter1", 3).expect("valid");
        assert!(statements[0].starts_with("CREATE KEYSPACE IF NOT EXISTS t_x "));
        assert!(statements[0].ends_with("{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}"));
        assert!(statements[1..].iter().all(|s| s.contains(" t_x.")));
        assert!(statements.iter().all(|s| !s.contains("{ks}")));
    }

    #[test]
    fn a_quote_in_the_datacenter_stays_inside_its_literal() {
        let statements = schema("t_x", "dc'x", 1).expect("valid");
        assert!(statements[0].contains("'dc''x': 1}"));
    }

    #[test]
    fn user_settings_tables_are_created() {
        let statements = schema("t_x", "datacenter1", 1).expect("valid");
        for table in ["push_tokens", "push_token_owners", "room_mutes"] {
            let create = format!("CREATE TABLE IF NOT EXISTS t_x.{table} (");
            assert!(statements.iter().any(|s| s.starts_with(&create)), "{table}");
        }
    }
}
