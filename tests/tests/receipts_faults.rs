//! Receipts through crashes: an edge killed without a goodbye, a receipts worker killed in the
//! middle of a stream, and Redis losing everything before a rebuild from the log.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use chat_platform::pull::REQUEST_EXPIRES;
use chat_tests::stomp::StompClient;
use chat_tests::{binary, ServiceProcess, TestApp};
use futures::StreamExt;
use serde_json::{json, Value};

async fn next_of(client: &mut StompClient, kind: &str, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = client.next_within(left).await?;
        let body: Value = serde_json::from_slice(&frame.body).unwrap_or(Value::Null);
        if body["type"] == kind {
            return Some(body);
        }
    }
}

async fn send(app: &TestApp, user: &str, room: &str, content: &str) -> String {
    let (status, sent) = app
        .post(
            user,
            &format!("/api/rooms/{room}/messages"),
            json!({"content": content}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    sent["messageId"].as_str().expect("id").to_owned()
}

async fn badge(app: &TestApp, user: &str) -> u64 {
    let (status, body) = app.get(user, "/api/users/me/unread").await;
    assert_eq!(status, 200, "{body}");
    body["unreadCount"].as_u64().expect("count")
}

async fn wait_for_badge(app: &TestApp, user: &str, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = badge(app, user).await;
        if got == expected {
            return;
        }
        assert!(got < expected, "{user}'s badge went past {expected}: {got}");
        assert!(Instant::now() < deadline, "{user}'s badge stuck at {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn users_of_a_killed_edge_leave_their_rooms_within_30_seconds() {
    let app = TestApp::start().await;
    let mut doomed = ServiceProcess::start(
        "edge",
        &app.env,
        &[
            ("CHAT_EDGE__PRESENCE_HEARTBEAT_MS", "5000"),
            ("CHAT_EDGE__PRESENCE_TTL_MS", "15000"),
        ],
    );
    let room = app.group("alice", &["carol"]).await;
    let mut alice = StompClient::connect(&app.base_url, &app.token("alice")).await;
    alice
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;
    let mut carol = StompClient::connect(&doomed.url, &app.token("carol")).await;
    carol
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;
    let info = next_of(&mut alice, "INFO", Duration::from_secs(10)).await;
    assert_eq!(info.expect("INFO")["userId"], "alice");
    let info = next_of(&mut alice, "INFO", Duration::from_secs(10)).await;
    assert_eq!(info.expect("INFO")["userId"], "carol");

    send(&app, "alice", &room, "while carol looks").await;
    assert_eq!(
        next_of(&mut alice, "CHAT", Duration::from_secs(10))
            .await
            .expect("CHAT")["unreadCount"],
        0
    );
    let killed = Instant::now();
    doomed.kill();
    let out = next_of(&mut alice, "OUT", Duration::from_secs(30)).await;
    let after = killed.elapsed();
    let out = out.unwrap_or_else(|| panic!("no OUT within 30 s of kill -9"));
    assert_eq!(out["userId"], "carol");
    eprintln!(
        "OUT arrived {:.1} s after the edge was killed",
        after.as_secs_f64()
    );

    send(&app, "alice", &room, "after the crash").await;
    let chat = next_of(&mut alice, "CHAT", Duration::from_secs(10))
        .await
        .expect("CHAT");
    assert_eq!(chat["unreadCount"], 1, "carol is away now");
    wait_for_badge(&app, "carol", 1).await;
}

#[tokio::test]
async fn a_receipts_worker_killed_mid_stream_loses_and_doubles_nothing() {
    let mut app = TestApp::start().await;
    app.stop_receipts().await;
    let worker_env = [
        ("CHAT_RECEIPTS__FETCH_WAIT_MS", "50"),
        ("CHAT_RECEIPTS__BATCH_SIZE", "16"),
        ("CHAT_RECEIPTS__LEASE_MS", "2000"),
    ];
    let mut worker = ServiceProcess::start("receipts", &app.env, &worker_env);
    let room = app.group("alice", &["bob", "carol"]).await;
    let mut alice = StompClient::connect(&app.base_url, &app.token("alice")).await;
    alice
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;

    const MESSAGES: usize = 120;
    let mut sent = Vec::new();
    for i in 0..MESSAGES {
        sent.push(send(&app, "alice", &room, &format!("m{i}")).await);
        if i == MESSAGES / 3 {
            worker.kill();
        }
        if i == MESSAGES / 2 {
            worker = ServiceProcess::start("receipts", &app.env, &worker_env);
        }
    }
    wait_for_badge(&app, "bob", 120).await;
    wait_for_badge(&app, "carol", 120).await;
    let mut live = Vec::new();
    while live.len() < MESSAGES {
        let Some(chat) = next_of(&mut alice, "CHAT", Duration::from_secs(15)).await else {
            break;
        };
        assert_eq!(chat["unreadCount"], 2, "{chat}");
        live.push(chat["messageId"].as_str().expect("id").to_owned());
    }
    assert_eq!(live, sent, "every CHAT delivered live once, in order");
    assert!(next_of(&mut alice, "CHAT", Duration::from_millis(500))
        .await
        .is_none());
    for id in sent.iter().step_by(10) {
        let (status, body) = app
            .get("alice", &format!("/api/rooms/{room}/messages/{id}/unread"))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["userIds"], json!(["bob", "carol"]));
    }
    drop(worker);
}

/// Events handed out by the consumer but lost on their way (a pull that ended while the
/// server answered it, a consumer leader moving off a frozen NATS server) stay pending, and the
/// next batch starts after them. The worker acks cumulatively, so acking that batch would ack
/// events it never applied: it must notice the jump and read them again. Here a rival client
/// takes them from the worker's consumer while the worker is frozen, and never acks them.
#[tokio::test]
async fn events_a_fetch_lost_on_their_way_are_applied_all_the_same() {
    let mut app = TestApp::start().await;
    app.stop_receipts().await;
    let worker = ServiceProcess::start(
        "receipts",
        &app.env,
        &[
            ("CHAT_RECEIPTS__FETCH_WAIT_MS", "50"),
            ("CHAT_RECEIPTS__LEASE_MS", "10000"),
        ],
    );
    let room = app.group("alice", &["bob", "carol"]).await;
    let mut alice = StompClient::connect(&app.base_url, &app.token("alice")).await;
    alice
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;
    let mut sent = vec![send(&app, "alice", &room, "before").await];
    let first = next_of(&mut alice, "CHAT", Duration::from_secs(15)).await;
    assert_eq!(first.expect("the worker runs")["messageId"], sent[0]);

    worker.signal("STOP");
    // Longer than the frozen worker's pull request lives on the server.
    tokio::time::sleep(REQUEST_EXPIRES + Duration::from_millis(500)).await;
    for i in 0..5 {
        sent.push(send(&app, "alice", &room, &format!("lost {i}")).await);
    }
    let stream = app
        .env
        .jetstream
        .get_stream(app.env.log.stream_name())
        .await
        .expect("stream");
    let consumer: PullConsumer = stream
        .get_consumer(&receipts::settings::consumer_name(0, 1))
        .await
        .expect("the worker's consumer");
    let mut taken = consumer
        .fetch()
        .max_messages(5)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("fetch");
    let mut lost = 0;
    while let Some(message) = taken.next().await {
        message.expect("message");
        lost += 1;
    }
    assert_eq!(lost, 5, "the rival took the frozen worker's events");
    worker.signal("CONT");
    for i in 0..5 {
        sent.push(send(&app, "alice", &room, &format!("after {i}")).await);
    }

    wait_for_badge(&app, "bob", 11).await;
    wait_for_badge(&app, "carol", 11).await;
    let mut live = Vec::new();
    while live.len() < sent.len() - 1 {
        let Some(chat) = next_of(&mut alice, "CHAT", Duration::from_secs(15)).await else {
            break;
        };
        assert_eq!(chat["unreadCount"], 2, "{chat}");
        live.push(chat["messageId"].as_str().expect("id").to_owned());
    }
    assert_eq!(
        live,
        sent[1..],
        "every CHAT delivered live once, in log order"
    );
    drop(worker);
}

/// Every read-state key under the test's prefix with its content, in a comparable form.
async fn snapshot(app: &TestApp) -> BTreeMap<String, String> {
    let mut redis = app.env.redis.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(app.env.redis_key("rs:*"))
        .query_async(&mut redis)
        .await
        .expect("keys");
    let mut out = BTreeMap::new();
    for key in keys {
        if key.contains(":rs:progress:") {
            continue;
        }
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .expect("type");
        let content = match kind.as_str() {
            "set" => {
                let mut members: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(&mut redis)
                    .await
                    .expect("smembers");
                members.sort();
                members.join(",")
            }
            "zset" => {
                let members: Vec<String> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(&mut redis)
                    .await
                    .expect("zrange");
                members.join(",")
            }
            "hash" => {
                let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut redis)
                    .await
                    .expect("hgetall");
                format!("{fields:?}")
            }
            _ => redis::cmd("GET")
                .arg(&key)
                .query_async::<String>(&mut redis)
                .await
                .expect("get"),
        };
        out.insert(key, content);
    }
    out
}

#[tokio::test]
async fn flushing_redis_and_rebuilding_restores_identical_counts() {
    let mut app = TestApp::start().await;
    let room = app.group("alice", &["bob", "carol", "dave"]).await;
    let mut bob = StompClient::connect(&app.base_url, &app.token("bob")).await;
    bob.subscribe("r", &format!("/sub/rooms/{room}"), &[]).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(send(&app, "alice", &room, &format!("m{i}")).await);
    }
    let (status, body) = app
        .delete("alice", &format!("/api/rooms/{room}/messages/{}", ids[3]))
        .await;
    assert!(status == 200 || status == 204, "{body}");
    let mut mentioning = Vec::new();
    for i in 0..2 {
        let (status, sent) = app
            .post(
                "alice",
                &format!("/api/rooms/{room}/messages"),
                json!({"content": format!("@carol {i}"), "mentions": ["carol", "bob"]}),
            )
            .await;
        assert_eq!(status, 201, "{sent}");
        mentioning.push(sent["messageId"].as_str().expect("id").to_owned());
    }
    let (status, body) = app
        .delete(
            "alice",
            &format!("/api/rooms/{room}/messages/{}", mentioning[0]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .delete("dave", &format!("/api/rooms/{room}/members/me"))
        .await;
    assert!(status == 200 || status == 204, "{body}");
    ids.push(send(&app, "bob", &room, "last").await);
    wait_for_badge(&app, "carol", 13).await;

    let before = snapshot(&app).await;
    assert!(before.keys().any(|k| k.ends_with(":unread")), "{before:?}");
    assert!(
        before.values().any(|v| v.contains("m:carol"))
            && before.keys().any(|k| k.ends_with(":mentions")),
        "carol's mention count is part of the state: {before:?}"
    );
    app.stop_receipts().await;
    let mut redis = app.env.redis.clone();
    let all: Vec<String> = redis::cmd("KEYS")
        .arg(app.env.redis_key("*"))
        .query_async(&mut redis)
        .await
        .expect("keys");
    let _: () = redis::cmd("DEL")
        .arg(&all)
        .query_async(&mut redis)
        .await
        .expect("flush");
    assert_eq!(badge(&app, "carol").await, 0, "Redis lost everything");

    let output = tokio::task::spawn_blocking({
        let env = app.env.service_env();
        move || {
            std::process::Command::new(binary("receipts"))
                .arg("rebuild")
                .envs(env)
                .output()
                .expect("run receipts rebuild")
        }
    })
    .await
    .expect("rebuild task");
    assert!(
        output.status.success(),
        "rebuild failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after = snapshot(&app).await;
    assert_eq!(after, before, "the rebuilt read state is identical");
    assert_eq!(badge(&app, "carol").await, 13);

    app.start_receipts();
    send(&app, "alice", &room, "after the rebuild").await;
    wait_for_badge(&app, "carol", 14).await;
    assert_eq!(badge(&app, "bob").await, 0, "bob is still in the room");
}
