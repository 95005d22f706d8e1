//! Receipts workers through crashes, against real servers: a standby takes over within seconds
//! of a `kill -9`, a worker killed between applying and publishing publishes every event exactly
//! once after its restart, views published from memory before a crash reach clients once, and a
//! Redis restart under a running worker loses and doubles nothing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use chat_schemas::EventLog;
use chat_tests::stomp::StompClient;
use chat_tests::{user, ServiceProcess, TestApp};
use edge::stomp::Command as Stomp;
use serde_json::{json, Value};

/// The worker settings every test here runs with: quick pulls, default lease and standby poll.
const WORKER: [(&str, &str); 1] = [("CHAT_RECEIPTS__FETCH_WAIT_MS", "50")];

async fn send(app: &TestApp, user: &str, room: &str, content: &str) -> u64 {
    let (status, sent) = app
        .post(
            user,
            &format!("/api/rooms/{room}/messages"),
            json!({"content": content}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    sent["messageId"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("numeric messageId")
}

/// The next MESSAGE of type `kind` within `within`, skipping others.
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

/// Every MESSAGE body until nothing came for `quiet`, or `within` passed.
async fn drain(client: &mut StompClient, quiet: Duration, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut bodies = Vec::new();
    while Instant::now() < deadline {
        let Some(frame) = client.next_within(quiet).await else {
            break;
        };
        if frame.command == Stomp::Message {
            bodies.push(serde_json::from_slice(&frame.body).expect("JSON body"));
        }
    }
    bodies
}

/// At least `count` MESSAGE bodies (panics after `within`), then any more until nothing came
/// for `quiet`.
async fn collect(client: &mut StompClient, count: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut bodies = Vec::new();
    while bodies.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = client
            .next_within(left)
            .await
            .unwrap_or_else(|| panic!("only {} messages: {bodies:?}", bodies.len()));
        if frame.command == Stomp::Message {
            bodies.push(serde_json::from_slice(&frame.body).expect("JSON body"));
        }
    }
    bodies.extend(drain(client, Duration::from_millis(1_500), within).await);
    bodies
}

/// A compact, comparable form of a room or feed event.
fn summary(body: &Value) -> String {
    let mut fields = vec![body["type"].as_str().unwrap_or("?").to_owned()];
    for key in [
        "content",
        "userId",
        "unreadCount",
        "readCount",
        "roomUnreadCount",
    ] {
        if !body[key].is_null() {
            fields.push(format!("{key}={}", body[key]));
        }
    }
    fields.join(" ")
}

/// The summaries of every MESSAGE until nothing came for half a second (at most 5 s).
async fn summaries(client: &mut StompClient) -> Vec<String> {
    drain(client, Duration::from_millis(500), Duration::from_secs(5))
        .await
        .iter()
        .map(summary)
        .collect()
}

/// The badge, or `None` while the edge answers 503 (its first Redis read after a Redis
/// restart fails while its connection reconnects).
async fn badge(app: &TestApp, user: &str) -> Option<u64> {
    let (status, body) = app.get(user, "/api/users/me/unread").await;
    if status == 503 {
        return None;
    }
    assert_eq!(status, 200, "{body}");
    Some(body["unreadCount"].as_u64().expect("count"))
}

async fn wait_for_badge(app: &TestApp, user: &str, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = badge(app, user).await;
        assert!(Instant::now() < deadline, "{user}'s badge stuck at {got:?}");
        let Some(got) = got else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if got == expected {
            return;
        }
        assert!(got < expected, "{user}'s badge went past {expected}: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until some worker holds the partition lease (or, with `held == false`, none does).
async fn wait_for_lease(
    redis: &mut chat_platform::redis_connection::RedisConnection,
    key: &str,
    held: bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let exists: bool = redis::cmd("EXISTS")
            .arg(key)
            .query_async(redis)
            .await
            .expect("EXISTS");
        if exists == held {
            return;
        }
        assert!(Instant::now() < deadline, "lease {key} held: {exists}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_standby_takes_over_within_five_seconds_of_a_kill() {
    let mut app = TestApp::start().await;
    app.stop_receipts().await;
    let lease = chat_read_state::ReadKeys::new(app.env.redis_settings.key_prefix.clone())
        .lease("receipts-0-of-1");
    let mut redis = app.env.redis.clone();
    let mut active = ServiceProcess::start("receipts", &app.env, &WORKER);
    wait_for_lease(&mut redis, &lease, true).await;
    let room = app.group("alice", &["bob"]).await;
    let mut alice = StompClient::connect(&app.base_url, &app.token("alice"))
        .await
        .ignoring_presence();
    alice
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;
    send(&app, "alice", &room, "before").await;
    let chat = next_of(&mut alice, "CHAT", Duration::from_secs(10)).await;
    assert_eq!(chat.expect("CHAT")["content"], "before");

    let mut takeovers = Vec::new();
    for round in 0..3 {
        let standby = ServiceProcess::start("receipts", &app.env, &WORKER);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let killed = Instant::now();
        active.kill();
        let content = format!("after kill {round}");
        send(&app, "alice", &room, &content).await;
        let chat = next_of(&mut alice, "CHAT", Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("no CHAT within 20 s of kill -9 (round {round})"));
        let outage = killed.elapsed();
        assert_eq!(chat["content"], content.as_str());
        assert_eq!(chat["unreadCount"], 1, "bob is away: {chat}");
        eprintln!(
            "round {round}: CHAT delivered {:.2} s after kill -9 of the active worker",
            outage.as_secs_f64()
        );
        takeovers.push(outage);
        active = standby;
    }
    for (round, outage) in takeovers.iter().enumerate() {
        assert!(
            *outage <= Duration::from_secs(5),
            "round {round}: take-over took {outage:?}"
        );
    }
    let rest = drain(
        &mut alice,
        Duration::from_millis(800),
        Duration::from_secs(5),
    )
    .await;
    assert!(rest.is_empty(), "nothing delivered twice: {rest:?}");
    wait_for_badge(&app, "bob", 4).await;
    drop(active);
}

/// A GROUP room of alice, bob and carol with alice in it (and on her room-list feed with
/// `alice_feed`) and bob on his feed, what they got so far drained, and the receipts worker
/// stopped: whatever the test stores next waits for the next worker.
async fn room_without_worker(alice_feed: bool) -> (TestApp, String, StompClient, StompClient) {
    let mut app = TestApp::start().await;
    let room = app.group("alice", &["bob", "carol"]).await;
    let mut alice = StompClient::connect(&app.base_url, &app.token("alice")).await;
    alice
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;
    if alice_feed {
        alice.subscribe("f", "/sub/users/alice", &[]).await;
    }
    let mut bob = StompClient::connect(&app.base_url, &app.token("bob")).await;
    bob.subscribe("f", "/sub/users/bob", &[]).await;
    let info = next_of(&mut alice, "INFO", Duration::from_secs(10)).await;
    assert_eq!(info.expect("INFO")["userId"], "alice");
    // The room's creation reached the feeds before alice's INFO: drop it.
    drain(
        &mut alice,
        Duration::from_millis(300),
        Duration::from_secs(2),
    )
    .await;
    drain(&mut bob, Duration::from_millis(300), Duration::from_secs(2)).await;
    app.stop_receipts().await;
    (app, room, alice, bob)
}

#[tokio::test]
async fn a_worker_killed_between_applying_and_publishing_publishes_everything_once() {
    let (app, room, mut alice, mut bob) = room_without_worker(true).await;

    // Everything below is stored while no worker runs: one batch for the next worker.
    let first = send(&app, "alice", &room, "m1").await;
    let mut carol = StompClient::connect(&app.base_url, &app.token("carol")).await;
    carol
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;
    send(&app, "alice", &room, "m2").await;
    let unsubscribe = edge::stomp::Frame::new(Stomp::Unsubscribe)
        .with_header("id", "r")
        .with_header("receipt", "unsub");
    carol.send(unsubscribe).await;
    carol.expect_receipt("unsub").await;
    send(&app, "alice", &room, "m3").await;
    let (status, left) = app
        .delete("bob", &format!("/api/rooms/{room}/members/me"))
        .await;
    assert!((200..300).contains(&status), "{left}");
    let last = send(&app, "alice", &room, "m4").await;

    let crash = first.to_string();
    let mut doomed = ServiceProcess::start(
        "receipts",
        &app.env,
        &[
            ("CHAT_RECEIPTS__FETCH_WAIT_MS", "50"),
            // The pull hands over what has arrived; the linger makes the batch all of it.
            ("CHAT_RECEIPTS__LINGER_MS", "500"),
            ("CHAT_RECEIPTS__TEST_CRASH_AFTER_APPLY", crash.as_str()),
        ],
    );
    let mut redis = app.env.redis.clone();
    let room_keys = chat_read_state::ReadKeys::new(app.env.redis_settings.key_prefix.clone())
        .room(&room.parse().expect("room id"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seq: Option<u64> = redis::cmd("HGET")
            .arg(&room_keys.room)
            .arg("applied")
            .query_async(&mut redis)
            .await
            .expect("GET");
        if seq == Some(last) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the batch was not applied: {seq:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exit = doomed.wait_exit(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|status| !status.success()),
        "the test hook aborts the worker: {exit:?}"
    );
    let recorded: u64 = redis::cmd("HLEN")
        .arg(&room_keys.outcomes)
        .query_async(&mut redis)
        .await
        .expect("HLEN");
    assert_eq!(
        recorded, 7,
        "m1..m4, INFO, OUT and LEAVE applied, not published"
    );
    let early = drain(
        &mut alice,
        Duration::from_millis(300),
        Duration::from_secs(1),
    )
    .await;
    assert!(
        early.is_empty(),
        "nothing published before the crash: {early:?}"
    );

    let restarted = Instant::now();
    let worker = ServiceProcess::start("receipts", &app.env, &WORKER);
    let room_and_feed = collect(&mut alice, 11, Duration::from_secs(30)).await;
    eprintln!(
        "restarted worker published the batch within {:.2} s",
        restarted.elapsed().as_secs_f64()
    );
    let (room_events, feed): (Vec<&Value>, Vec<&Value>) = room_and_feed
        .iter()
        .partition(|body| body.get("roomUnreadCount").is_none());
    let room_events: Vec<String> = room_events.into_iter().map(summary).collect();
    assert_eq!(
        room_events,
        [
            "CHAT content=\"m1\" unreadCount=2",
            "INFO userId=\"carol\" readCount=1",
            "CHAT content=\"m2\" unreadCount=1",
            "OUT userId=\"carol\"",
            "CHAT content=\"m3\" unreadCount=2",
            "LEAVE userId=\"bob\" readCount=3",
            "CHAT content=\"m4\" unreadCount=1",
        ],
        "every room event once, in order, LEAVE with its readCount"
    );
    let feed: Vec<String> = feed.into_iter().map(summary).collect();
    assert_eq!(
        feed,
        [1, 2, 3, 4].map(|i| format!(
            "CHAT content=\"m{i}\" unreadCount={} roomUnreadCount=0",
            [2, 1, 2, 1][i - 1]
        )),
        "alice's feed: every entry once"
    );
    let bob_feed = summaries(&mut bob).await;
    assert_eq!(
        bob_feed,
        [
            "CHAT content=\"m1\" unreadCount=2 roomUnreadCount=1",
            "CHAT content=\"m2\" unreadCount=1 roomUnreadCount=2",
            "CHAT content=\"m3\" unreadCount=2 roomUnreadCount=3",
        ],
        "bob's feed up to his LEAVE, each once"
    );
    let recorded: u64 = redis::cmd("HLEN")
        .arg(&room_keys.outcomes)
        .query_async(&mut redis)
        .await
        .expect("HLEN");
    assert_eq!(recorded, 0, "published outcomes are forgotten");

    // A feed entry published again (a worker that died after publishing, before marking it)
    // does not reach the subscription twice.
    let mut headers = HeaderMap::new();
    headers.insert(EventLog::MESSAGE_ID_HEADER, last.to_string().as_str());
    headers.insert(EventLog::ROOM_HEADER, room.as_str());
    let again = json!({"type": "CHAT", "roomId": room, "messageId": last.to_string(),
        "senderId": "alice", "content": "m4", "unreadCount": 1, "roomUnreadCount": 0});
    let alice_id = user("alice");
    app.env
        .nats
        .publish_with_headers(
            app.env.log.user_subject(&alice_id),
            headers,
            again.to_string().into(),
        )
        .await
        .expect("publish");
    app.env.nats.flush().await.expect("flush");
    send(&app, "alice", &room, "m5").await;
    let after = drain(&mut alice, Duration::from_secs(1), Duration::from_secs(10)).await;
    let mut after: Vec<String> = after.iter().map(summary).collect();
    after.sort();
    assert_eq!(
        after,
        [
            "CHAT content=\"m5\" unreadCount=1",
            "CHAT content=\"m5\" unreadCount=1 roomUnreadCount=0",
        ],
        "the repeated feed entry was dropped"
    );
    wait_for_badge(&app, "carol", 3).await;
    drop(worker);
}

/// A worker that published a batch's views from memory (`publish_from_memory`) and is killed
/// once Redis applied the batch, before marking it published: clients already have the views,
/// the next worker publishes them again from the records, and edges drop the repeats, so each
/// event reaches each subscription once, with the counts Redis holds.
#[tokio::test]
async fn views_published_from_memory_before_a_crash_reach_clients_once() {
    let (app, room, mut alice, mut bob) = room_without_worker(false).await;

    // The log is this test's own: nothing comes between m1 and m2.
    let first = send(&app, "alice", &room, "m1").await;
    let crash = (first + 1).to_string();
    let mut doomed = ServiceProcess::start(
        "receipts",
        &app.env,
        &[
            ("CHAT_RECEIPTS__FETCH_WAIT_MS", "50"),
            ("CHAT_RECEIPTS__TEST_CRASH_AFTER_APPLY", crash.as_str()),
        ],
    );
    // m1 loads the room into the worker's memory; its view waits for Redis.
    let m1 = next_of(&mut alice, "CHAT", Duration::from_secs(20)).await;
    assert_eq!(
        m1.as_ref().map(summary).as_deref(),
        Some("CHAT content=\"m1\" unreadCount=2")
    );
    let second = send(&app, "alice", &room, "m2").await;
    assert_eq!(second, first + 1);
    let m2 = next_of(&mut alice, "CHAT", Duration::from_secs(10)).await;
    assert_eq!(
        m2.as_ref().map(summary).as_deref(),
        Some("CHAT content=\"m2\" unreadCount=2"),
        "m2's view went out before the hook aborted the worker"
    );
    let exit = doomed.wait_exit(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|status| !status.success()),
        "the test hook aborts the worker once m2 is applied: {exit:?}"
    );
    let redis = app.env.redis.clone();
    let room_keys = chat_read_state::ReadKeys::new(app.env.redis_settings.key_prefix.clone())
        .room(&room.parse().expect("room id"));
    let recorded = |mut redis: chat_platform::redis_connection::RedisConnection| {
        let outcomes = room_keys.outcomes.clone();
        async move {
            redis::cmd("HLEN")
                .arg(&outcomes)
                .query_async::<u64>(&mut redis)
                .await
                .expect("HLEN")
        }
    };
    assert_eq!(
        recorded(redis.clone()).await,
        1,
        "m2 applied, not marked published"
    );

    let worker = ServiceProcess::start("receipts", &app.env, &WORKER);
    let deadline = Instant::now() + Duration::from_secs(20);
    while recorded(redis.clone()).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the next worker did not publish m2 again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    send(&app, "alice", &room, "m3").await;
    let rest: Vec<String> = collect(&mut alice, 1, Duration::from_secs(20))
        .await
        .iter()
        .map(summary)
        .collect();
    assert_eq!(
        rest,
        ["CHAT content=\"m3\" unreadCount=2"],
        "the republished m2 was dropped"
    );
    let bob_feed = summaries(&mut bob).await;
    assert_eq!(
        bob_feed,
        (1..=3)
            .map(|i| format!("CHAT content=\"m{i}\" unreadCount=2 roomUnreadCount={i}"))
            .collect::<Vec<_>>(),
        "bob's feed: every entry once"
    );
    drop(worker);
}

/// A Redis server of this test alone, on a free port, with its append-only file in a fresh
/// directory; stopped and removed when dropped.
struct PrivateRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("receipts-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut redis = Self {
            child: None,
            port,
            dir,
        };
        redis.run();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server on its port and directory and waits until it answers.
    fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--appendonly", "yes", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ping = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "ping"])
                .output();
            if ping.is_ok_and(|out| out.stdout.starts_with(b"PONG")) {
                return;
            }
            assert!(Instant::now() < deadline, "private redis did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server cleanly (SIGTERM: it writes its append-only file) and waits.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_redis_restart_under_a_running_worker_loses_and_doubles_nothing() {
    let mut private = PrivateRedis::start();
    let url = private.url();
    let mut app = TestApp::start_with(|settings| settings.redis.url = url.clone()).await;
    app.stop_receipts().await;
    let worker_env = [
        ("CHAT_RECEIPTS__FETCH_WAIT_MS", "50"),
        ("CHAT_REDIS__URL", url.as_str()),
    ];
    let worker = ServiceProcess::start("receipts", &app.env, &worker_env);
    let room = app.group("alice", &["bob"]).await;
    let mut alice = StompClient::connect(&app.base_url, &app.token("alice"))
        .await
        .ignoring_presence();
    alice
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;

    const MESSAGES: usize = 40;
    let mut sent = Vec::new();
    let mut down = None;
    let mut restarted = None;
    for i in 0..MESSAGES {
        sent.push(send(&app, "alice", &room, &format!("m{i}")).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        if i == 10 {
            private.stop();
            down = Some(Instant::now());
        }
        if i == 30 {
            private.run();
            restarted = Some(Instant::now());
        }
    }
    let (down, restarted) = (down.expect("stopped"), restarted.expect("restarted"));
    eprintln!(
        "redis was down for {:.2} s",
        restarted.duration_since(down).as_secs_f64()
    );
    let mut live = Vec::new();
    while live.len() < MESSAGES {
        let Some(chat) = next_of(&mut alice, "CHAT", Duration::from_secs(30)).await else {
            break;
        };
        assert_eq!(chat["unreadCount"], 1, "{chat}");
        live.push(
            chat["messageId"]
                .as_str()
                .and_then(|id| id.parse::<u64>().ok())
                .expect("id"),
        );
    }
    eprintln!(
        "all {} CHATs delivered {:.2} s after redis came back",
        live.len(),
        restarted.elapsed().as_secs_f64()
    );
    assert_eq!(live, sent, "every CHAT delivered live once, in order");
    let rest = drain(
        &mut alice,
        Duration::from_millis(800),
        Duration::from_secs(5),
    )
    .await;
    assert!(rest.is_empty(), "nothing delivered twice: {rest:?}");
    wait_for_badge(&app, "bob", MESSAGES as u64).await;
    let mut redis = chat_platform::connect::redis(&chat_platform::settings::RedisSettings {
        url: url.clone(),
        ..app.env.redis_settings.clone()
    })
    .await
    .expect("private redis");
    let lease = chat_read_state::ReadKeys::new(app.env.redis_settings.key_prefix.clone())
        .lease("receipts-0-of-1");
    wait_for_lease(&mut redis, &lease, true).await;
    send(&app, "alice", &room, "after").await;
    let chat = next_of(&mut alice, "CHAT", Duration::from_secs(10)).await;
    assert_eq!(
        chat.expect("CHAT")["content"],
        "after",
        "the worker goes on"
    );
    wait_for_badge(&app, "bob", MESSAGES as u64 + 1).await;
    drop(worker);
}
