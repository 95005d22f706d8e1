//! Fault tests: they stop and start the shared servers, so `scripts/test` runs them alone, one at
//! a time, after every other test (`--ignored --test-threads=1`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chat_tests::health::{down, ready, wait_until, wait_until_within, worker};
use chat_tests::stomp::StompClient;
use chat_tests::{ServiceProcess, TestApp};
use edge::stomp::{Command as Stomp, Frame};
use serde_json::{json, Value};

/// Runs `scripts/servers ACTION SERVER`.
fn servers(action: &str, server: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/servers");
    let status = Command::new("bash")
        .arg(script)
        .args([action, server])
        .status()
        .unwrap_or_else(|e| panic!("scripts/servers {action}: {e}"));
    assert!(status.success(), "scripts/servers {action} {server} failed");
}

/// Runs `scripts/servers ACTION cassandra`.
fn cassandra(action: &str) {
    servers(action, "cassandra");
}

/// Runs `scripts/servers ACTION SERVER` off the async runtime.
async fn servers_async(action: &'static str, server: &'static str) {
    tokio::task::spawn_blocking(move || servers(action, server))
        .await
        .expect("scripts/servers");
}

/// A SEND with a receipt and a clientMessageId.
fn send_frame(room: &str, content: &str, id: &str) -> Frame {
    Frame::new(Stomp::Send)
        .with_header("destination", format!("/pub/rooms/{room}/messages"))
        .with_header("receipt", id)
        .with_header("content-type", "application/json")
        .with_body(json!({"content": content, "clientMessageId": id}).to_string())
}

/// The next MESSAGE of `client` whose body is a CHAT, within `within`.
async fn next_chat(client: &mut StompClient, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = client.next_within(left).await?;
        assert_ne!(frame.command, Stomp::Error, "{frame:?}");
        let body: Value = serde_json::from_slice(&frame.body).unwrap_or(Value::Null);
        if body["type"] == "CHAT" {
            return Some(body);
        }
    }
}

/// The CHAT contents of a room's history, oldest first, polled until it holds `count` of them.
async fn history(app: &TestApp, user: &str, room: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, page) = app
            .get(user, &format!("/api/rooms/{room}/messages?limit=100"))
            .await;
        if status == 200 {
            let mut contents: Vec<String> = page["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .filter(|m| m["type"] == "CHAT")
                .filter_map(|m| m["content"].as_str().map(str::to_owned))
                .collect();
            contents.reverse();
            if contents.len() >= count || Instant::now() > deadline {
                return contents;
            }
        }
        assert!(Instant::now() < deadline, "history never became readable");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "stops the shared Cassandra: run alone by scripts/test"]
async fn every_acknowledged_message_survives_a_cassandra_outage_exactly_once() {
    let app = TestApp::start_with(|s| s.edge.read_your_writes_timeout_ms = 1000).await;
    let (status, room) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "GROUP", "name": "g", "userIds": ["bob"]}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let id = room["roomId"].as_str().expect("id").to_owned();
    let path = format!("/api/rooms/{id}/messages");
    const MESSAGES: usize = 60;

    let sender = async {
        let mut outcomes = Vec::new();
        for i in 0..MESSAGES {
            let body = json!({"content": format!("m{i}"), "clientMessageId": format!("c{i}")});
            // A client retries with the same clientMessageId until it gets an answer.
            let mut attempts = 0;
            loop {
                attempts += 1;
                let (status, answer) = app.post("alice", &path, body.clone()).await;
                if status == 200 || status == 201 {
                    outcomes.push(answer["messageId"].as_str().expect("id").to_owned());
                    break;
                }
                assert_eq!(status, 503, "only unavailability is expected: {answer}");
                assert!(attempts < 600, "message {i} never got through");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        outcomes
    };
    let outage = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        tokio::task::spawn_blocking(|| cassandra("down"))
            .await
            .expect("down");
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::task::spawn_blocking(|| cassandra("up"))
            .await
            .expect("up");
    };
    let (acknowledged, ()) = tokio::join!(sender, outage);
    assert_eq!(acknowledged.len(), MESSAGES);
    let unique: std::collections::BTreeSet<_> = acknowledged.iter().collect();
    assert_eq!(unique.len(), MESSAGES, "each message has its own id");

    let (status, page) = app.get("bob", &format!("{path}?limit=100")).await;
    assert_eq!(status, 200, "{page}");
    let chats: Vec<String> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["type"] == "CHAT")
        .map(|m| m["messageId"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        chats.len(),
        MESSAGES,
        "every message exactly once in Cassandra"
    );
    let mut expected: Vec<String> = acknowledged;
    expected.reverse();
    assert_eq!(chats, expected);
}

#[tokio::test]
#[ignore = "stops the shared Cassandra: run alone by scripts/test"]
async fn chatting_goes_on_while_cassandra_is_down() {
    let app = TestApp::start_with(|s| s.edge.read_your_writes_timeout_ms = 1000).await;
    let held = app.group("alice", &["bob"]).await;
    let cold = app.group("carol", &["dave"]).await;
    // Started after both rooms exist: this edge has to load them, and with Cassandra down it
    // rebuilds them from the log.
    let late = ServiceProcess::start("edge", &app.env, &[]);
    let mut bob = StompClient::connect(&app.base_url, &app.token("bob"))
        .await
        .ignoring_presence();
    bob.subscribe("r", &format!("/sub/rooms/{held}"), &[]).await;

    let down_at = Instant::now();
    servers_async("down", "cassandra").await;
    let stopped_in = down_at.elapsed();

    // SEND on a room the edge holds, delivered live.
    let mut alice = StompClient::connect(&app.base_url, &app.token("alice"))
        .await
        .ignoring_presence();
    let sent_at = Instant::now();
    alice.send(send_frame(&held, "while down", "a1")).await;
    alice.expect_receipt("a1").await;
    let chat = next_chat(&mut bob, Duration::from_secs(10))
        .await
        .expect("bob gets alice's message live");
    assert_eq!(chat["content"], "while down");
    assert_eq!(chat["unreadCount"], 0, "bob has the room open");
    let held_delay = sent_at.elapsed();

    // SUBSCRIBE and SEND on a room the late edge never loaded: rebuilt from the log.
    let mut carol = StompClient::connect(&late.url, &app.token("carol"))
        .await
        .ignoring_presence();
    carol
        .subscribe("r", &format!("/sub/rooms/{cold}"), &[])
        .await;
    let mut dave = StompClient::connect(&late.url, &app.token("dave"))
        .await
        .ignoring_presence();
    dave.send(send_frame(&cold, "also while down", "d1")).await;
    dave.expect_receipt("d1").await;
    let chat = next_chat(&mut carol, Duration::from_secs(10))
        .await
        .expect("carol gets dave's message live");
    assert_eq!(chat["content"], "also while down");
    // Refusals stay exact: mallory is in neither room.
    let mut mallory = StompClient::connect(&late.url, &app.token("mallory")).await;
    mallory.send(send_frame(&cold, "let me in", "m1")).await;
    let error = mallory.error().await;
    assert!(
        error
            .header("message")
            .is_some_and(|m| m.starts_with("NOT_A_MEMBER")),
        "{error:?}"
    );

    // HTTP writes need the projections: stored, but answered 503.
    let (status, body) = app
        .post(
            "alice",
            &format!("/api/rooms/{held}/messages"),
            json!({"content": "over http", "clientMessageId": "h1"}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    eprintln!(
        "cassandra stopped in {stopped_in:?}; SEND to live delivery while down: {held_delay:?}"
    );

    servers_async("up", "cassandra").await;
    // The client resends with the same clientMessageId until it gets an answer.
    let up_at = Instant::now();
    loop {
        let (status, body) = app
            .post(
                "alice",
                &format!("/api/rooms/{held}/messages"),
                json!({"content": "over http", "clientMessageId": "h1"}),
            )
            .await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(up_at.elapsed() < Duration::from_secs(60), "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "HTTP writes answered again {:?} after Cassandra was ready",
        up_at.elapsed()
    );
    assert_eq!(
        history(&app, "bob", &held, 2).await,
        ["while down", "over http"],
        "each message exactly once, in log order"
    );
    assert_eq!(history(&app, "carol", &cold, 1).await, ["also while down"]);
}

#[tokio::test]
#[ignore = "restarts the shared NATS server: run alone by scripts/test"]
async fn stomp_sends_ride_out_a_nats_restart() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let mut alice = StompClient::connect(&app.base_url, &app.token("alice"))
        .await
        .ignoring_presence();
    const MESSAGES: usize = 30;
    let sender = async {
        let mut receipts = Vec::new();
        for i in 0..MESSAGES {
            let id = format!("n{i}");
            alice.send(send_frame(&room, &id, &id)).await;
            let frame = alice.next_within(Duration::from_secs(30)).await;
            let frame = frame.unwrap_or_else(|| panic!("no answer to SEND {id}"));
            assert_eq!(
                (frame.command, frame.header("receipt-id")),
                (Stomp::Receipt, Some(id.as_str())),
                "a SEND during a NATS restart is delayed, not refused: {frame:?}"
            );
            receipts.push((id, Instant::now()));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        receipts
    };
    let restart = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let started = Instant::now();
        servers_async("down", "nats").await;
        servers_async("up", "nats").await;
        (started, started.elapsed())
    };
    let (receipts, (restart_at, restart_took)) = tokio::join!(sender, restart);
    let longest_wait = receipts
        .windows(2)
        .map(|w| w[1].1.duration_since(w[0].1))
        .max()
        .unwrap_or_default();
    eprintln!(
        "NATS down and up in {restart_took:?} (from {:?} after the first SEND); longest gap between receipts {longest_wait:?}",
        restart_at.elapsed()
    );
    let expected: Vec<String> = (0..MESSAGES).map(|i| format!("n{i}")).collect();
    let stored = history(&app, "bob", &room, MESSAGES).await;
    assert_eq!(
        stored.iter().collect::<BTreeSet<_>>().len(),
        stored.len(),
        "no duplicates"
    );
    assert_eq!(stored, expected, "every acknowledged SEND once, in order");
}

#[tokio::test]
#[ignore = "stops the shared Cassandra: run alone by scripts/test"]
async fn readiness_follows_a_cassandra_outage() {
    let app = TestApp::start().await;
    let edge = format!("{}/readyz", app.base_url);
    // Its own name: the app runs a projector of its own on the same environment.
    let (_projector, projector) = worker(
        "projector",
        &app.env,
        &[("CHAT_PROJECTOR__NAME", "readiness")],
    );
    let projector = format!("{projector}/readyz");
    wait_until(&edge, "ready", ready).await;
    wait_until(&projector, "ready", ready).await;

    tokio::task::spawn_blocking(|| cassandra("down"))
        .await
        .expect("down");
    let degraded = |status: u16, body: &Value| {
        status == 200
            && body["status"] == "degraded"
            && body["checks"]["cassandra"]
                .as_str()
                .is_some_and(|state| state.starts_with("down: "))
    };
    let result = async {
        let (body, took) = wait_until(&edge, "degraded", degraded).await;
        eprintln!("edge: degraded {took:?} after Cassandra stopped: {body}");
        assert_eq!(body["checks"]["nats"], "ok", "{body}");
        assert_eq!(body["checks"]["redis"], "ok", "{body}");
        let (body, took) = wait_until(&projector, "unavailable", down("cassandra")).await;
        eprintln!("projector: 503 {took:?} after Cassandra stopped: {body}");
    };
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
    tokio::task::spawn_blocking(|| cassandra("up"))
        .await
        .expect("up");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    let back = Duration::from_secs(120);
    let (_, took) = wait_until_within(&edge, "ready again", back, ready).await;
    eprintln!("edge: ready {took:?} after Cassandra was up");
    let (_, took) = wait_until_within(&projector, "ready again", back, ready).await;
    eprintln!("projector: ready {took:?} after Cassandra was up");
}
