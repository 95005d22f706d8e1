//! The example analytics consumer (`examples/analytics`, Python) against the real servers: it
//! reads the log as docs/events.md says any consumer may, counts per minute exactly, resumes
//! where it stopped, skips event types it does not know, and leaves the services undisturbed.

use std::process::{Command, Stdio};

use chat_schemas::{encode, ChatEvent, Envelope, RoomId, RoomKind, Timestamp, UserId};
use chat_tests::{chat, python, user, TestApp, TestEnv};
use serde::Serialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// 2023-11-14T22:14:00Z: the start of a minute.
const MINUTE_0: i64 = 1_700_000_040_000;
const MINUTE_1: i64 = MINUTE_0 + 60_000;
const MINUTE_2: i64 = MINUTE_1 + 60_000;

/// Runs the example with its own durable consumer `durable` on `env`'s log until it has been
/// idle for 2 s, and returns the JSON object it printed for each minute.
fn run_example(env: &TestEnv, durable: &str) -> Vec<Value> {
    let script = python::repository_root().join("examples/analytics/chat_analytics.py");
    let output = Command::new(python::interpreter())
        .arg(&script)
        .args(["--server", &env.nats_settings.url])
        .args(["--stream", &env.nats_settings.stream])
        .args(["--prefix", &env.nats_settings.subject_prefix])
        .args(["--durable", durable, "--idle-exit", "2", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("--- chat_analytics.py --durable {durable}\n{stdout}{stderr}");
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

/// The minute starting at `millis`, as the example names it.
fn minute(millis: i64) -> String {
    OffsetDateTime::from_unix_timestamp(millis / 1000)
        .expect("a valid time")
        .format(&Rfc3339)
        .expect("formats")
}

/// Appends an event as an edge would, accepted at `at`.
async fn append(env: &TestEnv, room: RoomId, actor: &str, at: i64, event: ChatEvent) {
    let mut envelope = Envelope::new(room, user(actor), event);
    envelope.at = Timestamp(at);
    let bytes = encode(&envelope).expect("encodes");
    publish(env, room, bytes).await;
}

async fn publish(env: &TestEnv, room: RoomId, bytes: Vec<u8>) {
    env.jetstream
        .publish(env.log.room_subject(&room), bytes.into())
        .await
        .unwrap_or_else(|e| panic!("publish: {e}"))
        .await
        .unwrap_or_else(|e| panic!("ack: {e}"));
}

/// An event of a type a newer writer might add, shaped like the others.
#[derive(Serialize)]
struct FutureEnvelope {
    v: u16,
    event_id: uuid::Uuid,
    room_id: RoomId,
    actor: UserId,
    at: i64,
    event: FutureEvent,
}

#[derive(Serialize)]
struct FutureEvent {
    #[serde(rename = "type")]
    kind: &'static str,
    question: &'static str,
}

#[tokio::test]
async fn the_example_counts_each_minute_exactly_once_and_resumes_after_it() {
    let env = TestEnv::new().await;
    let (kitchen, lobby) = (RoomId::random(), RoomId::random());
    let created = ChatEvent::RoomCreated {
        kind: RoomKind::Group,
        name: Some("3층 공용 주방".into()),
        members: vec![user("alice"), user("bob"), user("carol"), user("dave")],
    };
    append(&env, kitchen, "alice", MINUTE_0 + 1_000, created).await;
    append(&env, kitchen, "alice", MINUTE_0 + 2_000, chat("안녕하세요")).await;
    append(&env, kitchen, "bob", MINUTE_0 + 3_000, chat("반가워요 👋")).await;
    let entered = ChatEvent::Info {
        user_id: user("carol"),
        read_count: 0,
        last_read_message_id: None,
        edge: Some("edge-1".into()),
    };
    append(&env, kitchen, "carol", MINUTE_0 + 4_000, entered).await;
    append(&env, lobby, "alice", MINUTE_0 + 5_000, chat("lobby")).await;
    let left_screen = ChatEvent::Out {
        user_id: user("dave"),
        edge: Some("edge-1".into()),
    };
    append(&env, kitchen, "dave", MINUTE_0 + 6_000, left_screen).await;
    let future = FutureEnvelope {
        v: 2,
        event_id: uuid::Uuid::new_v4(),
        room_id: kitchen,
        actor: user("erin"),
        at: MINUTE_0 + 7_000,
        event: FutureEvent {
            kind: "POLL",
            question: "7시 어때요?",
        },
    };
    let future = rmp_serde::to_vec_named(&future).expect("encodes");
    publish(&env, kitchen, future).await;
    append(&env, kitchen, "bob", MINUTE_1 + 1_000, chat("next minute")).await;
    // Accepted by an edge whose clock is a little behind: counted in the open minute.
    append(&env, lobby, "carol", MINUTE_0 + 59_900, chat("late")).await;
    let deleted = ChatEvent::Delete {
        message_ids: vec![chat_schemas::MessageId::from_sequence(2).expect("valid")],
    };
    append(&env, kitchen, "alice", MINUTE_1 + 10_000, deleted).await;

    let (kitchen, lobby) = (kitchen.to_string(), lobby.to_string());
    assert_eq!(
        run_example(&env, "analytics"),
        vec![
            json!({"minute": minute(MINUTE_0), "messagesPerRoom": {&kitchen: 2, &lobby: 1},
                   "activeUsers": 3, "events": 7, "skipped": 1}),
            json!({"minute": minute(MINUTE_1), "messagesPerRoom": {&kitchen: 1, &lobby: 1},
                   "activeUsers": 3, "events": 3, "skipped": 0}),
        ]
    );

    // Everything printed was acknowledged: a second run of the same consumer prints nothing,
    // and a later event is printed alone.
    assert_eq!(run_example(&env, "analytics"), Vec::<Value>::new());
    let room = kitchen.parse().expect("room id");
    append(&env, room, "dave", MINUTE_2 + 500, chat("later")).await;
    assert_eq!(
        run_example(&env, "analytics"),
        vec![
            json!({"minute": minute(MINUTE_2), "messagesPerRoom": {&kitchen: 1},
                    "activeUsers": 1, "events": 1, "skipped": 0})
        ]
    );
    // Another consumer of its own reads the whole log again.
    let everything = run_example(&env, "analytics-2");
    let events: u64 = everything
        .iter()
        .map(|m| m["events"].as_u64().expect("events"))
        .sum();
    assert_eq!(events, 11);
}

#[tokio::test]
async fn the_example_counts_a_chat_sent_through_the_running_stack() {
    let app = TestApp::start().await;
    let kitchen = app.group("alice", &["bob"]).await;
    let lobby = app.group("carol", &["alice"]).await;
    let script = [
        ("alice", &kitchen, "오늘 저녁 같이 해요"),
        ("bob", &kitchen, "좋아요!"),
        ("alice", &kitchen, "7시 🍲"),
        ("bob", &kitchen, "👍"),
        ("carol", &lobby, "택배 왔어요"),
    ];
    for (sender, room, content) in script {
        let (status, body) = app
            .post(
                sender,
                &format!("/api/rooms/{room}/messages"),
                json!({ "content": content }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    let minutes = run_example(&app.env, "analytics");
    let mut messages = std::collections::BTreeMap::<String, u64>::new();
    for m in &minutes {
        for (room, count) in m["messagesPerRoom"].as_object().expect("rooms") {
            *messages.entry(room.clone()).or_default() += count.as_u64().expect("count");
        }
        let active = m["activeUsers"].as_u64().expect("activeUsers");
        assert!((1..=3).contains(&active), "{m}");
    }
    assert_eq!(messages, [(kitchen.clone(), 4), (lobby.clone(), 1)].into());
    if let [only] = minutes.as_slice() {
        assert_eq!(only["activeUsers"], 3, "alice, bob and carol: {only}");
    }

    // The services did not notice: history is whole, and the example's consumer is its own.
    let (status, history) = app
        .get("bob", &format!("/api/rooms/{kitchen}/messages"))
        .await;
    assert_eq!(status, 200, "{history}");
    let chats = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["type"] == "CHAT")
        .count();
    assert_eq!(chats, 4);
    let mut consumer = app
        .env
        .jetstream
        .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
            "analytics",
            app.env.log.stream_name(),
        )
        .await
        .unwrap_or_else(|e| panic!("the example's consumer: {e}"));
    let info = consumer
        .info()
        .await
        .unwrap_or_else(|e| panic!("consumer info: {e}"));
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "{info:?}");
}
