//! Presence in bulk: 20,000 (room, user) pairs leaving one edge at once, through the edge's own
//! presence and through the reaper after the edge died. async-nats lets 5,000 appends await
//! their ack per JetStream context and then blocks the next publish with no timeout, so a batch
//! published before its acks are awaited once wedged the edge's writes and the reaper for good.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::message::PublishMessage;
use chat_platform::append::ATTEMPT_TIMEOUT;
use chat_platform::connect;
use chat_read_state::ReadKeys;
use chat_schemas::{decode, encode, ChatEvent, Envelope, RoomId, UserId};
use chat_tests::{chat, ServiceProcess, TestEnv};
use edge::live::Presence;
use edge::writer::{AppendPatience, EventWriter};
use futures::StreamExt;

/// Pairs in each test: more than the 5,000 acks async-nats lets await at once.
const PAIRS: usize = 20_000;
/// Rooms the pairs are spread over.
const ROOMS: usize = 200;
/// How long one phase (20,000 INFO, or 20,000 OUT) may take to reach the log: 17 to 29 s were
/// measured on two cores busy compiling, a few seconds on an idle machine; the old code never
/// got there.
const WITHIN: Duration = Duration::from_secs(60);

/// `PAIRS` distinct (room, user) pairs over `ROOMS` rooms.
fn pairs() -> Vec<(RoomId, UserId)> {
    let rooms: Vec<RoomId> = (0..ROOMS).map(|_| RoomId::random()).collect();
    (0..PAIRS)
        .map(|i| {
            let user = UserId::parse(&format!("user{i}")).expect("user id");
            (rooms[i % ROOMS], user)
        })
        .collect()
}

/// How many events the test's stream holds.
async fn stored(env: &TestEnv) -> u64 {
    let mut stream = env
        .jetstream
        .get_stream(env.log.stream_name())
        .await
        .expect("stream");
    stream.info().await.expect("stream info").state.messages
}

/// Waits until the stream holds `count` events, failing after `WITHIN` or when it holds more.
async fn wait_for_stored(env: &TestEnv, count: u64, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let now = stored(env).await;
        assert!(
            now <= count,
            "{what}: {now} events stored, expected {count}"
        );
        if now == count {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < WITHIN,
            "{what}: only {now} of {count} events stored after {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (INFO, OUT) events naming `edge` among everything the stream holds.
async fn presence_events(env: &TestEnv, edge: &str) -> (usize, usize) {
    let total = stored(env).await;
    let stream = env
        .jetstream
        .get_stream(env.log.stream_name())
        .await
        .expect("stream");
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: env.log.all_rooms(),
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let (mut infos, mut outs) = (0, 0);
    for _ in 0..total {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("the next stored event")
            .expect("more events")
            .expect("event");
        match decode(&message.payload).expect("decodes").event {
            ChatEvent::Info { edge: Some(e), .. } if e == edge => infos += 1,
            ChatEvent::Out { edge: Some(e), .. } if e == edge => outs += 1,
            _ => {}
        }
    }
    (infos, outs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_pairs_leaving_one_edge_at_once_reach_the_log_and_writes_go_on() {
    let env = TestEnv::new().await;
    // The edge's own connection and JetStream context, shared by presence and writes as in
    // the edge process.
    let (_, jetstream) = connect::nats(&env.nats_settings).await.expect("nats");
    let stream = connect::event_stream(&jetstream, &env.log)
        .await
        .expect("stream");
    // One attempt, no retries: a hang or a failure shows as it is.
    let patience = AppendPatience {
        retry_for: Duration::ZERO,
        attempt_timeout: ATTEMPT_TIMEOUT,
    };
    let writer = EventWriter::new(jetstream.clone(), stream, env.log.clone(), patience);
    let presence = Presence::start(
        jetstream,
        env.log.clone(),
        env.redis.clone(),
        ReadKeys::new(env.redis_settings.key_prefix.clone()),
        Duration::from_secs(5),
        Duration::from_secs(15),
    )
    .await
    .expect("presence");
    let pairs = pairs();

    for (room, user) in &pairs {
        presence.enter(*room, user.clone());
    }
    let entered = wait_for_stored(&env, PAIRS as u64, "INFO").await;
    for (room, user) in &pairs {
        presence.exit(*room, user.clone());
    }
    // A write while the OUTs go out must not wait for them all, let alone hang.
    let during = Instant::now();
    let during_storm = Envelope::new(
        pairs[0].0,
        pairs[0].1.clone(),
        chat("while everyone leaves"),
    );
    tokio::time::timeout(WITHIN, writer.append(&during_storm, "during", None))
        .await
        .expect("a write during the storm hung")
        .expect("a write during the storm failed");
    let write_took = during.elapsed();
    let left = wait_for_stored(&env, 2 * PAIRS as u64 + 1, "OUT").await;
    eprintln!(
        "{PAIRS} INFO stored in {:.1} s, {PAIRS} OUT in {:.1} s; a write meanwhile took {} ms",
        entered.as_secs_f64(),
        left.as_secs_f64(),
        write_took.as_millis()
    );

    let after = Envelope::new(pairs[1].0, pairs[1].1.clone(), chat("after everyone left"));
    tokio::time::timeout(
        Duration::from_secs(10),
        writer.append(&after, "after", None),
    )
    .await
    .expect("a write after the storm hung")
    .expect("a write after the storm failed");
    assert_eq!(
        presence_events(&env, presence.edge_id()).await,
        (PAIRS, PAIRS),
        "exactly one INFO and one OUT per pair"
    );
    presence.finish(Duration::from_secs(5)).await;
}

/// Appends `events` awaiting the acks of 1,000 at a time (the test's own setup, so it does not
/// lean on the code under test).
async fn publish_all(env: &TestEnv, events: Vec<Envelope>) {
    for chunk in events.chunks(1_000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for envelope in chunk {
            let payload = encode(envelope).expect("encode");
            let ack = env
                .jetstream
                .send_publish(
                    env.log.room_subject(&envelope.room_id),
                    PublishMessage::build().payload(payload.into()),
                )
                .await
                .expect("publish");
            acks.push(ack);
        }
        for ack in acks {
            ack.await.expect("durable ack");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_ends_twenty_thousand_pairs_of_a_dead_edge() {
    let env = TestEnv::new().await;
    let keys = ReadKeys::new(env.redis_settings.key_prefix.clone());
    let edge = format!("dead{}", uuid::Uuid::new_v4().simple());
    let mut redis = env.redis.clone();
    redis::cmd("SET")
        .arg(keys.edge_alive(&edge))
        .arg("alive")
        .arg("PX")
        .arg(120_000)
        .query_async::<()>(&mut redis)
        .await
        .expect("heartbeat");
    let _worker = ServiceProcess::start(
        "receipts",
        &env,
        &[
            ("CHAT_RECEIPTS__FETCH_WAIT_MS", "50"),
            ("CHAT_RECEIPTS__BATCH_SIZE", "1000"),
            ("CHAT_RECEIPTS__REAP_INTERVAL_MS", "500"),
        ],
    );
    let infos = pairs()
        .into_iter()
        .map(|(room, user)| {
            Envelope::new(
                room,
                user.clone(),
                ChatEvent::Info {
                    user_id: user,
                    read_count: 0,
                    last_read_message_id: None,
                    edge: Some(edge.clone()),
                },
            )
        })
        .collect();
    publish_all(&env, infos).await;
    let started = Instant::now();
    loop {
        let present: usize = redis::cmd("SCARD")
            .arg(keys.edge_presence(&edge))
            .query_async(&mut redis)
            .await
            .expect("SCARD");
        if present == PAIRS {
            break;
        }
        assert!(
            started.elapsed() < WITHIN,
            "the worker applied only {present} of {PAIRS} INFO"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // kill -9 of the edge, as far as the reaper can tell.
    redis::cmd("DEL")
        .arg(keys.edge_alive(&edge))
        .query_async::<()>(&mut redis)
        .await
        .expect("DEL heartbeat");
    let reaped = wait_for_stored(&env, 2 * PAIRS as u64, "OUT").await;
    eprintln!(
        "the reaper stored {PAIRS} OUT within {:.1} s",
        reaped.as_secs_f64()
    );
    assert_eq!(presence_events(&env, &edge).await, (PAIRS, PAIRS));

    let deadline = Instant::now() + WITHIN;
    loop {
        let entries: bool = redis::cmd("EXISTS")
            .arg(keys.edge_presence(&edge))
            .query_async(&mut redis)
            .await
            .expect("EXISTS");
        let edges: HashSet<String> = redis::cmd("SMEMBERS")
            .arg(keys.edges())
            .query_async(&mut redis)
            .await
            .expect("SMEMBERS");
        if !entries && !edges.contains(&edge) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead edge's presence is still in Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
