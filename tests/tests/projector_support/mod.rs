//! Helpers shared by the projector and replay tests: publishing envelopes, running the projector
//! in-process, waiting for its progress, and reading whole tables for comparison.

// Each test binary that includes this module uses a different subset of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chat_platform::connect;
use chat_platform::settings::CassandraSettings;
use chat_schemas::{encode, ChatEvent, Envelope, MessageId, RoomId, Timestamp};
use chat_tests::TestEnv;
pub use chat_tests::{chat, user};
use futures::StreamExt;
use projector::{ProjectorError, Settings};
use scylla::client::session::Session;
use scylla::value::Row;
use tokio::task::JoinHandle;

/// Milliseconds in a day: the default bucket length.
pub const DAY: i64 = 86_400_000;

/// A day well inside the range of `i32` buckets (2024-10-03).
pub const D: i64 = 20_000;

/// Every table the projector writes.
pub const TABLES: [&str; 6] = [
    "rooms",
    "user_rooms",
    "messages",
    "room_buckets",
    "client_messages",
    "projector_progress",
];

pub fn id(seq: u64) -> MessageId {
    MessageId::from_sequence(seq).expect("non-zero")
}

/// An envelope by `actor` at `millis_into_day` on `day`.
pub fn at(room: RoomId, actor: &str, day: i64, millis_into_day: i64, event: ChatEvent) -> Envelope {
    Envelope {
        at: Timestamp(day * DAY + millis_into_day),
        ..Envelope::new(room, user(actor), event)
    }
}

/// Publishes with the event id as deduplication id; returns the stream sequence.
pub async fn publish(env: &TestEnv, envelope: &Envelope) -> u64 {
    let payload = encode(envelope).expect("encode");
    publish_bytes(
        env,
        &envelope.room_id,
        payload,
        &envelope.event_id.to_string(),
    )
    .await
}

/// Publishes arbitrary bytes on a room's subject; returns the stream sequence.
pub async fn publish_bytes(env: &TestEnv, room: &RoomId, payload: Vec<u8>, msg_id: &str) -> u64 {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    env.jetstream
        .publish_with_headers(env.log.room_subject(room), headers, payload.into())
        .await
        .expect("publish")
        .await
        .expect("durable ack")
        .sequence
}

/// The projector's settings for `env`, with the default `[projector]` section.
pub fn settings(env: &TestEnv) -> Settings {
    let mut settings = Settings::load().expect("projector settings");
    settings.nats = env.nats_settings.clone();
    settings.cassandra = env.cassandra_settings.clone();
    settings.projector = projector::ProjectorSettings {
        health_listen: String::new(),
        ..projector::ProjectorSettings::default()
    };
    settings
}

/// A projector running in this process.
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ProjectorError>>,
}

impl Running {
    /// Starts `projector::run` in the background.
    pub fn start(settings: Settings) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(projector::run(settings, async move {
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            task,
        }
    }

    /// Whether it is still running (it never stops by itself).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Asks it to stop and waits for a clean exit.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("the projector stops within 30 s")
            .expect("the projector task does not panic");
        result.expect("the projector exits cleanly");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sequence `projector` has recorded as applied in `keyspace` (0 before its first batch).
pub async fn applied(session: &Session, keyspace: &str, projector: &str) -> u64 {
    try_applied(session, keyspace, projector)
        .await
        .unwrap_or_else(|e| panic!("read progress: {e}"))
}

/// [`applied`], or why it cannot be read yet (e.g. the keyspace is still being created).
async fn try_applied(session: &Session, keyspace: &str, projector: &str) -> Result<u64, String> {
    let result = session
        .query_unpaged(
            format!("SELECT applied_seq FROM {keyspace}.projector_progress WHERE projector = ?"),
            (projector,),
        )
        .await
        .map_err(|e| e.to_string())?
        .into_rows_result()
        .map_err(|e| e.to_string())?;
    let row = result
        .maybe_first_row::<(Option<i64>,)>()
        .map_err(|e| e.to_string())?;
    Ok(row
        .and_then(|(seq,)| seq)
        .map_or(0, |seq| u64::try_from(seq).expect("positive")))
}

/// Waits until the default projector has recorded `seq` as applied in the test's keyspace.
pub async fn wait_applied(env: &TestEnv, seq: u64) {
    wait_applied_in(&env.cassandra, &env.id, "projector", seq).await;
}

/// Waits until `projector` has recorded `seq` as applied in `keyspace`.
pub async fn wait_applied_in(session: &Session, keyspace: &str, projector: &str, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let current = try_applied(session, keyspace, projector).await;
        if current.as_ref().is_ok_and(|applied| *applied >= seq) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{projector} applied only up to {current:?} in {keyspace}, waited for {seq}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits for an announcement of at least `seq` on `subscriber`; returns the payloads seen.
pub async fn wait_announced(subscriber: &mut async_nats::Subscriber, seq: u64) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = Duration::from_secs(60);
    tokio::time::timeout(deadline, async {
        while let Some(message) = subscriber.next().await {
            let text = String::from_utf8(message.payload.to_vec()).expect("ASCII payload");
            let announced: u64 = text.parse().expect("a decimal sequence");
            seen.push(text);
            if announced >= seq {
                return;
            }
        }
        panic!("progress subscription ended");
    })
    .await
    .unwrap_or_else(|_| panic!("no announcement of {seq}; saw {seen:?}"));
    seen
}

/// Every row of every projector table in `keyspace`, each table's rows printed and sorted, so two
/// keyspaces compare equal exactly when their contents are.
pub async fn snapshot(session: &Session, keyspace: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut tables = BTreeMap::new();
    for table in TABLES {
        let pager = session
            .query_iter(format!("SELECT * FROM {keyspace}.{table}"), ())
            .await
            .unwrap_or_else(|e| panic!("select {table}: {e}"));
        let mut rows: Vec<String> = pager
            .rows_stream::<Row>()
            .expect("untyped rows")
            .map(|row| format!("{:?}", row.expect("row").columns))
            .collect()
            .await;
        rows.sort();
        tables.insert(table, rows);
    }
    tables
}

/// A keyspace a test creates besides its own, dropped when this goes out of scope.
pub struct ExtraKeyspace {
    pub name: String,
    cassandra: CassandraSettings,
}

impl ExtraKeyspace {
    /// Reserves `{env id}_{suffix}`.
    pub fn new(env: &TestEnv, suffix: &str) -> Self {
        Self {
            name: format!("{}_{suffix}", env.id),
            cassandra: env.cassandra_settings.clone(),
        }
    }
}

impl Drop for ExtraKeyspace {
    /// Drops the keyspace from a thread of its own: the test's runtime may be blocked here.
    fn drop(&mut self) {
        let cassandra = self.cassandra.clone();
        let statement = format!("DROP KEYSPACE IF EXISTS {}", self.name);
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async {
                if let Ok(session) = connect::cassandra(&cassandra).await {
                    if let Err(e) = session.query_unpaged(statement.clone(), ()).await {
                        eprintln!("cleanup: {statement}: {e}");
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Publishes a log with every kind of event and every corner the projector handles — several
/// days, a slow edge clock, deletes of older and latest messages, a leave and a re-invite, a
/// direct room, client message ids, an undecodable payload, an unknown type, presence,
/// reactions, edits and a reply with a mention — and returns the last sequence.
pub async fn publish_mixed_log(env: &TestEnv) -> u64 {
    let group = RoomId::random();
    let direct = RoomId::random();
    let members = vec![user("alice"), user("bob"), user("carol")];
    let created = ChatEvent::RoomCreated {
        kind: chat_schemas::RoomKind::Group,
        name: Some("team".into()),
        members,
    };
    publish(env, &at(group, "alice", D, 1_000, created)).await;
    let first = publish(env, &at(group, "bob", D, 2_000, chat("morning"))).await;
    let with_id = ChatEvent::Chat {
        content: "with id".into(),
        client_message_id: Some("bob-1".into()),
        reply_to: None,
        mentions: Vec::new(),
    };
    publish(env, &at(group, "bob", D, 3_000, with_id)).await;
    let invite = ChatEvent::Invite {
        user_ids: vec![user("dave")],
    };
    publish(env, &at(group, "alice", D, 4_000, invite)).await;
    publish(env, &at(group, "carol", D + 1, 1_000, chat("next day"))).await;
    let leave = ChatEvent::Leave {
        user_id: user("carol"),
        read_count: 2,
    };
    publish(env, &at(group, "carol", D + 1, 2_000, leave)).await;
    publish_bytes(env, &group, b"\xc1 not an envelope".to_vec(), "garbage-1").await;
    publish(env, &at(group, "dave", D, 9_000, chat("slow clock"))).await;
    let unknown = at(group, "alice", D + 1, 3_000, ChatEvent::Unknown);
    publish(env, &unknown).await;
    let out = ChatEvent::Out {
        user_id: user("bob"),
        edge: None,
    };
    publish(env, &at(group, "bob", D + 1, 4_000, out)).await;
    let reinvite = ChatEvent::Invite {
        user_ids: vec![user("carol")],
    };
    publish(env, &at(group, "alice", D + 2, 1_000, reinvite)).await;
    let latest = publish(env, &at(group, "carol", D + 2, 2_000, chat("back again"))).await;
    let delete = ChatEvent::Delete {
        message_ids: vec![id(first), id(latest)],
    };
    publish(env, &at(group, "bob", D + 2, 3_000, delete)).await;

    let pair = ChatEvent::RoomCreated {
        kind: chat_schemas::RoomKind::Direct,
        name: None,
        members: vec![user("alice"), user("erin")],
    };
    publish(env, &at(direct, "alice", D + 2, 4_000, pair)).await;
    let hello = ChatEvent::Chat {
        content: "hi erin".into(),
        client_message_id: Some("alice-9".into()),
        reply_to: None,
        mentions: Vec::new(),
    };
    let hello = publish(env, &at(direct, "alice", D + 2, 5_000, hello)).await;
    publish_reactions_edits_and_a_reply(env, direct, hello, D + 2).await
}

/// In a room whose CHAT `hello` by alice on `day` has been stored: reactions to it (one taken
/// back), a reply by erin that mentions alice, an edit of `hello` (no longer the latest) and one
/// of the reply (the latest). Returns the last sequence.
pub async fn publish_reactions_edits_and_a_reply(
    env: &TestEnv,
    room: RoomId,
    hello: u64,
    day: i64,
) -> u64 {
    let reaction = |user_id: &str, emoji: &str, added| ChatEvent::Reaction {
        target_id: id(hello),
        user_id: user(user_id),
        emoji: emoji.into(),
        added,
    };
    publish(
        env,
        &at(room, "erin", day, 6_000, reaction("erin", "👍", true)),
    )
    .await;
    publish(
        env,
        &at(room, "alice", day, 7_000, reaction("alice", "❤️", true)),
    )
    .await;
    publish(
        env,
        &at(room, "erin", day, 8_000, reaction("erin", "👍", false)),
    )
    .await;
    publish(
        env,
        &at(room, "erin", day, 9_000, reaction("erin", "😂", true)),
    )
    .await;
    let reply = ChatEvent::Chat {
        content: "안녕하세요!".into(),
        client_message_id: None,
        reply_to: Some(chat_schemas::Quote::new(
            id(hello),
            user("alice"),
            "hi erin",
        )),
        mentions: vec![user("alice")],
    };
    let reply = publish(env, &at(room, "erin", day, 10_000, reply)).await;
    let edit_hello = ChatEvent::Edit {
        target_id: id(hello),
        content: "hi erin 👋".into(),
    };
    publish(env, &at(room, "alice", day, 11_000, edit_hello)).await;
    let edit_reply = ChatEvent::Edit {
        target_id: id(reply),
        content: "안녕하세요, 반가워요!".into(),
    };
    publish(env, &at(room, "erin", day, 12_000, edit_reply)).await
}
