//! The Cassandra schema of the projections: one keyspace, its tables, created idempotently.
//!
//! Every table is a projection of the event log and can be rebuilt by replaying it into a fresh
//! keyspace, which is why the keyspace name is a parameter rather than a constant.

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

/// The statements that create `keyspace` and all its tables; each is safe to run again.
pub fn schema(keyspace: &str, replication_factor: u8) -> Result<Vec<String>, InvalidKeyspace> {
    validate_keyspace(keyspace)?;
    let mut statements = vec![format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
         {{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
    )];
    statements.extend(TABLES.iter().map(|t| t.replace("{ks}", keyspace)));
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
    // history page is one partition read. `user_ids` is frozen (one cell): the elements of a
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
        let statements = schema("t_x", 1).expect("valid");
        assert!(statements[0].starts_with("CREATE KEYSPACE IF NOT EXISTS t_x "));
        assert!(statements[1..].iter().all(|s| s.contains(" t_x.")));
        assert!(statements.iter().all(|s| !s.contains("{ks}")));
    }
}
