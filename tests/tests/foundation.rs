//! The foundation against the real servers: events through JetStream, rows through the CQL
//! schema, keys in Redis, and test environments that do not see each other.

use async_nats::jetstream::{self, consumer};
use chat_schemas::{decode, encode, ChatEvent, Envelope, MessageId, RoomId};
use chat_tests::{user, TestEnv};
use futures::StreamExt;
use scylla::value::CqlTimestamp;

fn chat(room: RoomId, text: &str) -> Envelope {
    Envelope::new(room, user("alice"), chat_tests::chat(text))
}

/// Publishes with the event id as JetStream's deduplication id and returns the stream sequence.
async fn publish(env: &TestEnv, envelope: &Envelope) -> (u64, bool) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", envelope.event_id.to_string().as_str());
    let ack = env
        .jetstream
        .publish_with_headers(
            env.log.room_subject(&envelope.room_id),
            headers,
            encode(envelope).expect("encode").into(),
        )
        .await
        .expect("publish")
        .await
        .expect("durable ack");
    (ack.sequence, ack.duplicate)
}

#[tokio::test]
async fn an_event_published_to_jetstream_reads_back_decoded() {
    let env = TestEnv::new().await;
    let room = RoomId::random();
    let sent = chat(room, "안녕하세요");
    let (sequence, duplicate) = publish(&env, &sent).await;
    assert_eq!(sequence, 1);
    assert!(!duplicate);

    let stream = env
        .jetstream
        .get_stream(env.log.stream_name())
        .await
        .expect("stream exists");
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: env.log.room_subject(&room),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .expect("fetch");
    let message = messages
        .next()
        .await
        .expect("one message")
        .expect("message");
    assert_eq!(env.log.room_of_subject(&message.subject), Some(room));
    let received = decode(&message.payload).expect("decodes");
    assert_eq!(received, sent);
    assert_eq!(message.info().expect("jetstream info").stream_sequence, 1);
}

#[tokio::test]
async fn a_retried_publish_is_stored_once() {
    let env = TestEnv::new().await;
    let sent = chat(RoomId::random(), "once");
    let (first, _) = publish(&env, &sent).await;
    let (again, duplicate) = publish(&env, &sent).await;
    assert!(duplicate, "JetStream must flag the retry as a duplicate");
    assert_eq!(first, again);
    let mut stream = env
        .jetstream
        .get_stream(env.log.stream_name())
        .await
        .expect("stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
}

#[tokio::test]
async fn test_environments_do_not_see_each_other() {
    let a = TestEnv::new().await;
    let b = TestEnv::new().await;
    let room = RoomId::random();
    publish(&a, &chat(room, "for a only")).await;

    let mut stream_b = b
        .jetstream
        .get_stream(b.log.stream_name())
        .await
        .expect("stream");
    assert_eq!(stream_b.info().await.expect("info").state.messages, 0);

    let stream_name = a.log.stream_name().to_owned();
    let keyspace = a.id.clone();
    let jetstream: jetstream::Context = b.jetstream.clone();
    drop(a);
    assert!(
        jetstream.get_stream(&stream_name).await.is_err(),
        "a dropped environment deletes its stream"
    );
    let rows = b
        .cassandra
        .query_unpaged(
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .expect("query")
        .into_rows_result()
        .expect("rows");
    assert_eq!(
        rows.rows_num(),
        0,
        "a dropped environment drops its keyspace"
    );
}

#[tokio::test]
async fn a_message_row_is_written_and_read_through_the_schema() {
    let env = TestEnv::new().await;
    let room = RoomId::random();
    let id = MessageId::from_sequence(7).expect("non-zero");
    let insert = format!(
        "INSERT INTO {}.messages (room_id, bucket, message_id, kind, sender_id, content, deleted, sent_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        env.id
    );
    let prepared = env.cassandra.prepare(insert).await.expect("prepare");
    env.cassandra
        .execute_unpaged(
            &prepared,
            (
                room.as_uuid(),
                20_000_i32,
                i64::try_from(id.sequence()).expect("fits"),
                "CHAT",
                "alice",
                "hello",
                false,
                CqlTimestamp(1_700_000_000_000),
            ),
        )
        .await
        .expect("insert");

    let select = format!(
        "SELECT message_id, sender_id, content, deleted, sent_at FROM {}.messages \
         WHERE room_id = ? AND bucket = ?",
        env.id
    );
    let rows = env
        .cassandra
        .query_unpaged(select, (room.as_uuid(), 20_000_i32))
        .await
        .expect("select")
        .into_rows_result()
        .expect("rows");
    let found: Vec<(i64, String, String, bool, CqlTimestamp)> = rows
        .rows()
        .expect("typed rows")
        .collect::<Result<_, _>>()
        .expect("row values");
    assert_eq!(
        found,
        vec![(
            7,
            "alice".to_owned(),
            "hello".to_owned(),
            false,
            CqlTimestamp(1_700_000_000_000)
        )]
    );
}

#[tokio::test]
async fn redis_keys_live_under_the_test_prefix() {
    let env = TestEnv::new().await;
    let key = env.redis_key("unread:1");
    let mut redis = env.redis.clone();
    let added: i64 = redis::cmd("SADD")
        .arg(&key)
        .arg(&["bob", "carol", "bob"][..])
        .query_async(&mut redis)
        .await
        .expect("sadd");
    assert_eq!(added, 2);
    let count: i64 = redis::cmd("SCARD")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .expect("scard");
    assert_eq!(count, 2);
    assert!(key.starts_with(&env.id));
}

/// A pull with a linger gathers the events that arrive within it into one batch while the log
/// is busy, and hands out a batch at once after an idle spell or once its first event is
/// awaited; without one, a batch is only what had already arrived.
#[tokio::test]
async fn a_lingering_pull_gathers_events_that_arrive_within_the_linger() {
    use std::time::Duration;

    use chat_platform::pull::Pull;

    let env = TestEnv::new().await;
    let stream = env
        .jetstream
        .get_stream(env.log.stream_name())
        .await
        .expect("stream exists");
    let consumer_of = |room: RoomId, name: &'static str| {
        let stream = &stream;
        let subject = env.log.room_subject(&room);
        async move {
            stream
                .create_consumer(consumer::pull::Config {
                    durable_name: Some(name.into()),
                    filter_subject: subject,
                    ack_policy: consumer::AckPolicy::None,
                    ..Default::default()
                })
                .await
                .expect("consumer")
        }
    };
    // Two events of `room`, 100 ms apart.
    let spaced = |room: RoomId, first: &'static str, second: &'static str| {
        let env = &env;
        async move {
            publish(env, &chat(room, first)).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            publish(env, &chat(room, second)).await;
        }
    };
    let contents = |batch: Vec<jetstream::Message>| -> Vec<String> {
        batch
            .iter()
            .map(|m| match decode(&m.payload).expect("decodes").event {
                ChatEvent::Chat { content, .. } => content,
                other => panic!("not a CHAT: {other:?}"),
            })
            .collect()
    };
    let wait = Duration::from_secs(5);

    let room = RoomId::random();
    let mut eager = Pull::new(consumer_of(room, "eager").await, 16);
    let (batch, ()) = tokio::join!(eager.next_batch(wait, 16), spaced(room, "a", "b"));
    assert_eq!(
        contents(batch.expect("batch")),
        ["a"],
        "only what had arrived"
    );
    let rest = eager.next_batch(wait, 16).await.expect("batch");
    assert_eq!(contents(rest), ["b"], "the second in the next batch");

    let room = RoomId::random();
    let mut lingering =
        Pull::new(consumer_of(room, "lingering").await, 16).with_linger(Duration::from_millis(500));
    let (batch, ()) = tokio::join!(lingering.next_batch(wait, 16), spaced(room, "c", "d"));
    assert_eq!(
        contents(batch.expect("batch")),
        ["c"],
        "the first batch follows no busy spell: handed out at once"
    );
    assert_eq!(
        contents(lingering.next_batch(wait, 16).await.expect("batch")),
        ["d"]
    );
    let (batch, ()) = tokio::join!(lingering.next_batch(wait, 16), spaced(room, "e", "f"));
    assert_eq!(
        contents(batch.expect("batch")),
        ["e", "f"],
        "e came within the linger of the last batch: the log is busy, so f joins it"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (batch, ()) = tokio::join!(lingering.next_batch(wait, 16), spaced(room, "g", "h"));
    assert_eq!(
        contents(batch.expect("batch")),
        ["g"],
        "after an idle spell longer than the linger, a lone event does not wait"
    );

    // Someone awaiting the batch's first event ends its linger: the next event waits for the
    // next batch.
    let room = RoomId::random();
    let (awaited, awaited_by) = tokio::sync::watch::channel(0);
    let mut cut = Pull::new(consumer_of(room, "cut").await, 16)
        .with_linger(Duration::from_millis(2_000))
        .cut_short_by(awaited_by);
    publish(&env, &chat(room, "i")).await;
    assert_eq!(
        contents(cut.next_batch(wait, 16).await.expect("batch")),
        ["i"]
    );
    let awaited_spaced = async {
        let (seq, _) = publish(&env, &chat(room, "j")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        awaited.send_replace(seq);
        tokio::time::sleep(Duration::from_millis(200)).await;
        publish(&env, &chat(room, "k")).await;
    };
    let (batch, ()) = tokio::join!(cut.next_batch(wait, 16), awaited_spaced);
    assert_eq!(
        contents(batch.expect("batch")),
        ["j"],
        "j is awaited: handed out before k, though the log is busy"
    );
    assert_eq!(
        contents(cut.next_batch(wait, 16).await.expect("batch")),
        ["k"]
    );
}
