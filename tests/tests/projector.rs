//! The projector against the real servers: envelopes published straight to JetStream, rows read
//! back from Cassandra.

mod projector_support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chat_schemas::{ChatEvent, Envelope, RoomId, RoomKind};
use chat_tests::{binary, ServiceProcess, TestEnv};
use futures::StreamExt;
use projector_support::*;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

/// A `rooms` row.
type RoomRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<CqlTimestamp>,
    Option<Vec<String>>,
    Option<i64>,
    Option<CqlTimestamp>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<bool>,
    Option<CqlTimestamp>,
);

async fn room_row(env: &TestEnv, room: RoomId) -> RoomRow {
    let result = env
        .cassandra
        .query_unpaged(
            format!(
                "SELECT kind, name, created_by, created_at, members, last_event_seq, updated_at, \
                 last_message_id, last_sender_id, last_content, last_deleted, last_sent_at \
                 FROM {}.rooms WHERE room_id = ?",
                env.id
            ),
            (room.as_uuid(),),
        )
        .await
        .expect("select room")
        .into_rows_result()
        .expect("rows");
    result.single_row::<RoomRow>().expect("one rooms row")
}

/// A `messages` row: id, kind, sender, content, user ids, deleted, sent at, client message id.
type MessageRow = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<String>>,
    Option<bool>,
    Option<CqlTimestamp>,
    Option<String>,
);

/// The rows of one history partition, newest first.
async fn messages(env: &TestEnv, room: RoomId, bucket: i64) -> Vec<MessageRow> {
    let bucket = i32::try_from(bucket).expect("bucket fits");
    let result = env
        .cassandra
        .query_unpaged(
            format!(
                "SELECT message_id, kind, sender_id, content, user_ids, deleted, sent_at, \
                 client_message_id FROM {}.messages WHERE room_id = ? AND bucket = ?",
                env.id
            ),
            (room.as_uuid(), bucket),
        )
        .await
        .expect("select messages")
        .into_rows_result()
        .expect("rows");
    result
        .rows::<MessageRow>()
        .expect("typed rows")
        .collect::<Result<_, _>>()
        .expect("row values")
}

/// The room's bucket starts, newest first: (first message id, bucket).
async fn buckets(env: &TestEnv, room: RoomId) -> Vec<(i64, i32)> {
    let result = env
        .cassandra
        .query_unpaged(
            format!(
                "SELECT first_message_id, bucket FROM {}.room_buckets WHERE room_id = ?",
                env.id
            ),
            (room.as_uuid(),),
        )
        .await
        .expect("select buckets")
        .into_rows_result()
        .expect("rows");
    result
        .rows::<(i64, i32)>()
        .expect("typed rows")
        .collect::<Result<_, _>>()
        .expect("row values")
}

/// The rooms in a user's list.
async fn user_rooms(env: &TestEnv, user: &str) -> BTreeSet<Uuid> {
    let result = env
        .cassandra
        .query_unpaged(
            format!(
                "SELECT room_id FROM {}.user_rooms WHERE user_id = ?",
                env.id
            ),
            (user,),
        )
        .await
        .expect("select user rooms")
        .into_rows_result()
        .expect("rows");
    result
        .rows::<(Uuid,)>()
        .expect("typed rows")
        .map(|row| row.expect("row").0)
        .collect()
}

fn ts(envelope: &Envelope) -> Option<CqlTimestamp> {
    Some(CqlTimestamp(envelope.at.millis()))
}

fn seq(n: u64) -> i64 {
    i64::try_from(n).expect("fits")
}

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}

#[tokio::test]
async fn every_event_type_is_projected() {
    let env = TestEnv::new().await;
    let group = RoomId::random();
    let direct = RoomId::random();
    let created = at(
        group,
        "alice",
        D,
        1_000,
        ChatEvent::RoomCreated {
            kind: RoomKind::Group,
            name: Some("team".into()),
            members: vec![user("alice"), user("bob"), user("carol")],
        },
    );
    let hello = at(
        group,
        "bob",
        D,
        2_000,
        ChatEvent::Chat {
            content: "hello".into(),
            client_message_id: Some("bob-1".into()),
            reply_to: None,
            mentions: Vec::new(),
        },
    );
    let invite = at(
        group,
        "alice",
        D,
        3_000,
        ChatEvent::Invite {
            user_ids: vec![user("dave")],
        },
    );
    let leave = at(
        group,
        "carol",
        D,
        4_000,
        ChatEvent::Leave {
            user_id: user("carol"),
            read_count: 1,
        },
    );
    let info = at(
        group,
        "bob",
        D,
        4_500,
        ChatEvent::Info {
            user_id: user("bob"),
            read_count: 0,
            last_read_message_id: None,
            edge: None,
        },
    );
    let second = at(group, "alice", D, 5_000, chat("second"));
    let pair = at(
        direct,
        "alice",
        D,
        6_000,
        ChatEvent::RoomCreated {
            kind: RoomKind::Direct,
            name: None,
            members: vec![user("alice"), user("bob")],
        },
    );
    let s_created = publish(&env, &created).await;
    let s_hello = publish(&env, &hello).await;
    let s_invite = publish(&env, &invite).await;
    let s_leave = publish(&env, &leave).await;
    publish(&env, &info).await;
    let s_second = publish(&env, &second).await;
    let s_pair = publish(&env, &pair).await;

    let running = Running::start(settings(&env));
    wait_applied(&env, s_pair).await;
    running.stop().await;

    assert_eq!(
        room_row(&env, group).await,
        (
            Some("GROUP".into()),
            Some("team".into()),
            Some("alice".into()),
            ts(&created),
            strings(&["alice", "bob", "dave"]),
            Some(seq(s_second)),
            ts(&second),
            Some(seq(s_second)),
            Some("alice".into()),
            Some("second".into()),
            Some(false),
            ts(&second),
        )
    );
    assert_eq!(
        messages(&env, group, D).await,
        vec![
            (
                seq(s_second),
                Some("CHAT".into()),
                Some("alice".into()),
                Some("second".into()),
                None,
                Some(false),
                ts(&second),
                None
            ),
            (
                seq(s_leave),
                Some("LEAVE".into()),
                Some("carol".into()),
                None,
                strings(&["carol"]),
                Some(false),
                ts(&leave),
                None
            ),
            (
                seq(s_invite),
                Some("INVITE".into()),
                Some("alice".into()),
                None,
                strings(&["dave"]),
                Some(false),
                ts(&invite),
                None
            ),
            (
                seq(s_hello),
                Some("CHAT".into()),
                Some("bob".into()),
                Some("hello".into()),
                None,
                Some(false),
                ts(&hello),
                Some("bob-1".into())
            ),
            (
                seq(s_created),
                Some("INVITE".into()),
                Some("alice".into()),
                None,
                strings(&["bob", "carol"]),
                Some(false),
                ts(&created),
                None
            ),
        ]
    );
    assert_eq!(
        buckets(&env, group).await,
        vec![(seq(s_created), i32::try_from(D).expect("fits"))]
    );

    let client_id = env
        .cassandra
        .query_unpaged(
            format!(
                "SELECT message_id FROM {}.client_messages \
                 WHERE room_id = ? AND sender_id = ? AND client_message_id = ?",
                env.id
            ),
            (group.as_uuid(), "bob", "bob-1"),
        )
        .await
        .expect("select client message")
        .into_rows_result()
        .expect("rows")
        .single_row::<(i64,)>()
        .expect("one row");
    assert_eq!(client_id, (seq(s_hello),));

    let both = BTreeSet::from([group.as_uuid(), direct.as_uuid()]);
    assert_eq!(user_rooms(&env, "alice").await, both);
    assert_eq!(user_rooms(&env, "bob").await, both);
    assert_eq!(user_rooms(&env, "carol").await, BTreeSet::new());
    assert_eq!(
        user_rooms(&env, "dave").await,
        BTreeSet::from([group.as_uuid()])
    );

    let (kind, name, _, _, members, last_event_seq, ..) = room_row(&env, direct).await;
    assert_eq!(kind.as_deref(), Some("DIRECT"));
    assert_eq!(name, None);
    assert_eq!(members, strings(&["alice", "bob"]));
    assert_eq!(last_event_seq, Some(seq(s_pair)));
    assert!(
        messages(&env, direct, D).await.is_empty(),
        "a direct room starts empty"
    );
    assert!(buckets(&env, direct).await.is_empty());
    assert_eq!(applied(&env.cassandra, &env.id, "projector").await, s_pair);
}

/// The reply, mention, edit and reaction columns of one `messages` row.
type AdditionsRow = (
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<Vec<String>>,
    Option<CqlTimestamp>,
    Option<std::collections::BTreeMap<String, i64>>,
);

async fn additions(env: &TestEnv, room: RoomId, bucket: i64, message_id: u64) -> AdditionsRow {
    let bucket = i32::try_from(bucket).expect("bucket fits");
    env.cassandra
        .query_unpaged(
            format!(
                "SELECT content, reply_to_id, reply_sender_id, reply_content, mentions, edited_at, \
                 reactions FROM {}.messages WHERE room_id = ? AND bucket = ? AND message_id = ?",
                env.id
            ),
            (room.as_uuid(), bucket, seq(message_id)),
        )
        .await
        .expect("select message")
        .into_rows_result()
        .expect("rows")
        .single_row::<AdditionsRow>()
        .expect("one messages row")
}

#[tokio::test]
async fn reactions_edits_replies_and_mentions_are_projected() {
    let env = TestEnv::new().await;
    let room = RoomId::random();
    let hello = publish(&env, &at(room, "alice", D, 5_000, chat("hi erin"))).await;
    let last = publish_reactions_edits_and_a_reply(&env, room, hello, D).await;
    let running = Running::start(settings(&env));
    wait_applied(&env, last).await;
    running.stop().await;

    let rows = messages(&env, room, D).await;
    assert_eq!(
        rows.len(),
        2,
        "reactions and edits are not history rows: {rows:?}"
    );
    let reply = u64::try_from(rows[0].0).expect("positive");
    let edited_at = |millis| Some(CqlTimestamp(D * DAY + millis));
    let (content, reply_to, reply_sender, reply_content, mentions, edited, reactions) =
        additions(&env, room, D, hello).await;
    assert_eq!(
        (
            content.as_deref(),
            reply_to,
            reply_sender,
            reply_content,
            mentions,
            edited
        ),
        (
            Some("hi erin 👋"),
            None,
            None,
            None,
            None,
            edited_at(11_000)
        )
    );
    let reactions = reactions.expect("reactions");
    assert_eq!(
        reactions.keys().collect::<Vec<_>>(),
        vec!["alice ❤️", "erin 😂"],
        "erin's 👍 was taken back"
    );
    assert!(
        reactions["alice ❤️"] < reactions["erin 😂"],
        "first use orders them"
    );

    let (content, reply_to, reply_sender, reply_content, mentions, edited, reactions) =
        additions(&env, room, D, reply).await;
    assert_eq!(
        (
            content.as_deref(),
            reply_to,
            reply_sender.as_deref(),
            reply_content.as_deref()
        ),
        (
            Some("안녕하세요, 반가워요!"),
            Some(seq(hello)),
            Some("alice"),
            Some("hi erin")
        ),
        "the quote is as it was sent, before the edit"
    );
    assert_eq!(
        (mentions, edited, reactions),
        (strings(&["alice"]), edited_at(12_000), None)
    );

    let (.., last_event_seq, _, last_id, last_sender, last_content, last_deleted, _) =
        room_row(&env, room).await;
    assert_eq!(
        (
            last_event_seq,
            last_id,
            last_sender.as_deref(),
            last_content.as_deref(),
            last_deleted
        ),
        (
            Some(seq(last)),
            Some(seq(reply)),
            Some("erin"),
            Some("안녕하세요, 반가워요!"),
            Some(false)
        ),
        "the room's last message follows the edit of the latest CHAT only"
    );
}

#[tokio::test]
async fn a_keyspace_made_before_replies_and_reactions_gets_their_columns() {
    let env = TestEnv::new().await;
    let old = ExtraKeyspace::new(&env, "old");
    for statement in [
        format!(
            "CREATE KEYSPACE {} WITH replication = {{'class': 'SimpleStrategy', \
             'replication_factor': 1}}",
            old.name
        ),
        format!(
            "CREATE TABLE {}.messages (room_id uuid, bucket int, message_id bigint, kind text, \
             sender_id text, content text, user_ids frozen<list<text>>, deleted boolean, \
             sent_at timestamp, client_message_id text, \
             PRIMARY KEY ((room_id, bucket), message_id))",
            old.name
        ),
    ] {
        env.cassandra
            .query_unpaged(statement, ())
            .await
            .expect("the old schema");
    }
    for _ in 0..2 {
        chat_platform::connect::apply_schema(&env.cassandra, &old.name, &env.cassandra_settings)
            .await
            .expect("the schema applies, also again");
    }
    let columns: BTreeSet<String> = env
        .cassandra
        .query_unpaged(
            "SELECT column_name FROM system_schema.columns \
             WHERE keyspace_name = ? AND table_name = 'messages'",
            (old.name.as_str(),),
        )
        .await
        .expect("columns")
        .into_rows_result()
        .expect("rows")
        .rows::<(String,)>()
        .expect("typed rows")
        .map(|row| row.expect("row").0)
        .collect();
    for added in [
        "reply_to_id",
        "reply_sender_id",
        "reply_content",
        "mentions",
        "edited_at",
        "reactions",
    ] {
        assert!(columns.contains(added), "{added} missing: {columns:?}");
    }
}

#[tokio::test]
async fn deleting_the_latest_message_tombstones_the_room() {
    let env = TestEnv::new().await;
    let room = RoomId::random();
    let first = at(room, "alice", D, 1_000, chat("one"));
    let latest = at(room, "bob", D, 2_000, chat("two"));
    let s_first = publish(&env, &first).await;
    let s_latest = publish(&env, &latest).await;
    let running = Running::start(settings(&env));
    wait_applied(&env, s_latest).await;

    let delete_older = at(
        room,
        "alice",
        D,
        3_000,
        ChatEvent::Delete {
            message_ids: vec![id(s_first)],
        },
    );
    let s_delete_older = publish(&env, &delete_older).await;
    wait_applied(&env, s_delete_older).await;
    let (.., last_event_seq, updated_at, last_id, last_sender, last_content, last_deleted, _) =
        room_row(&env, room).await;
    assert_eq!(last_event_seq, Some(seq(s_delete_older)));
    assert_eq!(updated_at, ts(&latest), "a delete is not new activity");
    assert_eq!(
        (last_id, last_sender, last_content, last_deleted),
        (
            Some(seq(s_latest)),
            Some("bob".into()),
            Some("two".into()),
            Some(false)
        ),
        "deleting an older message leaves the room's last message alone"
    );
    let rows = messages(&env, room, D).await;
    assert_eq!(
        (rows[1].0, &rows[1].3, rows[1].5),
        (seq(s_first), &None, Some(true))
    );

    let delete_latest = at(
        room,
        "bob",
        D,
        4_000,
        ChatEvent::Delete {
            message_ids: vec![id(s_latest)],
        },
    );
    let s_delete_latest = publish(&env, &delete_latest).await;
    wait_applied(&env, s_delete_latest).await;
    running.stop().await;
    let (.., last_event_seq, updated_at, last_id, last_sender, last_content, last_deleted, sent) =
        room_row(&env, room).await;
    assert_eq!(last_event_seq, Some(seq(s_delete_latest)));
    assert_eq!(updated_at, ts(&latest));
    assert_eq!(
        (last_id, last_sender, last_content, last_deleted, sent),
        (
            Some(seq(s_latest)),
            Some("bob".into()),
            None,
            Some(true),
            ts(&latest)
        ),
        "the room's last message is now a tombstone"
    );
    let rows = messages(&env, room, D).await;
    assert_eq!(
        (rows[0].0, &rows[0].3, rows[0].5),
        (seq(s_latest), &None, Some(true))
    );
}

#[tokio::test]
async fn a_chat_and_its_delete_in_one_batch_tombstone_the_room() {
    let env = TestEnv::new().await;
    let room = RoomId::random();
    let s_chat = publish(&env, &at(room, "alice", D, 1_000, chat("oops"))).await;
    let delete = ChatEvent::Delete {
        message_ids: vec![id(s_chat)],
    };
    let s_delete = publish(&env, &at(room, "alice", D, 2_000, delete)).await;
    let running = Running::start(settings(&env));
    wait_applied(&env, s_delete).await;
    running.stop().await;
    let (.., last_id, _, last_content, last_deleted, _) = room_row(&env, room).await;
    assert_eq!(
        (last_id, last_content, last_deleted),
        (Some(seq(s_chat)), None, Some(true))
    );
    let rows = messages(&env, room, D).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((&rows[0].3, rows[0].5), (&None, Some(true)));
}

#[tokio::test]
async fn buckets_follow_the_days_and_never_go_backwards() {
    let env = TestEnv::new().await;
    let room = RoomId::random();
    let created = ChatEvent::RoomCreated {
        kind: RoomKind::Group,
        name: Some("days".into()),
        members: vec![user("alice"), user("bob")],
    };
    let s1 = publish(&env, &at(room, "alice", D, 1_000, created)).await;
    let s2 = publish(&env, &at(room, "bob", D, 2_000, chat("day 0"))).await;
    let s3 = publish(&env, &at(room, "bob", D + 1, 1_000, chat("day 1"))).await;
    let s4 = publish(&env, &at(room, "alice", D, 3_000, chat("slow clock"))).await;
    let s5 = publish(&env, &at(room, "bob", D + 3, 1_000, chat("day 3"))).await;
    let running = Running::start(settings(&env));
    wait_applied(&env, s5).await;
    running.stop().await;

    let bucket = |day: i64| i32::try_from(day).expect("fits");
    assert_eq!(
        buckets(&env, room).await,
        vec![
            (seq(s5), bucket(D + 3)),
            (seq(s3), bucket(D + 1)),
            (seq(s1), bucket(D)),
        ]
    );
    let ids = |rows: Vec<MessageRow>| rows.into_iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(ids(messages(&env, room, D).await), vec![seq(s2), seq(s1)]);
    assert_eq!(
        ids(messages(&env, room, D + 1).await),
        vec![seq(s4), seq(s3)],
        "an edge with a slow clock writes into the room's current bucket"
    );
    assert_eq!(ids(messages(&env, room, D + 2).await), Vec::<i64>::new());
    assert_eq!(ids(messages(&env, room, D + 3).await), vec![seq(s5)]);

    // A fresh projector finds older messages' buckets in Cassandra.
    let delete = ChatEvent::Delete {
        message_ids: vec![id(s2), id(s3)],
    };
    let s6 = publish(&env, &at(room, "bob", D + 3, 2_000, delete)).await;
    let running = Running::start(settings(&env));
    wait_applied(&env, s6).await;
    running.stop().await;
    let deleted = |rows: Vec<MessageRow>| {
        rows.into_iter()
            .map(|r| (r.0, r.5 == Some(true)))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        deleted(messages(&env, room, D).await),
        vec![(seq(s2), true), (seq(s1), false)]
    );
    assert_eq!(
        deleted(messages(&env, room, D + 1).await),
        vec![(seq(s4), false), (seq(s3), true)]
    );
    assert_eq!(buckets(&env, room).await.len(), 3);
}

#[tokio::test]
async fn undecodable_and_unknown_events_are_skipped() {
    let env = TestEnv::new().await;
    let room = RoomId::random();
    let running = Running::start(settings(&env));
    publish_bytes(&env, &room, b"definitely not msgpack".to_vec(), "junk-1").await;
    publish(&env, &at(room, "alice", D, 1_000, ChatEvent::Unknown)).await;
    let last = publish(&env, &at(room, "alice", D, 2_000, chat("still here"))).await;
    wait_applied(&env, last).await;
    assert!(running.is_running(), "bad events never stop the projector");
    running.stop().await;
    let rows = messages(&env, room, D).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0, rows[0].3.as_deref()),
        (seq(last), Some("still here"))
    );
}

#[tokio::test]
async fn progress_is_announced_after_each_batch() {
    let env = TestEnv::new().await;
    let mut progress = env
        .nats
        .subscribe(env.log.progress_subject("projector"))
        .await
        .expect("subscribe");
    let room = RoomId::random();
    let running = Running::start(settings(&env));
    let first = publish(&env, &at(room, "alice", D, 1_000, chat("a"))).await;
    let seen = wait_announced(&mut progress, first).await;
    assert_eq!(seen.last(), Some(&first.to_string()));
    assert!(
        applied(&env.cassandra, &env.id, "projector").await >= first,
        "the row is written before the announcement"
    );
    let second = publish(&env, &at(room, "bob", D, 2_000, chat("b"))).await;
    wait_announced(&mut progress, second).await;
    running.stop().await;
}

#[tokio::test]
async fn applying_the_log_again_changes_nothing() {
    let env = TestEnv::new().await;
    let last = publish_mixed_log(&env).await;
    let running = Running::start(settings(&env));
    wait_applied(&env, last).await;
    running.stop().await;
    let once = snapshot(&env.cassandra, &env.id).await;
    assert!(!once["messages"].is_empty());

    // Forget the progress (TRUNCATE ignores write timestamps): the keyspace now looks behind the
    // consumer, which makes the projector read the whole log again, here one event per batch,
    // with a cache that starts from tables already holding every event.
    env.cassandra
        .query_unpaged(format!("TRUNCATE {}.projector_progress", env.id), ())
        .await
        .expect("truncate progress");
    let mut progress = env
        .nats
        .subscribe(env.log.progress_subject("projector"))
        .await
        .expect("subscribe");
    let mut one_by_one = settings(&env);
    one_by_one.projector.batch_size = 1;
    let running = Running::start(one_by_one);
    let seen = wait_announced(&mut progress, last).await;
    assert!(seen.len() > 1, "applied in several batches: {seen:?}");
    running.stop().await;
    assert_eq!(snapshot(&env.cassandra, &env.id).await, once);
}

#[tokio::test]
async fn a_projector_pointed_at_a_new_keyspace_fills_it_from_the_log() {
    let env = TestEnv::new().await;
    let last = publish_mixed_log(&env).await;
    let running = Running::start(settings(&env));
    wait_applied(&env, last).await;
    running.stop().await;

    // Same consumer, new keyspace: everything the consumer acked must still reach it.
    let fresh = ExtraKeyspace::new(&env, "fresh");
    let mut moved = settings(&env);
    moved.cassandra.keyspace = fresh.name.clone();
    let running = Running::start(moved);
    wait_applied_in(&env.cassandra, &fresh.name, "projector", last).await;
    running.stop().await;
    assert_eq!(
        snapshot(&env.cassandra, &fresh.name).await,
        snapshot(&env.cassandra, &env.id).await
    );
}

#[tokio::test]
async fn a_killed_projector_resumes_without_loss_or_duplicates() {
    let env = TestEnv::new().await;
    let rooms: Vec<RoomId> = (0..8).map(|_| RoomId::random()).collect();
    let mut expected_ids = BTreeSet::new();
    let mut last = 0;
    for (i, room) in rooms.iter().enumerate() {
        let created = ChatEvent::RoomCreated {
            kind: RoomKind::Group,
            name: Some(format!("room {i}")),
            members: vec![user("alice"), user("bob")],
        };
        expected_ids.insert(seq(publish(&env, &at(*room, "alice", D, 0, created)).await));
    }
    let publishing = Instant::now();
    for i in 0..4_000_i64 {
        let room = rooms[usize::try_from(i).expect("fits") % rooms.len()];
        let text = format!("message {i}");
        last = publish(&env, &at(room, "bob", D, i, chat(&text))).await;
        expected_ids.insert(seq(last));
    }
    eprintln!("published {last} events in {:?}", publishing.elapsed());

    let small_batches = [
        ("CHAT_PROJECTOR__BATCH_SIZE", "10"),
        ("CHAT_PROJECTOR__ACK_WAIT_MS", "2000"),
    ];
    let mut first = ServiceProcess::start("projector", &env, &small_batches);
    let deadline = Instant::now() + Duration::from_secs(60);
    while applied(&env.cassandra, &env.id, "projector").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the projector never applied a batch"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill();
    let at_kill = applied(&env.cassandra, &env.id, "projector").await;
    assert!(
        at_kill < last,
        "killed mid-stream (applied {at_kill} of {last})"
    );
    eprintln!("killed after applying {at_kill} of {last}");

    let mut second = ServiceProcess::start("projector", &env, &small_batches);
    wait_applied(&env, last).await;
    let status = second.terminate();
    assert!(
        status.success(),
        "SIGTERM ends the projector cleanly: {status}"
    );

    let result = env
        .cassandra
        .query_unpaged(format!("SELECT message_id FROM {}.messages", env.id), ())
        .await
        .expect("select ids")
        .into_rows_result()
        .expect("rows");
    let ids: Vec<i64> = result
        .rows::<(i64,)>()
        .expect("typed rows")
        .map(|row| row.expect("row").0)
        .collect();
    assert_eq!(ids.len(), expected_ids.len(), "no message row twice");
    assert_eq!(
        ids.into_iter().collect::<BTreeSet<_>>(),
        expected_ids,
        "no message lost"
    );
    for room in &rooms {
        let (.., last_id, _, _, _, _) = room_row(&env, *room).await;
        assert!(last_id.is_some_and(|id| expected_ids.contains(&id)));
    }
    let rebuilt = ExtraKeyspace::new(&env, "after_kill");
    projector::replay(&settings(&env), &rebuilt.name, std::future::pending())
        .await
        .expect("replay");
    assert_eq!(
        snapshot(&env.cassandra, &env.id).await,
        snapshot(&env.cassandra, &rebuilt.name).await,
        "the crashed and resumed projection equals a clean rebuild"
    );
}

#[tokio::test]
async fn failed_writes_are_retried_without_ack_or_redelivery() {
    let env = TestEnv::new().await;
    let room = RoomId::random();
    let mut settings = settings(&env);
    settings.projector.ack_wait_ms = 1_000;
    let running = Running::start(settings);
    let first = publish(&env, &at(room, "alice", D, 1_000, chat("before"))).await;
    wait_applied(&env, first).await;

    // Writes to `messages` now fail until the table is back.
    env.cassandra
        .query_unpaged(format!("DROP TABLE {}.messages", env.id), ())
        .await
        .expect("drop table");
    let mut progress = env
        .nats
        .subscribe(env.log.progress_subject("projector"))
        .await
        .expect("subscribe");
    let held = publish(&env, &at(room, "bob", D, 2_000, chat("held back"))).await;
    // Three ack waits: without in-progress acks JetStream would redeliver meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        applied(&env.cassandra, &env.id, "projector").await,
        first,
        "no progress while a write fails"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(10), progress.next())
            .await
            .is_err(),
        "no announcement while a write fails"
    );
    let stream = env
        .jetstream
        .get_stream(env.log.stream_name())
        .await
        .expect("stream");
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("projector").await.expect("consumer");
    let info = consumer.info().await.expect("consumer info");
    assert_eq!(info.num_ack_pending, 1, "the failing batch is not acked");
    assert_eq!(info.num_redelivered, 0, "in-progress acks keep it assigned");

    chat_platform::connect::apply_schema(&env.cassandra, &env.id, &env.cassandra_settings)
        .await
        .expect("recreate the table");
    wait_announced(&mut progress, held).await;
    assert!(running.is_running());
    running.stop().await;
    let rows = messages(&env, room, D).await;
    assert_eq!(
        rows.iter()
            .map(|r| (r.0, r.3.as_deref()))
            .collect::<Vec<_>>(),
        vec![(seq(held), Some("held back"))],
        "the held-back message is written once the table is back"
    );
    assert_eq!(applied(&env.cassandra, &env.id, "projector").await, held);
}

#[tokio::test]
async fn chat_tail_prints_decoded_events_as_json_lines() {
    let env = TestEnv::new().await;
    let room = RoomId::random();
    let other = RoomId::random();
    let s1 = publish(&env, &at(room, "alice", D, 1_000, chat("first"))).await;
    publish(&env, &at(other, "bob", D, 1_500, chat("elsewhere"))).await;
    publish_bytes(&env, &room, b"junk".to_vec(), "junk-2").await;
    let s3 = publish(&env, &at(room, "bob", D, 2_000, chat("second"))).await;

    let child = tokio::process::Command::new(binary("chat-tail"))
        .args([
            "--room",
            &room.to_string(),
            "--since-seq",
            "1",
            "--limit",
            "2",
        ])
        .envs(env.service_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start chat-tail");
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("chat-tail stops after --limit events")
        .expect("chat-tail output");
    assert!(output.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["seq"], s1);
    assert_eq!(lines[0]["room_id"], room.to_string());
    assert_eq!(lines[0]["event"]["type"], "CHAT");
    assert_eq!(lines[0]["event"]["content"], "first");
    assert_eq!(lines[1]["seq"], s3);
    assert_eq!(lines[1]["actor"], "bob");
}
